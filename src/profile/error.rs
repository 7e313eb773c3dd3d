//! Profile errors that name the file, line, column and field, with a hint where one helps.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use toml::de::{DeTable, DeValue};

/// Why a profile could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A name that is neither built in nor in a profile directory.
    #[error("profile `{name}` not found (looked in {searched}){}", hint_suffix(.suggestion))]
    NotFound {
        name: String,
        searched: String,
        suggestion: Option<String>,
    },
    /// A name with characters other than `[a-z0-9_-]`.
    #[error(
        "invalid profile name `{0}`: use lowercase letters, digits, `_` and `-`, or give a path (containing `/` or ending in `.toml`)"
    )]
    BadName(String),
    #[error("read profile {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A syntax error, an unknown field or a bad value, with its position.
    #[error("{0}")]
    Invalid(Box<Invalid>),
    /// `extends` leads back to a profile already in the chain.
    #[error("profile inheritance cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    /// Neither the profile nor the caller gave a command.
    #[error(
        "profile `{0}` is a security preset with no interpreter: give a language and apply the preset on top (`--profile python --preset {0}`; in the API `\"profile\": \"python\", \"preset\": \"{0}\"`), or give the command after `--`"
    )]
    NoCommand(String),
    /// A preset was asked for on top of a profile that runs nothing itself.
    #[error(
        "`{name}` is a security preset with no interpreter, so `{preset}` cannot go on top of it; give a language profile, e.g. `--profile python --preset {preset}`"
    )]
    NotALanguage { name: String, preset: String },
    /// The profile given as a preset runs an interpreter.
    #[error(
        "`{name}` is a language profile (it runs `{command}`), not a preset; presets set limits and layers only (`stockade profile list` marks them `(preset)`)"
    )]
    NotAPreset { name: String, command: String },
    #[error("preset `{name}` not found (presets: {presets}){}", hint_suffix(.suggestion))]
    UnknownPreset {
        name: String,
        presets: String,
        suggestion: Option<String>,
    },
    /// Code or files that cannot be delivered as asked.
    #[error("{0}")]
    BadInput(String),
    /// A chain longer than `MAX_DEPTH`: almost certainly a mistake.
    #[error("profile inheritance deeper than {max} levels: {}", .chain.join(" -> "))]
    TooDeep { max: usize, chain: Vec<String> },
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default()
}

/// A positioned error inside one profile file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The file as the user named it (`profiles/python.toml (built in)` for embedded ones).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Dotted path of the field (`limits.memory`); empty when the error is not about one field.
    pub field: String,
    /// What is wrong, naming the field.
    pub message: String,
    /// How to fix it, e.g. "did you mean `memory`?".
    pub hint: Option<String>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "; {hint}")?;
        }
        Ok(())
    }
}

/// One file's text plus its display name: turns byte spans into positioned errors.
pub struct SourceFile<'a> {
    pub name: String,
    pub text: &'a str,
}

impl SourceFile<'_> {
    /// An error about `field` at `span`.
    pub fn error(
        &self,
        span: Range<usize>,
        field: &str,
        message: String,
        hint: Option<String>,
    ) -> ProfileError {
        let (line, column) = line_column(self.text, span.start);
        ProfileError::Invalid(Box::new(Invalid {
            file: self.name.clone(),
            line,
            column,
            field: field.to_string(),
            message,
            hint,
        }))
    }

    /// Turn a `toml` deserialisation error into a positioned one, naming the field and, for an
    /// unknown field, suggesting the nearest valid name.
    pub fn toml_error(&self, err: &toml::de::Error) -> ProfileError {
        let span = err.span().unwrap_or(0..0);
        let path = key_path_at(self.text, span.start);
        let field = path.join(".");
        let message = err.message().trim_end_matches('.').to_string();
        if let Some((unknown, expected)) = parse_unknown_field(&message) {
            let section = match &path[..path.len().saturating_sub(1)] {
                [] => "the top level".to_string(),
                parent => format!("[{}]", parent.join(".")),
            };
            let hint = match nearest(&unknown, &expected) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!("valid fields: {}", expected.join(", ")),
            };
            let message = format!("unknown field `{unknown}` in {section}");
            return self.error(span, &field, message, Some(hint));
        }
        let message = match field.is_empty() {
            true => message,
            false => format!("`{field}`: {message}"),
        };
        self.error(span, &field, message, None)
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// `unknown field `x`, expected `a` or `b`` / `expected one of `a`, `b`, `c`` → (x, [a, b, c]).
fn parse_unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((unknown.to_string(), expected))
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a typo.
pub fn nearest<'c>(word: &str, candidates: &'c [String]) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

/// Levenshtein distance with transpositions counted as one edit (optimal string alignment),
/// so `memroy` is one step from `memory`.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

/// The dotted key path whose key or value contains `offset` (`["limits", "memroy"]`), found by
/// re-parsing the text with spans; empty if the text does not parse or nothing matches.
pub fn key_path_at(text: &str, offset: usize) -> Vec<String> {
    let Ok(doc) = DeTable::parse(text) else {
        return Vec::new();
    };
    let mut path = Vec::new();
    find_in_table(doc.get_ref(), offset, &mut path);
    path
}

fn find_in_table(table: &DeTable<'_>, offset: usize, path: &mut Vec<String>) -> bool {
    for (key, value) in table {
        path.push(key.get_ref().to_string());
        if find_in_value(value.get_ref(), offset, path)
            || key.span().contains(&offset)
            || value.span().contains(&offset)
        {
            return true;
        }
        path.pop();
    }
    false
}

fn find_in_value(value: &DeValue<'_>, offset: usize, path: &mut Vec<String>) -> bool {
    match value {
        DeValue::Table(t) => find_in_table(t, offset, path),
        // Array elements keep the array's name: `rootfs.mounts`, not `rootfs.mounts[1]`.
        DeValue::Array(items) => items.iter().any(|item| match item.get_ref() {
            DeValue::Table(t) => find_in_table(t, offset, path),
            _ => false,
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_transpositions_once() {
        assert_eq!(edit_distance("memroy", "memory"), 1);
        assert_eq!(edit_distance("wal", "wall"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn nearest_rejects_far_words() {
        let fields: Vec<String> = ["memory", "pids", "wall"].map(String::from).to_vec();
        assert_eq!(nearest("memroy", &fields), Some("memory"));
        assert_eq!(nearest("pid", &fields), Some("pids"));
        assert_eq!(nearest("description", &fields), None);
    }

    #[test]
    fn positions_are_one_based_characters() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("é = 1\nx", 6), (1, 6));
    }

    #[test]
    fn key_paths_cover_tables_inline_tables_and_arrays() {
        let text = "a = 1\n[limits]\nmemory = \"x\"\n[run]\nx = { y = 2 }\n[[m]]\nz = 3\n";
        assert_eq!(
            key_path_at(text, text.find("\"x\"").unwrap()),
            ["limits", "memory"]
        );
        assert_eq!(
            key_path_at(text, text.find("{ y").unwrap() + 2),
            ["run", "x", "y"]
        );
        assert_eq!(key_path_at(text, text.find("z =").unwrap()), ["m", "z"]);
        assert_eq!(key_path_at(text, 0), ["a"]);
    }
}
