//! The compatibility suite: real programs run bare on the host and inside their language's shipped
//! profile must agree (CPython's regression tests per test case, scripts per printed fact), except
//! the reasoned differences in tests/compat/expected-differences.txt. See docs/compat.md.

mod common;

#[path = "compat/outcome.rs"]
mod outcome;
#[path = "compat/suite.rs"]
mod suite;
#[path = "compat/workload.rs"]
mod workload;

use std::collections::VecDeque;
use std::sync::Mutex;

use outcome::Difference;
use workload::{Report, Workload, data_dir};

/// Workloads run this many at a time (the suite is sized for a 2-core machine).
const WORKERS: usize = 2;

/// Differences shown per workload; the rest are counted.
const SHOWN: usize = 12;

/// One line of expected-differences.txt: `WORKLOAD CASE REASON...`.
#[derive(Debug)]
struct Expected {
    workload: String,
    case: String,
}

fn expected_differences() -> Vec<Expected> {
    let path = data_dir().join("expected-differences.txt");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(n, line)| {
            let mut words = line.split_whitespace();
            let (workload, case, reason) = (words.next(), words.next(), words.next());
            assert!(
                reason.is_some(),
                "{}:{}: expected `WORKLOAD CASE REASON`, got {line:?}",
                path.display(),
                n + 1
            );
            Expected {
                workload: workload.unwrap_or_default().to_string(),
                case: case.unwrap_or_default().to_string(),
            }
        })
        .collect()
}

/// Run the workloads on `WORKERS` threads; reports come back in the list's order.
fn run_all(workloads: Vec<Workload>, expected: &[Expected]) -> Vec<Report> {
    let count = workloads.len();
    let queue = Mutex::new(workloads.into_iter().enumerate().collect::<VecDeque<_>>());
    let done = Mutex::new(Vec::with_capacity(count));
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| {
                loop {
                    let next = queue.lock().expect("queue").pop_front();
                    let Some((index, workload)) = next else { break };
                    let report = workload.run();
                    keep(&report);
                    println!("{}", headline(&report, &unexpected(&report, expected)));
                    done.lock().expect("reports").push((index, report));
                }
            });
        }
    });
    let mut done = done.into_inner().expect("reports");
    done.sort_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, report)| report).collect()
}

/// `STOCKADE_COMPAT_KEEP=DIR` keeps both runs' stdout and stderr per workload, to read the reasons.
fn keep(report: &Report) {
    let Ok(dir) = std::env::var("STOCKADE_COMPAT_KEEP") else {
        return;
    };
    let dir = std::path::Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let name = &report.workload.name;
    for (side, run) in [("bare", &report.bare), ("sandboxed", &report.sandboxed)] {
        for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            let path = dir.join(format!("{name}.{side}.{stream}"));
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        }
    }
}

/// Differences of one workload that the expected list does not excuse.
fn unexpected<'a>(report: &'a Report, expected: &[Expected]) -> Vec<&'a Difference> {
    report
        .differences
        .iter()
        .filter(|d| {
            !expected
                .iter()
                .any(|e| e.workload == report.workload.name && e.case == d.case)
        })
        .collect()
}

fn headline(report: &Report, unexpected: &[&Difference]) -> String {
    let agrees = report.compared > 0 && unexpected.is_empty();
    let mut line = format!(
        "compat: {} {} ({} compared, {} differ, {} expected; bare {} in {:.1}s, sandboxed {} in {:.1}s)",
        if agrees { "AGREE " } else { "DIFFER" },
        report.workload.name,
        report.compared,
        unexpected.len(),
        report.differences.len() - unexpected.len(),
        report.bare.status,
        report.bare.seconds,
        report.sandboxed.status,
        report.sandboxed.seconds,
    );
    if let Some(syscall) = &report.sandboxed.syscall {
        line.push_str(&format!(", killed on syscall {syscall}"));
    }
    line
}

fn details(report: &Report, unexpected: &[&Difference]) -> String {
    let mut text = String::new();
    if report.compared == 0 {
        text.push_str("    the bare run produced nothing to compare:\n");
        text.push_str(&indent(tail(&report.bare.stderr, 1500)));
    }
    if let Some(case) = outcome::last_unfinished(&workload::regrtest_cases(&report.sandboxed)) {
        text.push_str(&format!("    sandboxed run stopped inside {case}\n"));
    }
    for d in unexpected.iter().take(SHOWN) {
        text.push_str(&format!(
            "    {}: bare {}, sandboxed {}\n",
            d.case, d.bare, d.sandboxed
        ));
    }
    if unexpected.len() > SHOWN {
        text.push_str(&format!("    ... and {} more\n", unexpected.len() - SHOWN));
    }
    if !unexpected.is_empty() {
        text.push_str("    sandboxed stderr (tail):\n");
        text.push_str(&indent(tail(&report.sandboxed.stderr, 1500)));
    }
    text
}

fn tail(text: &str, bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("      | {l}\n")).collect()
}

/// `STOCKADE_COMPAT_ONLY=name,name` runs only those workloads (scripts/compat passes it through).
fn selected(all: Vec<Workload>) -> Vec<Workload> {
    let Ok(only) = std::env::var("STOCKADE_COMPAT_ONLY") else {
        return all;
    };
    let names: Vec<&str> = only.split(',').map(str::trim).collect();
    let chosen: Vec<Workload> = all
        .into_iter()
        .filter(|w| names.contains(&w.name.as_str()))
        .collect();
    assert!(
        !chosen.is_empty(),
        "STOCKADE_COMPAT_ONLY={only} names no workload of the suite"
    );
    chosen
}

#[test]
fn compat_real_programs_agree_bare_and_sandboxed() {
    let expected = expected_differences();
    let reports = run_all(selected(suite::all()), &expected);
    println!("\ncompat: per workload");
    let mut disagreeing = Vec::new();
    for report in &reports {
        let unexpected = unexpected(report, &expected);
        println!("{}", headline(report, &unexpected));
        print!("{}", details(report, &unexpected));
        if report.compared == 0 || !unexpected.is_empty() {
            disagreeing.push(report.workload.name.as_str());
        }
    }
    let names: Vec<String> = suite::all().into_iter().map(|w| w.name).collect();
    for e in &expected {
        assert!(
            names.contains(&e.workload),
            "expected-differences.txt names {}, which is no workload of the suite",
            e.workload
        );
        if !reports.iter().any(|r| r.workload.name == e.workload) {
            continue;
        }
        let seen = reports.iter().any(|r| {
            r.workload.name == e.workload && r.differences.iter().any(|d| d.case == e.case)
        });
        if !seen {
            println!(
                "compat: note: expected difference {} {} did not occur",
                e.workload, e.case
            );
        }
    }
    let agree = reports.len() - disagreeing.len();
    println!("compat: {agree} of {} workloads agree", reports.len());
    assert!(
        disagreeing.is_empty(),
        "compat: {} workloads disagree with the bare host: {}",
        disagreeing.len(),
        disagreeing.join(", ")
    );
}
