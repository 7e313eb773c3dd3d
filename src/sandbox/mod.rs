//! The sandbox, parent side. A sandbox has a life: `Sandbox::create` prepares everything that
//! allocates, `clone3`s into fresh namespaces and waits until the agent inside is locked down at
//! the pre-exec point; `Sandbox::exec` hands it one program and supervises that program into its
//! own verdict; `Sandbox::destroy` (or dropping it) tears it down. `run` is the three in a row.

mod agent;
mod cause;
mod child;
mod echo;
mod feeder;
mod lifecycle;
mod outcome;
pub mod protocol;
pub mod stages;
mod supervise;
mod watchdog;
mod workdir;

use std::io::{Seek, Write};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use nix::errno::Errno;

pub use self::lifecycle::{CreateOptions, ExecOptions, Sandbox, SandboxError};
use self::protocol::{ExecSpec, FileSpec, ProtocolError};
pub use self::supervise::{Channel, Echo, Stdin};
use crate::cgroup::{LimitManager, RunGroup};
use crate::fs::{self, HostLayout};
use crate::policy::{Execution, File, Limits, Policy, SANDBOX_DIR, Shape};
use crate::verdict::Verdict;
use crate::{ns, rlimit, seccomp, sys};

/// How a run is wired to its caller.
pub struct RunOptions<'a> {
    pub stdin: Stdin,
    /// Copy the payload's output to our own stdout/stderr as it arrives (the CLI without `--json`).
    pub echo: Echo<'a>,
    /// The limit manager (cgroups); `None` runs with rlimits only.
    pub limits: Option<&'a LimitManager>,
    /// Forward SIGINT/SIGTERM/SIGHUP of this process to the sandbox (the CLI).
    pub forward_signals: bool,
    /// Files given as content, created in the work dir before the payload starts (absolute
    /// sandbox paths under a writable mount, e.g. `/sandbox/main.py`).
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// When this fd becomes readable or hangs up, the run is killed (the service's client went
    /// away). The verdict then says `signaled` with a "cancelled" message.
    pub cancel: Option<std::os::fd::BorrowedFd<'a>>,
    /// Outer ids the caller already holds a lease for (a compile stage and its run stage share
    /// them); `None` leases them for this run ([`ns::IdMap::for_caller`]).
    pub ids: Option<ns::IdMap>,
}

impl Default for RunOptions<'_> {
    /// No stdin, no echo, no cgroup limits, no signal forwarding, no extra files.
    fn default() -> Self {
        RunOptions {
            stdin: Stdin::Null,
            echo: Echo::Off,
            limits: None,
            forward_signals: false,
            files: Vec::new(),
            cancel: None,
            ids: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("{0}")]
    Seccomp(#[from] seccomp::SeccompError),
    #[error("{0}")]
    Fs(#[from] fs::FsError),
    #[error("{0}")]
    Cgroup(#[from] crate::cgroup::CgroupError),
    #[error("copy-in {path:?}: {why}")]
    CopyIn { path: PathBuf, why: String },
    #[error("{what} contains a NUL byte")]
    Nul { what: String },
    #[error(
        "{layer} limit requested but not enforceable here: {why}; fix: {fix}, or allow it with --best-effort cgroup"
    )]
    FailClosed {
        layer: &'static str,
        why: String,
        fix: String,
    },
    #[error("create pipe: {0}")]
    Pipe(Errno),
    #[error("socketpair(AF_UNIX, SOCK_SEQPACKET) for the protocol: {0}")]
    Socket(Errno),
    #[error("open /dev/null for the sandbox's init: {0}")]
    DevNull(Errno),
    #[error("{call} for the exec request's files: {errno}")]
    ExecData { call: &'static str, errno: Errno },
    #[error("clone3 into new namespaces: {errno}; {hint}")]
    Clone { errno: Errno, hint: String },
    #[error("{0}")]
    Ns(#[from] ns::NsError),
}

/// Run `policy` to completion and report what happened: create a sandbox of its shape, execute
/// its one program, destroy the sandbox. Never panics on payload behaviour; every failure becomes
/// a verdict.
pub fn run(policy: &Policy, opts: &RunOptions) -> Verdict {
    let started = Instant::now();
    let create = CreateOptions {
        limits: opts.limits,
        ids: opts.ids,
    };
    // Files beneath the writable mounts are the program's, written at exec time; others (the
    // guard's, in the root) are part of the sandbox, written at set-up and read-only after.
    let (files, root_files): (Vec<File>, Vec<File>) = opts
        .files
        .iter()
        .map(|(path, contents)| File {
            path: path.clone(),
            contents: contents.clone(),
            mode: 0o644,
        })
        .partition(|f| f.path.starts_with(SANDBOX_DIR) || f.path.starts_with("/tmp"));
    let mut shape = policy.shape();
    shape.files = root_files;
    let mut sandbox = match Sandbox::create(&shape, &create) {
        Ok(sandbox) => sandbox,
        Err(e) => return e.into_verdict(policy.limits.clone(), started),
    };
    let exec = ExecOptions {
        stdin: opts.stdin.clone(),
        echo: opts.echo,
        forward_signals: opts.forward_signals,
        cancel: opts.cancel,
    };
    let verdict = sandbox.exec_last(&policy.execution(files), &exec);
    sandbox.destroy();
    verdict
}

fn ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Everything built before `clone3`, so the child allocates as little as possible.
struct Prepared {
    plan: Vec<fs::MountOp>,
    scratch: PathBuf,
    filters: seccomp::Filters,
    init_filters: seccomp::Filters,
    rlimits: Vec<rlimit::Rlimit>,
    group: Option<RunGroup>,
}

fn prepare(shape: &Shape, limits: Option<&LimitManager>) -> Result<Prepared, PrepareError> {
    static HOST: OnceLock<HostLayout> = OnceLock::new();
    // Root's supplementary groups would follow the child into the sandbox (issue: setpriv
    // --groups=0,4,42 kept them); once dropped they stay dropped for this process.
    ns::drop_supplementary_groups()?;
    let group = limits.map(|m| m.create(&shape.limits)).transpose()?;
    let enforced = group.as_ref().map(RunGroup::enforced).unwrap_or_default();
    fail_closed(shape, &enforced)?;
    // RLIMIT_CPU is per execution: each program gets its own (`agent`), not the agent itself.
    let sandbox_wide = Limits {
        cpu: None,
        ..shape.limits.clone()
    };
    Ok(Prepared {
        plan: fs::plan(shape, HOST.get_or_init(HostLayout::discover)),
        scratch: fs::scratch_dir()?,
        filters: seccomp::compile(&shape.seccomp, shape.network)?,
        init_filters: seccomp::compile_init()?,
        rlimits: rlimit::plan(
            &sandbox_wide,
            rlimit::Backstops {
                memory: !enforced.memory_limit_enforced,
                pids: !enforced.pids_limit_enforced,
            },
        ),
        group,
    })
}

/// A limit the shape asks for and no kernel mechanism enforces is an error unless it marks
/// cgroups best-effort.
fn fail_closed(
    shape: &Shape,
    enforced: &crate::verdict::CgroupEnforced,
) -> Result<(), PrepareError> {
    if shape.best_effort.cgroup {
        return Ok(());
    }
    let l = &shape.limits;
    for (asked, ok, layer) in [
        (l.memory.is_some(), enforced.memory_limit_enforced, "memory"),
        (l.pids.is_some(), enforced.pids_limit_enforced, "pids"),
        (
            l.cpus.is_some(),
            enforced.cpu_limit_enforced,
            "cpu bandwidth",
        ),
    ] {
        if asked && !ok {
            let backend = if enforced.backend.is_empty() {
                "none"
            } else {
                enforced.backend.as_str()
            };
            return Err(PrepareError::FailClosed {
                layer,
                why: format!("the cgroup backend is {backend:?} and has no usable {layer} controller"),
                fix: "run under systemd with Delegate=yes (dist/systemd/stockade.service) or pass --cgroup-root with a writable cgroup v2 subtree".into(),
            });
        }
    }
    Ok(())
}

/// The host files of `copy_in`, read without following a symlink anywhere on their paths and
/// bounded by the work dir's size.
fn read_copies(copy_in: &[crate::policy::CopyIn], limit: u64) -> Result<Vec<File>, PrepareError> {
    copy_in
        .iter()
        .map(|c| {
            let err = |why: String| PrepareError::CopyIn {
                path: c.source.clone(),
                why,
            };
            let path = fs::cstring(&c.source).map_err(|e| err(e.to_string()))?;
            // No symlink anywhere on the host path: a payload author must not be able to point a
            // copy-in at a file the caller did not mean to share.
            let fd = sys::open_no_symlinks(&path)
                .map_err(|e| err(format!("open without following symlinks: {e}")))?;
            let mut file = std::fs::File::from(fd);
            let meta = file.metadata().map_err(|e| err(e.to_string()))?;
            if !meta.is_file() {
                return Err(err(
                    "not a regular file (only files can be copied in)".into()
                ));
            }
            if meta.len() > limit {
                return Err(err(format!(
                    "{} bytes is larger than the work dir ({limit} bytes)",
                    meta.len()
                )));
            }
            let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
            std::io::Read::read_to_end(&mut file, &mut data).map_err(|e| err(e.to_string()))?;
            let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
            Ok(File {
                path: c.target.clone(),
                contents: data,
                mode,
            })
        })
        .collect()
}

/// The memfd of an exec request: `ExecSpec` JSON, then each file's bytes. Copy-ins are read from
/// the host now, at exec time.
fn exec_data(exec: &Execution, work_dir: u64) -> Result<(std::os::fd::OwnedFd, u64), SandboxError> {
    let nul = |what: String| PrepareError::Nul { what };
    if exec.argv.iter().any(|a| a.contains('\0')) {
        return Err(nul("an argument".into()).into());
    }
    if let Some((k, _)) = exec
        .env
        .iter()
        .find(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err(nul(format!("environment variable {k}")).into());
    }
    let mut files = read_copies(&exec.copy_in, work_dir)?;
    files.extend(exec.files.iter().cloned());
    let spec = ExecSpec {
        argv: exec.argv.clone(),
        env: exec.env.clone(),
        cwd: exec.cwd.clone(),
        files: files
            .iter()
            .map(|f| FileSpec {
                path: f.path.clone(),
                mode: f.mode & 0o777,
                len: f.contents.len() as u64,
            })
            .collect(),
        cpu_ms: exec
            .limits
            .cpu
            .map(|c| u64::try_from(c.as_millis()).unwrap_or(u64::MAX)),
    };
    let json = serde_json::to_vec(&spec).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    let call = |call: &'static str| move |errno| PrepareError::ExecData { call, errno };
    let fd =
        nix::sys::memfd::memfd_create(c"stockade-exec", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map_err(call("memfd_create"))?;
    let mut file = std::fs::File::from(fd);
    let io = |e: std::io::Error| call("write")(Errno::from_raw(e.raw_os_error().unwrap_or(0)));
    file.write_all(&json).map_err(io)?;
    for f in &files {
        file.write_all(&f.contents).map_err(io)?;
    }
    file.rewind().map_err(io)?;
    Ok((file.into(), json.len() as u64))
}
