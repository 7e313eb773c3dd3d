//! The pre-flight analysis of a job (DESIGN §7): the program the command runs (code given
//! inline, the main file, or standard input) and every other request file in a language the
//! analyzer knows by its extension, so a refused construct cannot be moved into a helper module.
//! Findings outside the main program name their file in their message.

use std::path::{Path, PathBuf};

use super::error::{ApiError, Code};
use crate::analysis::{self, Language};
use crate::policy::{AnalysisMode, Policy};
use crate::verdict::PolicyReport;

/// What the analysis came to.
#[derive(Debug)]
pub enum Outcome {
    /// Run, with the report for the verdict (none when the mode is off or there is no code).
    Run(Option<PolicyReport>),
    /// Enforce mode and unsafe: refuse with this report.
    Refuse(PolicyReport),
}

/// Analyze the job's code under `policy.analysis`.
pub fn analyze(
    policy: &Policy,
    profile: &str,
    files: &[(PathBuf, Vec<u8>)],
    stdin: &[u8],
) -> Result<Outcome, ApiError> {
    let mode = policy.analysis.mode;
    if mode == AnalysisMode::Off {
        return Ok(Outcome::Run(None));
    }
    let stdin = Some(stdin).filter(|s| !s.is_empty());
    let main = analysis::code_of(&policy.argv, &policy.cwd, files, stdin);
    let main_path = main_file(policy, files);
    let others: Vec<_> = files
        .iter()
        .filter(|(p, _)| Some(p.as_path()) != main_path)
        // The guard's own files are ours, not the request's code.
        .filter(|(p, _)| !crate::guard::is_guard_file(p, policy))
        .filter_map(|(p, data)| Some((p, Language::from_path(p)?, data)))
        .collect();
    if main.is_none() && others.is_empty() {
        if mode == AnalysisMode::Enforce {
            let msg = format!(
                "profile `{profile}` enforces the pre-flight analysis: give the code as `code` or `files`"
            );
            return Err(ApiError::new(Code::InvalidRequest, msg));
        }
        return Ok(Outcome::Run(None));
    }
    let failed = |e: analysis::AnalysisError| {
        ApiError::internal(
            "-",
            &format_args!("pre-flight analysis of profile `{profile}`: {e}"),
        )
    };
    let language = Language::from_argv(&policy.argv).unwrap_or(Language::Shell);
    let mut report = match &main {
        // The request's own files count as the user's modules (`allowed_modules`).
        Some(code) => analysis::evaluate_with_files(&policy.analysis, code, language, files)
            .map_err(failed)?,
        None => PolicyReport {
            preset: policy.analysis.preset.clone(),
            mode: super::exec::mode_name(mode).to_string(),
            safe: true,
            findings: Vec::new(),
        },
    };
    // A file's own extension says its language, whatever the profile's main language is.
    let mut by_extension = policy.analysis.clone();
    by_extension.language = None;
    for (path, language, data) in others {
        let code = String::from_utf8_lossy(data);
        let r =
            analysis::evaluate_with_files(&by_extension, &code, language, files).map_err(failed)?;
        let name = path.strip_prefix(&policy.cwd).unwrap_or(path).display();
        report.safe &= r.safe;
        report.findings.extend(r.findings.into_iter().map(|mut f| {
            f.message = format!("`{name}`: {}", f.message);
            f
        }));
    }
    if mode == AnalysisMode::Enforce && !report.safe {
        return Ok(Outcome::Refuse(report));
    }
    Ok(Outcome::Run(Some(report)))
}

/// The request file the command runs, if any (the first argument naming one).
fn main_file<'a>(policy: &Policy, files: &'a [(PathBuf, Vec<u8>)]) -> Option<&'a Path> {
    policy.argv.iter().skip(1).find_map(|arg| {
        let path = policy.cwd.join(arg);
        files
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(p, _)| p.as_path())
    })
}
