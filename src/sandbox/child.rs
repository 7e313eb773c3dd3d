//! Inside the new namespaces: the ordered set-up. The order in `setup` (the init) and `lock` (the
//! agent, whose locks every program run in the sandbox inherits) *is* the security model
//! (DESIGN §1); each step says why it sits where it sits.

use std::os::fd::RawFd;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::{ForkResult, Pid};

use super::agent;
use super::cause::{Cause, setup_error};
use super::protocol::{self, CHILD_FD, Exit, SetupError, Up};
use crate::fs::MountOp;
use crate::policy::{NetworkMode, Shape};
use crate::rlimit::Rlimit;
use crate::{caps, fs, landlock, ns, rlimit, seccomp, sys};

/// Everything the child needs, prepared (and allocated) by the parent before `clone3`.
pub(super) struct Spec<'a> {
    pub shape: &'a Shape,
    pub plan: &'a [MountOp],
    pub scratch: &'a Path,
    pub filters: &'a seccomp::Filters,
    pub init_filters: &'a seccomp::Filters,
    pub rlimits: &'a [Rlimit],
    pub cap_last_cap: u32,
    /// Give the sandbox a time namespace of its own (the kernel has them).
    pub time_ns: bool,
    /// Inherited memory to zero: the caller's argv and environment blocks.
    pub scrub: [(usize, usize); 2],
    /// Descriptors for the child: the release pipe (read end), `/dev/null` (becomes 0-2; each
    /// program gets its own stdio over the protocol), the child's end of the protocol socket,
    /// and the child's end of the seccomp listener hand-over socket.
    pub fds: [RawFd; 4],
}

/// The release pipe in the child (from `stdio` on); closed before the agent is forked.
const GO_FD: RawFd = CHILD_FD + 1;
/// The socket the agent sends its seccomp listener on; closed once it has (and by the init).
const NOTIFY_FD: RawFd = GO_FD + 1;

/// The agent's pid inside the sandbox, out of the way: programs start from pid 2, as a one-shot
/// payload always has.
const AGENT_PID: u32 = 1000;

/// Signals the init forwards (to the agent, which ignores them: the supervisor signals programs
/// directly through their pidfds).
const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

type Step<T = ()> = Result<T, SetupError>;

fn step<T, E: Cause>(name: &str, r: Result<T, E>) -> Step<T> {
    r.map_err(|e| setup_error(name, &e))
}

/// Best effort: if the supervisor is gone there is nobody to tell.
pub(super) fn report(msg: &Up) {
    let _ = protocol::send(sys::borrow_fd(CHILD_FD), msg, &[]);
}

/// Entry point of the cloned child, PID 1 of the new PID namespace. Never returns.
pub(super) fn init(spec: &Spec) -> ! {
    // CHILD_FD holds the protocol socket from `stdio` on; before that a send fails harmlessly.
    let agent = match setup(spec) {
        Ok(pid) => pid,
        Err(e) => {
            report(&Up::SetupFailed(e));
            sys::exit_now(125);
        }
    };
    let code = supervise(agent);
    // Our exit tears down the PID namespace: every process left behind is killed.
    sys::exit_now(code)
}

/// Steps 4-11 of DESIGN §1, then the fork of the agent.
fn setup(spec: &Spec) -> Step<Pid> {
    // Only the sandbox's own pipes survive: nothing of the caller's fds is reachable from inside.
    // First, so that our inherited copy of the release pipe's write end is closed before we wait.
    stdio(spec.fds)?;
    // The parent writes the id maps, then releases us; EOF means it died.
    wait_for_byte(GO_FD)?;
    // Before the uid change: that makes us non-dumpable, and /proc/self/timens_offsets then
    // belongs to the host's root; before the agent's fork, the first process to enter it.
    if spec.time_ns {
        step("time namespace", ns::enter_time_namespace())?;
    }
    // Root inside the userns; without it file creation on the new tmpfs fails with EOVERFLOW.
    step("user namespace ids", ns::become_root())?;
    // Die with the supervisor. After the uid change: a change of effective uid clears the
    // parent-death signal (prctl(2)), and as root the outer uid does change here.
    step(
        "prctl(PR_SET_PDEATHSIG)",
        sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as u64),
    )?;
    // The supervisor may have died before the line above: it holds the release pipe's write end
    // for the sandbox's whole life, so a hang-up there means it is gone.
    if sys::hung_up(GO_FD) {
        sys::exit_now(125);
    }
    step("hostname", ns::set_hostname(&spec.shape.hostname))?;
    // Nothing mounted from here on may propagate to the host.
    step("mount propagation", fs::make_private())?;
    // The new root, with a fresh /proc, built while the old root is still visible (proc needs it).
    step("mount tree", fs::build(spec.scratch, spec.plan))?;
    step("pivot_root", fs::enter(spec.scratch))?;
    // Cheap second lock on nested user namespaces, effective even without seccomp.
    step("nested user namespaces", ns::forbid_nested_userns())?;
    if spec.shape.network == NetworkMode::Loopback {
        step("loopback interface", sys::loopback_up())?;
    }
    // A new session: no controlling terminal, so TIOCSTI has nothing to inject into.
    step("setsid", nix::unistd::setsid())?;
    step(
        "prctl(PR_SET_DUMPABLE, 0)",
        sys::prctl(libc::PR_SET_DUMPABLE, 0),
    )?;
    // The caller's session keyring must not be reachable (keyctl is also denied by seccomp).
    step(
        "keyctl(KEYCTL_JOIN_SESSION_KEYRING)",
        sys::join_new_session_keyring(),
    )?;
    // /proc/1/cmdline and /proc/1/environ would otherwise show the caller's argv and environment.
    for (start, end) in spec.scrub {
        sys::scrub_memory(start, end);
    }
    // Block forwarded signals before the fork so none is lost; the agent unblocks them.
    let mask = init_mask();
    step("sigprocmask", mask.thread_block())?;
    for sig in FORWARDED {
        // PID 1 only receives signals it has a handler for (pid_namespaces(7)).
        step("sigaction", sys::install_noop_handler(sig as i32))?;
    }
    // Meanwhile the parent attached our cgroups (a v1 migration waits for an RCU grace period,
    // ~10 ms, so it overlaps the set-up above); nothing the sandbox runs may escape the limits.
    wait_for_byte(GO_FD)?;
    step("close", nix::unistd::close(GO_FD))?;
    // Cosmetic, so best effort: the agent takes a pid out of the way of the programs'.
    let _ = ns::set_last_pid(AGENT_PID - 1);
    match step("fork agent", sys::fork())? {
        ForkResult::Child => agent(spec),
        ForkResult::Parent { child } => {
            step("close", nix::unistd::close(NOTIFY_FD))?;
            // The init keeps no privileges either: it only waits, reaps and forwards.
            step(
                "drop capabilities (init)",
                caps::drop_all(spec.cap_last_cap),
            )?;
            step(
                "prctl(PR_SET_NO_NEW_PRIVS)",
                sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1),
            )?;
            step("seccomp (init)", spec.init_filters.apply())?;
            Ok(child)
        }
    }
}

/// The agent: steps 12-16 once, then it waits at the pre-exec point and serves the supervisor's
/// requests (`agent::serve`), forking every program from this locked-down state. Never returns.
fn agent(spec: &Spec) -> ! {
    match lock(spec) {
        Ok(landlock) => {
            report(&Up::Ready {
                landlock_status: landlock.status.into(),
                landlock_abi: landlock.abi,
            });
            agent::serve()
        }
        Err(e) => {
            report(&Up::SetupFailed(e));
            sys::exit_now(125)
        }
    }
}

/// Steps 12-16: the locks of every program the sandbox runs, applied to the agent that forks them.
fn lock(spec: &Spec) -> Step<landlock::Outcome> {
    // The first program gets pid 2 (capabilities are still there to write ns_last_pid).
    let _ = ns::set_last_pid(1);
    // A signal the init forwards must not end the agent; a write beyond RLIMIT_FSIZE fails with
    // EFBIG instead of killing it (programs get both back at their defaults).
    for sig in FORWARDED {
        step("sigaction", sys::install_noop_handler(sig as i32))?;
    }
    step("sigaction(SIGXFSZ)", sys::set_ignored(libc::SIGXFSZ, true))?;
    step("sigprocmask", SigSet::empty().thread_set_mask())?;
    step("rlimits", rlimit::apply(spec.rlimits))?;
    // After every mount (Landlock forbids mount) and before caps go (it needs no caps, but the
    // order keeps "filesystem view final" before "privileges gone").
    let outcome = step(
        "landlock",
        landlock::apply(
            &spec.shape.landlock,
            spec.shape.network,
            spec.shape.best_effort.landlock,
        ),
    )?;
    step("drop capabilities", caps::drop_all(spec.cap_last_cap))?;
    step(
        "prctl(PR_SET_NO_NEW_PRIVS)",
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1),
    )?;
    // The protocol socket must not survive a program's execve.
    step(
        "fcntl(FD_CLOEXEC)",
        nix::fcntl::fcntl(
            sys::borrow_fd(CHILD_FD),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        ),
    )?;
    // Seccomp last: everything above uses syscalls the allowlist refuses. The listener goes to
    // the supervisor, which answers refused calls of every program the agent forks (they all
    // inherit this filter); the agent keeps no copy of it.
    step(
        "seccomp",
        spec.filters.apply_notifying(sys::borrow_fd(NOTIFY_FD)),
    )?;
    step("close", nix::unistd::close(NOTIFY_FD))?;
    Ok(outcome)
}

/// Forward signals to the agent and reap every child: report each program's end (programs are
/// the agent's siblings, so our children) until the agent itself ends; return its exit code.
fn supervise(agent: Pid) -> i32 {
    let mask = init_mask();
    loop {
        let Ok(sig) = sys::sigwait(&mask) else {
            continue;
        };
        if sig != libc::SIGCHLD {
            let _ = nix::sys::signal::kill(agent, Signal::try_from(sig).ok());
            continue;
        }
        while let Ok(Some((pid, r))) = sys::reap(-1, true) {
            if pid == agent.as_raw() {
                return r.code.unwrap_or(128 + r.signal.unwrap_or(0));
            }
            let exit = Exit {
                pid,
                code: r.code,
                signal: r.signal,
                user_us: r.user_us,
                sys_us: r.sys_us,
                maxrss: r.maxrss,
            };
            protocol::send_exit(sys::borrow_fd(CHILD_FD), &exit);
        }
    }
}

fn init_mask() -> SigSet {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for sig in FORWARDED {
        mask.add(sig);
    }
    mask
}

fn wait_for_byte(fd: RawFd) -> Step {
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(sys::borrow_fd(fd), &mut byte) {
            Ok(1) => return Ok(()),
            Err(Errno::EINTR) => continue,
            // The parent died or gave up before releasing us.
            _ => sys::exit_now(125),
        }
    }
}

/// Put `/dev/null` on 0-2, the protocol socket on 3, the release pipe on 4 and the listener
/// hand-over socket on 5; close the rest.
fn stdio(fds: [RawFd; 4]) -> Step {
    let [go, null, proto, notify] = fds;
    let mut moved = [0; 6];
    // Copy every source above the targets first, so no dup2 clobbers a source not yet moved.
    for (slot, from) in moved.iter_mut().zip([null, null, null, proto, go, notify]) {
        *slot = step("fcntl(F_DUPFD)", sys::dup_above(from, 64))?;
    }
    for (from, to) in moved.into_iter().zip([0, 1, 2, CHILD_FD, GO_FD, NOTIFY_FD]) {
        step("dup2", sys::dup2(from, to))?;
    }
    step("close_range", sys::close_from(NOTIFY_FD + 1))
}
