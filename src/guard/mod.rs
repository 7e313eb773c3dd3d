//! Run-time guards for a profile's `allowed_modules` and `blocked_functions`: a Python
//! `sitecustomize` and a node `--require` preload, written into the sandbox and switched on through
//! `PYTHONPATH` and `NODE_OPTIONS`, and the reader of the lines they leave on stderr.
//!
//! The guards are code hygiene, not a security boundary: they run inside the interpreter they
//! watch, so a determined payload can undo them (ctypes, gc, frame tricks in Python; native
//! addons, `process.binding` in node). They turn an accidental or LLM-written `import os` into a
//! clear `ImportError: Blocked import: os` and a verdict finding; the namespaces, seccomp and
//! Landlock around the interpreter are what contain the code. docs/profiles.md says the same.

use std::path::{Component, Path, PathBuf};

use base64::Engine;

use crate::policy::{AnalysisPolicy, Policy, RootFs, SANDBOX_DIR};
use crate::profile::WorkFile;
use crate::verdict::{PolicyFinding, PolicyReport, Verdict};

/// The names `blocked_functions` accepts: Python builtins, and node's code evaluators.
pub const BLOCKABLE: &[&str] = &["eval", "exec", "compile", "__import__", "open", "Function"];

/// Prefix of the lines the guards write on stderr for each refusal.
pub const MARK: &str = "[stockade] ";

/// At most this many run-time findings go into a verdict (the output cap bounds the rest).
const MAX_FINDINGS: usize = 32;

const PYTHON_GUARD: &str = include_str!("python/sitecustomize.py");
const NODE_GUARD: &str = include_str!("node/guard.js");
const NODE_LOADER: &str = include_str!("node/loader.mjs");

/// What a run needs for the guards: files to create and environment variables to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    pub files: Vec<WorkFile>,
    pub env: Vec<(String, String)>,
}

/// Whether the policy asks for any guard.
pub fn active(analysis: &AnalysisPolicy) -> bool {
    analysis.allowed_modules.is_some() || !analysis.blocked_functions.is_empty()
}

/// Where the guard files go. On the host root they go in the root tmpfs, which is remounted
/// read-only when the sandbox is entered, so the payload cannot change them for the processes it
/// starts. A prepared rootfs is a read-only bind with no room for files, so there they go in the
/// work dir, where the payload could rewrite them (affecting only interpreters it starts later).
pub fn dir(policy: &Policy) -> PathBuf {
    match policy.rootfs {
        RootFs::Host => PathBuf::from("/.stockade"),
        RootFs::Dir(_) => Path::new(SANDBOX_DIR).join(".stockade"),
    }
}

/// Whether `path` is one of the guard's own files (written by the service from the profile, not
/// given by a request). In a prepared rootfs they sit in the work dir among the request's files.
pub fn is_guard_file(path: &Path, policy: &Policy) -> bool {
    setup(policy).is_some() && path.starts_with(dir(policy))
}

/// The guard files and environment for `policy`, or `None` when it asks for no guard. Both guards
/// are installed whatever the command, so `sh -c 'python3 main.py'` is guarded too.
pub fn setup(policy: &Policy) -> Option<Setup> {
    let rules = &policy.analysis;
    if !active(rules) {
        return None;
    }
    let dir = dir(policy);
    let python_dir = dir.join("python");
    let node_file = dir.join("node").join("guard.js");
    let files = vec![
        WorkFile {
            target: python_dir.join("sitecustomize.py"),
            contents: python_source(rules).into_bytes(),
        },
        WorkFile {
            target: node_file.clone(),
            contents: node_source(rules).into_bytes(),
        },
        WorkFile {
            target: dir.join("node").join("loader.mjs"),
            contents: NODE_LOADER.as_bytes().to_vec(),
        },
    ];
    let existing = |key: &str| {
        policy
            .env
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    // Ours first, so a `sitecustomize` of the caller's PYTHONPATH cannot take its place.
    let mut python_path = python_dir.display().to_string();
    if let Some(rest) = existing("PYTHONPATH") {
        python_path = format!("{python_path}:{rest}");
    }
    let mut node_options = format!("--require {}", node_file.display());
    let evaluators = ["eval", "Function"];
    if rules
        .blocked_functions
        .iter()
        .any(|f| evaluators.contains(&f.as_str()))
    {
        // V8 refuses code from strings itself, for the routes the wrappers do not see.
        node_options.push_str(" --disallow-code-generation-from-strings");
    }
    if let Some(rest) = existing("NODE_OPTIONS") {
        node_options = format!("{node_options} {rest}");
    }
    Some(Setup {
        files,
        env: vec![
            ("PYTHONPATH".into(), python_path),
            ("NODE_OPTIONS".into(), node_options),
        ],
    })
}

/// Python options that skip the guard: `-I` and `-E` ignore PYTHONPATH, `-S` skips `site`,
/// which imports `sitecustomize`. With a guard in force they are an error, not a silent bypass.
pub fn check_argv(argv: &[String]) -> Result<(), String> {
    let Some(program) = argv.first() else {
        return Ok(());
    };
    let base = program.rsplit('/').next().unwrap_or(program);
    let python = base
        .strip_prefix("python")
        .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'));
    if !python {
        return Ok(());
    }
    let mut args = argv.iter().skip(1);
    while let Some(arg) = args.next() {
        if arg == "-" || arg == "--" {
            break;
        }
        let Some(flags) = arg.strip_prefix('-') else {
            break;
        };
        if flags.starts_with('-') {
            continue;
        }
        for (pos, flag) in flags.char_indices() {
            match flag {
                'I' | 'E' | 'S' => {
                    return Err(format!(
                        "python option `-{flag}` turns off the start-up hook that enforces the profile's `allowed_modules`/`blocked_functions`; drop it (the sandbox already isolates the interpreter)"
                    ));
                }
                // The rest is the code or the module name.
                'c' | 'm' => return Ok(()),
                // The rest of the word, or else the next argument, is the option's value.
                'W' | 'X' => {
                    if pos + 1 == flags.len() {
                        args.next();
                    }
                    break;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Top-level module names of the work files: `helper.py` is `helper`, `pkg/x.py` is `pkg`. The
/// guard allows the user's own modules; the analysis learns them from here.
pub fn local_modules<'a>(files: impl IntoIterator<Item = &'a Path>) -> Vec<String> {
    let mut names: Vec<String> = files
        .into_iter()
        .filter_map(|path| {
            let rest = path.strip_prefix(SANDBOX_DIR).ok()?;
            let mut parts = rest.components();
            let Component::Normal(first) = parts.next()? else {
                return None;
            };
            let first = Path::new(first);
            let name = match parts.next() {
                Some(_) => first.to_str()?,
                None => first
                    .extension()
                    .is_some_and(|e| e == "py")
                    .then(|| first.file_stem()?.to_str())??,
            };
            Some(name.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The Python guard: the rules as constants, then the fixed code.
fn python_source(rules: &AnalysisPolicy) -> String {
    let allowed = match &rules.allowed_modules {
        Some(list) => format!("frozenset({})", literal(list)),
        None => "None".into(),
    };
    format!(
        "_ALLOWED = {allowed}\n_BLOCKED = frozenset({})\n_WORK = {}\n_MARK = {}\n\n{PYTHON_GUARD}",
        literal(&rules.blocked_functions),
        literal(SANDBOX_DIR),
        literal(MARK),
    )
}

/// The node guard: the rules as constants, then the fixed code.
fn node_source(rules: &AnalysisPolicy) -> String {
    let allowed = rules
        .allowed_modules
        .as_ref()
        .map_or_else(|| "null".to_string(), |l| literal(l.as_slice()));
    format!(
        "const ALLOWED = {allowed};\nconst BLOCKED = {};\nconst WORK = {};\nconst MARK = {};\n\n{NODE_GUARD}",
        literal(&rules.blocked_functions),
        literal(SANDBOX_DIR),
        literal(MARK),
    )
}

/// A JSON string or list of strings: valid Python and JavaScript literals alike (module names
/// are checked to be plain ASCII words when the profile is loaded; JSON escapes anything else).
fn literal<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".into())
}

/// The refusals the guards reported on stderr, as verdict findings.
pub fn findings(stderr: &str) -> Vec<PolicyFinding> {
    let mut out: Vec<PolicyFinding> = Vec::new();
    for line in stderr.lines() {
        let Some(finding) = line.strip_prefix(MARK).and_then(parse_mark) else {
            continue;
        };
        if !out.contains(&finding) {
            out.push(finding);
        }
        if out.len() == MAX_FINDINGS {
            break;
        }
    }
    out
}

/// `Blocked import: os at /sandbox/main.py:3:1`, `Blocked function: eval at <string>:1:1`, or
/// `guard failed: ...`.
fn parse_mark(line: &str) -> Option<PolicyFinding> {
    if let Some(why) = line.strip_prefix("guard failed: ") {
        return Some(PolicyFinding {
            rule: "guard_failed".into(),
            severity: "high".into(),
            message: format!("the run-time import guard could not be installed: {why}"),
            line: 0,
            column: 0,
        });
    }
    let (rule, rest) = match line.split_once(": ")? {
        ("Blocked import", rest) => ("blocked_import", rest),
        ("Blocked function", rest) => ("blocked_function", rest),
        _ => return None,
    };
    let (name, place) = rest.rsplit_once(" at ")?;
    let mut parts = place.rsplitn(3, ':');
    let column = parts.next()?.parse().ok()?;
    let line_no = parts.next()?.parse().ok()?;
    let file = parts.next()?;
    let (kind, _) = line.split_once(": ")?;
    Some(PolicyFinding {
        rule: rule.into(),
        severity: "high".into(),
        message: format!("{kind}: {name} (refused at run time in {file})"),
        line: line_no,
        column,
    })
}

/// Add the guards' refusals to the verdict's policy section (creating it when the analysis was
/// off). The lines come from inside the sandbox, so the payload could forge some: that only adds
/// findings against itself.
pub fn add_findings(analysis: &AnalysisPolicy, verdict: &mut Verdict) {
    if !active(analysis) {
        return;
    }
    let stream = &verdict.stderr;
    let text = match stream.encoding.as_str() {
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(&stream.data)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default(),
        _ => stream.data.clone(),
    };
    let found = findings(&text);
    if found.is_empty() {
        return;
    }
    let report = verdict.policy.get_or_insert_with(|| PolicyReport {
        preset: analysis.preset.clone(),
        mode: crate::analysis::mode_name(analysis.mode).to_string(),
        safe: true,
        findings: Vec::new(),
    });
    report.safe = false;
    report.findings.extend(found);
}

#[cfg(test)]
mod tests;
