//! Rules and presets: which facts are findings, at which severity, and when code is unsafe.
//!
//! A rule matches facts by kind (imports, calls, accesses, shell commands, constructs) with
//! dotted-name globs, optionally narrowed by an argument condition (`open(path, "w")`). A preset
//! is a threshold plus the rules it enables; built-in presets live in `catalog`, custom ones
//! come from TOML (`config`).

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use super::facts::{Arg, Fact, FactKind};
use super::{Finding, Language, Severity};

/// One rule of a preset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Stable id (`system-command`, `module-os`); several entries may share an id, one per
    /// language, and a preset sets the severity of all of them at once.
    pub id: String,
    /// What the rule detects; a finding's message is this plus what was seen.
    pub message: String,
    pub severity: Severity,
    /// Languages the rule applies to; empty means every language.
    pub languages: Vec<Language>,
    pub(crate) matcher: Matcher,
}

/// What a rule matches. A fact matches when any list matches it (and `arg`, if set, holds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Matcher {
    /// Module names; `os` also matches `os.path` (submodules).
    pub imports: Vec<String>,
    /// Called names, globs with `*` (`subprocess.*`, `os.exec*`); a reference to such a name
    /// without a call also matches when the rule has no argument condition.
    pub calls: Vec<String>,
    /// Referenced names, called or not; `os.environ` also matches `os.environ.get`.
    pub accesses: Vec<String>,
    /// Shell command base names, globs (`mkfs*`).
    pub commands: Vec<String>,
    /// Construct ids (`computed-import`, `parse-error`, ...).
    pub constructs: Vec<String>,
    /// Narrows `calls` and `commands` matches by an argument.
    pub arg: Option<ArgCondition>,
}

/// An argument condition: the selected arguments must contain or equal one of the strings, or be
/// a reference to one of the names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ArgCondition {
    /// 0-based positional index; with neither `position` nor `keyword`, any argument counts.
    pub position: Option<usize>,
    /// Keyword argument name (`mode` for `open(path, mode="w")`).
    pub keyword: Option<String>,
    pub contains: Vec<String>,
    pub equals: Vec<String>,
    /// Globs matched against references (`socket.SOCK_RAW`).
    pub names: Vec<String>,
}

impl Rule {
    pub(crate) fn new(id: &str, message: &str, languages: &[Language]) -> Self {
        Rule {
            id: id.to_string(),
            message: message.to_string(),
            severity: Severity::Safe,
            languages: languages.to_vec(),
            matcher: Matcher::default(),
        }
    }

    fn applies_to(&self, language: Language) -> bool {
        self.languages.is_empty() || self.languages.contains(&language)
    }

    /// Whether the rule matches one fact.
    pub(crate) fn matches(&self, fact: &Fact) -> bool {
        let m = &self.matcher;
        let name = fact.name.as_str();
        match fact.kind {
            FactKind::Import => m.imports.iter().any(|p| subtree_match(p, name)),
            // A reference to a callable (`map(os.system, cmds)`, `[eval][0]`) counts as a call,
            // unless the rule needs to see the call's arguments.
            FactKind::Access => {
                m.accesses.iter().any(|p| subtree_match(p, name))
                    || (m.arg.is_none() && m.calls.iter().any(|p| glob(p, name)))
            }
            FactKind::Call => {
                (m.calls.iter().any(|p| glob(p, name)) && self.arg_holds(fact))
                    || m.accesses.iter().any(|p| subtree_match(p, name))
            }
            FactKind::Command => m.commands.iter().any(|p| glob(p, name)) && self.arg_holds(fact),
            FactKind::Construct => m.constructs.iter().any(|c| c == name),
        }
    }

    fn arg_holds(&self, fact: &Fact) -> bool {
        let Some(cond) = &self.matcher.arg else {
            return true;
        };
        let mut selected: Vec<&Arg> = Vec::new();
        if cond.position.is_none() && cond.keyword.is_none() {
            selected.extend(fact.args.iter());
            selected.extend(fact.keywords.iter().map(|(_, a)| a));
        }
        if let Some(i) = cond.position {
            selected.extend(fact.args.get(i));
        }
        if let Some(k) = &cond.keyword {
            selected.extend(fact.keywords.iter().filter(|(n, _)| n == k).map(|(_, a)| a));
        }
        selected.into_iter().any(|arg| match arg {
            Arg::Str(s) => {
                cond.contains.iter().any(|c| s.contains(c.as_str()))
                    || cond.equals.iter().any(|e| e == s)
            }
            Arg::Name(n) => cond.names.iter().any(|p| glob(p, n)),
            Arg::Other => false,
        })
    }
}

/// `pattern` with `*` wildcards against `name`, by bytes (iterative, no backtracking blow-up).
pub(crate) fn glob(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// `pattern` matches `name` or a dotted prefix of it (`os.environ` matches `os.environ.get`).
pub(crate) fn subtree_match(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return name == pattern
            || (name.len() > pattern.len()
                && name.starts_with(pattern)
                && name.as_bytes()[pattern.len()] == b'.');
    }
    glob(pattern, name)
        || name
            .match_indices('.')
            .any(|(i, _)| glob(pattern, &name[..i]))
}

/// A named threshold plus the rules it enables.
#[derive(Debug, Clone)]
pub struct Preset {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) threshold: Severity,
    pub(crate) rules: Vec<Rule>,
    /// Built on first use; `rules` must not change after that.
    pub(crate) index: OnceLock<Index>,
}

/// Candidate rules per fact kind and first name segment (`os` of `os.system`), so each fact is
/// checked only against rules that could match it; patterns whose first segment has a `*` are
/// checked against every fact of their kind.
#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    by_root: HashMap<(usize, String), Vec<usize>>,
    wild: [Vec<usize>; 5],
}

fn kind_slot(kind: FactKind) -> usize {
    match kind {
        FactKind::Import => 0,
        FactKind::Call => 1,
        FactKind::Access => 2,
        FactKind::Command => 3,
        FactKind::Construct => 4,
    }
}

fn root(name: &str) -> &str {
    name.split(['.', '/']).next().unwrap_or(name)
}

impl Index {
    fn build(rules: &[Rule]) -> Self {
        let mut index = Index::default();
        for (i, rule) in rules.iter().enumerate() {
            let m = &rule.matcher;
            let lists: [(&[String], &[FactKind]); 5] = [
                (&m.imports, &[FactKind::Import]),
                (&m.calls, &[FactKind::Call, FactKind::Access]),
                (&m.accesses, &[FactKind::Call, FactKind::Access]),
                (&m.commands, &[FactKind::Command]),
                (&m.constructs, &[FactKind::Construct]),
            ];
            for (patterns, kinds) in lists {
                for pattern in patterns {
                    for kind in kinds {
                        index.add(kind_slot(*kind), root(pattern), i);
                    }
                }
            }
        }
        index
    }

    fn add(&mut self, slot: usize, root: &str, rule: usize) {
        let list = if root.contains('*') {
            &mut self.wild[slot]
        } else {
            self.by_root.entry((slot, root.to_string())).or_default()
        };
        if list.last() != Some(&rule) {
            list.push(rule);
        }
    }

    fn candidates(&self, fact: &Fact, out: &mut Vec<usize>) {
        let slot = kind_slot(fact.kind);
        out.clear();
        out.extend_from_slice(&self.wild[slot]);
        if let Some(list) = self.by_root.get(&(slot, root(&fact.name).to_string())) {
            out.extend_from_slice(list);
        }
        out.sort_unstable();
        out.dedup();
    }
}

impl Preset {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// Findings at or above this severity make code unsafe.
    pub fn threshold(&self) -> Severity {
        self.threshold
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The same preset with another threshold (a profile's or `--threshold` override).
    pub fn with_threshold(mut self, threshold: Severity) -> Self {
        self.threshold = threshold;
        self
    }

    /// Turn facts from source `src` into findings, sorted by position, one per rule and place.
    pub(crate) fn findings(&self, facts: &[Fact], src: &str) -> Vec<Finding> {
        let index = self.index.get_or_init(|| Index::build(&self.rules));
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut candidates = Vec::new();
        for fact in facts {
            index.candidates(fact, &mut candidates);
            for rule in candidates.iter().map(|&i| &self.rules[i]) {
                if !rule.applies_to(fact.language) || !rule.matches(fact) {
                    continue;
                }
                let (line, column, excerpt) = fact.place.resolve(src);
                let message = message(rule, fact);
                if seen.insert((rule.id.clone(), line, column, message.clone())) {
                    out.push(Finding {
                        rule: rule.id.clone(),
                        severity: rule.severity,
                        message,
                        line,
                        column,
                        excerpt,
                    });
                }
            }
        }
        out.sort_by(|a, b| {
            (a.line, a.column, std::cmp::Reverse(a.severity), &a.rule).cmp(&(
                b.line,
                b.column,
                std::cmp::Reverse(b.severity),
                &b.rule,
            ))
        });
        out
    }
}

fn message(rule: &Rule, fact: &Fact) -> String {
    let seen = fact.detail.as_deref().unwrap_or(&fact.name);
    let mut text = format!("{}: {seen}", rule.message);
    if !fact.via.is_empty() {
        text.push_str(" (in code passed to ");
        text.push_str(&fact.via.join(" → "));
        text.push(')');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_dotted_names() {
        assert!(glob("os.system", "os.system"));
        assert!(!glob("os.system", "os.systemx"));
        assert!(glob("subprocess.*", "subprocess.run"));
        assert!(!glob("subprocess.*", "subprocess"));
        assert!(glob("os.exec*", "os.execvp"));
        assert!(glob("*.write_text", "pathlib.Path().write_text"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXbYbZc"));
        assert!(!glob("a*b*c", "aXbYbZ"));
    }

    #[test]
    fn subtree_matches_members_but_not_lookalikes() {
        assert!(subtree_match("os", "os.path"));
        assert!(subtree_match("os.environ", "os.environ.get"));
        assert!(!subtree_match("os", "osx"));
        assert!(!subtree_match("os.popen", "os.popen().read"));
        assert!(subtree_match("fs*", "fs.promises.writeFile"));
    }
}
