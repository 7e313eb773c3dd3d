//! Custom presets and rules from TOML: strict parsing, errors with file, line and field.
//!
//! ```toml
//! extends = "production"          # built-in preset to start from
//! threshold = "medium"            # findings at or above this make code unsafe
//! disable = ["env-access"]        # rule ids to drop
//! [severity]                      # re-grade inherited rules, or enable catalogue rules
//! network-http = "medium"
//! [[rule]]                        # custom rules
//! id = "no-requests"
//! message = "HTTP client library"
//! severity = "high"
//! languages = ["python"]
//! imports = ["requests"]
//! calls = ["requests.*"]
//! ```

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::catalog::{catalog, rule_ids};
use super::rules::{ArgCondition, Matcher, Preset, Rule};
use super::{AnalysisError, Language, Severity, preset};

/// Construct ids a custom rule may match (emitted by the language walkers).
pub const CONSTRUCTS: &[&str] = &[
    "parse-error",
    "computed-code",
    "computed-command",
    "computed-import",
    "computed-attribute",
    "dunder-attribute",
    "nesting-limit",
    "file-redirect",
    "dev-tcp",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    /// Name of the resulting preset (default: the file's stem).
    name: Option<String>,
    /// One-line description shown by `stockade check --list-presets`.
    description: Option<String>,
    /// Built-in preset this file starts from (default: the caller's base preset).
    extends: Option<Spanned<String>>,
    /// Threshold of the resulting preset (default: the base preset's).
    threshold: Option<Spanned<String>>,
    /// Rule ids to remove from the base preset.
    #[serde(default)]
    disable: Vec<Spanned<String>>,
    /// New severities for inherited rules; a catalogue rule not in the base is enabled.
    #[serde(default)]
    severity: BTreeMap<String, Spanned<String>>,
    /// Custom rules, added to the preset.
    #[serde(default)]
    rule: Vec<Spanned<RuleFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    id: Spanned<String>,
    message: String,
    severity: Spanned<String>,
    /// Empty means every language.
    #[serde(default)]
    languages: Vec<Spanned<String>>,
    #[serde(default)]
    imports: Vec<String>,
    #[serde(default)]
    calls: Vec<String>,
    #[serde(default)]
    accesses: Vec<String>,
    #[serde(default)]
    commands: Vec<String>,
    #[serde(default)]
    constructs: Vec<Spanned<String>>,
    arg: Option<Spanned<ArgFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArgFile {
    position: Option<usize>,
    keyword: Option<String>,
    #[serde(default)]
    contains: Vec<String>,
    #[serde(default)]
    equals: Vec<String>,
    #[serde(default)]
    names: Vec<String>,
}

/// Reads and validates rule files against one source text.
struct Loader<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Loader<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        self.text
            .get(..span.start)
            .map_or(1, |before| before.matches('\n').count() + 1)
    }

    fn invalid(&self, span: Range<usize>, field: &str, message: String) -> AnalysisError {
        AnalysisError::InvalidRules {
            path: self.path.to_path_buf(),
            line: self.line(span),
            field: field.to_string(),
            message,
        }
    }

    fn severity(&self, value: &Spanned<String>, field: &str) -> Result<Severity, AnalysisError> {
        Severity::from_name(value.get_ref()).ok_or_else(|| {
            self.invalid(
                value.span(),
                field,
                format!(
                    "unknown severity `{}` (expected safe, low, medium or high)",
                    value.get_ref()
                ),
            )
        })
    }
}

/// Load a preset from a TOML file on top of `base` (see `analysis::load_rules`).
pub(crate) fn load(path: &Path, base: Option<&str>) -> Result<Preset, AnalysisError> {
    let text = std::fs::read_to_string(path).map_err(|source| AnalysisError::ReadRules {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text, base)
}

/// Parse rules text (named `path` in errors) into a preset.
pub(crate) fn parse(path: &Path, text: &str, base: Option<&str>) -> Result<Preset, AnalysisError> {
    let loader = Loader { path, text };
    let file: RulesFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let line = loader.line(span.clone());
        let column = text
            .get(..span.start)
            .map_or(1, |b| b.len() - b.rfind('\n').map_or(0, |i| i + 1) + 1);
        AnalysisError::RulesSyntax {
            path: path.to_path_buf(),
            line,
            column,
            message: e.message().trim().to_string(),
        }
    })?;
    let mut base = base_preset(&loader, file.extends.as_ref(), base)?;
    base.name = file.name.clone().unwrap_or_else(|| stem(path));
    if let Some(description) = &file.description {
        base.description = description.clone();
    }
    if let Some(threshold) = &file.threshold {
        base.threshold = loader.severity(threshold, "threshold")?;
    }
    let custom_ids: Vec<&str> = file
        .rule
        .iter()
        .map(|r| r.get_ref().id.get_ref().as_str())
        .collect();
    apply_severities(&loader, &mut base, &file.severity, &custom_ids)?;
    for id in &file.disable {
        let known = base.rules.iter().any(|r| &r.id == id.get_ref());
        if !known {
            return Err(loader.invalid(
                id.span(),
                "disable",
                format!("rule `{}` is not in preset `{}`", id.get_ref(), base.name),
            ));
        }
        base.rules.retain(|r| &r.id != id.get_ref());
    }
    for rule in &file.rule {
        base.rules.push(custom_rule(&loader, rule)?);
    }
    base.index = std::sync::OnceLock::new();
    Ok(base)
}

/// The preset a file builds on: its `extends`, which must agree with the caller's `base` when
/// both are given, else `base`, else the default preset.
fn base_preset(
    loader: &Loader,
    extends: Option<&Spanned<String>>,
    base: Option<&str>,
) -> Result<Preset, AnalysisError> {
    let Some(name) = extends else {
        return preset(base.unwrap_or(super::DEFAULT_PRESET));
    };
    let extended = preset(name.get_ref()).map_err(|_| {
        let message = format!(
            "unknown preset `{}` (a file may extend only a built-in preset: {})",
            name.get_ref(),
            super::preset_names().join(", ")
        );
        loader.invalid(name.span(), "extends", message)
    })?;
    if let Some(wanted) = base.map(preset).transpose()? {
        if wanted.name != extended.name {
            let message = format!(
                "extends `{}` but preset `{}` was asked for",
                extended.name, wanted.name
            );
            return Err(loader.invalid(name.span(), "extends", message));
        }
    }
    Ok(extended)
}

fn apply_severities(
    loader: &Loader,
    base: &mut Preset,
    severities: &BTreeMap<String, Spanned<String>>,
    custom_ids: &[&str],
) -> Result<(), AnalysisError> {
    let known = rule_ids();
    for (id, value) in severities {
        let field = format!("severity.{id}");
        let severity = loader.severity(value, &field)?;
        if base.rules.iter().any(|r| &r.id == id) {
            base.rules
                .iter_mut()
                .filter(|r| &r.id == id)
                .for_each(|r| r.severity = severity);
        } else if known.contains(id) {
            base.rules
                .extend(catalog().into_iter().filter(|r| &r.id == id).map(|mut r| {
                    r.severity = severity;
                    r
                }));
        } else if !custom_ids.contains(&id.as_str()) {
            return Err(loader.invalid(
                value.span(),
                &field,
                format!(
                    "unknown rule id `{id}` (built-in ids: {})",
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn custom_rule(loader: &Loader, spanned: &Spanned<RuleFile>) -> Result<Rule, AnalysisError> {
    let file = spanned.get_ref();
    let id = file.id.get_ref().trim();
    if id.is_empty() {
        return Err(loader.invalid(file.id.span(), "rule.id", "must not be empty".into()));
    }
    let field = |name: &str| format!("rule `{id}`.{name}");
    let severity = loader.severity(&file.severity, &field("severity"))?;
    let mut languages = Vec::new();
    for name in &file.languages {
        let language = Language::from_name(name.get_ref()).ok_or_else(|| {
            loader.invalid(
                name.span(),
                &field("languages"),
                format!(
                    "unknown language `{}` (expected python, javascript or shell)",
                    name.get_ref()
                ),
            )
        })?;
        languages.push(language);
    }
    let mut constructs = Vec::new();
    for c in &file.constructs {
        if !CONSTRUCTS.contains(&c.get_ref().as_str()) {
            return Err(loader.invalid(
                c.span(),
                &field("constructs"),
                format!(
                    "unknown construct `{}` (known: {})",
                    c.get_ref(),
                    CONSTRUCTS.join(", ")
                ),
            ));
        }
        constructs.push(c.get_ref().clone());
    }
    let lists = [&file.imports, &file.calls, &file.accesses, &file.commands];
    if lists.iter().all(|l| l.is_empty()) && constructs.is_empty() {
        return Err(loader.invalid(
            spanned.span(),
            &field("match"),
            "nothing to match: give imports, calls, accesses, commands or constructs".into(),
        ));
    }
    if lists.iter().any(|l| l.iter().any(|p| p.trim().is_empty())) {
        return Err(loader.invalid(spanned.span(), &field("match"), "empty name pattern".into()));
    }
    let arg = match &file.arg {
        Some(arg) => Some(arg_condition(loader, arg, file, &field("arg"))?),
        None => None,
    };
    let mut rule = Rule::new(id, &file.message, &languages);
    rule.severity = severity;
    rule.matcher = Matcher {
        imports: file.imports.clone(),
        calls: file.calls.clone(),
        accesses: file.accesses.clone(),
        commands: file.commands.clone(),
        constructs,
        arg,
    };
    Ok(rule)
}

fn arg_condition(
    loader: &Loader,
    spanned: &Spanned<ArgFile>,
    rule: &RuleFile,
    field: &str,
) -> Result<ArgCondition, AnalysisError> {
    let arg = spanned.get_ref();
    if rule.calls.is_empty() && rule.commands.is_empty() {
        return Err(loader.invalid(
            spanned.span(),
            field,
            "an argument condition needs calls or commands to apply to".into(),
        ));
    }
    if arg.contains.is_empty() && arg.equals.is_empty() && arg.names.is_empty() {
        return Err(loader.invalid(
            spanned.span(),
            field,
            "give at least one of contains, equals or names".into(),
        ));
    }
    Ok(ArgCondition {
        position: arg.position,
        keyword: arg.keyword.clone(),
        contains: arg.contains.clone(),
        equals: arg.equals.clone(),
        names: arg.names.clone(),
    })
}

fn stem(path: &Path) -> String {
    path.file_stem().map_or_else(
        || "custom".to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

/// Whether a preset specification names a rules file rather than a built-in preset.
pub(crate) fn is_path(spec: &str) -> bool {
    spec.ends_with(".toml") || spec.contains('/')
}
