//! Custom presets and rules from TOML: behaviour, and errors naming file, line and field.

use std::path::Path;

use crate::analysis::Language::Python;
use crate::analysis::{AnalysisError, Severity, analyze, parse_rules};

fn load(text: &str) -> Result<crate::analysis::Preset, AnalysisError> {
    parse_rules(Path::new("rules.toml"), text, None)
}

fn error(text: &str) -> String {
    load(text).expect_err("must be rejected").to_string()
}

#[test]
fn a_file_extends_a_preset_with_overrides_and_custom_rules() {
    let preset = load(
        r#"
name = "team"
extends = "production"
threshold = "medium"
disable = ["env-access"]

[severity]
code-eval = "high"
network-http = "medium"

[[rule]]
id = "no-yaml"
message = "YAML parsing"
severity = "high"
languages = ["python"]
imports = ["yaml"]
calls = ["yaml.*"]

[[rule]]
id = "no-tmp-writes"
message = "write under /tmp"
severity = "low"
calls = ["open"]
[rule.arg]
position = 0
contains = ["/tmp/"]
"#,
    )
    .unwrap();
    assert_eq!(preset.name(), "team");
    assert_eq!(preset.threshold(), Severity::Medium);
    assert!(!preset.rules().iter().any(|r| r.id == "env-access"));
    let check = |code: &str| analyze(code, Python, &preset);
    assert!(
        check("import os\nos.environ['X']")
            .findings
            .iter()
            .all(|f| f.rule != "env-access")
    );
    let eval = check("eval('1')");
    assert_eq!(eval.findings[0].severity, Severity::High);
    // network-http was not in production: naming it in [severity] enables it.
    assert!(!check("import requests\nrequests.get('x')").safe);
    assert!(!check("import yaml").safe);
    let tmp = check("open('/tmp/x')");
    assert!(tmp.safe, "LOW is below the file's threshold");
    assert_eq!(tmp.findings[0].rule, "no-tmp-writes");
}

#[test]
fn a_file_without_extends_builds_on_the_given_base() {
    let preset = parse_rules(Path::new("x.toml"), "threshold = \"high\"", Some("strict")).unwrap();
    assert_eq!(preset.name(), "x");
    assert!(preset.rules().iter().any(|r| r.id == "module-sys"));
    let conflict = parse_rules(Path::new("x.toml"), "extends = \"minimal\"", Some("strict"));
    let message = conflict.unwrap_err().to_string();
    assert!(message.contains("x.toml:1: extends:"), "{message}");
}

#[test]
fn a_rules_file_path_works_wherever_a_preset_name_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lenient.toml");
    std::fs::write(&path, "extends = \"strict\"\nthreshold = \"high\"\n").unwrap();
    let preset = crate::analysis::load_preset(path.to_str().unwrap()).unwrap();
    assert_eq!(
        (preset.name(), preset.threshold()),
        ("lenient", Severity::High)
    );
    assert!(analyze("import threading", Python, &preset).safe);
    assert!(!analyze("import sys", Python, &preset).safe);
    let missing = crate::analysis::load_preset("/nonexistent/rules.toml").unwrap_err();
    assert!(
        matches!(missing, AnalysisError::ReadRules { .. }),
        "{missing}"
    );
    assert!(missing.to_string().contains("/nonexistent/rules.toml"));
}

#[test]
fn errors_name_the_file_line_and_field() {
    let cases: &[(&str, &str)] = &[
        (
            "threshold = \"low\"\nbogus = 1\n",
            "rules.toml:2:1: unknown field `bogus`",
        ),
        (
            "\n\nthreshold = \"severe\"\n",
            "rules.toml:3: threshold: unknown severity `severe`",
        ),
        (
            "extends = \"lax\"\n",
            "rules.toml:1: extends: unknown preset `lax`",
        ),
        (
            "disable = [\n  \"system-command\",\n  \"nope\",\n]\n",
            "rules.toml:3: disable: rule `nope`",
        ),
        (
            "[severity]\nnope = \"low\"\n",
            "rules.toml:2: severity.nope: unknown rule id `nope`",
        ),
        (
            "[severity]\ncode-eval = \"huge\"\n",
            "rules.toml:2: severity.code-eval: unknown severity",
        ),
        (
            "[[rule]]\nid = \"r\"\nmessage = \"m\"\nseverity = \"low\"\n",
            "rules.toml:1: rule `r`.match: nothing to match",
        ),
        (
            "[[rule]]\nid = \"r\"\nmessage = \"m\"\nseverity = \"low\"\nlanguages = [\"cobol\"]\nimports = [\"x\"]\n",
            "rules.toml:5: rule `r`.languages: unknown language `cobol`",
        ),
        (
            "[[rule]]\nid = \"r\"\nmessage = \"m\"\nseverity = \"low\"\nconstructs = [\"magic\"]\n",
            "rules.toml:5: rule `r`.constructs: unknown construct `magic`",
        ),
        (
            "[[rule]]\nid = \"r\"\nmessage = \"m\"\nseverity = \"low\"\nimports = [\"x\"]\n[rule.arg]\ncontains = [\"y\"]\n",
            "rule `r`.arg: an argument condition needs calls or commands",
        ),
        (
            "[[rule]]\nid = \"r\"\nseverity = \"low\"\nimports = [\"x\"]\n",
            "rules.toml:1:1: missing field `message`",
        ),
        ("threshold = ", "rules.toml:1:"),
    ];
    let mut failures = Vec::new();
    for (text, want) in cases {
        let got = error(text);
        if !got.contains(want) {
            failures.push(format!("{text:?}\n  got:  {got}\n  want: {want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
