//! `stockade check` through the built binary: exit codes (0 safe, 1 unsafe, 2 error), the JSON
//! shape, language guessing, presets, rules files and thresholds.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn stockade(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stockade"))
        .arg("check")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stockade");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait for stockade")
}

fn file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path.to_string_lossy().into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn safe_code_exits_0_and_unsafe_code_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let ok = file(dir.path(), "ok.py", "print(sum(range(10)))\n");
    let out = stockade(
        &["--preset", "production", "--language", "python", &ok],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("safe (python under preset production"),
        "{}",
        stdout(&out)
    );

    let bad = file(
        dir.path(),
        "app.py",
        "import sys, os\nx = \"#\"; os.system(\"id\")\n",
    );
    let out = stockade(&["--preset", "production", &bad], None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("unsafe"), "{text}");
    assert!(text.contains(":2:10: HIGH   system-command"), "{text}");
    assert!(text.contains(":1:13: HIGH   module-os"), "{text}");
}

#[test]
fn json_from_stdin_has_the_documented_shape() {
    let code = "// require('child_process') in a comment\nconst cp = require('child_' + 'process');\ncp.exec('id');\n";
    let out = stockade(&["--json", "--preset", "strict", "-"], Some(code));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(report["file"], "<stdin>");
    assert_eq!(report["language"], "javascript", "guessed from content");
    assert_eq!(report["preset"], "strict");
    assert_eq!(report["threshold"], "low");
    assert_eq!(report["safe"], false);
    assert_eq!(report["max_severity"], "high");
    let findings = report["findings"].as_array().expect("findings");
    let first = &findings[0];
    for key in ["rule", "severity", "message", "line", "column", "excerpt"] {
        assert!(first.get(key).is_some(), "missing {key}: {first}");
    }
    assert!(
        findings.iter().all(|f| f["line"].as_u64() != Some(1)),
        "comment flagged"
    );
    let exec = findings
        .iter()
        .find(|f| f["rule"] == "system-command")
        .expect("system-command finding");
    assert_eq!(
        (exec["line"].as_u64(), exec["column"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(exec["excerpt"], "cp.exec('id')");
}

#[test]
fn errors_exit_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let code = file(dir.path(), "x.py", "print(1)\n");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--preset".into(), "lenient".into(), code.clone()],
            "unknown analysis preset `lenient`",
        ),
        (
            vec!["--language".into(), "cobol".into(), code.clone()],
            "unknown language `cobol`",
        ),
        (
            vec![dir.path().join("missing.py").to_string_lossy().into_owned()],
            "missing.py",
        ),
        (
            vec!["--threshold".into(), "severe".into(), code.clone()],
            "unknown threshold `severe`",
        ),
    ];
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = stockade(&args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
    let rules = file(
        dir.path(),
        "rules.toml",
        "extends = \"production\"\n\ndisable = [\"nope\"]\n",
    );
    let out = stockade(&["--rules", &rules, &code], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("rules.toml:3: disable: rule `nope`"),
        "{}",
        stderr(&out)
    );
    let out = stockade(&["--json", "--preset", "lenient", &code], None);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json error");
    assert!(report["error"].as_str().unwrap().contains("lenient"));
}

#[test]
fn rules_files_and_thresholds_change_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let code = file(
        dir.path(),
        "fetch.py",
        "import requests\nrequests.get('http://x')\n",
    );
    let out = stockade(&["--preset", "data_science", &code], None);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let rules = file(
        dir.path(),
        "team.toml",
        "[severity]\nmodule-http = \"high\"\n\n[[rule]]\nid = \"no-requests\"\nmessage = \"requests is banned\"\nseverity = \"medium\"\ncalls = [\"requests.*\"]\n",
    );
    let out = stockade(
        &["--preset", "data_science", "--rules", &rules, &code],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("no-requests: requests is banned: requests.get"),
        "{}",
        stdout(&out)
    );
    let out = stockade(
        &["--preset", "educational", "--threshold", "low", "-"],
        Some("eval('1')"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let out = stockade(&["--preset", "educational", "-"], Some("eval('1')"));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn language_comes_from_the_extension_then_the_content() {
    let dir = tempfile::tempdir().unwrap();
    // `rm -rf /` parses as Python too (badly); the extension decides.
    let script = file(dir.path(), "clean.sh", "rm -rf /\n");
    let out = stockade(&["--json", &script], None);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["language"], "shell");
    assert_eq!(report["findings"][0]["rule"], "destructive-command");
    let out = stockade(
        &["--json", "-"],
        Some("#!/usr/bin/env python3\nimport os\n"),
    );
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["language"], "python");
}

#[test]
fn presets_are_listed_and_bench_mode_reports_timings() {
    let out = stockade(&["--list-presets", "--json"], None);
    assert_eq!(out.status.code(), Some(0));
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "minimal",
            "development",
            "production",
            "educational",
            "data_science",
            "web_scraping",
            "strict"
        ]
    );
    let out = stockade(
        &["--bench", "3", "--json", "--language", "python", "-"],
        Some("import os\n"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let bench: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(bench["iterations"], 3);
    assert_eq!(bench["findings"], 1);
    assert!(bench["analyze_us"]["median"].is_u64() && bench["parse_us"]["p90"].is_u64());
}
