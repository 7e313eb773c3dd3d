//! Profiles: TOML files that say what runs and how tightly, validated into a `Policy`.
//!
//! A profile is found by name (in `/etc/stockade/profiles/<name>.toml`, then among the profiles
//! built into the binary from the repository's `profiles/`) or by path (anything containing `/`
//! or ending in `.toml`). `extends` chains are applied root first onto `Policy::default()`, see
//! `apply`. The runtime only ever sees the resulting `Policy`; docs/profiles.md is the reference.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::policy::Policy;
use crate::rootfs;

mod apply;
mod compile;
mod compose;
mod error;
mod invocation;
mod render;
mod values;
pub mod wire;

pub use compose::{compose, compose_policies, is_preset, load_with_preset};
pub use error::{Invalid, ProfileError, SourceFile, nearest};
pub use invocation::{CodeInput, InlineFile, Invocation, WorkFile, invocation};
pub use render::render_policy;

/// Operator profiles; a name found here takes precedence over a built-in one.
pub const SYSTEM_DIR: &str = "/etc/stockade/profiles";

/// Longest `extends` chain accepted.
pub const MAX_DEPTH: usize = 16;

/// The profiles shipped in `profiles/`, embedded so an installed binary has them.
pub const BUILTIN: &[(&str, &str)] = &[
    ("bash", include_str!("../../profiles/bash.toml")),
    ("c", include_str!("../../profiles/c.toml")),
    ("cpp", include_str!("../../profiles/cpp.toml")),
    (
        "data_science",
        include_str!("../../profiles/data_science.toml"),
    ),
    (
        "development",
        include_str!("../../profiles/development.toml"),
    ),
    (
        "educational",
        include_str!("../../profiles/educational.toml"),
    ),
    ("go", include_str!("../../profiles/go.toml")),
    ("java", include_str!("../../profiles/java.toml")),
    ("minimal", include_str!("../../profiles/minimal.toml")),
    ("node", include_str!("../../profiles/node.toml")),
    ("perl", include_str!("../../profiles/perl.toml")),
    ("production", include_str!("../../profiles/production.toml")),
    ("python", include_str!("../../profiles/python.toml")),
    (
        "python_restricted",
        include_str!("../../profiles/python_restricted.toml"),
    ),
    ("rust", include_str!("../../profiles/rust.toml")),
    ("sh", include_str!("../../profiles/sh.toml")),
    ("strict", include_str!("../../profiles/strict.toml")),
];

/// A loaded, validated profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    /// The profile's own description (descriptions are not inherited).
    pub description: String,
    /// Other names clients may use (not inherited).
    pub aliases: Vec<String>,
    /// Where it was found: `built-in` or a file path.
    pub source: String,
    /// The `extends` chain, this profile first, by name or path.
    pub chain: Vec<String>,
    /// The effective policy.
    pub policy: Policy,
}

impl Profile {
    /// The validated policy, which is all the runtime needs.
    pub fn into_policy(self) -> Policy {
        self.policy
    }

    /// The command line and inputs for running `input` under this profile.
    pub fn command_for(&self, input: CodeInput) -> Result<Invocation, ProfileError> {
        invocation(&self.policy, input)
    }
}

impl From<Profile> for Policy {
    fn from(profile: Profile) -> Policy {
        profile.policy
    }
}

/// One line of `stockade profile list` (and the service's runtime list).
#[derive(Debug, Clone, Serialize)]
pub struct ProfileInfo {
    pub name: String,
    pub description: String,
    pub aliases: Vec<String>,
    pub source: String,
    /// The interpreter command; empty for security presets, which need a command from the caller.
    pub command: Vec<String>,
    /// Why the profile does not load, for a broken file in a profile directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Load a profile by name or path with the system search order ([`Loader::system`]).
pub fn load(name_or_path: &str) -> Result<Profile, ProfileError> {
    Loader::system().load(name_or_path)
}

/// Every profile the system search order can find ([`Loader::system`]).
pub fn list() -> Vec<ProfileInfo> {
    Loader::system().list()
}

/// Valid profile (and rootfs) names: `[a-z0-9_-]`, starting with a letter or digit.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// True when the argument names a file rather than a profile.
pub fn is_path(name_or_path: &str) -> bool {
    name_or_path.contains('/') || name_or_path.ends_with(".toml")
}

/// Where profiles and named rootfs are looked up. Tests build their own; everything else uses
/// [`Loader::system`].
#[derive(Debug, Clone)]
pub struct Loader {
    /// Directories searched for `<name>.toml`, in order, before the built-ins.
    pub profile_dirs: Vec<PathBuf>,
    /// Whether the embedded profiles are searched (after `profile_dirs`).
    pub builtins: bool,
    /// Directories searched for a named rootfs (see `crate::rootfs::default_dirs`).
    pub rootfs_dirs: Vec<PathBuf>,
}

/// One profile's text and where it came from.
struct Found {
    /// Identity for cycle detection: the path, or `builtin:<name>`.
    key: String,
    /// Shown in errors.
    display: String,
    name: String,
    text: Cow<'static, str>,
    /// The file's directory (relative `extends` and rootfs paths), `None` for built-ins.
    dir: Option<PathBuf>,
    /// Index of the source in the search order (`profile_dirs`, then built-ins), for names only.
    rank: Option<usize>,
}

/// One profile in an `extends` chain.
struct Link {
    key: String,
    name: String,
    source: String,
}

impl Link {
    /// Built-ins by name, files by path.
    fn label(&self) -> String {
        match self.source.as_str() {
            "built-in" => self.name.clone(),
            path => path.to_string(),
        }
    }
}

impl Loader {
    /// `/etc/stockade/profiles`, then the built-ins; rootfs from `crate::rootfs::default_dirs`.
    pub fn system() -> Self {
        Loader {
            profile_dirs: vec![PathBuf::from(SYSTEM_DIR)],
            builtins: true,
            rootfs_dirs: rootfs::default_dirs(),
        }
    }

    /// Load and validate a profile by name or path, following `extends`.
    pub fn load(&self, name_or_path: &str) -> Result<Profile, ProfileError> {
        let found = match is_path(name_or_path) {
            true => read_path(Path::new(name_or_path))?,
            false => self.find_name(name_or_path, 0)?,
        };
        let mut chain = Vec::new();
        let (policy, meta) = self.load_found(found, &mut chain)?;
        // The run-time guard needs the interpreter's start-up hook: a command that turns it off
        // (`python3 -I`) is a profile mistake, reported at load rather than on every run.
        if crate::guard::active(&policy.analysis) {
            crate::guard::check_argv(&policy.argv).map_err(|e| {
                ProfileError::BadInput(format!("profile `{}`: [run] command: {e}", policy.profile))
            })?;
        }
        Ok(Profile {
            name: policy.profile.clone(),
            description: meta.description,
            aliases: meta.aliases,
            source: chain.first().map(|l| l.source.clone()).unwrap_or_default(),
            chain: chain.iter().map(Link::label).collect(),
            policy,
        })
    }

    /// Every profile by name: those in `profile_dirs` (the first of a name wins) and the built-ins.
    pub fn list(&self) -> Vec<ProfileInfo> {
        let mut names: Vec<String> = Vec::new();
        for dir in &self.profile_dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                if let Some(name) = file.strip_suffix(".toml").filter(|n| valid_name(n)) {
                    names.push(name.to_string());
                }
            }
        }
        if self.builtins {
            names.extend(BUILTIN.iter().map(|(n, _)| n.to_string()));
        }
        names.sort();
        names.dedup();
        names.iter().map(|name| self.info(name)).collect()
    }

    fn info(&self, name: &str) -> ProfileInfo {
        match self.load(name) {
            Ok(p) => ProfileInfo {
                name: p.name,
                description: p.description,
                aliases: p.aliases,
                source: p.source,
                command: p.policy.argv,
                error: None,
            },
            Err(e) => ProfileInfo {
                name: name.to_string(),
                description: String::new(),
                aliases: Vec::new(),
                source: self
                    .find_name(name, 0)
                    .map(|f| f.display)
                    .unwrap_or_default(),
                command: Vec::new(),
                error: Some(error_chain(&e)),
            },
        }
    }

    /// Look a name up in the search order, starting at source `from` (so an operator's profile
    /// can extend the built-in of the same name).
    fn find_name(&self, name: &str, from: usize) -> Result<Found, ProfileError> {
        if !valid_name(name) {
            return Err(ProfileError::BadName(name.to_string()));
        }
        for (rank, dir) in self.profile_dirs.iter().enumerate().skip(from) {
            let path = dir.join(format!("{name}.toml"));
            if path.is_file() {
                let mut found = read_path(&path)?;
                found.name = name.to_string();
                found.rank = Some(rank);
                return Ok(found);
            }
        }
        let builtin = BUILTIN.iter().find(|(n, _)| *n == name);
        match builtin.filter(|_| self.builtins) {
            Some((n, text)) => Ok(Found {
                key: format!("builtin:{n}"),
                display: format!("profiles/{n}.toml (built in)"),
                name: n.to_string(),
                text: Cow::Borrowed(text),
                dir: None,
                rank: Some(self.profile_dirs.len()),
            }),
            None => Err(self.not_found(name)),
        }
    }

    fn not_found(&self, name: &str) -> ProfileError {
        let mut searched: Vec<String> = self
            .profile_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        if self.builtins {
            searched.push("the built-in profiles".into());
        }
        let known: Vec<String> = self.list_names();
        let suggestion = error::nearest(name, &known).map(|n| format!("did you mean `{n}`?"));
        ProfileError::NotFound {
            name: name.to_string(),
            searched: searched.join(", "),
            suggestion,
        }
    }

    fn list_names(&self) -> Vec<String> {
        let mut names: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
        for dir in &self.profile_dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                names.extend(file.strip_suffix(".toml").map(str::to_string));
            }
        }
        names
    }

    /// Parse `found`, load its parent first, then apply it on top. `chain` collects the links,
    /// child first; it doubles as the cycle check.
    fn load_found(
        &self,
        found: Found,
        chain: &mut Vec<Link>,
    ) -> Result<(Policy, apply::Meta), ProfileError> {
        let link = Link {
            key: found.key.clone(),
            name: found.name.clone(),
            source: match found.dir {
                None => "built-in".to_string(),
                Some(_) => found.display.clone(),
            },
        };
        let cycle = chain.iter().any(|l| l.key == link.key);
        if cycle || chain.len() >= MAX_DEPTH {
            let mut names: Vec<String> = chain.iter().map(Link::label).collect();
            names.push(link.label());
            return Err(match cycle {
                true => ProfileError::Cycle(names),
                false => ProfileError::TooDeep {
                    max: MAX_DEPTH,
                    chain: names,
                },
            });
        }
        chain.push(link);
        let src = error::SourceFile {
            name: found.display.clone(),
            text: &found.text,
        };
        let file: wire::ProfileFile =
            toml::from_str(&found.text).map_err(|e| src.toml_error(&e))?;
        let mut policy = match &file.extends {
            Some(parent) => {
                let parent_found = self
                    .find_parent(&found, parent)
                    .map_err(|e| at_extends(&src, parent, e))?;
                self.load_found(parent_found, chain)?.0
            }
            None => Policy::default(),
        };
        let cx = apply::Context {
            src: &src,
            dir: found.dir.as_deref(),
            rootfs_dirs: &self.rootfs_dirs,
        };
        let meta = apply::apply(file, &cx, &mut policy)?;
        policy.profile = found.name;
        Ok((policy, meta))
    }

    fn find_parent(
        &self,
        child: &Found,
        parent: &toml::Spanned<String>,
    ) -> Result<Found, ProfileError> {
        let spec = parent.get_ref();
        if is_path(spec) {
            let path = match &child.dir {
                Some(dir) => dir.join(spec),
                None => PathBuf::from(spec),
            };
            return read_path(&path);
        }
        // An operator's /etc/stockade/profiles/python.toml may say `extends = "python"`: that
        // means the next `python` in the search order, not itself.
        let from = match child.rank {
            Some(rank) if child.name == *spec => rank + 1,
            _ => 0,
        };
        self.find_name(spec, from)
    }
}

/// Errors that concern the `extends` value itself point at it.
fn at_extends(
    src: &error::SourceFile<'_>,
    parent: &toml::Spanned<String>,
    err: ProfileError,
) -> ProfileError {
    match err {
        ProfileError::NotFound { .. } | ProfileError::BadName(_) | ProfileError::Read { .. } => {
            let (message, hint) = match &err {
                ProfileError::NotFound {
                    name,
                    searched,
                    suggestion,
                } => (
                    format!("`extends`: profile `{name}` not found (looked in {searched})"),
                    suggestion.clone(),
                ),
                other => (format!("`extends`: {}", error_chain(other)), None),
            };
            src.error(parent.span(), "extends", message, hint)
        }
        other => other,
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        text.push_str(&format!(": {e}"));
        cur = e.source();
    }
    text
}

fn read_path(path: &Path) -> Result<Found, ProfileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "profile".into());
    Ok(Found {
        key: key.display().to_string(),
        display: path.display().to_string(),
        name,
        text: Cow::Owned(text),
        dir: Some(
            path.parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        ),
        rank: None,
    })
}
