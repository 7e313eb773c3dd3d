//! The pre-flight decision shared by `stockade run` and the service: find the code a command
//! runs, evaluate it under the policy's preset, and say what the mode makes of the report.
//! Callers word the outcomes for their own users (a CLI error, an API refusal).

use std::path::PathBuf;

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

/// Run the pre-flight analysis of `policy.analysis` over the code `policy.argv` names: among
/// `files` (sandbox paths and contents) or in `stdin`.
pub fn preflight(
    policy: &Policy,
    files: &[(PathBuf, Vec<u8>)],
    stdin: Option<&[u8]>,
) -> Result<Preflight, AnalysisError> {
    let mode = policy.analysis.mode;
    if mode == AnalysisMode::Off {
        return Ok(Preflight::Off);
    }
    let stdin = stdin.filter(|s| !s.is_empty());
    let Some(code) = code_of(&policy.argv, &policy.cwd, files, stdin) else {
        return Ok(Preflight::NoCode {
            enforced: mode == AnalysisMode::Enforce,
        });
    };
    let language = Language::from_argv(&policy.argv).unwrap_or(Language::Shell);
    // The files also tell the module checks which imports are the program's own.
    let report = evaluate_with_files(&policy.analysis, &code, language, files)?;
    Ok(if mode == AnalysisMode::Enforce && !report.safe {
        Preflight::Refuse(report)
    } else {
        Preflight::Pass(report)
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
        let off = preflight(&python(AnalysisMode::Off, bad), &[], None).unwrap();
        assert_eq!(off, Preflight::Off);
        let warn = preflight(&python(AnalysisMode::Warn, bad), &[], None).unwrap();
        assert!(matches!(warn, Preflight::Pass(r) if !r.safe));
        let enforce = preflight(&python(AnalysisMode::Enforce, bad), &[], None).unwrap();
        assert!(matches!(enforce, Preflight::Refuse(r) if !r.safe));
        let fine = preflight(&python(AnalysisMode::Enforce, "print(1)"), &[], None).unwrap();
        assert!(matches!(fine, Preflight::Pass(r) if r.safe));
    }

    #[test]
    fn missing_code_is_reported_with_the_mode() {
        let mut p = python(AnalysisMode::Enforce, "");
        p.argv = vec!["python3".into(), "main.py".into()];
        assert_eq!(
            preflight(&p, &[], Some(b"")).unwrap(),
            Preflight::NoCode { enforced: true }
        );
        p.analysis.mode = AnalysisMode::Warn;
        assert_eq!(
            preflight(&p, &[], None).unwrap(),
            Preflight::NoCode { enforced: false }
        );
        // The file the command names is found among the files.
        p.analysis.mode = AnalysisMode::Enforce;
        let files = vec![(p.cwd.join("main.py"), b"print(1)".to_vec())];
        assert!(matches!(
            preflight(&p, &files, None).unwrap(),
            Preflight::Pass(_)
        ));
    }
}
