//! The validated model of one sandboxed run: the only thing the runtime ever sees.
//!
//! Profiles (TOML, `crate::profile`) and CLI flags are wire formats; both end up here. Every field
//! has a safe default (`Policy::default()` is the embedded default: host `/usr`, no network, every
//! layer required), so a caller only states what differs.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything `sandbox::run` needs to know about one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Policy {
    /// Name of the profile this policy came from (`"default"` for the embedded default).
    pub profile: String,
    /// The command and its arguments, resolved against the sandbox's `PATH`.
    pub argv: Vec<String>,
    /// The exact environment of the payload; nothing of the caller's environment leaks in.
    pub env: Vec<(String, String)>,
    /// Working directory inside the sandbox.
    pub cwd: PathBuf,
    /// Host name inside the UTS namespace.
    pub hostname: String,
    pub rootfs: RootFs,
    /// Extra read-only (or, when asked, writable) bind mounts from the host.
    pub mounts: Vec<BindMount>,
    /// Host files copied into the writable work dir before the payload starts.
    pub copy_in: Vec<CopyIn>,
    pub limits: Limits,
    pub network: NetworkMode,
    pub seccomp: SeccompPolicy,
    pub landlock: LandlockPolicy,
    /// Layers that may be weaker than asked when the host cannot provide them.
    pub best_effort: BestEffort,
    /// Pre-execution analysis settings (`crate::analysis`).
    pub analysis: AnalysisPolicy,
    /// How code given as text reaches the interpreter in `argv` (`crate::profile::invocation`).
    pub code: CodeDelivery,
    /// A compile stage that runs before `argv` in its own sandbox (`crate::sandbox::stages`);
    /// `None` for interpreted languages.
    #[serde(default)]
    pub compile: Option<CompileStage>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            profile: "default".into(),
            argv: Vec::new(),
            env: default_env(),
            cwd: PathBuf::from(SANDBOX_DIR),
            hostname: "stockade".into(),
            rootfs: RootFs::Host,
            mounts: Vec::new(),
            copy_in: Vec::new(),
            limits: Limits::default(),
            network: NetworkMode::None,
            seccomp: SeccompPolicy::default(),
            landlock: LandlockPolicy::default(),
            best_effort: BestEffort::default(),
            analysis: AnalysisPolicy::default(),
            code: CodeDelivery::default(),
            compile: None,
        }
    }
}

impl Policy {
    /// The sandbox this policy asks for: everything that stays for the sandbox's whole life.
    pub fn shape(&self) -> Shape {
        Shape {
            hostname: self.hostname.clone(),
            rootfs: self.rootfs.clone(),
            mounts: self.mounts.clone(),
            limits: self.limits.clone(),
            network: self.network,
            seccomp: self.seccomp.clone(),
            landlock: self.landlock.clone(),
            best_effort: self.best_effort,
            files: Vec::new(),
        }
    }

    /// The one program this policy runs, with `files` (work files given as content) to write
    /// beneath the work dir first.
    pub fn execution(&self, files: Vec<File>) -> Execution {
        Execution {
            argv: self.argv.clone(),
            env: self.env.clone(),
            cwd: self.cwd.clone(),
            copy_in: self.copy_in.clone(),
            files,
            limits: ExecLimits::of(&self.limits),
        }
    }
}

/// The sandbox's shape: its root, mounts, network, seccomp and Landlock policy and the limits of
/// the whole sandbox. Every program executed in it is confined by all of this.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Shape {
    pub hostname: String,
    pub rootfs: RootFs,
    pub mounts: Vec<BindMount>,
    /// Sandbox-wide: memory, pids and CPU bandwidth (one cgroup shared by every program), the
    /// tmpfs sizes, and the per-process rlimits (open files, file size, stack). The fields of one
    /// execution (`wall`, `cpu`, `output`, `output_mode`) come from each `Execution` instead.
    pub limits: Limits,
    pub network: NetworkMode,
    pub seccomp: SeccompPolicy,
    pub landlock: LandlockPolicy,
    pub best_effort: BestEffort,
    /// Files written into the new root during set-up, before it becomes read-only (the guard's
    /// files under `/.stockade`): no program can change them. Files of one program belong in
    /// `Execution::files`.
    pub files: Vec<File>,
}

/// One program run in a sandbox: what to start, with which files, under which time and output
/// limits. Its wall clock starts when it is handed to the sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Execution {
    /// The command and its arguments, resolved against `PATH` of `env`.
    pub argv: Vec<String>,
    /// The exact environment of the program.
    pub env: Vec<(String, String)>,
    /// Working directory inside the sandbox.
    pub cwd: PathBuf,
    /// Host files copied beneath the work dir before the program starts (read without following
    /// a symlink).
    pub copy_in: Vec<CopyIn>,
    /// Files given as content, written beneath the work dir before the program starts.
    pub files: Vec<File>,
    pub limits: ExecLimits,
}

/// A file given as content: absolute sandbox path under a writable mount, bytes, mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    pub path: PathBuf,
    pub contents: Vec<u8>,
    pub mode: u32,
}

/// The limits of one execution; the sandbox-wide ones are in `Shape::limits`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExecLimits {
    /// Wall-clock time from hand-over, enforced by the supervisor.
    #[serde(serialize_with = "ser_opt_ms", deserialize_with = "de_opt_ms")]
    pub wall: Option<Duration>,
    /// CPU time the sandbox may spend on this execution (cgroup accounting, RLIMIT_CPU on the
    /// program as a backstop).
    #[serde(serialize_with = "ser_opt_ms", deserialize_with = "de_opt_ms")]
    pub cpu: Option<Duration>,
    /// Bytes captured per output stream.
    pub output: u64,
    pub output_mode: OutputMode,
}

impl ExecLimits {
    /// The per-execution fields of `limits`.
    pub fn of(limits: &Limits) -> ExecLimits {
        ExecLimits {
            wall: limits.wall,
            cpu: limits.cpu,
            output: limits.output,
            output_mode: limits.output_mode,
        }
    }

    /// `sandbox` with this execution's fields: the limits one program ran under, as a verdict
    /// reports them.
    pub fn within(&self, sandbox: &Limits) -> Limits {
        Limits {
            wall: self.wall,
            cpu: self.cpu,
            output: self.output,
            output_mode: self.output_mode,
            ..sandbox.clone()
        }
    }
}

/// The writable work directory inside every sandbox.
pub const SANDBOX_DIR: &str = "/sandbox";

/// The environment every payload starts from; profiles and `--env` add to it or override it.
pub fn default_env() -> Vec<(String, String)> {
    [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("HOME", SANDBOX_DIR),
        ("LANG", "C.UTF-8"),
        ("TMPDIR", "/tmp"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl Policy {
    /// Set or replace one environment variable, keeping the order stable.
    pub fn set_env(&mut self, key: &str, value: &str) {
        match self.env.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_string(),
            None => self.env.push((key.to_string(), value.to_string())),
        }
    }
}

/// What `/` is inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "path", rename_all = "snake_case")]
pub enum RootFs {
    /// A tmpfs root with the host's `/usr` and a few `/etc` files bound read-only.
    Host,
    /// A prepared root filesystem directory (must contain `proc`, `dev`, `tmp`, `sandbox`),
    /// bound read-only.
    Dir(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub writable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyIn {
    /// Host path of a regular file; symlinks are refused.
    pub source: PathBuf,
    /// Absolute path under a writable tmpfs (normally `/sandbox/...`).
    pub target: PathBuf,
}

/// Limits of one run. `None` means "no limit of this kind".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Wall-clock time, enforced by the supervisor (kills the whole tree).
    #[serde(serialize_with = "ser_opt_ms", deserialize_with = "de_opt_ms")]
    pub wall: Option<Duration>,
    /// CPU time of the whole sandbox (cgroup accounting, RLIMIT_CPU per process as a backstop).
    #[serde(serialize_with = "ser_opt_ms", deserialize_with = "de_opt_ms")]
    pub cpu: Option<Duration>,
    /// Memory in bytes (cgroup `memory.max`, or RLIMIT_AS without cgroups).
    pub memory: Option<u64>,
    /// Number of tasks (cgroup `pids.max`).
    pub pids: Option<u64>,
    /// CPU bandwidth in cores (cgroup `cpu.max` / `cpu.cfs_quota_us`).
    pub cpus: Option<f64>,
    /// Bytes captured per output stream.
    pub output: u64,
    /// What happens when a stream reaches `output`.
    pub output_mode: OutputMode,
    /// Size of the `/tmp` tmpfs in bytes.
    pub tmp_size: u64,
    /// Size of the `/sandbox` tmpfs in bytes.
    pub sandbox_size: u64,
    /// RLIMIT_NOFILE.
    pub open_files: u64,
    /// RLIMIT_FSIZE in bytes: the largest file a process may write.
    pub file_size: u64,
    /// RLIMIT_STACK in bytes.
    pub stack: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wall: Some(Duration::from_secs(10)),
            cpu: None,
            memory: None,
            pids: None,
            cpus: None,
            output: 1 << 20,
            output_mode: OutputMode::Kill,
            tmp_size: 64 << 20,
            sandbox_size: 64 << 20,
            open_files: 256,
            file_size: 64 << 20,
            stack: 8 << 20,
        }
    }
}

fn de_opt_ms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
}

fn ser_opt_ms<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OutputMode {
    /// Kill the sandbox; the verdict says `output_limit`.
    #[default]
    Kill,
    /// Keep running, discard the excess, mark the stream `truncated`.
    Truncate,
}

/// Network inside the sandbox. There is always a fresh network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// No interfaces up; only `AF_UNIX` sockets may be created.
    #[default]
    None,
    /// Loopback up inside the namespace; `AF_INET`/`AF_INET6` allowed (reach only the sandbox itself).
    Loopback,
}

/// What seccomp does with a syscall outside the allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SeccompDefault {
    /// Kill the calling process; the verdict says `seccomp_violation` (opt-in, for audits).
    Kill,
    /// Fail the call with ENOSYS, count it in the verdict's `seccomp_denied`, and let the
    /// payload continue. The dangerous calls kill in every mode.
    #[default]
    Errno,
    /// Allow but log (for tuning an allowlist; never in production).
    Log,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SeccompPolicy {
    pub default_action: SeccompDefault,
    /// Named syscall groups added to the base allowlist (see `crate::seccomp::GROUPS`).
    pub groups: Vec<String>,
    /// Extra syscalls by name, added unconditionally.
    pub extra_allow: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LandlockPolicy {
    /// Extra paths readable (and executable) beyond `/`.
    pub read: Vec<PathBuf>,
    /// Extra paths writable beyond the sandbox's own tmpfs mounts.
    pub write: Vec<PathBuf>,
}

/// Layers a policy allows to be weaker than asked. Everything else fails closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BestEffort {
    /// Run even if Landlock is not available (the verdict says `landlock.status: not_enforced`).
    pub landlock: bool,
    /// Run with rlimits when no cgroup limit can be set (the verdict says which limits are not
    /// kernel-enforced).
    pub cgroup: bool,
}

impl BestEffort {
    pub const LAYERS: &'static [&'static str] = &["landlock", "cgroup"];

    /// Mark one layer as best-effort by name; `Err` carries the list of valid names.
    pub fn allow(&mut self, layer: &str) -> Result<(), String> {
        match layer {
            "landlock" => self.landlock = true,
            "cgroup" => self.cgroup = true,
            _ => return Err(Self::LAYERS.join(", ")),
        }
        Ok(())
    }
}

/// How the pre-execution analysis is used. Ordered by strength (off < warn < enforce): a request
/// may raise a profile's mode, never lower it (unless a grant says `skip_check`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum AnalysisMode {
    #[default]
    Off,
    /// Findings go into the verdict; the code still runs.
    Warn,
    /// Code with findings at or above the threshold is refused (`rejected_by_policy`).
    Enforce,
}

impl AnalysisMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AnalysisMode::Off => "off",
            AnalysisMode::Warn => "warn",
            AnalysisMode::Enforce => "enforce",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisPolicy {
    pub mode: AnalysisMode,
    /// Preset name (`crate::analysis` presets).
    pub preset: String,
    /// Language of the code (`python`, `javascript`, `shell`); `None` means "guess from argv".
    pub language: Option<String>,
    /// Severity at or above which code is unsafe; `None` means the preset's own threshold.
    pub threshold: Option<crate::analysis::Severity>,
    /// Top-level modules the code may import (Python `import`, node `require`); `None` allows
    /// any. Checked by the analysis and, at run time, by `crate::guard`.
    #[serde(default)]
    pub allowed_modules: Option<Vec<String>>,
    /// Builtins the code may not call (`eval`, `exec`, `compile`, `__import__`, `open`,
    /// `Function`), checked the same two ways.
    #[serde(default)]
    pub blocked_functions: Vec<String>,
}

impl Default for AnalysisPolicy {
    fn default() -> Self {
        AnalysisPolicy {
            mode: AnalysisMode::Off,
            preset: "production".into(),
            language: None,
            threshold: None,
            allowed_modules: None,
            blocked_functions: Vec::new(),
        }
    }
}

/// How code given as text (API `code`, a profile's `[run]`) reaches the interpreter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeDelivery {
    pub via: CodeVia,
    /// In `argument` mode, the option placed before the code (`-c`, `-e`); `None` for none.
    pub flag: Option<String>,
    /// In `file` mode, the file name under `/sandbox`.
    pub file_name: String,
    /// Arguments after inline code (`argument` and `stdin` modes) and before the caller's (bash
    /// uses one for `$0`); not used when the code is a file, which is its own `$0`.
    pub args: Vec<String>,
}

impl Default for CodeDelivery {
    fn default() -> Self {
        CodeDelivery {
            via: CodeVia::Stdin,
            flag: None,
            file_name: "main".into(),
            args: Vec::new(),
        }
    }
}

/// The three ways code reaches an interpreter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CodeVia {
    /// As one argument after `flag` (`python3 -c CODE`).
    Argument,
    /// Written to `/sandbox/<file_name>`, whose path becomes an argument (`python3 /sandbox/main.py`).
    File,
    /// On the payload's standard input.
    #[default]
    Stdin,
}

/// A profile's compile stage: the compiler's command and its own limits. The program file and the
/// compiler's output live in one work directory shared by the compile and the run stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompileStage {
    /// The compiler command. In a profile it holds placeholders (`{source}`, `{stem}`, `{output}`,
    /// `{dir}`), which `crate::profile::invocation` replaces.
    pub argv: Vec<String>,
    /// The program file under `/sandbox` when the code is given as text, e.g. `main.c`.
    pub file_name: String,
    /// The compiler's output under `/sandbox` (`{output}`), e.g. `main`.
    pub output: String,
    pub limits: StageLimits,
}

impl Default for CompileStage {
    fn default() -> Self {
        CompileStage {
            argv: Vec::new(),
            file_name: "main".into(),
            output: "main.out".into(),
            limits: StageLimits::default(),
        }
    }
}

/// The limits a compile stage sets for itself; everything else (file sizes, open files, the work
/// dir's size) is the run's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageLimits {
    #[serde(serialize_with = "ser_opt_ms", deserialize_with = "de_opt_ms")]
    pub wall: Option<Duration>,
    #[serde(serialize_with = "ser_opt_ms", deserialize_with = "de_opt_ms")]
    pub cpu: Option<Duration>,
    pub memory: Option<u64>,
    pub pids: Option<u64>,
    /// Bytes captured per output stream of the compiler.
    pub output: u64,
}

impl Default for StageLimits {
    /// Piston's compile defaults: 10 s of wall time; no CPU, memory or task limit; 1 MiB of
    /// output per stream.
    fn default() -> Self {
        StageLimits {
            wall: Some(Duration::from_secs(10)),
            cpu: None,
            memory: None,
            pids: None,
            output: 1 << 20,
        }
    }
}

impl StageLimits {
    /// The run's limits with this stage's own on top.
    pub fn over(&self, run: &Limits) -> Limits {
        Limits {
            wall: self.wall,
            cpu: self.cpu,
            memory: self.memory,
            pids: self.pids,
            output: self.output,
            ..run.clone()
        }
    }
}
