//! Every preset's documented behaviour (docs/analysis.md), and the public API around presets.

use crate::analysis::Language::{JavaScript, Python, Shell};
use crate::analysis::{
    AnalysisError, Language, Severity, analyze, evaluate, load_preset, preset, preset_names,
};
use crate::policy::{AnalysisMode, AnalysisPolicy};

const ORDER: [&str; 7] = [
    "minimal",
    "development",
    "production",
    "educational",
    "data_science",
    "web_scraping",
    "strict",
];

/// Code and whether each preset (in `ORDER`) calls it safe.
const TABLE: &[(Language, &str, [bool; 7])] = &[
    // Pure computation is safe everywhere.
    (
        Python,
        "x = sum(i * i for i in range(10))\nprint(x)",
        [true; 7],
    ),
    // HTTP libraries: allowed except under strict (data science and scraping log them as LOW).
    (
        Python,
        "import requests\nrequests.get('http://example.com')",
        [true, true, true, true, true, true, false],
    ),
    // System commands: blocked by everything but minimal.
    (
        Python,
        "import os\nos.system('ls')",
        [true, false, false, false, false, false, false],
    ),
    // eval: production and strict block; educational only warns (LOW).
    (
        Python,
        "eval('2 + 2')",
        [true, true, false, true, true, true, false],
    ),
    // Native code: blocked everywhere.
    (Python, "import ctypes", [false; 7]),
    // Destructive commands: blocked everywhere, even through os.system without an import.
    (Python, "os.system('rm -rf /')", [false; 7]),
    // File writes: production and strict block; data science and scraping allow (LOW).
    (
        Python,
        "with open('out.csv', 'w') as f:\n    f.write('x')",
        [true, true, false, true, true, true, false],
    ),
    // Sockets: production, data science, scraping and strict block; educational allows.
    (
        Python,
        "import socket\ns = socket.socket()",
        [true, true, false, true, false, false, false],
    ),
    // Environment access: production blocks at LOW.
    (
        JavaScript,
        "console.log(process.env.HOME)",
        [true, true, false, true, true, true, false],
    ),
    // child_process: like Python's subprocess.
    (
        JavaScript,
        "require('child_process').exec('ls')",
        [true, false, false, false, false, false, false],
    ),
    // Shell: file writes through redirection.
    (
        Shell,
        "echo result > out.txt",
        [true, true, false, true, true, true, false],
    ),
    // Climbing to object.__subclasses__(): blocked by everything above development.
    (
        Python,
        "().__class__.__base__.__subclasses__()",
        [true, true, false, false, false, false, false],
    ),
    // Shell: privilege and destructive commands.
    (Shell, "sudo rm -rf /", [false; 7]),
    // Unparseable code: only production and strict refuse what they cannot analyse.
    (
        Python,
        "def f(:\n",
        [true, true, false, true, true, true, false],
    ),
];

#[test]
fn every_preset_follows_its_documented_behaviour() {
    assert_eq!(preset_names(), ORDER.to_vec());
    let mut failures = Vec::new();
    for (language, code, expected) in TABLE {
        for (name, want_safe) in ORDER.iter().zip(expected) {
            let report = analyze(code, *language, &preset(name).unwrap());
            if report.safe != *want_safe {
                failures.push(format!(
                    "{name} {language} {code:?}: safe={} want {want_safe}; {:?}",
                    report.safe, report.findings
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn thresholds_match_llm_sandbox_semantics() {
    let thresholds: Vec<(&str, Severity)> = ORDER
        .iter()
        .map(|n| (*n, preset(n).unwrap().threshold()))
        .collect();
    assert_eq!(
        thresholds,
        vec![
            ("minimal", Severity::High),
            ("development", Severity::High),
            ("production", Severity::Low),
            ("educational", Severity::Medium),
            ("data_science", Severity::Medium),
            ("web_scraping", Severity::Medium),
            ("strict", Severity::Low),
        ]
    );
    assert!(Severity::Safe < Severity::Low && Severity::Low < Severity::Medium);
    assert!(Severity::Medium < Severity::High);
}

#[test]
fn findings_below_the_threshold_are_reported_but_do_not_block() {
    let report = analyze("eval('1')", Python, &preset("educational").unwrap());
    assert!(report.safe);
    assert_eq!(report.max_severity, Severity::Low);
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.blocking().count(), 0);
    let strict = preset("educational").unwrap().with_threshold(Severity::Low);
    let report = analyze("eval('1')", Python, &strict);
    assert!(!report.safe);
    assert_eq!(report.blocking().count(), 1);
}

#[test]
fn preset_names_are_forgiving_and_unknown_ones_list_the_known() {
    assert_eq!(preset("Data-Science").unwrap().name(), "data_science");
    let err = preset("lenient").unwrap_err();
    assert!(matches!(err, AnalysisError::UnknownPreset { .. }));
    assert!(err.to_string().contains("web_scraping"), "{err}");
    assert!(load_preset("no/such/rules.toml").is_err());
}

#[test]
fn evaluate_uses_the_profile_policy() {
    let mut policy = AnalysisPolicy {
        mode: AnalysisMode::Enforce,
        preset: "educational".into(),
        language: None,
        threshold: None,
        ..AnalysisPolicy::default()
    };
    let report = evaluate(&policy, "eval('1')", Python).unwrap();
    assert!(report.safe);
    assert_eq!(report.mode, "enforce");
    assert_eq!(report.preset, "educational");
    assert_eq!(report.findings[0].rule, "code-eval");
    assert_eq!(report.findings[0].severity, "low");
    policy.threshold = Some(Severity::Low);
    assert!(!evaluate(&policy, "eval('1')", Python).unwrap().safe);
    // The policy's language wins over the caller's guess.
    policy.language = Some("shell".into());
    let report = evaluate(&policy, "rm -rf /", Python).unwrap();
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.rule == "destructive-command")
    );
    policy.language = Some("cobol".into());
    assert!(matches!(
        evaluate(&policy, "", Python),
        Err(AnalysisError::UnknownLanguage { .. })
    ));
}

#[test]
fn languages_are_named_and_guessed() {
    for (name, language) in [
        ("python", Python),
        ("py", Python),
        ("JavaScript", JavaScript),
        ("js", JavaScript),
        ("node", JavaScript),
        ("shell", Shell),
        ("sh", Shell),
        ("bash", Shell),
    ] {
        assert_eq!(Language::from_name(name), Some(language), "{name}");
    }
    assert_eq!(Language::from_name("ruby"), None);
    let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        Language::from_argv(&argv(&["python3.11", "-c", "1"])),
        Some(Python)
    );
    assert_eq!(
        Language::from_argv(&argv(&["/usr/bin/env", "node", "x"])),
        Some(JavaScript)
    );
    assert_eq!(
        Language::from_argv(&argv(&["/bin/sh", "-c", "x"])),
        Some(Shell)
    );
    assert_eq!(Language::from_argv(&argv(&["run", "job.py"])), Some(Python));
    assert_eq!(
        Language::from_shebang("#!/usr/bin/env python3\n"),
        Some(Python)
    );
    assert_eq!(Language::guess("#!/bin/bash\nls"), Shell);
    assert_eq!(Language::guess("import os\nprint(os.getcwd())"), Python);
    assert_eq!(
        Language::guess("const fs = require('fs');\nfs.readFileSync('x');"),
        JavaScript
    );
    assert_eq!(Language::guess("ls -la | grep foo && echo done"), Shell);
}
