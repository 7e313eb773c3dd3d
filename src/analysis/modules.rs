//! A profile's `allowed_modules` and `blocked_functions` as findings: an import of a module outside
//! the list, or a use of a blocked builtin, is a HIGH `blocked_import`/`blocked_function` finding
//! at its position, so enforce mode refuses the code before it runs. The run-time guards
//! (`crate::guard`) enforce the same lists inside the sandbox, for what analysis cannot see.

use super::facts::{Fact, FactKind};
use super::{Finding, Language, Severity};
use crate::policy::AnalysisPolicy;

/// Python builtins and node globals `blocked_functions` can name, per language.
const PYTHON_FUNCTIONS: &[&str] = &["eval", "exec", "compile", "__import__", "open"];
const JS_FUNCTIONS: &[&str] = &["eval", "Function"];

/// Findings for `facts` of `src`; `local` names the user's own modules (the work files).
pub(crate) fn findings(
    facts: &[Fact],
    src: &str,
    rules: &AnalysisPolicy,
    local: &[String],
) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    for fact in facts {
        let Some((rule, message)) = judge(fact, rules, local) else {
            continue;
        };
        let (line, column, excerpt) = fact.place.resolve(src);
        let finding = Finding {
            rule: rule.to_string(),
            severity: Severity::High,
            message,
            line,
            column,
            excerpt,
        };
        if !out
            .iter()
            .any(|f| f.rule == finding.rule && f.line == line && f.column == column)
        {
            out.push(finding);
        }
    }
    out
}

fn judge(fact: &Fact, rules: &AnalysisPolicy, local: &[String]) -> Option<(&'static str, String)> {
    match fact.kind {
        FactKind::Import => {
            let allowed = rules.allowed_modules.as_ref()?;
            let ok = match fact.language {
                Language::Python => python_allowed(&fact.name, allowed, local),
                Language::JavaScript => js_allowed(&fact.name, allowed),
                Language::Shell => true,
            };
            let message = format!(
                "Blocked import: {} (not in the profile's allowed_modules)",
                fact.name
            );
            (!ok).then_some(("blocked_import", message))
        }
        FactKind::Call | FactKind::Access => {
            let known = match fact.language {
                Language::Python => PYTHON_FUNCTIONS,
                Language::JavaScript => JS_FUNCTIONS,
                Language::Shell => return None,
            };
            let name = fact.name.as_str();
            let blocked =
                known.contains(&name) && rules.blocked_functions.iter().any(|b| b == name);
            let message = format!("Blocked function: {name} (in the profile's blocked_functions)");
            blocked.then_some(("blocked_function", message))
        }
        FactKind::Command | FactKind::Construct => None,
    }
}

/// `os.path` is allowed by `os` or `os.path`; the user's own modules always are.
fn python_allowed(name: &str, allowed: &[String], local: &[String]) -> bool {
    let top = name.split('.').next().unwrap_or(name);
    local.iter().any(|l| l == top) || allowed.iter().any(|a| within(name, a, '.'))
}

/// `fs/promises` is allowed by `fs` (with or without `node:`); files are the user's own code
/// (relative paths, and absolute ones in the work dir). The walker spells module names with dots
/// for slashes and without `node:` (`fs.promises`, `..util` for `./util`); entries are compared
/// the same way.
fn js_allowed(name: &str, allowed: &[String]) -> bool {
    if name.starts_with("..") || name.starts_with(".sandbox.") {
        return true;
    }
    let spelled = |n: &str| n.strip_prefix("node:").unwrap_or(n).replace('/', ".");
    allowed.iter().any(|a| within(name, &spelled(a), '.'))
}

fn within(name: &str, allowed: &str, separator: char) -> bool {
    name == allowed
        || name
            .strip_prefix(allowed)
            .is_some_and(|rest| rest.starts_with(separator))
}
