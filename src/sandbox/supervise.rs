//! The supervisor loop: one `poll(2)` over the init's pidfd, the output pipes, the protocol pipe,
//! stdin, the OOM event and our own signals, with the wall-time deadline as the poll timeout.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus};

use super::protocol::{self, Exit, Message};
use crate::cgroup::RunGroup;
use crate::policy::{OutputMode, Policy};
use crate::verdict::{CpuTime, SeccompViolation, Status, Stream, Verdict};
use crate::{seccomp, sys};

/// Where the payload's standard input comes from.
#[derive(Debug, Clone, Default)]
pub enum Stdin {
    /// Copy our own standard input through as it arrives.
    #[default]
    Inherit,
    /// These bytes, then end of file.
    Bytes(Vec<u8>),
    /// Immediate end of file.
    Null,
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Stdout,
    Stderr,
}

/// Where output goes live, besides the capture in the verdict (which is always made).
#[derive(Clone, Copy, Default)]
pub enum Echo<'a> {
    #[default]
    Off,
    /// Our own stdout/stderr (the CLI without `--json`).
    Stdio,
    /// A callback per chunk (the service's workers stream events with it).
    Callback(&'a dyn Fn(Channel, &[u8])),
}

/// How often the CPU-time limit is checked against the cgroup's accounting.
const CPU_POLL: Duration = Duration::from_millis(10);
/// How long to keep draining pipes after the init is gone (the kernel is killing the rest).
const DRAIN_GRACE: Duration = Duration::from_millis(500);
const CHUNK: usize = 64 * 1024;

pub(super) struct Supervisor<'a> {
    pub policy: &'a Policy,
    pub pid: i32,
    pub pidfd: &'a OwnedFd,
    pub group: Option<&'a RunGroup>,
    pub started: Instant,
    pub kmsg: Option<seccomp::KmsgWatch>,
}

#[derive(Default)]
struct Capture {
    data: Vec<u8>,
    total: u64,
    open: bool,
}

/// What the supervisor saw; turned into a verdict by `into_verdict`.
pub(super) struct Outcome {
    exit: Option<Exit>,
    init_signal: Option<i32>,
    setup_error: Option<protocol::SetupError>,
    exec_failed: Option<(String, i32)>,
    landlock: Option<(String, u32)>,
    killed_for: Option<Status>,
    stdout: Capture,
    stderr: Capture,
    wall: Duration,
    seccomp_nr: Option<i64>,
    cancelled: bool,
}

impl Supervisor<'_> {
    pub fn run(
        mut self,
        opts: &super::RunOptions,
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
        proto: OwnedFd,
    ) -> Outcome {
        let limits = &self.policy.limits;
        let deadline = limits.wall.map(|w| self.started + w);
        let signals = opts.forward_signals.then(signal_fd).flatten();
        let mut feeder = Feeder::new(&opts.stdin, stdin);
        let mut out = Outcome {
            exit: None,
            init_signal: None,
            setup_error: None,
            exec_failed: None,
            landlock: None,
            killed_for: None,
            stdout: Capture {
                open: true,
                ..Capture::default()
            },
            stderr: Capture {
                open: true,
                ..Capture::default()
            },
            wall: Duration::ZERO,
            seccomp_nr: None,
            cancelled: false,
        };
        let mut proto_open = true;
        let mut reader = protocol::Reader::default();
        let mut init_done: Option<Instant> = None;
        let mut payload_pid = None;
        let mut interrupts = 0;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let now = Instant::now();
            if let Some(done) = init_done {
                if !(out.stdout.open || out.stderr.open || proto_open) || now >= done + DRAIN_GRACE
                {
                    break;
                }
            }
            if out.killed_for.is_none() && init_done.is_none() {
                if deadline.is_some_and(|d| now >= d) {
                    self.kill(&mut out, Status::TimeoutWall);
                } else if let (Some(cpu), Some(used)) =
                    (limits.cpu, self.group.and_then(RunGroup::cpu_usage_us))
                {
                    if Duration::from_micros(used) >= cpu {
                        self.kill(&mut out, Status::TimeoutCpu);
                    }
                }
            }
            let mut timeout = init_done.map_or(Duration::from_secs(3600), |d| {
                (d + DRAIN_GRACE).saturating_duration_since(now)
            });
            if out.killed_for.is_none() && init_done.is_none() {
                if let Some(d) = deadline {
                    timeout = timeout.min(d.saturating_duration_since(now));
                }
                if limits.cpu.is_some() && self.group.is_some() {
                    timeout = timeout.min(CPU_POLL);
                }
            }
            // Slots: 0 pidfd, 1 stdout, 2 stderr, 3 proto, 4 stdin source, 5 stdin pipe, 6 event,
            // 7 signals, 8 cancel.
            let slots: [Option<(BorrowedFd, PollFlags)>; 9] = [
                init_done
                    .is_none()
                    .then(|| (self.pidfd.as_fd(), PollFlags::POLLIN)),
                out.stdout.open.then(|| (stdout.as_fd(), PollFlags::POLLIN)),
                out.stderr.open.then(|| (stderr.as_fd(), PollFlags::POLLIN)),
                proto_open.then(|| (proto.as_fd(), PollFlags::POLLIN)),
                feeder
                    .wants_input()
                    .then(|| (sys::borrow_fd(0), PollFlags::POLLIN)),
                feeder
                    .wants_output()
                    .then(|| (feeder.pipe_fd(), PollFlags::POLLOUT)),
                self.group
                    .and_then(RunGroup::event_fd)
                    .map(|fd| (fd, PollFlags::POLLIN)),
                signals.as_ref().map(|s| (s.as_fd(), PollFlags::POLLIN)),
                opts.cancel
                    .filter(|_| !out.cancelled)
                    .map(|fd| (fd, PollFlags::POLLIN)),
            ];
            let mut pfds: Vec<PollFd> = Vec::with_capacity(9);
            let mut index = [usize::MAX; 9];
            for (slot, entry) in slots.iter().enumerate() {
                if let Some((fd, flags)) = entry {
                    index[slot] = pfds.len();
                    pfds.push(PollFd::new(*fd, *flags));
                }
            }
            let ms = u16::try_from(timeout.as_millis().max(1)).unwrap_or(u16::MAX);
            match nix::poll::poll(&mut pfds, PollTimeout::from(ms)) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => {
                    tracing::error!("poll: {e}");
                    self.kill(&mut out, Status::SetupFailed);
                }
            }
            let ready = |slot: usize| {
                index[slot] != usize::MAX
                    && pfds[index[slot]].revents().is_some_and(|r| !r.is_empty())
            };
            let ready: [bool; 9] = std::array::from_fn(ready);
            drop(pfds);
            if ready[1] {
                self.read_stream(&stdout, 1, &mut out, &mut buf, opts.echo);
            }
            if ready[2] {
                self.read_stream(&stderr, 2, &mut out, &mut buf, opts.echo);
            }
            if ready[3] {
                match nix::unistd::read(&proto, &mut buf) {
                    Ok(0) | Err(Errno::EBADF) => proto_open = false,
                    Ok(n) => {
                        for msg in reader.feed(&buf[..n]) {
                            match msg {
                                Message::SetupFailed(e) => out.setup_error = Some(e),
                                Message::Ready {
                                    landlock_status,
                                    landlock_abi,
                                } => {
                                    out.landlock = Some((landlock_status, landlock_abi));
                                    payload_pid = sys::children_of(self.pid).first().copied();
                                }
                                Message::ExecFailed { path, errno } => {
                                    out.exec_failed = Some((path, errno))
                                }
                                Message::Exited(exit) => out.exit = Some(exit),
                            }
                        }
                    }
                    Err(_) => {}
                }
            }
            if ready[4] {
                feeder.fill();
            }
            if ready[5] || feeder.wants_output() {
                feeder.flush();
            }
            if ready[6] {
                // Drain the eventfd/inotify so poll does not spin; the OOM count is read at the end.
                let _ =
                    nix::unistd::read(self.group.and_then(RunGroup::event_fd).unwrap(), &mut buf);
            }
            if ready[7] {
                if let Some(Ok(Some(_))) = signals.as_ref().map(SignalFd::read_signal) {
                    interrupts += 1;
                    if interrupts == 1 {
                        // The init forwards it to the payload, which may exit cleanly.
                        let _ = sys::pidfd_send_signal(self.pidfd.as_fd(), libc::SIGTERM);
                    } else {
                        self.kill(&mut out, Status::Signaled);
                    }
                }
            }
            if ready[8] {
                // The caller went away (or asked to stop): nobody is left to read the result.
                out.cancelled = true;
                self.kill(&mut out, Status::Signaled);
            }
            if ready[0] {
                if let Ok(status) = nix::sys::wait::waitid(
                    Id::PIDFd(self.pidfd.as_fd()),
                    WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG,
                ) {
                    if let WaitStatus::Signaled(_, sig, _) = status {
                        out.init_signal = Some(sig as i32);
                    }
                    if !matches!(status, WaitStatus::StillAlive) {
                        out.wall = self.started.elapsed();
                        init_done = Some(Instant::now());
                        feeder.close();
                    }
                }
            }
        }
        if let Some(sigs) = signals {
            restore_signals(sigs);
        }
        if out.exit.is_some_and(|e| e.signal == Some(libc::SIGSYS)) {
            out.seccomp_nr = self.kmsg.as_mut().and_then(|k| k.find_kill(payload_pid));
        }
        out
    }

    fn kill(&self, out: &mut Outcome, why: Status) {
        out.killed_for.get_or_insert(why);
        // cgroup.kill reaches every process at once; otherwise SIGKILL to the init tears down the
        // whole PID namespace (pid_namespaces(7)).
        let all = self.group.is_some_and(|g| g.kill().unwrap_or(false));
        if !all {
            let _ = sys::pidfd_send_signal(self.pidfd.as_fd(), libc::SIGKILL);
        }
    }

    fn read_stream(&self, fd: &OwnedFd, which: u8, out: &mut Outcome, buf: &mut [u8], echo: Echo) {
        let n = match nix::unistd::read(fd, buf) {
            Ok(0) | Err(Errno::EBADF) => 0,
            Ok(n) => n,
            Err(_) => return,
        };
        let cap = self.policy.limits.output;
        let capture = if which == 1 {
            &mut out.stdout
        } else {
            &mut out.stderr
        };
        if n == 0 {
            capture.open = false;
            return;
        }
        let room =
            usize::try_from(cap.saturating_sub(capture.data.len() as u64)).unwrap_or(usize::MAX);
        let keep = &buf[..n.min(room)];
        capture.data.extend_from_slice(keep);
        capture.total += n as u64;
        if !keep.is_empty() {
            let channel = if which == 1 {
                Channel::Stdout
            } else {
                Channel::Stderr
            };
            match echo {
                Echo::Off => {}
                Echo::Stdio if channel == Channel::Stdout => {
                    drop(std::io::stdout().write_all(keep))
                }
                Echo::Stdio => drop(std::io::stderr().write_all(keep)),
                Echo::Callback(f) => f(channel, keep),
            }
        }
        if capture.total > cap && self.policy.limits.output_mode == OutputMode::Kill {
            self.kill(out, Status::OutputLimit);
        }
    }
}

/// Pumps bytes into the payload's stdin pipe without ever blocking the loop.
struct Feeder {
    pipe: Option<OwnedFd>,
    pending: Vec<u8>,
    offset: usize,
    /// Whether more input may come from our own stdin.
    source_open: bool,
}

impl Feeder {
    fn new(stdin: &Stdin, pipe: OwnedFd) -> Feeder {
        let _ = nix::fcntl::fcntl(
            &pipe,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        let (pending, source_open) = match stdin {
            Stdin::Inherit => (Vec::new(), true),
            Stdin::Bytes(b) => (b.clone(), false),
            Stdin::Null => (Vec::new(), false),
        };
        let mut f = Feeder {
            pipe: Some(pipe),
            pending,
            offset: 0,
            source_open,
        };
        f.flush();
        f
    }

    fn wants_input(&self) -> bool {
        self.pipe.is_some() && self.source_open && self.offset >= self.pending.len()
    }

    fn wants_output(&self) -> bool {
        self.pipe.is_some() && self.offset < self.pending.len()
    }

    fn pipe_fd(&self) -> BorrowedFd<'_> {
        self.pipe
            .as_ref()
            .expect("wants_output checked the pipe")
            .as_fd()
    }

    fn fill(&mut self) {
        self.pending.resize(CHUNK, 0);
        self.offset = 0;
        match nix::unistd::read(sys::borrow_fd(0), &mut self.pending) {
            Ok(n) if n > 0 => self.pending.truncate(n),
            Err(Errno::EINTR | Errno::EAGAIN) => self.pending.clear(),
            _ => {
                self.pending.clear();
                self.source_open = false;
            }
        }
        self.flush();
    }

    fn flush(&mut self) {
        while let Some(pipe) = &self.pipe {
            if self.offset >= self.pending.len() {
                if !self.source_open {
                    self.close();
                }
                return;
            }
            match nix::unistd::write(pipe, &self.pending[self.offset..]) {
                Ok(n) => self.offset += n,
                Err(Errno::EAGAIN | Errno::EINTR) => return,
                // EPIPE: the payload closed its stdin; nothing more to deliver.
                Err(_) => self.close(),
            }
        }
    }

    fn close(&mut self) {
        self.pipe = None;
        self.source_open = false;
    }
}

fn forwarded() -> SigSet {
    let mut set = SigSet::empty();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(sig);
    }
    set
}

fn signal_fd() -> Option<SignalFd> {
    let set = forwarded();
    set.thread_block().ok()?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).ok()
}

fn restore_signals(fd: SignalFd) {
    drop(fd);
    let _ = forwarded().thread_unblock();
}

impl Outcome {
    pub(super) fn into_verdict(self, policy: &Policy, group: Option<&RunGroup>) -> Verdict {
        let stats = group.map(RunGroup::stats);
        let oom = stats
            .as_ref()
            .and_then(|s| s.oom_kills)
            .is_some_and(|n| n > 0);
        let exit = self.exit;
        let signal = exit.and_then(|e| e.signal).or(self.init_signal);
        let cpu_limited = policy.limits.cpu.is_some()
            && matches!(signal, Some(libc::SIGXCPU | libc::SIGKILL))
            && exit.is_some_and(|e| {
                Duration::from_micros(e.user_us + e.sys_us) + Duration::from_millis(50)
                    >= policy.limits.cpu.unwrap_or_default()
            });
        let mut message = None;
        let status = if let Some(e) = &self.setup_error {
            message = Some(format!(
                "sandbox set-up failed at {}: {}",
                e.step, e.message
            ));
            Status::SetupFailed
        } else if let Some(why @ (Status::TimeoutWall | Status::TimeoutCpu)) = self.killed_for {
            why
        } else if oom {
            Status::Oom
        } else if let Some(why @ (Status::OutputLimit | Status::SetupFailed)) = self.killed_for {
            why
        } else if let Some(e) = exit {
            match (e.code, e.signal) {
                (_, Some(libc::SIGSYS)) => Status::SeccompViolation,
                (_, Some(_)) if cpu_limited => Status::TimeoutCpu,
                (_, Some(_)) => Status::Signaled,
                (Some(0), _) => Status::Ok,
                _ => Status::ExitNonzero,
            }
        } else if self.killed_for == Some(Status::Signaled) {
            Status::Signaled
        } else {
            message = Some(format!(
                "the sandbox init ended without a report (signal {:?})",
                self.init_signal
            ));
            Status::SetupFailed
        };
        if let Some((path, errno)) = &self.exec_failed {
            let errno = Errno::from_raw(*errno);
            let what = if errno == Errno::ENOENT {
                "command not found in the sandbox"
            } else {
                "cannot execute"
            };
            message = Some(format!("execve {path:?}: {errno} ({what})"));
        }
        if self.cancelled {
            message = Some("cancelled: the caller went away before the run ended".into());
        }
        if status == Status::OutputLimit {
            message = Some(format!(
                "output exceeded {} bytes on a stream; the sandbox was killed",
                policy.limits.output
            ));
        }
        let cpu = match stats.as_ref().map(|s| (s.cpu_user_us, s.cpu_system_us)) {
            Some((Some(u), Some(s))) => CpuTime::from_micros(u, s),
            _ => exit
                .map(|e| CpuTime::from_micros(e.user_us, e.sys_us))
                .unwrap_or_default(),
        };
        let seccomp_violation = (status == Status::SeccompViolation).then(|| SeccompViolation {
            syscall: self
                .seccomp_nr
                .and_then(seccomp::syscall_name)
                .map(str::to_string),
            nr: self.seccomp_nr,
        });
        let mut verdict = Verdict {
            status,
            exit_code: exit.and_then(|e| e.code),
            signal,
            wall_ms: u64::try_from(self.wall.as_millis()).unwrap_or(u64::MAX),
            cpu_ms: cpu,
            memory_peak_bytes: stats
                .as_ref()
                .and_then(|s| s.memory_peak_bytes)
                .or(exit.map(|e| e.maxrss)),
            pids_peak: stats.as_ref().and_then(|s| s.pids_peak),
            pids_limit_hits: stats.as_ref().and_then(|s| s.pids_limit_hits),
            stdout: Stream::new(&self.stdout.data, self.stdout.total),
            stderr: Stream::new(&self.stderr.data, self.stderr.total),
            limits: policy.limits.clone(),
            enforced: Default::default(),
            policy: None,
            seccomp_violation,
            message,
        };
        if let Some((status, abi)) = self.landlock {
            verdict.enforced.landlock = crate::verdict::LandlockStatus { status, abi };
        }
        verdict
    }
}
