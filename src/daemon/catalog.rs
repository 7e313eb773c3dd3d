//! The profiles the service offers, loaded once (and again on SIGHUP), looked up by name or alias;
//! and the interpreter versions Piston clients match against, asked of the interpreters themselves
//! inside a sandbox.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::launcher::{Event, Job, Launcher};
use super::semver::Version;
use crate::policy::Limits;
use crate::profile::{Loader, Profile};
use crate::verdict::Status;

/// Every loadable profile, by name.
#[derive(Debug, Default)]
pub struct Catalog {
    profiles: BTreeMap<String, Profile>,
    /// Alias → profile name (the first profile, by name, to claim an alias wins).
    aliases: BTreeMap<String, String>,
}

/// One line of `/v1/profiles`: what a client may ask for, without host paths.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileSummary {
    pub name: String,
    pub description: String,
    pub aliases: Vec<String>,
    /// `runtime` when the profile has an interpreter, `preset` when the caller gives the command.
    pub kind: &'static str,
    pub command: Vec<String>,
    /// The language the pre-flight analysis parses, when the profile names one.
    pub language: Option<String>,
    /// The maxima a request may lower (see the verdict's `limits`).
    pub limits: Limits,
    /// `off`, `warn` or `enforce`.
    pub check: &'static str,
}

impl Catalog {
    /// Load every profile the loader lists; broken ones are logged and left out.
    pub fn load(loader: &Loader) -> Catalog {
        let mut c = Catalog::default();
        for info in loader.list() {
            match loader.load(&info.name) {
                Ok(p) => {
                    c.profiles.insert(p.name.clone(), p);
                }
                Err(e) => tracing::warn!(profile = %info.name, "profile not offered: {e}"),
            }
        }
        for p in c.profiles.values() {
            for alias in &p.aliases {
                if c.profiles.contains_key(alias) {
                    continue;
                }
                if let Some(owner) = c.aliases.get(alias) {
                    tracing::warn!(alias, owner, ignored = %p.name, "alias claimed twice");
                    continue;
                }
                c.aliases.insert(alias.clone(), p.name.clone());
            }
        }
        c
    }

    /// A profile by its name or one of its aliases.
    pub fn resolve(&self, name: &str) -> Option<&Profile> {
        self.profiles
            .get(name)
            .or_else(|| self.aliases.get(name).and_then(|n| self.profiles.get(n)))
    }

    /// Every name and alias, for "did you mean" hints.
    pub fn names(&self) -> Vec<String> {
        self.profiles
            .keys()
            .chain(self.aliases.keys())
            .cloned()
            .collect()
    }

    /// Profiles with an interpreter: what the Piston API calls runtimes.
    pub fn runtimes(&self) -> impl Iterator<Item = &Profile> {
        self.profiles.values().filter(|p| !p.policy.argv.is_empty())
    }

    pub fn summaries(&self) -> Vec<ProfileSummary> {
        self.profiles
            .values()
            .map(|p| ProfileSummary {
                name: p.name.clone(),
                description: first_sentence(&p.description),
                aliases: p.aliases.clone(),
                kind: if p.policy.argv.is_empty() {
                    "preset"
                } else {
                    "runtime"
                },
                command: p.policy.argv.clone(),
                language: p.policy.analysis.language.clone(),
                limits: p.policy.limits.clone(),
                check: super::exec::mode_name(p.policy.analysis.mode),
            })
            .collect()
    }
}

fn first_sentence(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.find(". ") {
        Some(i) => flat[..=i].to_string(),
        None => flat,
    }
}

/// What a runtime reports as its version: `Some` when known, `None` when the interpreter is not
/// installed (the runtime is then not offered to Piston clients).
pub type Versions = BTreeMap<String, Option<Version>>;

/// Ask each runtime's interpreter for its version (`<command> --version` in a sandbox under the
/// runtime's own profile), unless the config names one. An interpreter that runs but prints no
/// version reports 0.0.0; one that cannot be executed (exit 126/127) is left out.
pub async fn detect_versions(
    launcher: &Launcher,
    catalog: &Catalog,
    configured: &BTreeMap<String, String>,
) -> Versions {
    let mut out = Versions::new();
    for p in catalog.runtimes() {
        if let Some(v) = configured.get(&p.name).and_then(|v| Version::parse(v)) {
            out.insert(p.name.clone(), Some(v));
            continue;
        }
        let found = ask_version(launcher, p).await;
        match &found {
            Some(v) => tracing::debug!(runtime = %p.name, version = %v, "runtime version"),
            None => {
                tracing::warn!(runtime = %p.name, "interpreter not found; not offered as a Piston runtime")
            }
        }
        out.insert(p.name.clone(), found);
    }
    out
}

/// The version of an interpreter that prints none (dash has no `--version`).
const UNKNOWN: Version = Version {
    major: 0,
    minor: 0,
    patch: 0,
};

async fn ask_version(launcher: &Launcher, p: &Profile) -> Option<Version> {
    let mut policy = p.policy.clone();
    // A compiled language's version is its compiler's, asked under the compile stage's limits.
    let program = match policy.compile.take() {
        Some(stage) => {
            policy.limits = stage.limits.over(&policy.limits);
            stage.argv.first().cloned().unwrap_or_default()
        }
        None => policy.argv[0].clone(),
    };
    // The go tool has no --version flag; its `version` command prints "go version go1.19.8 ...".
    let flag = if program == "go" {
        "version"
    } else {
        "--version"
    };
    policy.argv = vec![program, flag.into()];
    policy.limits.wall = Some(Duration::from_secs(5));
    let job = Job {
        policy,
        files: Vec::new(),
        stdin: Vec::new(),
    };
    let mut run = match launcher.spawn(job).await {
        Ok(run) => run,
        Err(e) => {
            tracing::warn!(runtime = %p.name, "version probe not started: {e}");
            return Some(UNKNOWN);
        }
    };
    let mut text = Vec::new();
    while let Some(event) = run.next().await {
        match event {
            Event::Stdout(b) | Event::Stderr(b) => text.extend_from_slice(&b),
            Event::Finished(v) => {
                let missing =
                    v.status == Status::ExitNonzero && matches!(v.exit_code, Some(126 | 127));
                if missing {
                    return None;
                }
                if v.status == Status::SetupFailed {
                    tracing::warn!(runtime = %p.name, "version probe: {}", v.message.unwrap_or_default());
                }
            }
        }
    }
    Some(
        Version::find_in(&String::from_utf8_lossy(&text)).unwrap_or(Version {
            major: 0,
            minor: 0,
            patch: 0,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_profiles_resolve_by_name_and_alias() {
        let c = Catalog::load(&Loader {
            profile_dirs: Vec::new(),
            builtins: true,
            rootfs_dirs: Vec::new(),
        });
        assert_eq!(c.resolve("python").unwrap().name, "python");
        assert_eq!(c.resolve("py").unwrap().name, "python");
        assert_eq!(c.resolve("js").unwrap().name, "node");
        assert!(c.resolve("cobol").is_none());
        assert!(c.runtimes().any(|p| p.name == "bash"));
        assert!(
            !c.runtimes().any(|p| p.name == "strict"),
            "presets are not runtimes"
        );
        let s = c.summaries();
        let strict = s.iter().find(|p| p.name == "strict").unwrap();
        assert_eq!(strict.kind, "preset");
        assert!(!strict.description.contains('\n'));
    }
}
