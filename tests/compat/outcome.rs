//! What one run of a workload produced, and how two runs are compared: per test case for CPython's
//! regression tests (parsed from unittest's `-v` lines), per output line for the scripts.

use std::collections::BTreeMap;

/// The result of one test case, in the classes that matter for agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// `ok`, or `expected failure` (the test passed the way it is meant to).
    Pass,
    /// `FAIL`, `ERROR` or `unexpected success`.
    Fail,
    /// `skipped 'reason'`: a skip that happens on one side only hides a difference.
    Skip,
    /// Started but never finished (the process died inside it).
    Unfinished,
}

impl Case {
    pub fn word(self) -> &'static str {
        match self {
            Case::Pass => "pass",
            Case::Fail => "fail",
            Case::Skip => "skip",
            Case::Unfinished => "unfinished",
        }
    }
}

/// Per-case results of `python3 -m test -v MODULE`, keyed by the case's qualified name
/// (`test.test_os.FileTests.test_access`, unique since 3.11 prints it in the parentheses).
pub fn parse_regrtest(stdout: &str) -> BTreeMap<String, Case> {
    let mut cases = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in stdout.lines() {
        if let Some(name) = case_header(line) {
            cases.insert(name.clone(), Case::Unfinished);
            current = Some(name);
        }
        // A case's status follows " ... ", on its header line or, after a docstring line, later;
        // after output of the test's own (test_eintr's child) it stands alone on a line.
        let status = match line.rsplit_once(" ... ") {
            Some((_, status)) => status,
            None if current.is_some() => line,
            None => continue,
        };
        if let (Some(name), Some(case)) = (current.as_ref(), status_of(status)) {
            cases.insert(name.clone(), case);
            current = None;
        }
    }
    cases
}

/// `test_x (test.test_os.Class.test_x)` at the start of a line: the qualified name.
fn case_header(line: &str) -> Option<String> {
    let (method, rest) = line.split_once(" (")?;
    if !method.starts_with("test") || method.contains(char::is_whitespace) {
        return None;
    }
    let qualified = rest.split_once(')')?.0;
    let plausible = qualified.ends_with(method)
        && qualified
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    plausible.then(|| qualified.to_string())
}

fn status_of(text: &str) -> Option<Case> {
    let text = text.trim();
    match text {
        "ok" | "expected failure" => Some(Case::Pass),
        "FAIL" | "ERROR" | "unexpected success" => Some(Case::Fail),
        _ if text.starts_with("skipped") => Some(Case::Skip),
        _ => None,
    }
}

/// The last case a run started: where a killed run died.
pub fn last_unfinished(cases: &BTreeMap<String, Case>) -> Option<&str> {
    cases
        .iter()
        .find(|(_, c)| **c == Case::Unfinished)
        .map(|(name, _)| name.as_str())
}

/// One disagreement between the bare run and the sandboxed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The test case or output line.
    pub case: String,
    pub bare: String,
    pub sandboxed: String,
}

/// Cases whose class differs; a case present on one side only counts as `missing` on the other.
pub fn compare_cases(
    bare: &BTreeMap<String, Case>,
    sandboxed: &BTreeMap<String, Case>,
) -> Vec<Difference> {
    let word = |m: &BTreeMap<String, Case>, k: &str| m.get(k).map_or("missing", |c| c.word());
    let mut names: Vec<&String> = bare.keys().chain(sandboxed.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|k| bare.get(*k) != sandboxed.get(*k))
        .map(|k| Difference {
            case: k.clone(),
            bare: word(bare, k).into(),
            sandboxed: word(sandboxed, k).into(),
        })
        .collect()
}

/// Scripts print `key=value` facts, one per line: compare them by key, so that one differing
/// fact names itself (the exit status is compared as the fact `exit`).
pub fn compare_facts(bare: &str, sandboxed: &str) -> Vec<Difference> {
    let facts = |text: &str| -> BTreeMap<String, String> {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let (b, s) = (facts(bare), facts(sandboxed));
    let mut keys: Vec<&String> = b.keys().chain(s.keys()).collect();
    keys.sort();
    keys.dedup();
    let value = |m: &BTreeMap<String, String>, k: &str| {
        m.get(k).cloned().unwrap_or_else(|| "missing".into())
    };
    keys.into_iter()
        .filter(|k| b.get(*k) != s.get(*k))
        .map(|k| Difference {
            case: k.clone(),
            bare: value(&b, k),
            sandboxed: value(&s, k),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
0:00:00 load avg: 1.0 [1/1] test_os
test_access (test.test_os.FileTests.test_access) ... ok
test_chown (test.test_os.ChownTests.test_chown) ... skipped 'needs root'
test_doc (test.test_os.DocTests.test_doc)
The first line of a docstring. ... FAIL
test_xfail (test.test_os.X.test_xfail) ... expected failure
test_child (test.test_os.Z.test_child) ... 
===== script _child.py =====
ok
test_killed (test.test_os.Y.test_killed) ... ";

    #[test]
    fn verbose_lines_become_cases() {
        let cases = parse_regrtest(SAMPLE);
        assert_eq!(cases["test.test_os.FileTests.test_access"], Case::Pass);
        assert_eq!(cases["test.test_os.ChownTests.test_chown"], Case::Skip);
        assert_eq!(cases["test.test_os.DocTests.test_doc"], Case::Fail);
        assert_eq!(cases["test.test_os.X.test_xfail"], Case::Pass);
        assert_eq!(cases["test.test_os.Y.test_killed"], Case::Unfinished);
        assert_eq!(cases["test.test_os.Z.test_child"], Case::Pass);
        assert_eq!(cases.len(), 6);
        assert_eq!(last_unfinished(&cases), Some("test.test_os.Y.test_killed"));
    }

    #[test]
    fn differences_name_the_case_and_both_sides() {
        let bare = parse_regrtest(SAMPLE);
        let mut sandboxed = bare.clone();
        sandboxed.insert("test.test_os.FileTests.test_access".into(), Case::Fail);
        sandboxed.remove("test.test_os.X.test_xfail");
        let diffs = compare_cases(&bare, &sandboxed);
        assert_eq!(diffs.len(), 2);
        assert_eq!(diffs[0].case, "test.test_os.FileTests.test_access");
        assert_eq!(
            (diffs[0].bare.as_str(), diffs[0].sandboxed.as_str()),
            ("pass", "fail")
        );
        assert_eq!(diffs[1].sandboxed, "missing");
        assert!(compare_cases(&bare, &bare).is_empty());
    }

    #[test]
    fn facts_compare_by_key() {
        let d = compare_facts("a=1\nb=2\n", "a=1\nb=3\nc=4\n");
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].case.as_str(), d[0].bare.as_str()), ("b", "2"));
        assert_eq!((d[1].case.as_str(), d[1].bare.as_str()), ("c", "missing"));
    }
}
