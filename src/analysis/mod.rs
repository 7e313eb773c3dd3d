//! Pre-execution policy analysis: parse Python, JavaScript and shell with tree-sitter grammars and
//! report risky constructs found in the syntax tree, under a preset.
//!
//! This is advisory defence in depth, not a security boundary: the sandbox (namespaces, seccomp,
//! Landlock, cgroups) is what contains code. Analysis catches obvious intent early and explains
//! it; a determined author can always write code whose behaviour is only known at run time, which
//! is why such code (computed imports, computed `eval` input) is itself a finding.
//!
//! Pipeline: `facts` parses and hands the tree to a language walker (`python`, `javascript`,
//! `shell`), which emits language-neutral facts (imports, resolved calls, accesses, commands,
//! constructs); a `Preset`'s rules turn facts into findings; findings at or above the preset's
//! threshold make the code unsafe.

mod catalog;
mod config;
mod facts;
mod javascript;
mod literal;
mod modules;
mod presets;
mod python;
mod rules;
mod shell;

/// The code a command line runs, for the pre-flight analysis: the text after `-c`/`-e`/`--eval`/
/// `-p`/`--print`, a file named by an argument (absolute, or relative to `cwd`) among `files`, or
/// else the stdin bytes (`python3 -`, `sh` reading its program from stdin).
pub fn code_of(
    argv: &[String],
    cwd: &Path,
    files: &[(std::path::PathBuf, Vec<u8>)],
    stdin: Option<&[u8]>,
) -> Option<String> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    for (i, arg) in argv.iter().enumerate().skip(1) {
        if matches!(arg.as_str(), "-c" | "-e" | "--eval" | "-p" | "--print") {
            return argv.get(i + 1).cloned();
        }
        let path = cwd.join(arg);
        if let Some((_, data)) = files.iter().find(|(p, _)| *p == path) {
            return Some(text(data));
        }
    }
    stdin.map(text)
}

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use config::CONSTRUCTS;
pub use rules::{Preset, Rule};

use crate::policy::{AnalysisMode, AnalysisPolicy};
use crate::verdict::{PolicyFinding, PolicyReport};

/// How risky a finding is. Ordered: `Safe < Low < Medium < High`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Safe,
    Low,
    Medium,
    High,
}

impl Severity {
    /// Lower-case name, as in JSON and TOML.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Safe => "safe",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }

    /// Parse a severity name, case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "safe" => Some(Severity::Safe),
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.as_str().to_ascii_uppercase())
    }
}

/// A language the analyzer parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Python = 0,
    JavaScript = 1,
    Shell = 2,
}

impl Language {
    pub const ALL: [Language; 3] = [Language::Python, Language::JavaScript, Language::Shell];

    /// `python`/`py`, `javascript`/`js`/`node`, `shell`/`sh`/`bash`, case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "python" | "py" | "python3" => Some(Language::Python),
            "javascript" | "js" | "node" | "nodejs" => Some(Language::JavaScript),
            "shell" | "sh" | "bash" => Some(Language::Shell),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::JavaScript => "javascript",
            Language::Shell => "shell",
        }
    }

    /// From a file name: its extension (`.py`, `.js`/`.mjs`/`.cjs`, `.sh`/`.bash`).
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "py" | "pyw" => Some(Language::Python),
            "js" | "mjs" | "cjs" => Some(Language::JavaScript),
            "sh" | "bash" => Some(Language::Shell),
            _ => None,
        }
    }

    /// From a command line: the interpreter (`python3`, `/usr/bin/node`, `bash`, through
    /// `env`), else the first argument with a known extension.
    pub fn from_argv(argv: &[String]) -> Option<Self> {
        for arg in argv.iter().map(String::as_str) {
            let base = arg.rsplit('/').next().unwrap_or(arg);
            if base == "env" {
                continue;
            }
            if let Some(language) = interpreter_language(base) {
                return Some(language);
            }
            break;
        }
        argv.iter().find_map(|a| Self::from_path(Path::new(a)))
    }

    /// From a `#!` line (`#!/usr/bin/env python3`, `#!/bin/sh`).
    pub fn from_shebang(code: &str) -> Option<Self> {
        let line = code.strip_prefix("#!")?.lines().next()?;
        let mut words = line.split_whitespace();
        let first = words.next()?;
        let first = first.rsplit('/').next().unwrap_or(first);
        let program = if first == "env" {
            words.find(|w| !w.starts_with('-'))?
        } else {
            first
        };
        interpreter_language(program)
    }

    /// Best guess from content: the shebang, else the grammar that parses the code with the
    /// fewest errors (ties go to Python, then JavaScript, then shell).
    pub fn guess(code: &str) -> Self {
        if let Some(language) = Self::from_shebang(code) {
            return language;
        }
        let mut best = (usize::MAX, Language::Python);
        for language in Self::ALL {
            let errors =
                facts::parse(language, code).map_or(usize::MAX, |t| facts::error_count(&t));
            if errors < best.0 {
                best = (errors, language);
            }
            if errors == 0 {
                break;
            }
        }
        best.1
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn interpreter_language(program: &str) -> Option<Language> {
    let versioned = |prefix: &str| {
        program
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '.'))
    };
    match program {
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "ash" | "mksh" => Some(Language::Shell),
        "node" | "nodejs" | "bun" | "deno" => Some(Language::JavaScript),
        _ if versioned("python") || versioned("pypy") => Some(Language::Python),
        _ => None,
    }
}

/// One finding: which rule matched what, where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: String,
    pub severity: Severity,
    pub message: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The first line of the matched code, trimmed (at most 120 characters).
    pub excerpt: String,
}

/// The result of analysing one snippet under one preset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub preset: String,
    pub language: Language,
    pub threshold: Severity,
    /// No finding at or above `threshold`.
    pub safe: bool,
    /// Highest severity found (`safe` when there are no findings).
    pub max_severity: Severity,
    /// Every finding, by position; those below the threshold are informational.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Findings at or above the threshold: the reasons the code is unsafe.
    pub fn blocking(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity >= self.threshold)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error(
        "unknown analysis preset `{name}` (built-in: {known}; or a path to a .toml rules file)"
    )]
    UnknownPreset { name: String, known: String },
    #[error("unknown language `{name}` (expected python, javascript or shell)")]
    UnknownLanguage { name: String },
    #[error("read rules file {}", path.display())]
    ReadRules {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    RulesSyntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}:{line}: {field}: {message}", path.display())]
    InvalidRules {
        path: PathBuf,
        line: usize,
        field: String,
        message: String,
    },
}

/// Names of the built-in presets.
pub fn preset_names() -> Vec<&'static str> {
    presets::PRESETS.iter().map(|p| p.name).collect()
}

/// A built-in preset by name (`data-science` is accepted for `data_science`).
pub fn preset(name: &str) -> Result<Preset, AnalysisError> {
    let wanted = name.to_ascii_lowercase().replace('-', "_");
    let def = presets::PRESETS
        .iter()
        .find(|p| p.name == wanted)
        .ok_or_else(|| AnalysisError::UnknownPreset {
            name: name.to_string(),
            known: preset_names().join(", "),
        })?;
    let all = catalog::catalog();
    let mut rules = Vec::new();
    for (id, severity) in def.rules {
        for rule in all.iter().filter(|r| r.id == *id) {
            let mut rule = rule.clone();
            rule.severity = *severity;
            rules.push(rule);
        }
    }
    Ok(Preset {
        name: def.name.to_string(),
        description: def.description.to_string(),
        threshold: def.threshold,
        rules,
        index: std::sync::OnceLock::new(),
    })
}

/// A built-in preset, or a TOML rules file when `spec` is a path (ends in `.toml` or contains
/// `/`); a file without `extends` builds on `production`.
pub fn load_preset(spec: &str) -> Result<Preset, AnalysisError> {
    if config::is_path(spec) {
        config::load(Path::new(spec), None)
    } else {
        preset(spec)
    }
}

/// A TOML rules file on top of the built-in preset `base`. The file's `extends` names the base
/// when `base` is `None` (else `production`); naming a different one than `base` is an error.
pub fn load_rules(path: &Path, base: Option<&str>) -> Result<Preset, AnalysisError> {
    config::load(path, base)
}

/// [`load_rules`] on text already read (`path` names it in errors).
pub fn parse_rules(path: &Path, text: &str, base: Option<&str>) -> Result<Preset, AnalysisError> {
    config::parse(path, text, base)
}

/// Parse only (no walk, no rules): the part of [`analyze`] that `stockade check --bench`
/// reports separately. Returns whether the code parsed without errors.
pub fn parse_only(code: &str, language: Language) -> bool {
    facts::parse(language, code).is_some_and(|t| !t.root_node().has_error())
}

/// The preset used when none is named.
pub const DEFAULT_PRESET: &str = "production";

/// Analyse `code` as `language` under `preset`. Never fails: code that does not parse is a
/// `parse-error` finding, and analysis of the parts that did parse goes on.
pub fn analyze(code: &str, language: Language, preset: &Preset) -> Report {
    analyze_with(code, language, preset, None)
}

/// [`analyze`], plus the `allowed_modules`/`blocked_functions` findings of `rules` when given
/// (`local`: the user's own module names).
fn analyze_with(
    code: &str,
    language: Language,
    preset: &Preset,
    rules: Option<(&AnalysisPolicy, &[String])>,
) -> Report {
    let facts = facts::extract(language, code, 0);
    let mut findings = preset.findings(&facts, code);
    if let Some((policy, local)) = rules {
        findings.extend(modules::findings(&facts, code, policy, local));
        // Stable: the preset's order stays within one position.
        findings.sort_by_key(|f| (f.line, f.column));
    }
    let max_severity = findings
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::Safe);
    let threshold = preset.threshold();
    Report {
        preset: preset.name().to_string(),
        language,
        threshold,
        safe: !findings.iter().any(|f| f.severity >= threshold),
        max_severity,
        findings,
    }
}

/// For `stockade run` and the service: analyse under a profile's `AnalysisPolicy` and return the
/// verdict's policy section. `language` is used when the policy does not name one.
pub fn evaluate(
    policy: &AnalysisPolicy,
    code: &str,
    language: Language,
) -> Result<PolicyReport, AnalysisError> {
    evaluate_with_files(policy, code, language, &[])
}

/// [`evaluate`] knowing the work files (as [`code_of`] takes them): the Python modules among them
/// are the user's own, which `allowed_modules` does not restrict.
pub fn evaluate_with_files(
    policy: &AnalysisPolicy,
    code: &str,
    language: Language,
    files: &[(PathBuf, Vec<u8>)],
) -> Result<PolicyReport, AnalysisError> {
    let language = match &policy.language {
        Some(name) => Language::from_name(name)
            .ok_or_else(|| AnalysisError::UnknownLanguage { name: name.clone() })?,
        None => language,
    };
    let mut preset = load_preset(&policy.preset)?;
    if let Some(threshold) = policy.threshold {
        preset = preset.with_threshold(threshold);
    }
    let local = crate::guard::local_modules(files.iter().map(|(p, _)| p.as_path()));
    let report = analyze_with(code, language, &preset, Some((policy, &local)));
    Ok(PolicyReport {
        preset: report.preset,
        mode: mode_name(policy.mode).to_string(),
        safe: report.safe,
        findings: report
            .findings
            .into_iter()
            .map(|f| PolicyFinding {
                rule: f.rule,
                severity: f.severity.as_str().to_string(),
                message: f.message,
                line: f.line,
                column: f.column,
            })
            .collect(),
    })
}

/// The lower-case name of an analysis mode, as in profiles and verdicts.
pub fn mode_name(mode: AnalysisMode) -> &'static str {
    match mode {
        AnalysisMode::Off => "off",
        AnalysisMode::Warn => "warn",
        AnalysisMode::Enforce => "enforce",
    }
}
