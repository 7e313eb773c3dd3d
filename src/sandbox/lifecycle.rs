//! A sandbox's life (DESIGN §3): `create` builds it and returns once the agent inside waits,
//! locked down, at the pre-exec point; `exec` hands over one program and supervises it into its
//! own verdict; `destroy` (or drop) kills what is left, reaps the init and removes the cgroup.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus};

use super::protocol::{self, Down, ProtocolError, SetupError, Up};
use super::supervise::{CpuBase, Echo, Stdin, Supervisor};
use super::{PrepareError, child, exec_data, ms, prepare};
use crate::cgroup::{LimitManager, RunGroup};
use crate::policy::{Execution, Limits, NetworkMode, SeccompDefault, Shape};
use crate::verdict::{Enforced, LandlockStatus, SeccompStatus, Status, Verdict};
use crate::{caps, ns, seccomp, sys};

/// How long set-up may take before `create` gives up (the wall clock of an exec starts only at
/// hand-over, so set-up needs its own bound).
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How a sandbox is created.
#[derive(Default)]
pub struct CreateOptions<'a> {
    /// The limit manager (cgroups); `None` runs with rlimits only.
    pub limits: Option<&'a LimitManager>,
    /// Outer ids the caller already holds a lease for (a compile stage and its run stage share
    /// them); `None` leases them for this sandbox ([`ns::IdMap::for_caller`]).
    pub ids: Option<ns::IdMap>,
}

/// How one exec is wired to its caller.
pub struct ExecOptions<'a> {
    pub stdin: Stdin,
    /// Copy the program's output to our own stdout/stderr, or a callback, as it arrives.
    pub echo: Echo<'a>,
    /// Forward SIGINT/SIGTERM/SIGHUP of this process to the program (the CLI).
    pub forward_signals: bool,
    /// When this fd becomes readable or hangs up, the sandbox is killed (the caller went away).
    pub cancel: Option<BorrowedFd<'a>>,
}

impl Default for ExecOptions<'_> {
    /// No stdin, no echo, no signal forwarding, no cancel fd.
    fn default() -> Self {
        ExecOptions {
            stdin: Stdin::Null,
            echo: Echo::Off,
            forward_signals: false,
            cancel: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{0}")]
    Prepare(#[from] PrepareError),
    #[error("sandbox set-up failed at {}: {}", .error.step, .error.message)]
    Setup {
        error: SetupError,
        enforced: Box<Enforced>,
    },
    #[error("the sandbox init ended without a report (signal {signal:?})")]
    Ended { signal: Option<i32> },
    #[error("sandbox set-up took longer than {}s", SETUP_TIMEOUT.as_secs())]
    SetupTimeout,
    #[error("the sandbox is gone: {0}")]
    Gone(String),
    #[error("{0}")]
    Protocol(#[from] ProtocolError),
    #[error("{0}")]
    Refused(SetupError),
    #[error("a listening socket needs network = \"loopback\" (the sandbox has no network)")]
    NoNetwork,
}

impl SandboxError {
    /// The `setup_failed` verdict of a run whose sandbox could not be created.
    pub fn into_verdict(self, limits: Limits, started: Instant) -> Verdict {
        let enforced = match &self {
            SandboxError::Setup { enforced, .. } => Some((**enforced).clone()),
            _ => None,
        };
        let mut v = Verdict::not_started(Status::SetupFailed, limits, self.to_string());
        v.wall_ms = ms(started);
        if let Some(enforced) = enforced {
            v.enforced = enforced;
        }
        v
    }
}

/// A sandbox: its init (PID 1 inside), the agent waiting at the pre-exec point, the protocol
/// socket to the agent, and the cgroup every program in it shares.
pub struct Sandbox {
    shape: Shape,
    pid: i32,
    pidfd: OwnedFd,
    proto: OwnedFd,
    group: Option<RunGroup>,
    enforced: Enforced,
    execs: u32,
    /// Why no further exec can run (the init is gone or a limit killed the sandbox).
    gone: Option<String>,
    reaped: bool,
    /// The agent's seccomp listener (it arrives over a hand-over socket before `Ready`): one
    /// listener for every program, served while an exec runs and while waiting for the agent.
    notify: seccomp::Notifier,
    /// The release pipe's write end, open for the sandbox's life: the child takes its hang-up
    /// as the supervisor's death (see `child::setup`).
    release: OwnedFd,
    /// The outer ids this sandbox holds (as root, a slot of the subuid range) until it is gone.
    _ids: ns::lease::Lease,
}

/// The child's descriptors, created before `clone3`: (ours, the child's).
struct ChildFds {
    go: (OwnedFd, OwnedFd),
    null: OwnedFd,
    proto: (OwnedFd, OwnedFd),
    /// The agent sends its seccomp listener over it (SCM_RIGHTS).
    notify: (OwnedFd, OwnedFd),
}

impl ChildFds {
    fn open() -> Result<ChildFds, PrepareError> {
        let go = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(PrepareError::Pipe)?;
        let null = nix::fcntl::open(
            "/dev/null",
            nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(PrepareError::DevNull)?;
        let proto = sys::seqpacket_pair().map_err(PrepareError::Socket)?;
        let notify = sys::seqpacket_pair().map_err(PrepareError::Socket)?;
        Ok(ChildFds {
            go: (go.1, go.0),
            null,
            proto,
            notify,
        })
    }
}

impl Sandbox {
    /// Build a sandbox of `shape` and wait until its agent is ready to execute programs.
    pub fn create(shape: &Shape, opts: &CreateOptions) -> Result<Sandbox, SandboxError> {
        static SCRUB: OnceLock<[(usize, usize); 2]> = OnceLock::new();
        let prep = prepare(shape, opts.limits)?;
        let fds = ChildFds::open()?;
        let spec = child::Spec {
            shape,
            plan: &prep.plan,
            scratch: &prep.scratch,
            filters: &prep.filters,
            init_filters: &prep.init_filters,
            rlimits: &prep.rlimits,
            cap_last_cap: caps::last_cap(),
            time_ns: ns::time_namespaces_available(),
            scrub: *SCRUB.get_or_init(sys::arg_env_ranges),
            fds: [&fds.go.1, &fds.null, &fds.proto.1, &fds.notify.1].map(AsRawFd::as_raw_fd),
        };
        // Held until the sandbox is gone (the child closes its inherited copy in its first step).
        let lease = match opts.ids {
            Some(ids) => ns::lease::Lease::fixed(ids),
            None => ns::IdMap::for_caller().map_err(PrepareError::from)?,
        };
        let cgroup_fd = prep.group.as_ref().and_then(RunGroup::clone_into_fd);
        let (pid, pidfd) = match sys::clone3(ns::CLONE_FLAGS, cgroup_fd) {
            Ok(sys::Cloned::Child) => child::init(&spec),
            Ok(sys::Cloned::Parent { pid, pidfd }) => (pid, pidfd),
            Err(errno) => {
                let hint = ns::userns_hint();
                return Err(PrepareError::Clone { errno, hint }.into());
            }
        };
        let ids = lease.ids;
        let ChildFds {
            go,
            null,
            proto,
            notify,
        } = fds;
        drop((go.1, null, proto.1, notify.1));
        let mut sandbox = Sandbox {
            enforced: enforced(shape, prep.filters.instructions(), ids, prep.group.as_ref()),
            shape: shape.clone(),
            pid,
            pidfd,
            proto: proto.0,
            group: prep.group,
            execs: 0,
            gone: None,
            reaped: false,
            notify: seccomp::Notifier::new(&prep.filters, notify.0),
            release: go.0,
            _ids: lease,
        };
        // Release the child as soon as it has its ids, then attach the cgroups while it builds
        // its mount tree; it waits for the second byte before forking the agent. On error the
        // drop kills and reaps it.
        ids.write(pid).map_err(PrepareError::from)?;
        let _ = nix::unistd::write(&sandbox.release, b"g");
        if let Some(g) = &sandbox.group {
            g.attach(pid).map_err(PrepareError::from)?;
        }
        let _ = nix::unistd::write(&sandbox.release, b"l");
        sandbox.wait_ready()?;
        Ok(sandbox)
    }

    /// Until the agent says `Ready` (or set-up fails, or the init dies).
    fn wait_ready(&mut self) -> Result<(), SandboxError> {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        loop {
            match self.next_message(deadline)? {
                (
                    Up::Ready {
                        landlock_status,
                        landlock_abi,
                    },
                    _,
                ) => {
                    self.enforced.landlock = LandlockStatus {
                        status: landlock_status,
                        abi: landlock_abi,
                    };
                    return Ok(());
                }
                (Up::SetupFailed(error), _) => {
                    let mut enforced = self.enforced.clone();
                    not_ran(&mut enforced);
                    return Err(SandboxError::Setup {
                        error,
                        enforced: Box::new(enforced),
                    });
                }
                _ => {}
            }
        }
    }

    /// The next message from the sandbox, outside an exec's supervision loop.
    fn next_message(&mut self, deadline: Instant) -> Result<(Up, Vec<OwnedFd>), SandboxError> {
        loop {
            match protocol::recv::<Up>(self.proto.as_fd(), true) {
                Ok(Some(received)) => return Ok(received),
                Err(ProtocolError::Io {
                    errno: Errno::EAGAIN,
                    ..
                }) => {}
                Ok(None) => return Err(self.init_ended()),
                Err(e) => return Err(e.into()),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(SandboxError::SetupTimeout);
            }
            let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
            let mut pfds = vec![
                PollFd::new(self.proto.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN),
            ];
            // The agent's listener arrives before `Ready`; a refused call it (or a program left
            // running, during `listen`) makes meanwhile is answered here.
            pfds.extend(
                self.notify
                    .poll_fd()
                    .map(|fd| PollFd::new(fd, PollFlags::POLLIN)),
            );
            match nix::poll::poll(&mut pfds, PollTimeout::from(ms)) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(errno) => {
                    return Err(ProtocolError::Io {
                        call: "poll",
                        errno,
                    }
                    .into());
                }
            }
            let init_done = pfds[1].revents().is_some_and(|r| !r.is_empty());
            let message = pfds[0].revents().is_some_and(|r| !r.is_empty());
            let notified = pfds
                .get(2)
                .is_some_and(|p| p.revents().is_some_and(|r| !r.is_empty()));
            drop(pfds);
            if notified && self.notify.serve() == seccomp::Served::EndRun {
                // A dangerous call that could not be pinned to a process: end the sandbox (the
                // init's end is reported on the next round).
                let _ = sys::pidfd_send_signal(self.pidfd.as_fd(), libc::SIGKILL);
            }
            if init_done && !message {
                return Err(self.init_ended());
            }
        }
    }

    /// Reap the init that is gone and say how it ended.
    fn init_ended(&mut self) -> SandboxError {
        let status = nix::sys::wait::waitid(Id::PIDFd(self.pidfd.as_fd()), WaitPidFlag::WEXITED);
        self.reaped = true;
        let signal = match status {
            Ok(WaitStatus::Signaled(_, sig, _)) => Some(sig as i32),
            _ => None,
        };
        self.gone = Some("its init ended".into());
        SandboxError::Ended { signal }
    }

    /// Run one program in the sandbox and return its own verdict. Its wall clock starts here; the
    /// sandbox-wide limits (memory, pids) are shared with every other exec. A limit hit (wall,
    /// CPU, output, OOM) or a cancel kills the whole sandbox: later execs are refused.
    pub fn exec(&mut self, exec: &Execution, opts: &ExecOptions) -> Verdict {
        self.exec_with(exec, opts, false)
    }

    /// `exec` as the sandbox's last: what the program leaves behind dies with it, now.
    pub(super) fn exec_last(&mut self, exec: &Execution, opts: &ExecOptions) -> Verdict {
        self.exec_with(exec, opts, true)
    }

    fn exec_with(&mut self, exec: &Execution, opts: &ExecOptions, last: bool) -> Verdict {
        let limits = exec.limits.within(&self.shape.limits);
        let refused = |why: String| Verdict::not_started(Status::SetupFailed, limits.clone(), why);
        if let Some(why) = &self.gone {
            return refused(SandboxError::Gone(why.clone()).to_string());
        }
        let cpu_base = self.cpu_base();
        let pipes = match self.hand_over(exec) {
            Ok(pipes) => pipes,
            Err(e) => return refused(e.to_string()),
        };
        self.execs += 1;
        let outcome = Supervisor {
            limits: &limits,
            pidfd: &self.pidfd,
            proto: self.proto.as_fd(),
            group: self.group.as_ref(),
            started: Instant::now(),
            notify: &mut self.notify,
            end_on_exit: last,
            cpu_base,
        }
        .run(opts, pipes);
        if outcome.ended_sandbox() {
            self.gone = Some("an earlier exec ended it".into());
        }
        let mut verdict = outcome.into_verdict(&limits, self.group.as_ref(), cpu_base);
        verdict.enforced = self.enforced.clone();
        if verdict.status == Status::SetupFailed {
            not_ran(&mut verdict.enforced);
        }
        verdict
    }

    /// The sandbox's CPU counters now; zero for the first exec, which so also counts set-up.
    fn cpu_base(&self) -> CpuBase {
        match (&self.group, self.execs) {
            (Some(g), 1..) => {
                let stats = g.stats();
                CpuBase {
                    usage_us: g.cpu_usage_us().unwrap_or(0),
                    user_us: stats.cpu_user_us.unwrap_or(0),
                    system_us: stats.cpu_system_us.unwrap_or(0),
                }
            }
            _ => CpuBase::default(),
        }
    }

    /// Send `Down::Exec`: the spec and files in a memfd, the program's stdio pipes. Returns our
    /// ends: stdin (write), stdout and stderr (read).
    fn hand_over(&mut self, exec: &Execution) -> Result<[OwnedFd; 3], SandboxError> {
        let (data, spec_len) = exec_data(exec, self.shape.limits.sandbox_size)?;
        // Reports of orphans that ended between execs belong to no exec.
        while let Ok(Some(_)) = protocol::recv::<Up>(self.proto.as_fd(), true) {}
        let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(PrepareError::Pipe);
        let (stdin, stdout, stderr) = (pipe()?, pipe()?, pipe()?);
        protocol::send(
            self.proto.as_fd(),
            &Down::Exec { spec_len },
            &[
                stdin.0.as_fd(),
                stdout.1.as_fd(),
                stderr.1.as_fd(),
                data.as_fd(),
            ],
        )?;
        Ok([stdin.1, stdout.0, stderr.0])
    }

    /// Have the agent open a TCP socket listening on the sandbox's `127.0.0.1:port` (0: any free
    /// port) and hand it over: it lives in the sandbox's network namespace (the seam for egress).
    /// Needs `network = "loopback"`. Returns the port and the listening socket.
    pub fn listen(&mut self, port: u16) -> Result<(u16, OwnedFd), SandboxError> {
        if let Some(why) = &self.gone {
            return Err(SandboxError::Gone(why.clone()));
        }
        // The agent's seccomp filter would kill it for an AF_INET socket.
        if self.shape.network != NetworkMode::Loopback {
            return Err(SandboxError::NoNetwork);
        }
        protocol::send(self.proto.as_fd(), &Down::Listen { port }, &[])?;
        let deadline = Instant::now() + SETUP_TIMEOUT;
        loop {
            match self.next_message(deadline)? {
                (Up::Listening { port }, mut fds) => {
                    if let Some(fd) = fds.pop() {
                        return Ok((port, fd));
                    }
                }
                (Up::SetupFailed(e), _) => return Err(SandboxError::Refused(e)),
                _ => {}
            }
        }
    }

    /// The init's pid in our PID namespace.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The sandbox's cgroup directories (empty without cgroups).
    pub fn cgroup_paths(&self) -> Vec<PathBuf> {
        self.group
            .as_ref()
            .map(|g| g.paths().to_vec())
            .unwrap_or_default()
    }

    /// Kill everything in the sandbox, reap its init, remove its cgroup.
    pub fn destroy(mut self) {
        self.teardown();
    }

    fn teardown(&mut self) {
        if !self.reaped {
            // SIGKILL to the init tears down the whole PID namespace (pid_namespaces(7)); waiting
            // for the init waits for every process in it.
            let _ = sys::pidfd_send_signal(self.pidfd.as_fd(), libc::SIGKILL);
            let _ = nix::sys::wait::waitid(Id::PIDFd(self.pidfd.as_fd()), WaitPidFlag::WEXITED);
            self.reaped = true;
        }
        self.gone.get_or_insert_with(|| "destroyed".into());
        if let Some(group) = self.group.take() {
            if let Err(e) = group.destroy() {
                tracing::warn!("cgroup clean-up: {e}");
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// What a sandbox enforces, known once it is created.
fn enforced(
    shape: &Shape,
    instructions: usize,
    ids: ns::IdMap,
    group: Option<&RunGroup>,
) -> Enforced {
    let mut e = Enforced {
        userns: true,
        pidns: true,
        netns: true,
        mountns: true,
        ipcns: true,
        utsns: true,
        cgroupns: true,
        timens: ns::time_namespaces_available(),
        outer_uid: ids.outer_uid,
        capabilities_dropped: true,
        no_new_privs: true,
        readonly_root: true,
        ..Enforced::default()
    };
    e.seccomp = SeccompStatus {
        enabled: true,
        default_action: match shape.seccomp.default_action {
            SeccompDefault::Kill => "kill",
            SeccompDefault::Errno => "errno",
            SeccompDefault::Log => "log",
        }
        .into(),
        instructions,
    };
    e.cgroup = group
        .map(RunGroup::enforced)
        .unwrap_or_else(|| crate::verdict::CgroupEnforced {
            backend: "none".into(),
            ..Default::default()
        });
    e
}

/// A program that never ran was confined by nothing yet.
fn not_ran(e: &mut Enforced) {
    e.capabilities_dropped = false;
    e.no_new_privs = false;
    e.readonly_root = false;
    e.seccomp.enabled = false;
    e.timens = false;
}
