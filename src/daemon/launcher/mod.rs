//! The fork-server launcher: sandboxes are never cloned from a tokio thread (DESIGN §3).
//!
//! `Launcher::start` forks a single-threaded launcher process before the runtime exists. For each
//! job the service creates a socket pair and passes one end over the control socket with a
//! `Spawn` message (`SCM_RIGHTS`); the launcher forks a worker (a copy of a single-threaded
//! process, so `clone3` and the child's allocations are safe), which reads the job from its end,
//! runs the synchronous `sandbox::run`, streams output and ends with the verdict. The messages
//! and their encoding are in `wire` (typed, versioned, bounded).
//!
//! Standard input arrives before the run starts (`Stdin` frames, then `CloseStdin`): the
//! runtime takes it as bytes. During the run the worker's socket is the runtime's cancel fd: the
//! service sends `Cancel` (and closes its end when the run's handle is dropped), and the runtime
//! kills the sandbox. Stdin while running and `Signal` need the lifecycle runtime's agent; until
//! then the service sends neither during a run.

pub mod wire;

use std::cell::Cell;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::socket::{AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use self::wire::{Control, FromWorker, ToWorker, WireError};
use crate::cgroup::{CgroupOptions, LimitManager};
use crate::policy::Policy;
use crate::sandbox::{self, Channel, Echo, RunOptions, Stdin};
use crate::sys;
use crate::verdict::Verdict;

/// A worker gives up on a service that stops reading for this long and kills its sandbox.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Handle to the launcher process; cheap to clone, usable from any tokio task.
#[derive(Clone)]
pub struct Launcher {
    inner: Arc<Inner>,
}

struct Inner {
    control: Mutex<OwnedFd>,
    pidfd: OwnedFd,
}

/// One sandbox to run.
#[derive(Debug, Clone, Default)]
pub struct Job {
    /// Fully resolved: argv, env, limits, layers.
    pub policy: Policy,
    /// Created in the work dir before the payload starts (absolute sandbox paths).
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// The payload's standard input, then end of file.
    pub stdin: Vec<u8>,
}

/// What a running job reports, in order: output chunks as they come, then exactly one verdict.
#[derive(Debug, Clone)]
pub enum Event {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Finished(Box<Verdict>),
}

/// A running job. Dropping it before `Finished` kills the sandbox.
pub struct Run {
    stream: tokio::net::UnixStream,
    done: bool,
}

impl Launcher {
    /// Fork the launcher and configure it: `fork` then `Pending::configure`.
    pub fn start(limits: CgroupOptions) -> std::io::Result<Launcher> {
        Launcher::fork()?.configure(limits)
    }

    /// Fork the launcher, before the service reads its configuration: the launcher, and every
    /// worker and sandbox forked from it, then holds none of the service's secrets (TLS key, JWT
    /// secret, API-key hashes). Call while the process is single-threaded (before the runtime).
    pub fn fork() -> std::io::Result<Pending> {
        let (ours, theirs) = nix::sys::socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        match sys::fork()? {
            nix::unistd::ForkResult::Child => {
                drop(ours);
                if let Some(manager) = configure(&theirs) {
                    serve(&theirs, manager.as_ref());
                }
                sys::exit_now(0)
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(theirs);
                let pidfd = sys::pidfd_open(child.as_raw())?;
                Ok(Pending {
                    control: ours,
                    pidfd,
                })
            }
        }
    }

    /// Start one sandbox. Resolves once the job is handed to a worker.
    pub async fn spawn(&self, job: Job) -> std::io::Result<Run> {
        let (mine, worker) = UnixStream::pair()?;
        {
            let control = self
                .inner
                .control
                .lock()
                .map_err(|_| std::io::Error::other("launcher control lock poisoned"))?;
            let fds = [worker.as_raw_fd()];
            nix::sys::socket::sendmsg::<()>(
                control.as_raw_fd(),
                &[IoSlice::new(&Control::Spawn.encode())],
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::empty(),
                None,
            )?;
        }
        drop(worker);
        mine.set_nonblocking(true)?;
        let mut stream = tokio::net::UnixStream::from_std(mine)?;
        let messages = [
            ToWorker::Job {
                policy: Box::new(job.policy),
                files: job.files,
            },
            ToWorker::Stdin(job.stdin),
            ToWorker::CloseStdin,
        ];
        for m in &messages {
            stream
                .write_all(&m.encode().map_err(std::io::Error::other)?)
                .await?;
        }
        Ok(Run {
            stream,
            done: false,
        })
    }

    /// Whether the launcher process is still alive (it exits only when the service does).
    pub fn alive(&self) -> bool {
        let mut fds = [nix::poll::PollFd::new(
            self.inner.pidfd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        // A pidfd becomes readable when the process exits.
        matches!(
            nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO),
            Ok(0)
        )
    }
}

impl Run {
    /// The next event; `None` after `Finished`, or if the worker died without a verdict.
    pub async fn next(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        let event = match self.read().await {
            Ok(FromWorker::Stdout(b)) => Some(Event::Stdout(b)),
            Ok(FromWorker::Stderr(b)) => Some(Event::Stderr(b)),
            Ok(FromWorker::Verdict(v)) => {
                self.done = true;
                Some(Event::Finished(v))
            }
            Ok(FromWorker::Unsupported(why)) => {
                tracing::error!("the sandbox worker refused the job: {why}");
                None
            }
            Err(WireError::Closed) => None,
            Err(e) => {
                tracing::error!("unreadable frame from a worker: {e}");
                None
            }
        };
        self.done |= event.is_none();
        event
    }

    async fn read(&mut self) -> Result<FromWorker, WireError> {
        let mut head = [0u8; wire::HEADER];
        match self.stream.read_exact(&mut head).await {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(WireError::Closed);
            }
            other => other?,
        };
        let (tag, len) = wire::header(&head)?;
        let mut payload = vec![0u8; len];
        self.stream.read_exact(&mut payload).await?;
        FromWorker::decode(tag, &payload)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if !self.done {
            // Say so explicitly; closing the socket right after is the backstop.
            let _ = self
                .stream
                .try_write(&ToWorker::Cancel.encode().unwrap_or_default());
        }
    }
}

/// The launcher's loop: one worker per job, until the service closes the control socket.
/// A forked launcher that has not been told its cgroup options yet.
pub struct Pending {
    control: OwnedFd,
    pidfd: OwnedFd,
}

impl Pending {
    /// Send the cgroup options; the launcher detects the limit backend. An explicit cgroup root or
    /// backend that does not work is an error; with automatic detection a host without usable
    /// cgroups runs jobs without kernel limits, and jobs that ask for them fail closed.
    pub fn configure(self, limits: CgroupOptions) -> std::io::Result<Launcher> {
        nix::sys::socket::send(
            self.control.as_raw_fd(),
            &Control::Configure(limits).encode(),
            MsgFlags::empty(),
        )?;
        let mut buf = [0u8; wire::MAX_CONTROL + 1];
        let n = nix::sys::socket::recv(self.control.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        match Control::decode(buf.get(..n).unwrap_or_default()) {
            Ok(Control::Configured(None)) => Ok(Launcher {
                inner: Arc::new(Inner {
                    control: Mutex::new(self.control),
                    pidfd: self.pidfd,
                }),
            }),
            Ok(Control::Configured(Some(why))) => Err(std::io::Error::other(why)),
            Ok(other) => Err(std::io::Error::other(format!(
                "launcher answered {other:?} to its configuration"
            ))),
            Err(e) => Err(std::io::Error::other(format!(
                "launcher configuration: {e}"
            ))),
        }
    }
}

/// In the launcher: wait for `Configure`, detect the limit backend, answer. `None` when the
/// service went away or the configured backend does not work (the launcher then exits).
fn configure(control: &OwnedFd) -> Option<Option<LimitManager>> {
    let mut buf = [0u8; wire::MAX_CONTROL + 1];
    let n = nix::sys::socket::recv(control.as_raw_fd(), &mut buf, MsgFlags::empty()).ok()?;
    let answer = |why: Option<String>| {
        let _ = nix::sys::socket::send(
            control.as_raw_fd(),
            &Control::Configured(why).encode(),
            MsgFlags::empty(),
        );
    };
    let limits = match Control::decode(buf.get(..n).unwrap_or_default()) {
        Ok(Control::Configure(limits)) => limits,
        Ok(other) => {
            answer(Some(format!("expected Configure first, got {other:?}")));
            return None;
        }
        Err(e) => {
            answer(Some(e.to_string()));
            return None;
        }
    };
    let explicit = limits.root.is_some() || limits.force.is_some();
    match LimitManager::detect(&limits) {
        Ok(m) => {
            answer(None);
            Some(Some(m))
        }
        Err(e) if !explicit => {
            tracing::warn!(
                "no cgroup limit backend, sandboxes run without kernel memory/pids/cpu limits: {e}"
            );
            answer(None);
            Some(None)
        }
        Err(e) => {
            answer(Some(format!("cgroup limit manager: {e}")));
            None
        }
    }
}

fn serve(control: &OwnedFd, manager: Option<&LimitManager>) {
    // The launcher lives exactly as long as the service.
    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as u64);
    // Workers are reaped by the kernel (SIGCHLD ignored); each reports over its own socket.
    let _ = sys::set_sigchld_ignored(true);
    let mut buf = [0u8; wire::MAX_CONTROL + 1];
    loop {
        let (len, fd) = match sys::recv_with_fd(control.as_fd(), &mut buf) {
            Ok((0, _)) => return,
            Ok(received) => received,
            Err(e) => {
                tracing::error!("launcher: recvmsg on the control socket: {e}");
                return;
            }
        };
        let Some(fd) = fd else {
            tracing::error!("launcher: a control message without its job socket");
            continue;
        };
        match Control::decode(buf.get(..len).unwrap_or_default()) {
            Ok(Control::Spawn) => fork_worker(fd, manager),
            Ok(other) => refuse(fd, &format!("{other:?} is not available: no warm pool")),
            Err(e) => refuse(fd, &e.to_string()),
        }
    }
}

/// Answer a control message the launcher cannot act on, on its job socket.
fn refuse(fd: OwnedFd, why: &str) {
    tracing::error!("launcher: {why}");
    let mut sock = UnixStream::from(fd);
    let _ = sock.set_write_timeout(Some(SEND_TIMEOUT));
    let _ = FromWorker::Unsupported(why.to_string()).write_to(&mut sock);
}

fn fork_worker(fd: OwnedFd, manager: Option<&LimitManager>) {
    match sys::fork() {
        Ok(nix::unistd::ForkResult::Child) => {
            let _ = sys::set_sigchld_ignored(false);
            let code = worker(UnixStream::from(fd), manager);
            sys::exit_now(code)
        }
        Ok(nix::unistd::ForkResult::Parent { .. }) => drop(fd),
        Err(e) => {
            tracing::error!("launcher: fork a worker: {e}");
            // The service sees the socket close without a verdict and reports the failure.
            drop(fd);
        }
    }
}

/// One job in a worker process; returns the exit code.
fn worker(sock: UnixStream, manager: Option<&LimitManager>) -> i32 {
    let job = match read_job(&sock) {
        Ok(Some(job)) => job,
        // Cancelled before it started: nobody waits for a verdict.
        Ok(None) => return 0,
        Err(e) => {
            tracing::error!("worker: unreadable job: {e}");
            let _ = FromWorker::Unsupported(e.to_string()).write_to(&mut &sock);
            return 1;
        }
    };
    let _ = sock.set_write_timeout(Some(SEND_TIMEOUT));
    let broken = Cell::new(false);
    let emit = |channel: Channel, data: &[u8]| {
        let chunk = data.to_vec();
        let m = match channel {
            Channel::Stdout => FromWorker::Stdout(chunk),
            Channel::Stderr => FromWorker::Stderr(chunk),
        };
        if !broken.get() && m.write_to(&mut &sock).is_err() {
            // The service stopped reading: make our own end readable (EOF) so the run is cancelled.
            broken.set(true);
            let _ = sock.shutdown(std::net::Shutdown::Read);
        }
    };
    let opts = RunOptions {
        stdin: Stdin::Bytes(job.stdin),
        echo: Echo::Callback(&emit),
        limits: manager,
        forward_signals: false,
        files: job.files,
        cancel: Some(sock.as_fd()),
        ids: None,
    };
    let verdict = sandbox::stages::run(&job.policy, opts);
    match FromWorker::Verdict(Box::new(verdict)).write_to(&mut &sock) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

struct ReadJob {
    policy: Policy,
    files: Vec<(PathBuf, Vec<u8>)>,
    stdin: Vec<u8>,
}

/// The job and its standard input, up to `CloseStdin`; `None` when the service cancelled first.
fn read_job(mut sock: &UnixStream) -> Result<Option<ReadJob>, WireError> {
    let (tag, payload) = wire::read_frame(&mut sock)?;
    let (policy, files) = match ToWorker::decode(tag, &payload)? {
        ToWorker::Job { policy, files } => (*policy, files),
        ToWorker::Cancel => return Ok(None),
        other => return Err(unexpected(&other, "before the job")),
    };
    let mut stdin = Vec::new();
    loop {
        let (tag, payload) = wire::read_frame(&mut sock)?;
        match ToWorker::decode(tag, &payload)? {
            ToWorker::Stdin(chunk) => {
                if stdin.len() + chunk.len() > wire::MAX_FRAME {
                    return Err(WireError::TooLarge(stdin.len() + chunk.len()));
                }
                stdin.extend_from_slice(&chunk);
            }
            ToWorker::CloseStdin => break,
            ToWorker::Cancel => return Ok(None),
            other => return Err(unexpected(&other, "before the run starts")),
        }
    }
    Ok(Some(ReadJob {
        policy,
        files,
        stdin,
    }))
}

fn unexpected(m: &ToWorker, when: &str) -> WireError {
    let name = match m {
        ToWorker::Job { .. } => "a second job",
        ToWorker::Stdin(_) => "stdin",
        ToWorker::CloseStdin => "close-stdin",
        ToWorker::Signal(_) => "a signal",
        ToWorker::Cancel => "cancel",
    };
    WireError::Malformed {
        tag: '-',
        why: format!("{name} {when} is not supported"),
    }
}
