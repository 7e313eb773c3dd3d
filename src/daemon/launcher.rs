//! The fork-server launcher: sandboxes are never cloned from a tokio thread (DESIGN §3).
//!
//! `Launcher::start` forks a single-threaded launcher process before the runtime exists. For each
//! job the service creates a socket pair and passes one end over the control socket
//! (`SCM_RIGHTS`); the launcher forks a worker (a copy of a single-threaded process, so `clone3` and
//! the child's allocations are safe), which reads the job from its end, runs the synchronous
//! `sandbox::run`, streams output as frames and ends with the verdict. Closing the service's end
//! cancels the run: the worker polls its socket as the sandbox's cancel fd.
//!
//! Wire format on the per-job socket:
//! - job (service → worker): one JSON line `{"policy":…,"files":[{"path":…,"len":N}],"stdin_len":N}`
//!   followed by the raw bytes of each file, then of stdin;
//! - events (worker → service): frames `tag:u8 len:u32le bytes`, tag `o` stdout, `e` stderr, `v` the
//!   verdict as JSON (always last).

use std::cell::Cell;
use std::io::{BufRead, BufReader, IoSlice, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cgroup::{CgroupOptions, LimitManager};
use crate::policy::Policy;
use crate::sandbox::{self, Channel, Echo, RunOptions, Stdin};
use crate::sys;
use crate::verdict::Verdict;

/// A worker gives up on a service that stops reading for this long and kills its sandbox.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame the service accepts (a verdict with two full output captures fits easily).
const MAX_FRAME: usize = 256 << 20;

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

#[derive(Serialize, Deserialize)]
struct JobHeader {
    policy: Policy,
    files: Vec<FileHeader>,
    stdin_len: usize,
}

#[derive(Serialize, Deserialize)]
struct FileHeader {
    path: PathBuf,
    len: usize,
}

impl Launcher {
    /// Detect the limit backend and fork the launcher. Call before building the tokio runtime: the
    /// process must be single-threaded. An explicit cgroup root or backend that does not work is an
    /// error; with automatic detection a host without usable cgroups runs jobs without kernel
    /// limits, and jobs that ask for them fail closed.
    pub fn start(limits: CgroupOptions) -> std::io::Result<Launcher> {
        let explicit = limits.root.is_some() || limits.force.is_some();
        let manager = match LimitManager::detect(&limits) {
            Ok(m) => Some(m),
            Err(e) if !explicit => {
                tracing::warn!(
                    "no cgroup limit backend, sandboxes run without kernel memory/pids/cpu limits: {e}"
                );
                None
            }
            Err(e) => return Err(std::io::Error::other(format!("cgroup limit manager: {e}"))),
        };
        let (ours, theirs) = nix::sys::socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        match sys::fork()? {
            nix::unistd::ForkResult::Child => {
                drop(ours);
                serve(&theirs, manager.as_ref());
                sys::exit_now(0)
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(theirs);
                let pidfd = sys::pidfd_open(child.as_raw())?;
                Ok(Launcher {
                    inner: Arc::new(Inner {
                        control: Mutex::new(ours),
                        pidfd,
                    }),
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
                &[IoSlice::new(b"j")],
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::empty(),
                None,
            )?;
        }
        drop(worker);
        mine.set_nonblocking(true)?;
        let mut stream = tokio::net::UnixStream::from_std(mine)?;
        let header = JobHeader {
            policy: job.policy,
            files: job
                .files
                .iter()
                .map(|(path, data)| FileHeader {
                    path: path.clone(),
                    len: data.len(),
                })
                .collect(),
            stdin_len: job.stdin.len(),
        };
        let mut head = serde_json::to_vec(&header).map_err(std::io::Error::other)?;
        head.push(b'\n');
        stream.write_all(&head).await?;
        for (_, data) in &job.files {
            stream.write_all(data).await?;
        }
        stream.write_all(&job.stdin).await?;
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
        let mut head = [0u8; 5];
        if self.stream.read_exact(&mut head).await.is_err() {
            self.done = true;
            return None;
        }
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MAX_FRAME {
            self.done = true;
            return None;
        }
        let mut data = vec![0u8; len];
        if self.stream.read_exact(&mut data).await.is_err() {
            self.done = true;
            return None;
        }
        match head[0] {
            b'o' => Some(Event::Stdout(data)),
            b'e' => Some(Event::Stderr(data)),
            b'v' => {
                self.done = true;
                match serde_json::from_slice(&data) {
                    Ok(v) => Some(Event::Finished(Box::new(v))),
                    Err(e) => {
                        tracing::error!("unreadable verdict from a worker: {e}");
                        None
                    }
                }
            }
            _ => {
                self.done = true;
                None
            }
        }
    }
}

/// The launcher's loop: one worker per job, until the service closes the control socket.
fn serve(control: &OwnedFd, manager: Option<&LimitManager>) {
    // The launcher lives exactly as long as the service.
    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as u64);
    // Workers are reaped by the kernel (SIGCHLD ignored); each reports over its own socket.
    let _ = sys::set_sigchld_ignored(true);
    loop {
        let fd = match receive_fd(control.as_raw_fd()) {
            Ok(Some(fd)) => fd,
            Ok(None) => return,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                tracing::error!("launcher: recvmsg on the control socket: {e}");
                return;
            }
        };
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
}

fn receive_fd(control: RawFd) -> Result<Option<OwnedFd>, nix::errno::Errno> {
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        control,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    if msg.bytes == 0 {
        return Ok(None);
    }
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor for us; nothing else owns it.
                return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
    }
    Err(nix::errno::Errno::EBADMSG)
}

/// One job in a worker process; returns the exit code.
fn worker(sock: UnixStream, manager: Option<&LimitManager>) -> i32 {
    let job = match read_job(&sock) {
        Ok(job) => job,
        Err(e) => {
            tracing::error!("worker: unreadable job: {e}");
            return 1;
        }
    };
    let _ = sock.set_write_timeout(Some(SEND_TIMEOUT));
    let broken = Cell::new(false);
    let emit = |channel: Channel, data: &[u8]| {
        let tag = if channel == Channel::Stdout {
            b'o'
        } else {
            b'e'
        };
        if !broken.get() && write_frame(&sock, tag, data).is_err() {
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
    match serde_json::to_vec(&verdict) {
        Ok(json) if write_frame(&sock, b'v', &json).is_ok() => 0,
        _ => 1,
    }
}

struct ReadJob {
    policy: Policy,
    files: Vec<(PathBuf, Vec<u8>)>,
    stdin: Vec<u8>,
}

fn read_job(sock: &UnixStream) -> std::io::Result<ReadJob> {
    let mut reader = BufReader::new(sock);
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    let header: JobHeader = serde_json::from_slice(&line).map_err(std::io::Error::other)?;
    let mut read = |len: usize| -> std::io::Result<Vec<u8>> {
        let mut data = vec![0u8; len];
        reader.read_exact(&mut data)?;
        Ok(data)
    };
    let mut files = Vec::with_capacity(header.files.len());
    for f in header.files {
        files.push((f.path, read(f.len)?));
    }
    let stdin = read(header.stdin_len)?;
    Ok(ReadJob {
        policy: header.policy,
        files,
        stdin,
    })
}

fn write_frame(mut sock: &UnixStream, tag: u8, data: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(data.len()).map_err(|_| std::io::Error::other("frame too large"))?;
    let mut head = [tag, 0, 0, 0, 0];
    head[1..].copy_from_slice(&len.to_le_bytes());
    sock.write_all(&head)?;
    sock.write_all(data)
}
