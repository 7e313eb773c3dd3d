//! `allowed_modules` and `blocked_functions` as findings, through `evaluate_with_files`.

use std::path::PathBuf;

use crate::analysis::Language::{self, JavaScript, Python, Shell};
use crate::analysis::{evaluate, evaluate_with_files};
use crate::policy::{AnalysisMode, AnalysisPolicy};

fn policy(allowed: Option<&[&str]>, blocked: &[&str]) -> AnalysisPolicy {
    AnalysisPolicy {
        mode: AnalysisMode::Enforce,
        preset: "minimal".into(),
        allowed_modules: allowed.map(|l| l.iter().map(|s| s.to_string()).collect()),
        blocked_functions: blocked.iter().map(|s| s.to_string()).collect(),
        ..AnalysisPolicy::default()
    }
}

/// (rule, line, column, message) of the module findings of `code`.
fn found(
    p: &AnalysisPolicy,
    language: Language,
    code: &str,
) -> Vec<(String, usize, usize, String)> {
    let report = evaluate(p, code, language).unwrap();
    report
        .findings
        .into_iter()
        .filter(|f| f.rule.starts_with("blocked_"))
        .map(|f| (f.rule, f.line, f.column, f.message))
        .collect()
}

fn rules_at(p: &AnalysisPolicy, language: Language, code: &str) -> Vec<(String, usize, usize)> {
    found(p, language, code)
        .into_iter()
        .map(|(r, l, c, _)| (r, l, c))
        .collect()
}

fn at(rule: &str, line: usize, column: usize) -> (String, usize, usize) {
    (rule.to_string(), line, column)
}

#[test]
fn python_imports_outside_the_list_are_high_findings_with_positions() {
    let p = policy(Some(&["json", "os.path", "collections"]), &[]);
    let code = "import json\nimport os\nfrom collections import abc\nimport os.path\nx = 1; import socket as s\nfrom subprocess import run\n";
    assert_eq!(
        rules_at(&p, Python, code),
        [
            at("blocked_import", 2, 8),
            at("blocked_import", 5, 15),
            at("blocked_import", 6, 6)
        ]
    );
    let report = evaluate(&p, code, Python).unwrap();
    assert!(!report.safe, "a blocked import makes enforce mode refuse");
    let first = found(&p, Python, code).remove(0);
    assert_eq!(
        first.3,
        "Blocked import: os (not in the profile's allowed_modules)"
    );
    let high = report
        .findings
        .iter()
        .filter(|f| f.rule == "blocked_import");
    assert!(high.clone().all(|f| f.severity == "high"));
    assert_eq!(high.count(), 3);
}

#[test]
fn dynamic_and_nested_imports_are_seen() {
    let p = policy(Some(&["json"]), &[]);
    let code = "__import__('os')\nimport importlib\nimportlib.import_module('socket')\nexec('import ctypes')\n";
    let names: Vec<String> = found(&p, Python, code)
        .into_iter()
        .map(|(_, _, _, m)| m)
        .collect();
    for module in ["os", "importlib", "socket", "ctypes"] {
        assert!(
            names
                .iter()
                .any(|m| m.starts_with(&format!("Blocked import: {module} "))),
            "{module}: {names:?}"
        );
    }
    // Shell code running Python is analysed as Python.
    let shell = rules_at(&p, Shell, "python3 -c 'import os'");
    assert_eq!(shell.len(), 1, "{shell:?}");
}

#[test]
fn relative_imports_and_the_runs_own_files_are_allowed() {
    let p = policy(Some(&["json"]), &[]);
    let code = "import helper\nfrom pkg import util\nfrom . import sibling\nimport json\n";
    let files: Vec<(PathBuf, Vec<u8>)> = [
        "/sandbox/main.py",
        "/sandbox/helper.py",
        "/sandbox/pkg/util.py",
    ]
    .iter()
    .map(|p| (PathBuf::from(p), Vec::new()))
    .collect();
    let report = evaluate_with_files(&p, code, Python, &files).unwrap();
    assert!(report.safe, "{:?}", report.findings);
    // Without the files, `helper` and `pkg` are unknown modules.
    assert_eq!(found(&p, Python, code).len(), 2);
}

#[test]
fn node_requires_and_imports_follow_package_names() {
    let p = policy(Some(&["fs", "lodash", "@scope/pkg"]), &[]);
    let code = "const fs = require('node:fs');\nconst fsp = require('fs/promises');\nconst _ = require('lodash/fp');\nconst s = require('@scope/pkg/sub');\nconst local = require('./util');\nconst os = require('os');\nimport net from 'node:net';\n";
    assert_eq!(
        rules_at(&p, JavaScript, code),
        [at("blocked_import", 6, 20), at("blocked_import", 7, 17)]
    );
}

#[test]
fn blocked_functions_are_found_per_language() {
    let p = policy(None, &["eval", "exec", "open", "__import__", "Function"]);
    let py = "x = eval('1')\nexec('y = 2')\nf = open\nimport os\nbuiltins_eval = __builtins__.eval\ncompile('1', 'x', 'eval')\n";
    let py_found = found(&p, Python, py);
    let names: Vec<&str> = py_found
        .iter()
        .map(|(_, _, _, m)| m.split(' ').nth(2).unwrap_or(""))
        .collect();
    assert!(names.contains(&"eval"), "{py_found:?}");
    assert!(names.contains(&"exec"), "{py_found:?}");
    assert!(names.contains(&"open"), "{py_found:?}");
    assert!(!names.contains(&"compile"), "not listed: {py_found:?}");
    assert_eq!(
        py_found[0].3,
        "Blocked function: eval (in the profile's blocked_functions)"
    );
    // No allowlist: imports are free.
    assert!(py_found.iter().all(|f| f.0 == "blocked_function"));
    let js = "eval('1');\nconst f = new Function('return 1');\nconst exec = 1;\n";
    assert_eq!(
        rules_at(&p, JavaScript, js),
        [at("blocked_function", 1, 1), at("blocked_function", 2, 11)]
    );
}

#[test]
fn without_lists_there_are_no_module_findings() {
    let p = policy(None, &[]);
    assert!(found(&p, Python, "import os\neval('1')\n").is_empty());
    assert!(found(&p, JavaScript, "require('child_process')").is_empty());
}
