//! Table-driven tests of the analyzer: per language, per preset, TOML rules, and fuzzing.

mod config;
mod fuzz;
mod javascript;
mod modules;
mod presets;
mod python;
mod shell;

use super::{Finding, Language, analyze, preset};

/// Findings of `code` under a built-in preset.
pub(super) fn findings(language: Language, preset_name: &str, code: &str) -> Vec<Finding> {
    let preset = preset(preset_name).expect("built-in preset");
    analyze(code, language, &preset).findings
}

/// Sorted, deduplicated rule ids found in `code` under `strict` (which enables every family).
pub(super) fn rules(language: Language, code: &str) -> Vec<String> {
    let mut ids: Vec<String> = findings(language, "strict", code)
        .into_iter()
        .map(|f| f.rule)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Assert every case finds at least its expected rules (and reports them with a position).
pub(super) fn expect_rules(language: Language, cases: &[(&str, &[&str])]) {
    let mut failures = Vec::new();
    for (code, expected) in cases {
        let found = rules(language, code);
        let missing: Vec<&&str> = expected
            .iter()
            .filter(|e| !found.iter().any(|f| f == *e))
            .collect();
        if !missing.is_empty() {
            failures.push(format!("{code:?}: missing {missing:?}, found {found:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Assert no case has any finding under `strict`.
pub(super) fn expect_clean(language: Language, cases: &[&str]) {
    let mut failures = Vec::new();
    for code in cases {
        let found = findings(language, "strict", code);
        if !found.is_empty() {
            let list: Vec<String> = found
                .iter()
                .map(|f| format!("{}@{}:{} {}", f.rule, f.line, f.column, f.message))
                .collect();
            failures.push(format!("{code:?}: {list:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn code_of_finds_inline_code_files_and_stdin() {
    use std::path::{Path, PathBuf};

    use crate::analysis::code_of;
    let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cwd = Path::new("/sandbox");
    let files = vec![(PathBuf::from("/sandbox/main.py"), b"print(1)".to_vec())];
    assert_eq!(
        code_of(&argv(&["python3", "-c", "x=1"]), cwd, &files, None).as_deref(),
        Some("x=1")
    );
    assert_eq!(
        code_of(&argv(&["node", "-e", "1"]), cwd, &[], None).as_deref(),
        Some("1")
    );
    // Relative to the working directory, or absolute.
    assert_eq!(
        code_of(&argv(&["python3", "main.py"]), cwd, &files, None).as_deref(),
        Some("print(1)")
    );
    assert_eq!(
        code_of(&argv(&["python3", "/sandbox/main.py"]), cwd, &files, None).as_deref(),
        Some("print(1)")
    );
    // Otherwise the program comes from stdin, when there is any.
    assert_eq!(
        code_of(&argv(&["python3", "-"]), cwd, &[], Some(b"y=2")).as_deref(),
        Some("y=2")
    );
    assert_eq!(
        code_of(&argv(&["python3", "other.py"]), cwd, &files, None),
        None
    );
}
