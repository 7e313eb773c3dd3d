//! Table-driven tests of the analyzer: per language, per preset, TOML rules, and fuzzing.

mod config;
mod fuzz;
mod javascript;
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
