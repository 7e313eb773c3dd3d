//! The sandbox, parent side: prepare everything that allocates, `clone3` into fresh namespaces,
//! release the child, supervise it (pipes, limits, signals) and turn what happened into a verdict.

mod cause;
mod child;
mod feeder;
pub mod protocol;
mod supervise;

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use nix::errno::Errno;

pub use self::supervise::{Channel, Echo, Stdin};
use crate::cgroup::{LimitManager, RunGroup};
use crate::fs::{self, HostLayout};
use crate::policy::{Policy, SeccompDefault};
use crate::verdict::{Enforced, SeccompStatus, Status, Verdict};
use crate::{caps, ns, rlimit, seccomp, sys};

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
    #[error("clone3 into new namespaces: {errno}; {hint}")]
    Clone { errno: Errno, hint: String },
    #[error("{0}")]
    Ns(#[from] ns::NsError),
}

/// Run `policy` to completion and report what happened. Never panics on payload behaviour; every
/// failure becomes a verdict.
pub fn run(policy: &Policy, opts: &RunOptions) -> Verdict {
    let started = Instant::now();
    match run_inner(policy, opts, started) {
        Ok(v) => v,
        Err(e) => {
            let mut v =
                Verdict::not_started(Status::SetupFailed, policy.limits.clone(), e.to_string());
            v.wall_ms = ms(started);
            v
        }
    }
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
    argv: Vec<CString>,
    envp: Vec<CString>,
    rlimits: Vec<rlimit::Rlimit>,
    group: Option<RunGroup>,
}

fn prepare(policy: &Policy, opts: &RunOptions) -> Result<Prepared, PrepareError> {
    static HOST: OnceLock<HostLayout> = OnceLock::new();
    let mut files = read_copies(policy)?;
    files.extend(opts.files.iter().map(|(target, contents)| {
        (
            target.clone(),
            fs::CopyData {
                contents: contents.clone(),
                mode: 0o644,
            },
        )
    }));
    let group = opts.limits.map(|m| m.create(&policy.limits)).transpose()?;
    let enforced = group.as_ref().map(RunGroup::enforced).unwrap_or_default();
    fail_closed(policy, &enforced)?;
    let cstr = |s: &str, what: &str| {
        CString::new(s).map_err(|_| PrepareError::Nul {
            what: what.to_string(),
        })
    };
    Ok(Prepared {
        plan: fs::plan(policy, HOST.get_or_init(HostLayout::discover), &files),
        scratch: fs::scratch_dir()?,
        filters: seccomp::compile(&policy.seccomp, policy.network)?,
        init_filters: seccomp::compile_init()?,
        argv: policy
            .argv
            .iter()
            .map(|a| cstr(a, "an argument"))
            .collect::<Result<_, _>>()?,
        envp: policy
            .env
            .iter()
            .map(|(k, v)| cstr(&format!("{k}={v}"), &format!("environment variable {k}")))
            .collect::<Result<_, _>>()?,
        rlimits: rlimit::plan(&policy.limits, !enforced.memory_limit_enforced),
        group,
    })
}

/// A limit the policy asks for and no kernel mechanism enforces is an error unless the policy
/// marks cgroups best-effort.
fn fail_closed(
    policy: &Policy,
    enforced: &crate::verdict::CgroupEnforced,
) -> Result<(), PrepareError> {
    if policy.best_effort.cgroup {
        return Ok(());
    }
    let l = &policy.limits;
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

fn read_copies(policy: &Policy) -> Result<Vec<(PathBuf, fs::CopyData)>, PrepareError> {
    let limit = policy.limits.sandbox_size;
    policy
        .copy_in
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
            Ok((
                c.target.clone(),
                fs::CopyData {
                    contents: data,
                    mode,
                },
            ))
        })
        .collect()
}

struct Pipes {
    go: (OwnedFd, OwnedFd),
    stdin: (OwnedFd, OwnedFd),
    stdout: (OwnedFd, OwnedFd),
    stderr: (OwnedFd, OwnedFd),
    /// The protocol socketpair: (supervisor's end, child's end).
    proto: (OwnedFd, OwnedFd),
}

fn pipes() -> Result<Pipes, PrepareError> {
    let p = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(PrepareError::Pipe);
    Ok(Pipes {
        go: p()?,
        stdin: p()?,
        stdout: p()?,
        stderr: p()?,
        proto: sys::seqpacket_pair().map_err(PrepareError::Socket)?,
    })
}

fn run_inner(
    policy: &Policy,
    opts: &RunOptions,
    started: Instant,
) -> Result<Verdict, PrepareError> {
    static SCRUB: OnceLock<[(usize, usize); 2]> = OnceLock::new();
    let prep = prepare(policy, opts)?;
    let pipes = pipes()?;
    let spec = child::Spec {
        policy,
        plan: &prep.plan,
        scratch: &prep.scratch,
        filters: &prep.filters,
        init_filters: &prep.init_filters,
        argv: &prep.argv,
        envp: &prep.envp,
        rlimits: &prep.rlimits,
        cap_last_cap: caps::last_cap(),
        scrub: *SCRUB.get_or_init(sys::arg_env_ranges),
        fds: [
            &pipes.go.0,
            &pipes.stdin.0,
            &pipes.stdout.1,
            &pipes.stderr.1,
            &pipes.proto.1,
        ]
        .map(AsRawFd::as_raw_fd),
    };
    let kmsg = (policy.seccomp.default_action == SeccompDefault::Kill)
        .then(seccomp::KmsgWatch::open)
        .flatten();
    let cgroup_fd = prep.group.as_ref().and_then(RunGroup::clone_into_fd);
    let (pid, pidfd) = match sys::clone3(ns::CLONE_FLAGS, cgroup_fd) {
        Ok(sys::Cloned::Child) => child::init(&spec),
        Ok(sys::Cloned::Parent { pid, pidfd }) => (pid, pidfd),
        Err(errno) => {
            return Err(PrepareError::Clone {
                errno,
                hint: ns::userns_hint(),
            });
        }
    };
    let ids = ns::IdMap::for_caller();
    // Release the child as soon as it has its ids, then attach the cgroups while it builds its
    // mount tree; it waits for the second byte before forking the payload.
    let release = ids.write(pid).map_err(PrepareError::from).and_then(|()| {
        let _ = nix::unistd::write(&pipes.go.1, b"g");
        prep.group
            .as_ref()
            .map_or(Ok(()), |g| g.attach(pid).map_err(PrepareError::from))
    });
    if let Err(e) = release {
        // The child exits on EOF of the release pipe or dies here; reap it before reporting.
        let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        return Err(e);
    }
    let _ = nix::unistd::write(&pipes.go.1, b"l");
    let Pipes {
        stdin,
        stdout,
        stderr,
        proto,
        go,
    } = pipes;
    drop((go, stdin.0, stdout.1, stderr.1, proto.1));
    let outcome = supervise::Supervisor {
        policy,
        pid,
        pidfd: &pidfd,
        group: prep.group.as_ref(),
        started,
        kmsg,
    }
    .run(opts, [stdin.1, stdout.0, stderr.0, proto.0]);
    let mut verdict = outcome.into_verdict(policy, prep.group.as_ref());
    verdict.enforced = enforced(policy, &prep, ids, &verdict);
    if let Some(group) = prep.group {
        if let Err(e) = group.destroy() {
            tracing::warn!("cgroup clean-up: {e}");
        }
    }
    Ok(verdict)
}

fn enforced(policy: &Policy, prep: &Prepared, ids: ns::IdMap, verdict: &Verdict) -> Enforced {
    let ran = verdict.status != Status::SetupFailed;
    let mut e = verdict.enforced.clone();
    e.userns = true;
    e.pidns = true;
    e.netns = true;
    e.mountns = true;
    e.ipcns = true;
    e.utsns = true;
    e.cgroupns = true;
    e.outer_uid = ids.outer_uid;
    e.capabilities_dropped = ran;
    e.no_new_privs = ran;
    e.readonly_root = ran;
    e.seccomp = SeccompStatus {
        enabled: ran,
        default_action: match policy.seccomp.default_action {
            SeccompDefault::Kill => "kill",
            SeccompDefault::Errno => "errno",
            SeccompDefault::Log => "log",
        }
        .into(),
        instructions: prep.filters.instructions(),
    };
    e.cgroup = prep
        .group
        .as_ref()
        .map(RunGroup::enforced)
        .unwrap_or_else(|| crate::verdict::CgroupEnforced {
            backend: "none".into(),
            ..Default::default()
        });
    e
}
