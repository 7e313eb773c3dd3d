//! The profile file format: strict serde structs that mirror the TOML one to one.
//!
//! Every field is optional on the wire: an absent field inherits from the profile named in
//! `extends`, or takes the default of `crate::policy::Policy`. Values that need checking (sizes,
//! durations, modes, paths) stay `Spanned` so `super::apply` can point at them in an error.
//! docs/profiles.md documents every field; keep the two in step.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// One profile file (`profiles/<name>.toml`, `/etc/stockade/profiles/<name>.toml` or a path).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfileFile {
    /// One paragraph: what the profile allows and why. Required in every file; not inherited.
    pub description: Option<Spanned<String>>,
    /// The profile this one builds on: a name, or a path relative to this file. Default: none.
    pub extends: Option<Spanned<String>>,
    /// Other names clients may use for this profile (the Piston API's `aliases`). Default: none;
    /// not inherited.
    pub aliases: Vec<Spanned<String>>,
    /// Network mode: `none` (default) or `loopback`.
    pub network: Option<Spanned<String>>,
    /// Layers that may be weaker than asked when the host cannot provide them: `landlock`,
    /// `cgroup`. Default: none (every layer is required). Appends to the parent's list.
    pub best_effort: Vec<Spanned<String>>,
    /// What runs and how code reaches it.
    pub run: RunSection,
    /// A compile stage before the run (compiled languages). Default: none.
    pub compile: CompileSection,
    /// What `/` is, plus extra bind mounts.
    pub rootfs: RootfsSection,
    /// Resource limits as human strings.
    pub limits: LimitsSection,
    /// The syscall filter.
    pub seccomp: SeccompSection,
    /// Extra Landlock rules.
    pub landlock: LandlockSection,
    /// Environment variables added to the payload's minimal environment. Merged key by key.
    pub env: BTreeMap<Spanned<String>, Spanned<String>>,
    /// Pre-execution analysis (`stockade check`).
    pub policy: PolicySection,
}

/// `[run]`: the interpreter and how code given as text reaches it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSection {
    /// The interpreter and its fixed options, e.g. `["python3", "-I"]`. Caller arguments are
    /// appended. Default: `[]` (the caller supplies the whole command). Replaces the parent's.
    pub command: Option<Vec<Spanned<String>>>,
    /// How code given as text arrives: `argument`, `file` or `stdin` (default).
    pub code: Option<Spanned<String>>,
    /// For `code = "argument"`: the option before the code (`-c`, `-e`). Default: none.
    pub code_flag: Option<Spanned<String>>,
    /// For `code = "file"`: the file name under `/sandbox`. Default: `main`.
    pub file_name: Option<Spanned<String>>,
    /// Arguments after the code or file and before the caller's (bash: `$0`). Default: `[]`.
    /// Replaces the parent's.
    pub args: Option<Vec<Spanned<String>>>,
    /// Working directory inside the sandbox. Default: `/sandbox`.
    pub cwd: Option<Spanned<String>>,
    /// Host name inside the sandbox. Default: `stockade`.
    pub hostname: Option<Spanned<String>>,
}

/// `[rootfs]`: the root filesystem and extra mounts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RootfsSection {
    /// `host` (default), a rootfs name (see docs/rootfs.md) or a directory path.
    pub root: Option<Spanned<String>>,
    /// Extra bind mounts from the host. Appends to the parent's; a mount with the same target
    /// replaces the parent's.
    pub mounts: Vec<MountEntry>,
}

/// One `[[rootfs.mounts]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MountEntry {
    /// Absolute host path. Required.
    pub source: Option<Spanned<String>>,
    /// Absolute path inside the sandbox. Default: the same as `source`.
    pub target: Option<Spanned<String>>,
    /// Mount read-write instead of read-only. Default: false.
    pub writable: bool,
}

/// `[limits]`: sizes (`"256MiB"` or bytes), durations (`"1.5s"` or seconds), counts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Wall-clock time, or `"unlimited"`. Default: `10s`.
    pub wall: Option<Spanned<toml::Value>>,
    /// CPU time of the whole sandbox, or `"unlimited"` (default).
    pub cpu: Option<Spanned<toml::Value>>,
    /// Memory, or `"unlimited"` (default).
    pub memory: Option<Spanned<toml::Value>>,
    /// Number of tasks, or `"unlimited"` (default).
    pub pids: Option<Spanned<toml::Value>>,
    /// CPU bandwidth in cores (`0.5`, `2`), or `"unlimited"` (default).
    pub cpus: Option<Spanned<toml::Value>>,
    /// Bytes captured per output stream. Default: `1MiB`.
    pub output: Option<Spanned<toml::Value>>,
    /// At the output cap: `kill` (default) or `truncate`.
    pub output_mode: Option<Spanned<toml::Value>>,
    /// Size of the `/tmp` tmpfs. Default: `64MiB`.
    pub tmp_size: Option<Spanned<toml::Value>>,
    /// Size of the `/sandbox` tmpfs. Default: `64MiB`.
    pub sandbox_size: Option<Spanned<toml::Value>>,
    /// RLIMIT_NOFILE. Default: 256.
    pub open_files: Option<Spanned<toml::Value>>,
    /// RLIMIT_FSIZE: the largest file a process may write. Default: `64MiB`.
    pub file_size: Option<Spanned<toml::Value>>,
    /// RLIMIT_STACK. Default: `8MiB`.
    pub stack: Option<Spanned<toml::Value>>,
}

/// `[seccomp]`: the syscall allowlist.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeccompSection {
    /// For a syscall outside the allowlist: `errno` (default: ENOSYS, counted in the verdict),
    /// `kill` or `log`. The dangerous calls kill whatever this says.
    pub default_action: Option<Spanned<String>>,
    /// Named syscall groups added to the base allowlist. Appends to the parent's.
    pub groups: Vec<Spanned<String>>,
    /// Extra syscalls by name, allowed unconditionally. Appends to the parent's.
    pub allow: Vec<Spanned<String>>,
}

/// `[landlock]`: paths beyond the defaults (read `/`, write the sandbox's tmpfs mounts).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LandlockSection {
    /// Extra readable (and executable) absolute paths. Appends to the parent's.
    pub read: Vec<Spanned<String>>,
    /// Extra writable absolute paths. Appends to the parent's.
    pub write: Vec<Spanned<String>>,
}

/// `[policy]`: pre-execution analysis of the code.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySection {
    /// Analysis preset. Default: `production`.
    pub preset: Option<Spanned<String>>,
    /// `off` (default), `warn` or `enforce`.
    pub mode: Option<Spanned<String>>,
    /// Language of the code: `python`, `javascript` or `shell`. Default: guessed from argv.
    pub language: Option<Spanned<String>>,
    /// Severity at or above which code is unsafe: `low`, `medium` or `high`. Default: the
    /// preset's own threshold.
    pub threshold: Option<Spanned<String>>,
    /// Top-level modules the code may import: Python `import`, node `require`. Enforced by the
    /// analysis (a `blocked_import` finding) and at run time by a start-up hook (`ImportError:
    /// Blocked import: os`). Default: any module. Replaces the parent's list.
    pub allowed_modules: Option<Vec<Spanned<String>>>,
    /// Builtins the code may not call: `eval`, `exec`, `compile`, `__import__`, `open` (Python),
    /// `eval`, `Function` (node). Enforced the same two ways. Default: none. Appends to the
    /// parent's.
    pub blocked_functions: Vec<Spanned<String>>,
}

/// `[compile]`: a compile stage that runs in its own sandbox before `[run]`, sharing the work dir
/// `/sandbox` with it. Placeholders in `command` (and in `[run] command`/`args` of a profile with a
/// compile stage): `{source}` the program file's path, `{stem}` its name without extension,
/// `{output}` the compiler's output path, `{dir}` the work dir.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompileSection {
    /// The compiler and its options, e.g. `["gcc", "-O2", "-o", "{output}", "{source}"]`. Setting
    /// it gives the profile a compile stage. Default: none. Replaces the parent's.
    pub command: Option<Vec<Spanned<String>>>,
    /// The program file under `/sandbox` when code is given as text, e.g. `main.c`. Default:
    /// `main`.
    pub file_name: Option<Spanned<String>>,
    /// The compiler's output under `/sandbox` (`{output}`). Default: `main.out`.
    pub output: Option<Spanned<String>>,
    /// The compile stage's own limits.
    pub limits: CompileLimitsSection,
}

/// `[compile.limits]`: like `[limits]`, for the compiler. Other limits are the run's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompileLimitsSection {
    /// Wall-clock time, or `"unlimited"`. Default: `10s`.
    pub wall: Option<Spanned<toml::Value>>,
    /// CPU time, or `"unlimited"` (default).
    pub cpu: Option<Spanned<toml::Value>>,
    /// Memory, or `"unlimited"` (default).
    pub memory: Option<Spanned<toml::Value>>,
    /// Number of tasks, or `"unlimited"` (default).
    pub pids: Option<Spanned<toml::Value>>,
    /// Bytes captured per output stream. Default: `1MiB`.
    pub output: Option<Spanned<toml::Value>>,
}
