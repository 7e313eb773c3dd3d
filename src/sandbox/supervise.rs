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

use super::feeder::Feeder;
use super::protocol::{self, Exit, Up};
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
pub(super) const CHUNK: usize = 64 * 1024;

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

/// The supervisor's side of the pipes, and what it is waiting for.
struct Io<'a> {
    stdout: OwnedFd,
    stderr: OwnedFd,
    proto: OwnedFd,
    proto_open: bool,
    feeder: Feeder,
    signals: Option<SignalFd>,
    cancel: Option<BorrowedFd<'a>>,
    echo: Echo<'a>,
    buf: Vec<u8>,
}

/// Where the run is: the init's end, the payload's host pid (for the seccomp audit record), and
/// how many interrupts we received.
#[derive(Default)]
struct Progress {
    init_done: Option<Instant>,
    payload_pid: Option<i32>,
    interrupts: u32,
}

/// Poll slots, in the order `poll_once` fills them.
const PIDFD: usize = 0;
const STDOUT: usize = 1;
const STDERR: usize = 2;
const PROTO: usize = 3;
const STDIN_SOURCE: usize = 4;
const STDIN_PIPE: usize = 5;
const EVENTS: usize = 6;
const SIGNALS: usize = 7;
const CANCEL: usize = 8;
const SLOTS: usize = 9;

impl<'a> Supervisor<'a> {
    /// Supervise until the init is gone and the pipes are drained.
    pub fn run(mut self, opts: &'a super::RunOptions<'a>, pipes: [OwnedFd; 4]) -> Outcome {
        let [stdin, stdout, stderr, proto] = pipes;
        let mut io = Io {
            stdout,
            stderr,
            proto,
            proto_open: true,
            feeder: Feeder::new(&opts.stdin, stdin),
            signals: opts.forward_signals.then(signal_fd).flatten(),
            cancel: opts.cancel,
            echo: opts.echo,
            buf: vec![0u8; CHUNK],
        };
        let mut out = Outcome::new();
        let mut run = Progress::default();
        loop {
            let now = Instant::now();
            let drained = !(out.stdout.open || out.stderr.open || io.proto_open);
            if run
                .init_done
                .is_some_and(|done| drained || now >= done + DRAIN_GRACE)
            {
                break;
            }
            if out.killed_for.is_none() && run.init_done.is_none() {
                self.enforce_time_limits(now, &mut out);
            }
            let ready = self.poll_once(&io, &out, &run, self.timeout(now, &out, &run));
            self.handle(ready, &mut io, &mut out, &mut run);
        }
        if let Some(sigs) = io.signals.take() {
            restore_signals(sigs);
        }
        if out.exit.is_some_and(|e| e.signal == Some(libc::SIGSYS)) {
            out.seccomp_nr = self
                .kmsg
                .as_mut()
                .and_then(|k| k.find_kill(run.payload_pid));
        }
        out
    }

    /// Wall time from the deadline; CPU time from the cgroup's accounting.
    fn enforce_time_limits(&self, now: Instant, out: &mut Outcome) {
        let limits = &self.policy.limits;
        if limits.wall.is_some_and(|w| now >= self.started + w) {
            self.kill(out, Status::TimeoutWall);
        } else if let (Some(cpu), Some(used)) =
            (limits.cpu, self.group.and_then(RunGroup::cpu_usage_us))
        {
            if Duration::from_micros(used) >= cpu {
                self.kill(out, Status::TimeoutCpu);
            }
        }
    }

    /// Until the next thing to check: the wall deadline, the next CPU poll, or the end of draining.
    fn timeout(&self, now: Instant, out: &Outcome, run: &Progress) -> Duration {
        if let Some(done) = run.init_done {
            return (done + DRAIN_GRACE).saturating_duration_since(now);
        }
        let mut timeout = Duration::from_secs(3600);
        if out.killed_for.is_none() {
            if let Some(w) = self.policy.limits.wall {
                timeout = timeout.min((self.started + w).saturating_duration_since(now));
            }
            if self.policy.limits.cpu.is_some() && self.group.is_some() {
                timeout = timeout.min(CPU_POLL);
            }
        }
        timeout
    }

    /// One `poll(2)` over everything still open; which slots are ready.
    fn poll_once(
        &self,
        io: &Io,
        out: &Outcome,
        run: &Progress,
        timeout: Duration,
    ) -> [bool; SLOTS] {
        let slots: [Option<(BorrowedFd, PollFlags)>; SLOTS] = [
            run.init_done
                .is_none()
                .then(|| (self.pidfd.as_fd(), PollFlags::POLLIN)),
            out.stdout
                .open
                .then(|| (io.stdout.as_fd(), PollFlags::POLLIN)),
            out.stderr
                .open
                .then(|| (io.stderr.as_fd(), PollFlags::POLLIN)),
            io.proto_open.then(|| (io.proto.as_fd(), PollFlags::POLLIN)),
            io.feeder
                .wants_input()
                .then(|| (sys::borrow_fd(0), PollFlags::POLLIN)),
            io.feeder
                .wants_output()
                .then(|| (io.feeder.pipe_fd(), PollFlags::POLLOUT)),
            self.group
                .and_then(RunGroup::event_fd)
                .map(|fd| (fd, PollFlags::POLLIN)),
            io.signals.as_ref().map(|s| (s.as_fd(), PollFlags::POLLIN)),
            io.cancel
                .filter(|_| !out.cancelled)
                .map(|fd| (fd, PollFlags::POLLIN)),
        ];
        let mut pfds: Vec<PollFd> = Vec::with_capacity(SLOTS);
        let mut index = [usize::MAX; SLOTS];
        for (slot, entry) in slots.iter().enumerate() {
            if let Some((fd, flags)) = entry {
                index[slot] = pfds.len();
                pfds.push(PollFd::new(*fd, *flags));
            }
        }
        let ms = u16::try_from(timeout.as_millis().max(1)).unwrap_or(u16::MAX);
        if let Err(e) = nix::poll::poll(&mut pfds, PollTimeout::from(ms)) {
            if e != Errno::EINTR {
                tracing::error!("poll: {e}");
            }
            return [false; SLOTS];
        }
        std::array::from_fn(|slot| {
            index[slot] != usize::MAX && pfds[index[slot]].revents().is_some_and(|r| !r.is_empty())
        })
    }

    fn handle(&mut self, ready: [bool; SLOTS], io: &mut Io, out: &mut Outcome, run: &mut Progress) {
        if ready[STDOUT] {
            self.read_stream(&io.stdout, 1, out, &mut io.buf, io.echo);
        }
        if ready[STDERR] {
            self.read_stream(&io.stderr, 2, out, &mut io.buf, io.echo);
        }
        if ready[PROTO] {
            self.read_protocol(io, out, run);
        }
        if ready[STDIN_SOURCE] {
            io.feeder.fill();
        }
        if ready[STDIN_PIPE] || io.feeder.wants_output() {
            io.feeder.flush();
        }
        if let (true, Some(fd)) = (ready[EVENTS], self.group.and_then(RunGroup::event_fd)) {
            // Drain the eventfd/inotify so poll does not spin; the OOM count is read at the end.
            let _ = nix::unistd::read(fd, &mut io.buf);
        }
        let signal = ready[SIGNALS]
            .then(|| io.signals.as_ref().map(SignalFd::read_signal))
            .flatten();
        if let Some(Ok(Some(info))) = signal {
            run.interrupts += 1;
            if run.interrupts == 1 {
                // The init forwards it to the payload, which may exit cleanly; a second one kills.
                let signal = i32::try_from(info.ssi_signo).unwrap_or(libc::SIGTERM);
                let _ = sys::pidfd_send_signal(self.pidfd.as_fd(), signal);
            } else {
                self.kill(out, Status::Signaled);
            }
        }
        if ready[CANCEL] {
            // The caller went away (or asked to stop): nobody is left to read the result.
            out.cancelled = true;
            self.kill(out, Status::Signaled);
        }
        if ready[PIDFD] {
            self.reap_init(io, out, run);
        }
    }

    fn read_protocol(&self, io: &mut Io, out: &mut Outcome, run: &mut Progress) {
        let msg = match protocol::recv::<Up>(io.proto.as_fd(), true) {
            Ok(Some((msg, _))) => msg,
            Ok(None) => {
                io.proto_open = false;
                return;
            }
            Err(protocol::ProtocolError::Io {
                errno: Errno::EAGAIN | Errno::EINTR,
                ..
            }) => return,
            Err(protocol::ProtocolError::Io { errno, .. }) => {
                tracing::warn!("protocol socket: {errno}");
                io.proto_open = false;
                return;
            }
            Err(e) => {
                tracing::warn!("from the sandbox: {e}");
                return;
            }
        };
        match msg {
            Up::SetupFailed(e) => out.setup_error = Some(e),
            Up::Ready {
                landlock_status,
                landlock_abi,
            } => {
                out.landlock = Some((landlock_status, landlock_abi));
                run.payload_pid = sys::children_of(self.pid).first().copied();
            }
            Up::ExecFailed { path, errno } => out.exec_failed = Some((path, errno)),
            Up::Exited(exit) => out.exit = Some(exit),
            Up::Listening { .. } => {}
        }
    }

    fn reap_init(&self, io: &mut Io, out: &mut Outcome, run: &mut Progress) {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG;
        let Ok(status) = nix::sys::wait::waitid(Id::PIDFd(self.pidfd.as_fd()), flags) else {
            return;
        };
        if let WaitStatus::Signaled(_, sig, _) = status {
            out.init_signal = Some(sig as i32);
        }
        if !matches!(status, WaitStatus::StillAlive) {
            out.wall = self.started.elapsed();
            run.init_done = Some(Instant::now());
            io.feeder.close();
        }
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
    fn new() -> Outcome {
        let open = || Capture {
            open: true,
            ..Capture::default()
        };
        Outcome {
            exit: None,
            init_signal: None,
            setup_error: None,
            exec_failed: None,
            landlock: None,
            killed_for: None,
            stdout: open(),
            stderr: open(),
            wall: Duration::ZERO,
            seccomp_nr: None,
            cancelled: false,
        }
    }

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
