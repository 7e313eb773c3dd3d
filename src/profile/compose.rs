//! Composition: a language profile (what runs) with a security preset (how tightly) on top, as in
//! `stockade run --profile python --preset data_science` or `{"profile": "node", "preset":
//! "strict"}`.
//!
//! The rule (docs/profiles.md, "Language × preset"): the language profile keeps what makes the
//! program run (command, code delivery, working directory, host name, root filesystem, analysis
//! language, aliases, and any field not listed here); the preset decides how tightly (limits,
//! network, seccomp default action, best-effort layers, analysis preset, mode and threshold) and
//! wins on environment variables it sets; allowlists both need are merged (seccomp groups and
//! extra syscalls, Landlock paths, bind mounts, copy-ins).

use super::error::{ProfileError, nearest};
use super::{Loader, Profile, is_path};
use crate::policy::{Policy, default_env};

/// Whether a profile is a security preset: it names no interpreter.
pub fn is_preset(profile: &Profile) -> bool {
    profile.policy.argv.is_empty()
}

/// `language` with `preset` applied on top, named `language+preset`.
pub fn compose(language: &Profile, preset: &Profile) -> Result<Profile, ProfileError> {
    if is_preset(language) {
        return Err(ProfileError::NotALanguage {
            name: language.name.clone(),
            preset: preset.name.clone(),
        });
    }
    if !is_preset(preset) {
        return Err(ProfileError::NotAPreset {
            name: preset.name.clone(),
            command: preset.policy.argv.join(" "),
        });
    }
    let mut chain = language.chain.clone();
    chain.push(format!("+{}", preset.chain.join(" -> ")));
    Ok(Profile {
        name: format!("{}+{}", language.name, preset.name),
        description: format!(
            "{}\n\nWith the `{}` preset on top: {}",
            language.description, preset.name, preset.description
        ),
        aliases: Vec::new(),
        source: language.source.clone(),
        chain,
        policy: compose_policies(&language.policy, &preset.policy),
    })
}

/// The composed policy: `language`'s, with `preset`'s limits and layers.
pub fn compose_policies(language: &Policy, preset: &Policy) -> Policy {
    let mut p = language.clone();
    p.profile = format!("{}+{}", language.profile, preset.profile);
    p.limits = preset.limits.clone();
    p.network = preset.network;
    p.best_effort = preset.best_effort;
    p.seccomp.default_action = preset.seccomp.default_action;
    union(&mut p.seccomp.groups, &preset.seccomp.groups);
    union(&mut p.seccomp.extra_allow, &preset.seccomp.extra_allow);
    union(&mut p.landlock.read, &preset.landlock.read);
    union(&mut p.landlock.write, &preset.landlock.write);
    p.analysis.preset.clone_from(&preset.analysis.preset);
    p.analysis.mode = preset.analysis.mode;
    p.analysis.threshold = preset.analysis.threshold;
    for m in &preset.mounts {
        p.mounts.retain(|own| own.target != m.target);
        p.mounts.push(m.clone());
    }
    for c in &preset.copy_in {
        p.copy_in.retain(|own| own.target != c.target);
        p.copy_in.push(c.clone());
    }
    // Only what the preset itself set: its inherited defaults (PATH, HOME...) must not undo a
    // language profile's own PATH.
    let defaults = default_env();
    for (k, v) in &preset.env {
        if !defaults.iter().any(|(dk, dv)| dk == k && dv == v) {
            p.set_env(k, v);
        }
    }
    p
}

fn union<T: Clone + PartialEq>(into: &mut Vec<T>, from: &[T]) {
    for item in from {
        if !into.contains(item) {
            into.push(item.clone());
        }
    }
}

impl Loader {
    /// Load `language` and `preset` (names or paths) and compose them; an unknown preset gets
    /// the list of presets and a "did you mean".
    pub fn load_with_preset(&self, language: &str, preset: &str) -> Result<Profile, ProfileError> {
        let lang = self.load(language)?;
        let preset = match self.load(preset) {
            Ok(p) => p,
            Err(ProfileError::NotFound { .. } | ProfileError::BadName(_)) if !is_path(preset) => {
                return Err(self.unknown_preset(preset));
            }
            Err(e) => return Err(e),
        };
        compose(&lang, &preset)
    }

    /// Names of the presets this loader finds (profiles without a command), sorted.
    pub fn preset_names(&self) -> Vec<String> {
        self.list()
            .into_iter()
            .filter(|i| i.error.is_none() && i.command.is_empty())
            .map(|i| i.name)
            .collect()
    }

    fn unknown_preset(&self, name: &str) -> ProfileError {
        let presets = self.preset_names();
        let suggestion = match crate::analysis::preset_names().contains(&name) {
            true => Some(format!(
                "`{name}` is an analysis preset only: choose its rules with `--analysis-preset \
                 {name}` or `[policy] preset`"
            )),
            false => nearest(name, &presets).map(|n| format!("did you mean `{n}`?")),
        };
        ProfileError::UnknownPreset {
            name: name.to_string(),
            presets: presets.join(", "),
            suggestion,
        }
    }
}

/// Load by name or path, with an optional preset on top ([`Loader::system`]).
pub fn load_with_preset(language: &str, preset: Option<&str>) -> Result<Profile, ProfileError> {
    match preset {
        Some(preset) => Loader::system().load_with_preset(language, preset),
        None => super::load(language),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{AnalysisMode, BindMount, NetworkMode, SeccompDefault};

    fn builtin() -> Loader {
        Loader {
            profile_dirs: Vec::new(),
            builtins: true,
            rootfs_dirs: Vec::new(),
        }
    }

    #[test]
    fn the_language_keeps_what_runs_and_the_preset_decides_how_tightly() {
        let l = builtin();
        let python = l.load("python").unwrap();
        let ds = l.load("data_science").unwrap();
        let p = l.load_with_preset("python", "data_science").unwrap();
        assert_eq!(p.name, "python+data_science");
        assert_eq!(p.policy.profile, "python+data_science");
        // From python: the interpreter, how code arrives, the analysis language.
        assert_eq!(p.policy.argv, python.policy.argv);
        assert_eq!(p.policy.code, python.policy.code);
        assert_eq!(p.policy.analysis.language.as_deref(), Some("python"));
        // From data_science: every limit, and its analysis rules and mode.
        assert_eq!(p.policy.limits, ds.policy.limits);
        assert_eq!(p.policy.limits.memory, Some(4 << 30));
        assert_eq!(p.policy.analysis.preset, "data_science");
        assert_eq!(p.policy.analysis.mode, AnalysisMode::Warn);
        // Both environments: python's bytecode switch and the preset's thread pinning.
        let env = |k: &str| {
            p.policy
                .env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(env("PYTHONDONTWRITEBYTECODE"), Some("1"));
        assert_eq!(env("OPENBLAS_NUM_THREADS"), Some("2"));
        assert_eq!(env("MPLBACKEND"), Some("Agg"));
        assert_eq!(p.chain, ["python", "production", "+data_science"]);
    }

    #[test]
    fn node_strict_is_strict() {
        let l = builtin();
        let strict = l.load("strict").unwrap();
        let p = l.load_with_preset("node", "strict").unwrap();
        assert_eq!(p.policy.argv, ["node"]);
        assert_eq!(p.policy.code.file_name, "main.js");
        // node raises memory to 512 MiB; the preset wins.
        assert_eq!(p.policy.limits.memory, Some(128 << 20));
        assert_eq!(p.policy.limits, strict.policy.limits);
        assert_eq!(p.policy.analysis.mode, AnalysisMode::Enforce);
        // Every shipped preset refuses unlisted calls with an errno now (issue 10); the preset's
        // action is the one in force.
        assert_eq!(
            p.policy.seccomp.default_action,
            strict.policy.seccomp.default_action
        );
        assert_eq!(p.policy.network, NetworkMode::None);
        let dev = l.load_with_preset("node", "development").unwrap();
        assert_eq!(dev.policy.network, NetworkMode::Loopback);
        assert_eq!(dev.policy.seccomp.default_action, SeccompDefault::Errno);
    }

    #[test]
    fn allowlists_merge_and_the_preset_wins_on_its_own_variables() {
        let mut lang = Policy {
            profile: "go".into(),
            argv: vec!["go".into(), "run".into()],
            ..Policy::default()
        };
        lang.set_env("PATH", "/usr/lib/go/bin:/usr/bin");
        lang.set_env("GOFLAGS", "-mod=vendor");
        lang.seccomp.groups.push("a".into());
        lang.landlock.read.push("/opt/go".into());
        lang.mounts.push(BindMount {
            source: "/opt/go".into(),
            target: "/opt/go".into(),
            writable: false,
        });
        let mut preset = Policy {
            profile: "team".into(),
            ..Policy::default()
        };
        preset.set_env("GOFLAGS", "-mod=readonly");
        preset.seccomp.groups.extend(["a".into(), "b".into()]);
        preset.landlock.read.push("/srv/data".into());
        preset.best_effort.cgroup = true;
        let p = compose_policies(&lang, &preset);
        let env = |k: &str| p.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            env("PATH"),
            Some("/usr/lib/go/bin:/usr/bin"),
            "the preset's default PATH does not win"
        );
        assert_eq!(env("GOFLAGS"), Some("-mod=readonly"));
        assert_eq!(p.seccomp.groups, ["a", "b"]);
        assert_eq!(p.landlock.read.len(), 2);
        assert_eq!(p.mounts.len(), 1);
        assert!(p.best_effort.cgroup);
    }

    #[test]
    fn wrong_roles_and_unknown_presets_are_clear_errors() {
        let l = builtin();
        let e = l
            .load_with_preset("python", "node")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`node` is a language profile (it runs `node`), not a preset"),
            "{e}"
        );
        let e = l
            .load_with_preset("strict", "data_science")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`strict` is a security preset"), "{e}");
        assert!(e.contains("--profile python --preset data_science"), "{e}");
        let e = l
            .load_with_preset("python", "data_sciense")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("preset `data_sciense` not found"), "{e}");
        assert!(e.contains("did you mean `data_science`?"), "{e}");
        assert!(e.contains("strict") && !e.contains("python,"), "{e}");
        let e = l
            .load_with_preset("python", "web_scraping")
            .unwrap_err()
            .to_string();
        assert!(e.contains("analysis preset only"), "{e}");
        let e = l
            .load_with_preset("pyhton", "strict")
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `python`?"), "{e}");
    }
}
