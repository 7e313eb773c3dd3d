//! Redaction of secrets in log output: stockade API keys (`stk_<id>_<secret>` keeps its public
//! id), JSON Web Tokens, `Bearer` credentials, the values after credential header names, and
//! literal secrets registered at start-up (the JWT HMAC secret). The service never logs headers,
//! code or environment values in the first place; this is the second line, applied to every
//! log line (`Redacting` wraps the tracing writer) and every free-text audit field.

use std::io::Write;
use std::sync::{OnceLock, RwLock};

use tracing_subscriber::fmt::MakeWriter;

const MARK: &str = "[REDACTED]";

/// Literal secrets known to the process (shorter ones would redact ordinary words).
static LITERALS: OnceLock<RwLock<Vec<String>>> = OnceLock::new();

fn literals() -> &'static RwLock<Vec<String>> {
    LITERALS.get_or_init(|| RwLock::new(Vec::new()))
}

/// Register a secret that must never appear in logs (ignored below 8 bytes).
pub fn register_literal(secret: &str) {
    if secret.len() >= 8 {
        let mut l = literals()
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !l.iter().any(|s| s == secret) {
            l.push(secret.to_string());
        }
    }
}

/// Header names (lowercase) whose values are credentials.
const CREDENTIAL_NAMES: [&str; 6] = [
    "authorization",
    "x-api-key",
    "x-auth-token",
    "proxy-authorization",
    "cookie",
    "bearer",
];

fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.~+/=".contains(&b)
}

/// `text` with every recognisable secret replaced.
pub fn redact(text: &str) -> String {
    let mut out = scrub_tokens(text);
    let l = literals()
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for s in l.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MARK);
        }
    }
    out
}

/// One pass over the text: keys, JWTs and values after credential names.
fn scrub_tokens(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        if let Some((keep, end)) = secret_at(text, i) {
            out.push_str(&text[copied..i]);
            out.push_str(keep);
            out.push_str(MARK);
            i = end;
            copied = end;
        } else {
            i += 1;
            while i < b.len() && !text.is_char_boundary(i) {
                i += 1;
            }
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// A secret starting at byte `i`: the part to keep (a key's public prefix, a header name) and
/// where the secret ends.
fn secret_at(text: &str, i: usize) -> Option<(&str, usize)> {
    let b = text.as_bytes();
    let starts_word = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b"-_.".contains(&b[i - 1]));
    if !starts_word {
        return None;
    }
    let rest = &text[i..];
    let token_end = |from: usize| {
        let mut j = from;
        while j < b.len() && token_byte(b[j]) {
            j += 1;
        }
        j
    };
    if rest.starts_with("stk_") && rest.len() > 13 && rest.as_bytes()[12] == b'_' {
        let end = token_end(i + 13);
        if end > i + 13 {
            return Some((&text[i..i + 13], end));
        }
    }
    if rest.starts_with("eyJ") {
        let end = token_end(i);
        if text[i..end].matches('.').count() >= 2 {
            return Some(("", end));
        }
    }
    for name in CREDENTIAL_NAMES {
        let n = name.len();
        if !b[i..]
            .get(..n)
            .is_some_and(|p| p.eq_ignore_ascii_case(name.as_bytes()))
        {
            continue;
        }
        // `name` then separators (`: `, `=`, `":"`, spaces), then the value.
        let mut j = i + n;
        while j < b.len() && matches!(b[j], b':' | b'=' | b' ' | b'"' | b'\'' | b'\\') {
            j += 1;
        }
        if j == i + n {
            continue;
        }
        // `Authorization: Bearer xyz`: keep the scheme, redact what follows.
        for scheme in ["bearer ", "basic "] {
            let m = scheme.len();
            if b[j..]
                .get(..m)
                .is_some_and(|p| p.eq_ignore_ascii_case(scheme.as_bytes()))
            {
                j += m;
                break;
            }
        }
        let end = token_end(j);
        if end > j {
            return Some((&text[i..j], end));
        }
    }
    None
}

/// A `MakeWriter` whose writers redact each write (tracing's fmt layer writes one whole event
/// per call).
#[derive(Debug, Clone, Copy)]
pub struct Redacting<M>(pub M);

pub struct RedactingWriter<W: Write>(W);

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter(self.0.make_writer())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn keys_tokens_and_credential_values_are_redacted() {
        let key = "stk_0a1b2c3d_Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg";
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";
        let cases = [
            (
                format!("key {key} used"),
                "key stk_0a1b2c3d_[REDACTED] used".to_string(),
            ),
            (format!("token={jwt}!"), "token=[REDACTED]!".to_string()),
            (
                "Authorization: Bearer abc.def-123".into(),
                "Authorization: Bearer [REDACTED]".into(),
            ),
            (
                "authorization=rawkey123 next".into(),
                "authorization=[REDACTED] next".into(),
            ),
            (
                r#"{"x-api-key":"k-123","ok":1}"#.into(),
                r#"{"x-api-key":"[REDACTED]","ok":1}"#.into(),
            ),
            (
                "X-Auth-Token: t0k3n".into(),
                "X-Auth-Token: [REDACTED]".into(),
            ),
            (
                "nothing secret here: eyJ alone".into(),
                "nothing secret here: eyJ alone".into(),
            ),
            ("mystk_0a1b2c3d_abc".into(), "mystk_0a1b2c3d_abc".into()),
        ];
        for (input, want) in cases {
            assert_eq!(redact(&input), want, "{input}");
        }
    }

    #[test]
    fn registered_literals_are_redacted() {
        register_literal("hunter2-but-longer");
        register_literal("short");
        assert_eq!(
            redact("secret is hunter2-but-longer."),
            "secret is [REDACTED]."
        );
        assert_eq!(redact("short stays"), "short stays");
    }

    #[test]
    fn the_writer_redacts_what_it_writes() {
        let mut buf = Vec::new();
        {
            let mut w = RedactingWriter(&mut buf);
            w.write_all(b"header authorization: Bearer sekrit-value\n")
                .unwrap();
        }
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "header authorization: Bearer [REDACTED]\n"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn redaction_never_panics_and_removes_keys(prefix in ".{0,40}", suffix in ".{0,40}") {
            let key = "stk_deadbeef_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";
            let text = format!("{prefix} {key} {suffix}");
            let out = redact(&text);
            prop_assert!(!out.contains("c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"));
        }
    }
}
