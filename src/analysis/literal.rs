//! Decoding of string literals (Python, JavaScript, shell words) into the values the program sees,
//! so `"o\x73"` and `'os'` are the same module name to the analyzer.
//!
//! Escape tables: Python "String and Bytes literals" (docs.python.org/3/reference/lexical_analysis),
//! ECMAScript §12.9.4 "String Literals", bash(1) QUOTING. An escape we cannot decode (`\N{...}`)
//! makes the literal non-constant, which callers treat as "computed" (itself a finding).

/// The value of a Python string literal's source text (`r"..."`, `b'...'`, `"""..."""`); `None`
/// if it is not a plain literal (an f-string with fields is handled by the caller).
pub(crate) fn python_string(text: &str) -> Option<String> {
    let quote_at = text.find(['\'', '"'])?;
    let prefix = text[..quote_at].to_ascii_lowercase();
    let body = &text[quote_at..];
    let quote = if body.starts_with("\"\"\"") || body.starts_with("'''") {
        &body[..3]
    } else {
        &body[..1]
    };
    let inner = body.strip_prefix(quote)?.strip_suffix(quote)?;
    if prefix.contains('r') {
        Some(inner.to_string())
    } else {
        unescape(inner, Flavour::Python)
    }
}

/// The value of a JavaScript string literal's source text (`'...'`, `"..."`).
pub(crate) fn js_string(text: &str) -> Option<String> {
    let quote = text.chars().next()?;
    if quote != '\'' && quote != '"' && quote != '`' {
        return None;
    }
    let inner = text.strip_prefix(quote)?.strip_suffix(quote)?;
    unescape(inner, Flavour::JavaScript)
}

/// The value of a bash `$'...'` (ANSI-C quoted) string's source text.
pub(crate) fn ansi_c_string(text: &str) -> Option<String> {
    let inner = text.strip_prefix("$'")?.strip_suffix('\'')?;
    unescape(inner, Flavour::AnsiC)
}

/// An unquoted shell word with backslash escapes removed (`a\ b` is `a b`).
pub(crate) fn shell_word(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\n') | None => {}
                Some(next) => out.push(next),
            },
            _ => out.push(c),
        }
    }
    out
}

/// The inside of a bash double-quoted string: only `\$ \` \" \\ \newline` are escapes.
pub(crate) fn shell_double_quoted(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.peek() {
                Some('$' | '`' | '"' | '\\') => {
                    out.extend(chars.next());
                    continue;
                }
                Some('\n') => {
                    chars.next();
                    continue;
                }
                _ => {}
            }
        }
        out.push(c);
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Python,
    JavaScript,
    AnsiC,
}

fn unescape(inner: &str, flavour: Flavour) -> Option<String> {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else {
            out.push('\\');
            break;
        };
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' if flavour != Flavour::JavaScript => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            'e' | 'E' if flavour == Flavour::AnsiC => out.push('\u{1b}'),
            '\\' | '\'' | '"' | '`' => out.push(e),
            '\n' if flavour != Flavour::AnsiC => {}
            'x' => out.push(hex_digits(&mut chars, 2)?),
            'u' if flavour == Flavour::JavaScript && chars.peek() == Some(&'{') => {
                chars.next();
                let mut hex = String::new();
                for h in chars.by_ref() {
                    if h == '}' {
                        break;
                    }
                    hex.push(h);
                }
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            'u' => out.push(hex_digits(&mut chars, 4)?),
            'U' if flavour != Flavour::JavaScript => out.push(hex_digits(&mut chars, 8)?),
            '0'..='7' => out.push(octal(e, &mut chars)?),
            'N' if flavour == Flavour::Python => return None,
            _ if flavour == Flavour::Python || flavour == Flavour::AnsiC => {
                // Python and bash keep unknown escapes verbatim (`"\d"` is backslash-d).
                out.push('\\');
                out.push(e);
            }
            _ => out.push(e),
        }
    }
    Some(out)
}

fn hex_digits(chars: &mut std::iter::Peekable<std::str::Chars>, n: usize) -> Option<char> {
    let mut value = 0u32;
    for _ in 0..n {
        value = value * 16 + chars.next()?.to_digit(16)?;
    }
    char::from_u32(value)
}

fn octal(first: char, chars: &mut std::iter::Peekable<std::str::Chars>) -> Option<char> {
    let mut value = first.to_digit(8)?;
    for _ in 0..2 {
        match chars.peek().and_then(|c| c.to_digit(8)) {
            Some(d) => {
                value = value * 8 + d;
                chars.next();
            }
            None => break,
        }
    }
    char::from_u32(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_literals_decode_to_their_values() {
        assert_eq!(python_string(r#""o\x73""#).as_deref(), Some("os"));
        assert_eq!(python_string(r"'\157s'").as_deref(), Some("os"));
        assert_eq!(python_string(r#"r"\x73""#).as_deref(), Some(r"\x73"));
        assert_eq!(python_string(r#"b'os'"#).as_deref(), Some("os"));
        assert_eq!(python_string("'''a\nb'''").as_deref(), Some("a\nb"));
        assert_eq!(python_string(r#""\u006fs""#).as_deref(), Some("os"));
        assert_eq!(python_string(r#""\d""#).as_deref(), Some(r"\d"));
        assert_eq!(python_string(r#""\N{DIGIT ONE}""#), None);
        assert_eq!(python_string(r#""""#).as_deref(), Some(""));
        assert_eq!(python_string(r#""unterminated"#), None);
    }

    #[test]
    fn js_and_shell_literals_decode_to_their_values() {
        assert_eq!(
            js_string(r#"'child_\u0070rocess'"#).as_deref(),
            Some("child_process")
        );
        assert_eq!(js_string(r#""\u{66}s""#).as_deref(), Some("fs"));
        assert_eq!(js_string(r"'\q'").as_deref(), Some("q"));
        assert_eq!(ansi_c_string(r"$'r\x6d'").as_deref(), Some("rm"));
        assert_eq!(shell_word(r"r\m"), "rm");
        assert_eq!(shell_double_quoted(r#"a\"b\n"#), "a\"b\\n");
    }
}
