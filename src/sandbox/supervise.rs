//! The supervisor loop of one exec: one `poll(2)` over the init's pidfd, the program's output
//! pipes, the protocol socket, stdin, the OOM event and our own signals, with the wall-time
//! deadline (counted from hand-over) as the poll timeout.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus};

use super::echo::EchoQueue;
use super::feeder::Feeder;
use super::outcome::Outcome;
use super::protocol::{self, Exit, Up};
use super::watchdog::Deadline;
use crate::cgroup::RunGroup;
use crate::policy::{Limits, OutputMode};
use crate::verdict::Status;
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
    /// The limits this program runs under (the execution's within the sandbox's).
    pub limits: &'a Limits,
    pub pidfd: &'a OwnedFd,
    pub proto: BorrowedFd<'a>,
    pub group: Option<&'a RunGroup>,
    /// Hand-over: the wall clock of this exec starts here.
    pub started: Instant,
    /// The sandbox's seccomp listener: answers refused syscalls, kills the callers of dangerous
    /// ones. Owned by the sandbox; this exec's counts are taken from it at the end.
    pub notify: &'a mut seccomp::Notifier,
    /// Kill the sandbox as soon as the program has exited (`run`: what it left behind dies now,
    /// as when the init used to exit with its one payload).
    pub end_on_exit: bool,
    /// The sandbox's CPU accounting when this exec began, so the CPU limit and the verdict's CPU
    /// time count this exec alone.
    pub cpu_base: CpuBase,
}

/// Cgroup CPU counters at the start of an exec (zero for the first, which so also counts the
/// sandbox's set-up, as a one-shot run always has).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CpuBase {
    pub usage_us: u64,
    pub user_us: u64,
    pub system_us: u64,
}

/// The supervisor's side of the pipes, and what it is waiting for.
struct Io<'a> {
    stdout: OwnedFd,
    stderr: OwnedFd,
    proto: BorrowedFd<'a>,
    proto_open: bool,
    feeder: Feeder,
    signals: Option<SignalFd>,
    cancel: Option<BorrowedFd<'a>>,
    echo: Echo<'a>,
    /// Our stdout and stderr, for `Echo::Stdio`: written only when they can take more.
    queues: [EchoQueue; 2],
    buf: Vec<u8>,
}

/// Where the exec is: its end (program exited, or the init is gone), the program, and how many
/// interrupts we received.
#[derive(Default)]
struct Progress {
    ended: Option<Instant>,
    /// The program's pid inside the sandbox and its pidfd, once the agent said `Started`.
    program: Option<(i32, OwnedFd)>,
    /// Exits the init reported before `Started` arrived (one may be the program's).
    early: Vec<Exit>,
    interrupts: u32,
}

/// Most early exits kept: orphans of earlier execs ending now are not worth more.
const EARLY_EXITS: usize = 64;

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
const ECHO_OUT: usize = 9;
const ECHO_ERR: usize = 10;
const NOTIFY: usize = 11;
const SLOTS: usize = 12;

impl<'a> Supervisor<'a> {
    /// Supervise until the program has exited (or the init is gone) and its pipes are drained.
    pub fn run(mut self, opts: &'a super::ExecOptions<'a>, pipes: [OwnedFd; 3]) -> Outcome {
        let [stdin, stdout, stderr] = pipes;
        let mut io = Io {
            stdout,
            stderr,
            proto: self.proto,
            proto_open: true,
            feeder: Feeder::new(&opts.stdin, stdin),
            signals: opts.forward_signals.then(signal_fd).flatten(),
            cancel: opts.cancel,
            echo: opts.echo,
            queues: [1, 2].map(|fd| EchoQueue::new(fd, self.limits.output)),
            buf: vec![0u8; CHUNK],
        };
        let mut out = Outcome::new();
        let deadline = Deadline::default();
        let wall = self.limits.wall.map(|w| self.started + w);
        std::thread::scope(|scope| {
            let timer = wall.map(|at| deadline.start(scope, at, self.pidfd.as_fd()));
            self.supervise(&mut io, &mut out, &deadline);
            deadline.stop();
            drop(timer);
        });
        if deadline.fired() {
            // The timer killed the sandbox while the loop was elsewhere.
            out.killed_for.get_or_insert(Status::TimeoutWall);
        }
        for queue in &mut io.queues {
            queue.finish();
        }
        (out.seccomp_violation, out.seccomp_denied) = self.notify.take_counts();
        out
    }

    /// The loop proper: until the program has exited (or the init is gone) and the pipes are
    /// drained. The wall clock stops at the program's exit: draining is not its time.
    fn supervise(&mut self, io: &mut Io, out: &mut Outcome, deadline: &Deadline) {
        let mut run = Progress::default();
        loop {
            let now = Instant::now();
            let drained = !(out.stdout.open || out.stderr.open);
            if run
                .ended
                .is_some_and(|done| drained || now >= done + DRAIN_GRACE)
            {
                break;
            }
            if out.killed_for.is_none() && run.ended.is_none() {
                self.enforce_time_limits(now, out);
            }
            let ready = self.poll_once(io, out, &run, self.timeout(now, out, &run));
            self.handle(ready, io, out, &mut run);
            if run.ended.is_some() {
                deadline.stop();
            }
        }
        if let Some(sigs) = io.signals.take() {
            restore_signals(sigs);
        }
    }

    /// Wall time from the deadline; CPU time from the cgroup's accounting.
    fn enforce_time_limits(&self, now: Instant, out: &mut Outcome) {
        let limits = self.limits;
        if limits.wall.is_some_and(|w| now >= self.started + w) {
            self.kill(out, Status::TimeoutWall);
        } else if let (Some(cpu), Some(used)) =
            (limits.cpu, self.group.and_then(RunGroup::cpu_usage_us))
        {
            if Duration::from_micros(used.saturating_sub(self.cpu_base.usage_us)) >= cpu {
                self.kill(out, Status::TimeoutCpu);
            }
        }
    }

    /// Until the next thing to check: the wall deadline, the next CPU poll, or the end of draining.
    fn timeout(&self, now: Instant, out: &Outcome, run: &Progress) -> Duration {
        if let Some(done) = run.ended {
            return (done + DRAIN_GRACE).saturating_duration_since(now);
        }
        let mut timeout = Duration::from_secs(3600);
        if out.killed_for.is_none() {
            if let Some(w) = self.limits.wall {
                timeout = timeout.min((self.started + w).saturating_duration_since(now));
            }
            if self.limits.cpu.is_some() && self.group.is_some() {
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
            (!out.init_gone).then(|| (self.pidfd.as_fd(), PollFlags::POLLIN)),
            out.stdout
                .open
                .then(|| (io.stdout.as_fd(), PollFlags::POLLIN)),
            out.stderr
                .open
                .then(|| (io.stderr.as_fd(), PollFlags::POLLIN)),
            // After the program's end, what comes belongs to no one: leave it for the next exec.
            (io.proto_open && run.ended.is_none()).then_some((io.proto, PollFlags::POLLIN)),
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
            io.queues[0]
                .wants_output()
                .map(|fd| (fd, PollFlags::POLLOUT)),
            io.queues[1]
                .wants_output()
                .map(|fd| (fd, PollFlags::POLLOUT)),
            self.notify.poll_fd().map(|fd| (fd, PollFlags::POLLIN)),
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
            self.read_stream(Channel::Stdout, io, out);
        }
        if ready[STDERR] {
            self.read_stream(Channel::Stderr, io, out);
        }
        for (slot, queue) in [ECHO_OUT, ECHO_ERR].into_iter().zip(&mut io.queues) {
            if ready[slot] {
                queue.write_some();
            }
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
                // To the program itself, which may exit cleanly; a second one kills.
                let signal = i32::try_from(info.ssi_signo).unwrap_or(libc::SIGTERM);
                let target = run
                    .program
                    .as_ref()
                    .map_or(self.pidfd.as_fd(), |p| p.1.as_fd());
                let _ = sys::pidfd_send_signal(target, signal);
            } else {
                self.kill(out, Status::Signaled);
            }
        }
        if ready[CANCEL] {
            // The caller went away (or asked to stop): nobody is left to read the result.
            out.cancelled = true;
            self.kill(out, Status::Signaled);
        }
        if ready[NOTIFY] && self.notify.serve() == seccomp::Served::EndRun {
            self.kill(out, Status::SeccompViolation);
        }
        if ready[PIDFD] {
            self.reap_init(io, out, run);
        }
    }

    fn read_protocol(&self, io: &mut Io, out: &mut Outcome, run: &mut Progress) {
        let (msg, mut fds) = match protocol::recv::<Up>(io.proto, true) {
            Ok(Some(received)) => received,
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
            Up::Started { pid } => {
                let Some(pidfd) = fds.pop() else { return };
                run.program = Some((pid, pidfd));
                if let Some(exit) = run.early.iter().find(|e| e.pid == pid).copied() {
                    self.finish(exit, io, out, run);
                }
            }
            Up::ExecFailed { path, errno } => out.exec_failed = Some((path, errno)),
            // pid 0: the agent refused the exec before any program started.
            Up::Exited(exit) => match &run.program {
                _ if exit.pid == 0 => self.finish(exit, io, out, run),
                Some((pid, _)) if *pid == exit.pid => self.finish(exit, io, out, run),
                // An orphan of an earlier program.
                Some(_) => {}
                None => {
                    if run.early.len() == EARLY_EXITS {
                        run.early.remove(0);
                    }
                    run.early.push(exit);
                }
            },
            Up::Ready { .. } | Up::Listening { .. } => {}
        }
    }

    /// The program ended: its verdict is decided, only draining its pipes is left.
    fn finish(&self, exit: Exit, io: &mut Io, out: &mut Outcome, run: &mut Progress) {
        out.exit = Some(exit);
        out.wall = self.started.elapsed();
        run.ended = Some(Instant::now());
        io.feeder.close();
        if self.end_on_exit {
            let _ = sys::pidfd_send_signal(self.pidfd.as_fd(), libc::SIGKILL);
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
            out.init_gone = true;
            if run.ended.is_none() {
                out.wall = self.started.elapsed();
                run.ended = Some(Instant::now());
            }
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

    fn read_stream(&self, channel: Channel, io: &mut Io, out: &mut Outcome) {
        let (fd, which) = match channel {
            Channel::Stdout => (&io.stdout, 1u8),
            Channel::Stderr => (&io.stderr, 2),
        };
        let buf = &mut io.buf;
        let n = match nix::unistd::read(fd, buf) {
            Ok(0) | Err(Errno::EBADF) => 0,
            Ok(n) => n,
            Err(_) => return,
        };
        let cap = self.limits.output;
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
            match io.echo {
                Echo::Off => {}
                Echo::Stdio => io.queues[usize::from(which - 1)].push(keep),
                Echo::Callback(f) => f(channel, keep),
            }
        }
        if capture.total > cap && self.limits.output_mode == OutputMode::Kill {
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
