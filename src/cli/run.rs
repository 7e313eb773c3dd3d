//! `stockade run`: one command in a fresh sandbox, one verdict.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use crate::cgroup::{BackendKind, CgroupOptions, LimitManager};
use crate::policy::{
    AnalysisMode, BindMount, CopyIn, NetworkMode, OutputMode, Policy, RootFs, SeccompDefault,
};
use crate::profile::{CodeInput, WorkFile};
use crate::sandbox::{self, Echo, RunOptions, Stdin};
use crate::units::{parse_duration, parse_size};
use crate::verdict::{PolicyReport, Status, Verdict};

/// Run COMMAND in a fresh sandbox (user, PID, network, mount, IPC, UTS and cgroup namespaces;
/// read-only root; Landlock; no capabilities; seccomp allowlist) and report a verdict.
///
/// Exit status: the command's own; 128+N when killed by signal N; 124 on a wall or CPU timeout;
/// 137 on OOM; 153 when the output cap killed it; 125 when stockade itself failed; 126/127 when
/// the command cannot be executed or is not found.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  stockade run -- python3 -c 'print(\"hi\")'\n  stockade run --json --wall-time 2s -- sh -c 'sleep 10'\n  echo 'print(40+2)' | stockade run -- python3 -\n  stockade run --memory 128MiB --pids 32 --output 64KiB -- node -e 'console.log(1)'"
)]
pub struct RunArgs {
    /// Profile by name (`stockade profile list`) or path: supplies the interpreter, limits and
    /// layers; the arguments after `--` are appended to the profile's command. When the first of
    /// them names a file in the current directory (a plain relative path), it is copied into the
    /// work dir: `stockade run --profile python -- main.py`.
    #[arg(long, short = 'p', value_name = "NAME|PATH")]
    pub profile: Option<String>,
    /// Code to run, delivered the way the profile says (argument, file in /sandbox, or stdin).
    #[arg(long, value_name = "TEXT", requires = "profile")]
    pub code: Option<String>,
    /// Print the effective policy (profile + flags) and exit without running.
    #[arg(long)]
    pub print_policy: bool,
    /// Pre-execution analysis of the code: off, warn (findings in the verdict) or enforce (refuse
    /// unsafe code with status rejected_by_policy).
    #[arg(long = "policy", value_name = "MODE", value_enum)]
    pub policy_mode: Option<PolicyModeArg>,
    /// Security preset applied on top of the --profile language (minimal, development,
    /// production, educational, data_science, strict, or a preset file): its limits, network,
    /// seccomp action, best-effort layers, environment and analysis rules win; the language keeps
    /// its interpreter. `--profile python --preset data_science`. Alone, the preset is the
    /// profile and the command follows `--`.
    #[arg(long, value_name = "NAME|PATH")]
    pub preset: Option<String>,
    /// Analysis rules only (minimal, development, production, educational, data_science,
    /// web_scraping, strict) or a rules file, instead of the profile's.
    #[arg(long, value_name = "PRESET")]
    pub analysis_preset: Option<String>,

    /// Print the verdict as one JSON object on stdout (the command's output goes into it).
    #[arg(long)]
    pub json: bool,
    /// Also write the verdict JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Wall-clock limit, e.g. 2s or 500ms (default 10s; 0 for none).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub wall_time: Option<std::time::Duration>,
    /// CPU-time limit of the whole sandbox, e.g. 1s (0 for none).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub cpu_time: Option<std::time::Duration>,
    /// Memory limit, e.g. 512m or 1.5GiB (k/m/g and KiB/MiB/GiB binary, KB/MB/GB decimal; cgroup;
    /// RLIMIT_AS only with --best-effort cgroup).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory: Option<u64>,
    /// Maximum number of tasks (processes and threads).
    #[arg(long, value_name = "N")]
    pub pids: Option<u64>,
    /// CPU bandwidth in cores, e.g. 0.5.
    #[arg(long, value_name = "CORES")]
    pub cpus: Option<f64>,
    /// Bytes captured per output stream, e.g. 64KiB (default 1MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub output: Option<u64>,
    /// At the output cap: `kill` the sandbox (status output_limit) or `truncate` and go on.
    #[arg(long, value_name = "MODE", value_enum)]
    pub output_mode: Option<OutputModeArg>,
    /// Size of the /tmp tmpfs (default 64MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub tmp_size: Option<u64>,
    /// Size of the /sandbox work dir tmpfs (default 64MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub sandbox_size: Option<u64>,
    /// RLIMIT_NOFILE (default 256).
    #[arg(long, value_name = "N")]
    pub open_files: Option<u64>,
    /// Largest file a process may write, RLIMIT_FSIZE (default 64MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub file_size: Option<u64>,

    /// Root filesystem: `host` (default: the host's /usr, read-only) or a prepared directory.
    #[arg(long, value_name = "DIR|host")]
    pub rootfs: Option<String>,
    /// Copy a host file into the sandbox: HOST:SANDBOX (files only; symlinks refused).
    #[arg(long, value_name = "HOST:SANDBOX")]
    pub copy_in: Vec<String>,
    /// Bind a host path read-only: HOST[:SANDBOX].
    #[arg(long, value_name = "HOST[:SANDBOX]")]
    pub ro_bind: Vec<String>,
    /// Set an environment variable in the sandbox: K=V.
    #[arg(long, value_name = "K=V")]
    pub env: Vec<String>,
    /// Working directory inside the sandbox (default /sandbox).
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Read the command's stdin from FILE instead of passing ours through (`-` is ours).
    #[arg(long, value_name = "FILE")]
    pub stdin: Option<PathBuf>,
    /// Network: `none` (default: no interface, only AF_UNIX sockets) or `loopback`.
    #[arg(long, value_enum)]
    pub network: Option<NetworkArg>,
    /// What seccomp does with a syscall outside the allowlist: errno (default: ENOSYS, counted in
    /// the verdict), kill, log. The dangerous calls (ptrace, mount, bpf…) kill in every mode.
    #[arg(long, value_enum)]
    pub seccomp: Option<SeccompArg>,
    /// Allow one more syscall by name (repeatable).
    #[arg(long, value_name = "SYSCALL")]
    pub allow_syscall: Vec<String>,
    /// Let LAYER (landlock, cgroup) be weaker than asked when the host cannot provide it.
    #[arg(long, value_name = "LAYER")]
    pub best_effort: Vec<String>,
    /// Cgroup v2 subtree to create sandbox groups in (must be writable, e.g. delegated).
    #[arg(long, value_name = "PATH")]
    pub cgroup_root: Option<PathBuf>,
    /// Limit backend: auto (default), v2, v1 or none (rlimits only).
    #[arg(long, value_enum, default_value = "auto")]
    pub cgroup_backend: BackendArg,

    /// The command and its arguments.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PolicyModeArg {
    Off,
    Warn,
    Enforce,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum OutputModeArg {
    Kill,
    Truncate,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum NetworkArg {
    None,
    Loopback,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SeccompArg {
    Kill,
    Errno,
    Log,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BackendArg {
    Auto,
    V2,
    V1,
    None,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let (policy, files, profile_stdin) = build_policy(&args)?;
    if args.print_policy {
        print!("{}", crate::profile::render_policy(&policy));
        return Ok(ExitCode::SUCCESS);
    }
    let stdin = match (&args.stdin, profile_stdin) {
        (Some(p), _) if p.as_os_str() != "-" => {
            Stdin::Bytes(std::fs::read(p).with_context(|| format!("read --stdin {}", p.display()))?)
        }
        (_, Some(bytes)) => Stdin::Bytes(bytes),
        _ => Stdin::Inherit,
    };
    let report_policy = match preflight(&policy, &files, &stdin)? {
        Preflight::Skip => None,
        Preflight::Refuse(report) => {
            let mut verdict = Verdict::not_started(
                Status::RejectedByPolicy,
                policy.limits.clone(),
                report.rejection_message(),
            );
            verdict.policy = Some(report);
            report_verdict(&args, &verdict)?;
            return Ok(ExitCode::from(
                u8::try_from(verdict.exit_code()).unwrap_or(125),
            ));
        }
        Preflight::Warn(report) => Some(report),
    };
    let manager = limit_manager(&args, &policy)?;
    let opts = RunOptions {
        stdin,
        echo: if args.json { Echo::Off } else { Echo::Stdio },
        limits: manager.as_ref(),
        forward_signals: true,
        files: files.into_iter().map(|f| (f.target, f.contents)).collect(),
        cancel: None,
        ids: None,
    };
    let mut verdict = sandbox::stages::run(&policy, opts);
    verdict.policy = report_policy;
    crate::guard::add_findings(&policy.analysis, &mut verdict);
    report_verdict(&args, &verdict)?;
    Ok(ExitCode::from(
        u8::try_from(verdict.exit_code()).unwrap_or(125),
    ))
}

/// The effective policy: the profile (or the embedded default), then the flags; plus the files and
/// stdin the profile's way of delivering code needs.
fn build_policy(args: &RunArgs) -> anyhow::Result<(Policy, Vec<WorkFile>, Option<Vec<u8>>)> {
    let Some(name) = args.profile.as_ref().or(args.preset.as_ref()) else {
        let mut policy = Policy::default();
        apply_args(&mut policy, args)?;
        policy.argv.clone_from(&args.command);
        if policy.argv.is_empty() && !args.print_policy {
            bail!(
                "no command given; usage: stockade run [OPTIONS] -- COMMAND [ARGS...] (or --profile NAME)"
            );
        }
        return Ok((policy, Vec::new(), None));
    };
    let profile = match (&args.profile, &args.preset) {
        (Some(language), Some(preset)) => crate::profile::load_with_preset(language, Some(preset))?,
        _ => crate::profile::load(name)?,
    };
    if args.profile.is_none() && !crate::profile::is_preset(&profile) {
        bail!(
            "--preset {name}: `{name}` is a language profile, not a preset; use --profile {name}"
        );
    }
    let mut policy = profile.into_policy();
    apply_args(&mut policy, args)?;
    // `stockade run --profile python -- main.py`: the program named first is the caller's file.
    if let Some(first) = args.command.first().filter(|_| args.code.is_none()) {
        let path = std::path::Path::new(first);
        let plain = path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if plain && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
            policy.copy_in.push(CopyIn {
                source: path.to_path_buf(),
                target: policy.cwd.join(path),
            });
        }
    }
    let input = match &args.code {
        Some(code) => CodeInput::Code {
            code: code.clone(),
            args: args.command.clone(),
        },
        None => CodeInput::Args(args.command.clone()),
    };
    let invocation = crate::profile::invocation(&policy, input)?;
    let (files, stdin) = invocation.apply(&mut policy);
    Ok((policy, files, stdin))
}

enum Preflight {
    Skip,
    Warn(PolicyReport),
    Refuse(PolicyReport),
}

/// The pre-execution analysis (advisory defence in depth; the sandbox is the boundary).
fn preflight(policy: &Policy, files: &[WorkFile], stdin: &Stdin) -> anyhow::Result<Preflight> {
    let mode = policy.analysis.mode;
    if mode == AnalysisMode::Off {
        return Ok(Preflight::Skip);
    }
    // Copy-ins are read here only when analysis is on: the sandbox reads them again itself.
    let mut known: Vec<(PathBuf, Vec<u8>)> = files
        .iter()
        .map(|f| (f.target.clone(), f.contents.clone()))
        .collect();
    for c in &policy.copy_in {
        if let Ok(data) = std::fs::read(&c.source) {
            known.push((c.target.clone(), data));
        }
    }
    let stdin_bytes = match stdin {
        Stdin::Bytes(b) => Some(b.as_slice()),
        _ => None,
    };
    let Some(code) = crate::analysis::code_of(&policy.argv, &policy.cwd, &known, stdin_bytes)
    else {
        if mode == AnalysisMode::Enforce {
            bail!(
                "--policy enforce: cannot find the code to analyse; pass it with --code, -c/-e, a --copy-in file named in the command, or --stdin FILE"
            );
        }
        tracing::warn!("policy analysis skipped: no code found in the command");
        return Ok(Preflight::Skip);
    };
    let language = crate::analysis::Language::from_argv(&policy.argv)
        .unwrap_or(crate::analysis::Language::Shell);
    let report = crate::analysis::evaluate_with_files(&policy.analysis, &code, language, &known)
        .context("policy analysis")?;
    Ok(if mode == AnalysisMode::Enforce && !report.safe {
        Preflight::Refuse(report)
    } else {
        Preflight::Warn(report)
    })
}

/// Detect the limit backend; `none` needs no cgroup at all.
fn limit_manager(args: &RunArgs, policy: &Policy) -> anyhow::Result<Option<LimitManager>> {
    let force = match args.cgroup_backend {
        BackendArg::Auto => None,
        BackendArg::V2 => Some(BackendKind::V2),
        BackendArg::V1 => Some(BackendKind::V1),
        BackendArg::None => Some(BackendKind::None),
    };
    let opts = CgroupOptions {
        root: args.cgroup_root.clone(),
        force,
    };
    let l = &policy.limits;
    let wants_limits = l.memory.is_some() || l.pids.is_some() || l.cpus.is_some();
    match LimitManager::detect(&opts) {
        Ok(m) => Ok(Some(m)),
        // No cgroup needed: nothing asks for a kernel limit, so run without (wall time, output
        // and rlimits still apply; the verdict says backend "none").
        Err(e)
            if opts.root.is_none()
                && force.is_none()
                && (!wants_limits || policy.best_effort.cgroup) =>
        {
            tracing::debug!("no cgroup limit backend: {e}");
            Ok(None)
        }
        Err(e) => Err(anyhow::Error::new(e).context("cgroup limit manager")),
    }
}

fn report_verdict(args: &RunArgs, verdict: &Verdict) -> anyhow::Result<()> {
    let json = serde_json::to_string(verdict).context("serialize verdict")?;
    if let Some(path) = &args.report {
        std::fs::write(path, format!("{json}\n"))
            .with_context(|| format!("write --report {}", path.display()))?;
    }
    if args.json {
        println!("{json}");
    } else if !matches!(verdict.status, Status::Ok | Status::ExitNonzero)
        || verdict.message.is_some()
    {
        let msg = verdict.message.as_deref().unwrap_or("");
        eprintln!(
            "stockade: {} after {} ms{}{msg}",
            verdict.status.as_str(),
            verdict.wall_ms,
            if msg.is_empty() { "" } else { ": " }
        );
    }
    Ok(())
}

/// Apply command-line flags on top of a policy (flags win over profile values).
pub fn apply_args(policy: &mut Policy, args: &RunArgs) -> anyhow::Result<()> {
    let l = &mut policy.limits;
    if let Some(w) = args.wall_time {
        l.wall = (!w.is_zero()).then_some(w);
    }
    if let Some(c) = args.cpu_time {
        // As with --wall-time, 0 lifts the profile's limit (it used to end every run at once).
        l.cpu = (!c.is_zero()).then_some(c);
    }
    l.memory = args.memory.or(l.memory);
    l.pids = args.pids.or(l.pids);
    if let Some(c) = args.cpus {
        if !(c.is_finite() && c > 0.0) {
            bail!("--cpus {c}: expected a positive number of cores such as 0.5 or 2");
        }
        l.cpus = Some(c);
    }
    l.output = args.output.unwrap_or(l.output);
    if let Some(m) = args.output_mode {
        l.output_mode = match m {
            OutputModeArg::Kill => OutputMode::Kill,
            OutputModeArg::Truncate => OutputMode::Truncate,
        };
    }
    l.tmp_size = args.tmp_size.unwrap_or(l.tmp_size);
    l.sandbox_size = args.sandbox_size.unwrap_or(l.sandbox_size);
    l.open_files = args.open_files.unwrap_or(l.open_files);
    l.file_size = args.file_size.unwrap_or(l.file_size);
    match args.rootfs.as_deref() {
        None => {}
        Some("host") => policy.rootfs = RootFs::Host,
        Some(dir) => {
            let dir = std::fs::canonicalize(dir).with_context(|| format!("--rootfs {dir}"))?;
            policy.rootfs = RootFs::Dir(dir);
        }
    }
    for spec in &args.copy_in {
        let (host, inside) = spec
            .split_once(':')
            .with_context(|| format!("--copy-in {spec:?}: expected HOST:SANDBOX"))?;
        policy.copy_in.push(CopyIn {
            source: host.into(),
            target: absolute("--copy-in", inside)?,
        });
    }
    for spec in &args.ro_bind {
        let (host, inside) = spec.split_once(':').unwrap_or((spec, spec));
        let source = std::fs::canonicalize(host).with_context(|| format!("--ro-bind {host}"))?;
        policy.mounts.push(BindMount {
            source,
            target: absolute("--ro-bind", inside)?,
            writable: false,
        });
    }
    for kv in &args.env {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--env {kv:?}: expected K=V"))?;
        if k.is_empty() {
            bail!("--env {kv:?}: empty variable name");
        }
        policy.set_env(k, v);
    }
    if let Some(cwd) = &args.cwd {
        policy.cwd = absolute("--cwd", &cwd.to_string_lossy())?;
    }
    if let Some(n) = args.network {
        policy.network = match n {
            NetworkArg::None => NetworkMode::None,
            NetworkArg::Loopback => NetworkMode::Loopback,
        };
    }
    if let Some(s) = args.seccomp {
        policy.seccomp.default_action = match s {
            SeccompArg::Kill => SeccompDefault::Kill,
            SeccompArg::Errno => SeccompDefault::Errno,
            SeccompArg::Log => SeccompDefault::Log,
        };
    }
    policy
        .seccomp
        .extra_allow
        .extend(args.allow_syscall.iter().cloned());
    if let Some(m) = args.policy_mode {
        policy.analysis.mode = match m {
            PolicyModeArg::Off => AnalysisMode::Off,
            PolicyModeArg::Warn => AnalysisMode::Warn,
            PolicyModeArg::Enforce => AnalysisMode::Enforce,
        };
    }
    if let Some(p) = &args.analysis_preset {
        policy.analysis.preset.clone_from(p);
    }
    for layer in &args.best_effort {
        policy.best_effort.allow(layer).map_err(|valid| {
            anyhow::anyhow!("--best-effort {layer:?}: unknown layer (valid: {valid})")
        })?;
    }
    Ok(())
}

fn absolute(flag: &str, path: &str) -> anyhow::Result<PathBuf> {
    let p = PathBuf::from(path);
    if !p.is_absolute() || p.components().any(|c| c == std::path::Component::ParentDir) {
        bail!("{flag} {path:?}: the sandbox path must be absolute and must not contain `..`");
    }
    Ok(p)
}
