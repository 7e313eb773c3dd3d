//! The pre-flight decision shared by `stockade run` and the service: find the code a command
//! runs, evaluate it under the policy's preset, and say what the mode makes of the report.
//! Callers word the outcomes for their own users (a CLI error, an API refusal).
//!
//! With `Scope::AllFiles` (the service, DESIGN §7) every other given file in a language the
//! analyzer knows by its extension is analysed too, so a refused construct cannot be moved into
//! a helper module; findings outside the main program name their file.

use std::path::{Path, PathBuf};

use super::{AnalysisError, Language, code_of, evaluate_with_files};
use crate::policy::{AnalysisMode, Policy};
use crate::verdict::PolicyReport;

/// What the pre-flight analysis decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Preflight {
    /// The mode is `off`: nothing was analysed.
    Off,
    /// No code could be found in the command, the files or stdin. Under `enforce` the caller
    /// must refuse (the code cannot be vetted); under `warn` it runs without a report.
    NoCode { enforced: bool },
    /// Analysed and allowed: `warn` mode, or `enforce` with nothing at or above the threshold.
    Pass(PolicyReport),
    /// `enforce` mode and the code is unsafe: it must not run.
    Refuse(PolicyReport),
}

/// Which code is analysed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The program the command runs (the CLI: its other files are the caller's own).
    Program,
    /// The program and every other file given with it (the service: all of it is the caller's).
    AllFiles,
}

/// Run the pre-flight analysis of `policy.analysis` over the code `policy.argv` names, among
/// `files` (sandbox paths and contents) or in `stdin`, and under `Scope::AllFiles` over the other
/// files too.
pub fn preflight(
    policy: &Policy,
    files: &[(PathBuf, Vec<u8>)],
    stdin: Option<&[u8]>,
    scope: Scope,
) -> Result<Preflight, AnalysisError> {
    let mode = policy.analysis.mode;
    if mode == AnalysisMode::Off {
        return Ok(Preflight::Off);
    }
    let stdin = stdin.filter(|s| !s.is_empty());
    let main = code_of(&policy.argv, &policy.cwd, files, stdin);
    let main_path = main_file(policy, files);
    let others: Vec<_> = match scope {
        Scope::Program => Vec::new(),
        Scope::AllFiles => files
            .iter()
            .filter(|(p, _)| Some(p.as_path()) != main_path)
            // The guard's own files are ours, not the request's code.
            .filter(|(p, _)| !crate::guard::is_guard_file(p, policy))
            .filter_map(|(p, data)| Some((p, Language::from_path(p)?, data)))
            .collect(),
    };
    if main.is_none() && others.is_empty() {
        return Ok(Preflight::NoCode {
            enforced: mode == AnalysisMode::Enforce,
        });
    }
    let language = Language::from_argv(&policy.argv).unwrap_or(Language::Shell);
    let mut report = match &main {
        // The files also tell the module checks which imports are the program's own.
        Some(code) => evaluate_with_files(&policy.analysis, code, language, files)?,
        None => PolicyReport {
            preset: policy.analysis.preset.clone(),
            mode: mode.as_str().to_string(),
            safe: true,
            findings: Vec::new(),
        },
    };
    // A file's own extension says its language, whatever the profile's main language is.
    let mut by_extension = policy.analysis.clone();
    by_extension.language = None;
    for (path, language, data) in others {
        let code = String::from_utf8_lossy(data);
        let r = evaluate_with_files(&by_extension, &code, language, files)?;
        let name = path.strip_prefix(&policy.cwd).unwrap_or(path).display();
        report.safe &= r.safe;
        report.findings.extend(r.findings.into_iter().map(|mut f| {
            f.message = format!("`{name}`: {}", f.message);
            f
        }));
    }
    Ok(if mode == AnalysisMode::Enforce && !report.safe {
        Preflight::Refuse(report)
    } else {
        Preflight::Pass(report)
    })
}

/// The given file the command runs, if any (the first argument naming one).
fn main_file<'a>(policy: &Policy, files: &'a [(PathBuf, Vec<u8>)]) -> Option<&'a Path> {
    policy.argv.iter().skip(1).find_map(|arg| {
        let path = policy.cwd.join(arg);
        files
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(p, _)| p.as_path())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn python(mode: AnalysisMode, code: &str) -> Policy {
        let mut p = Policy::default();
        p.argv = vec!["python3".into(), "-c".into(), code.into()];
        p.analysis.mode = mode;
        p
    }

    #[test]
    fn modes_decide_what_a_report_means() {
        let bad = "import os\nos.system('id')";
        let off = preflight(&python(AnalysisMode::Off, bad), &[], None, Scope::Program).unwrap();
        assert_eq!(off, Preflight::Off);
        let warn = preflight(&python(AnalysisMode::Warn, bad), &[], None, Scope::Program).unwrap();
        assert!(matches!(warn, Preflight::Pass(r) if !r.safe));
        let enforce = preflight(
            &python(AnalysisMode::Enforce, bad),
            &[],
            None,
            Scope::Program,
        )
        .unwrap();
        assert!(matches!(enforce, Preflight::Refuse(r) if !r.safe));
        let fine = preflight(
            &python(AnalysisMode::Enforce, "print(1)"),
            &[],
            None,
            Scope::Program,
        )
        .unwrap();
        assert!(matches!(fine, Preflight::Pass(r) if r.safe));
    }

    #[test]
    fn missing_code_is_reported_with_the_mode() {
        let mut p = python(AnalysisMode::Enforce, "");
        p.argv = vec!["python3".into(), "main.py".into()];
        assert_eq!(
            preflight(&p, &[], Some(b""), Scope::Program).unwrap(),
            Preflight::NoCode { enforced: true }
        );
        p.analysis.mode = AnalysisMode::Warn;
        assert_eq!(
            preflight(&p, &[], None, Scope::Program).unwrap(),
            Preflight::NoCode { enforced: false }
        );
        // The file the command names is found among the files.
        p.analysis.mode = AnalysisMode::Enforce;
        let files = vec![(p.cwd.join("main.py"), b"print(1)".to_vec())];
        assert!(matches!(
            preflight(&p, &files, None, Scope::Program).unwrap(),
            Preflight::Pass(_)
        ));
    }
}
