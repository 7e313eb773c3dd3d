//! Inside the new namespaces: the ordered set-up. The order in `init` and `payload` *is* the
//! security model (DESIGN §1); each step says why it sits where it sits.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};

use super::cause::{Cause, setup_error};
use super::protocol::{self, CHILD_FD, Exit, SetupError, Up};
use crate::fs::MountOp;
use crate::policy::{NetworkMode, Policy};
use crate::rlimit::Rlimit;
use crate::{caps, fs, landlock, ns, rlimit, seccomp, sys};

/// Everything the child needs, prepared (and allocated) by the parent before `clone3`.
pub(super) struct Spec<'a> {
    pub policy: &'a Policy,
    pub plan: &'a [MountOp],
    pub scratch: &'a Path,
    pub filters: &'a seccomp::Filters,
    pub init_filters: &'a seccomp::Filters,
    pub argv: &'a [CString],
    pub envp: &'a [CString],
    pub rlimits: &'a [Rlimit],
    pub cap_last_cap: u32,
    /// Inherited memory to zero: the caller's argv and environment blocks.
    pub scrub: [(usize, usize); 2],
    /// Child ends of the pipes: go (read), stdin (read), stdout, stderr, protocol (write).
    pub fds: [RawFd; 5],
}

/// The release pipe in the child (after `stdio`); closed before the payload is forked.
const GO_FD: RawFd = CHILD_FD + 1;

/// Signals the init forwards to the payload.
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
fn report(msg: &Up) {
    let _ = protocol::send(sys::borrow_fd(CHILD_FD), msg, &[]);
}

/// Entry point of the cloned child, PID 1 of the new PID namespace. Never returns.
pub(super) fn init(spec: &Spec) -> ! {
    // CHILD_FD holds the protocol socket from `stdio` on; before that a send fails harmlessly.
    let payload = match setup(spec) {
        Ok(pid) => pid,
        Err(e) => {
            report(&Up::SetupFailed(e));
            sys::exit_now(125);
        }
    };
    let exit = supervise(payload);
    protocol::send_exit(sys::borrow_fd(CHILD_FD), &exit);
    // Our exit tears down the PID namespace: every process the payload left behind is killed.
    sys::exit_now(0)
}

/// Steps 4-11 of DESIGN §1, then the fork of the payload.
fn setup(spec: &Spec) -> Step<Pid> {
    // The parent writes the id maps, then releases us; EOF means it died.
    wait_for_byte(spec.fds[0])?;
    // Die with the supervisor; set before anything else can block.
    step(
        "prctl(PR_SET_PDEATHSIG)",
        sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as u64),
    )?;
    // Only the sandbox's own pipes survive: nothing of the caller's fds is reachable from inside.
    stdio(spec.fds)?;
    // Root inside the userns; without it file creation on the new tmpfs fails with EOVERFLOW.
    step("user namespace ids", ns::become_root())?;
    step("hostname", ns::set_hostname(&spec.policy.hostname))?;
    // Nothing mounted from here on may propagate to the host.
    step("mount propagation", fs::make_private())?;
    // The new root, with a fresh /proc, built while the old root is still visible (proc needs it).
    step("mount tree", fs::build(spec.scratch, spec.plan))?;
    step("pivot_root", fs::enter(spec.scratch))?;
    // Cheap second lock on nested user namespaces, effective even without seccomp.
    step("nested user namespaces", ns::forbid_nested_userns())?;
    if spec.policy.network == NetworkMode::Loopback {
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
    // Block forwarded signals before the fork so none is lost; the payload unblocks them.
    let mask = init_mask();
    step("sigprocmask", mask.thread_block())?;
    for sig in FORWARDED {
        // PID 1 only receives signals it has a handler for (pid_namespaces(7)).
        step("sigaction", sys::install_noop_handler(sig as i32))?;
    }
    // Meanwhile the parent attached our cgroups (a v1 migration waits for an RCU grace period,
    // ~10 ms, so it overlaps the set-up above); nothing the payload runs may escape the limits.
    wait_for_byte(GO_FD)?;
    step("close", nix::unistd::close(GO_FD))?;
    match step("fork payload", sys::fork())? {
        ForkResult::Child => payload(spec),
        ForkResult::Parent { child } => {
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

/// Steps 12-17 in the payload process. Never returns.
fn payload(spec: &Spec) -> ! {
    let proto = sys::borrow_fd(CHILD_FD);
    let failed = |e: SetupError| -> ! {
        report(&Up::SetupFailed(e));
        sys::exit_now(125)
    };
    let ready = (|| -> Step<landlock::Outcome> {
        step("sigprocmask", SigSet::empty().thread_set_mask())?;
        step("rlimits", rlimit::apply(spec.rlimits))?;
        step("chdir", nix::unistd::chdir(&spec.policy.cwd))?;
        // After every mount (Landlock forbids mount) and before caps go (it needs no caps, but the
        // order keeps "filesystem view final" before "privileges gone").
        let outcome = step(
            "landlock",
            landlock::apply(
                &spec.policy.landlock,
                spec.policy.network,
                spec.policy.best_effort.landlock,
            ),
        )?;
        step("drop capabilities", caps::drop_all(spec.cap_last_cap))?;
        step(
            "prctl(PR_SET_NO_NEW_PRIVS)",
            sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1),
        )?;
        // The protocol socket must not survive a successful execve.
        step(
            "fcntl(FD_CLOEXEC)",
            nix::fcntl::fcntl(
                proto,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            ),
        )?;
        // Seccomp last: everything above uses syscalls the allowlist refuses.
        step("seccomp", spec.filters.apply())?;
        Ok(outcome)
    })();
    let outcome = ready.unwrap_or_else(|e| failed(e));
    report(&Up::Ready {
        landlock_status: outcome.status.into(),
        landlock_abi: outcome.abi,
    });
    let (path, errno) = exec(spec);
    report(&Up::ExecFailed {
        path,
        errno: errno as i32,
    });
    sys::exit_now(if errno == Errno::ENOENT { 127 } else { 126 })
}

/// `execve` the command, searching the sandbox's `PATH` (not the caller's: glibc's execvpe reads
/// the current environment). Returns only on failure.
fn exec(spec: &Spec) -> (String, Errno) {
    let name = spec.argv[0].to_string_lossy().into_owned();
    let candidates: Vec<PathBuf> = if name.contains('/') {
        vec![PathBuf::from(&name)]
    } else {
        let path = spec
            .policy
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map_or("/usr/bin:/bin", |(_, v)| v.as_str());
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join(&name))
            .collect()
    };
    let mut last = (name.clone(), Errno::ENOENT);
    for candidate in candidates {
        let Ok(c) = fs::cstring(&candidate) else {
            continue;
        };
        let err = nix::unistd::execve(&c, spec.argv, spec.envp).unwrap_err();
        // Like execvp: remember a permission problem over a plain "not here".
        if err != Errno::ENOENT || last.1 == Errno::ENOENT {
            last = (candidate.display().to_string(), err);
        }
    }
    last
}

/// Wait for the payload, forward signals, reap every orphan; return how the payload ended.
fn supervise(payload: Pid) -> Exit {
    let mask = init_mask();
    let status: (Option<i32>, Option<i32>);
    'outer: loop {
        let Ok(sig) = sys::sigwait(&mask) else {
            continue;
        };
        if sig != libc::SIGCHLD {
            let _ = nix::sys::signal::kill(payload, Signal::try_from(sig).ok());
            continue;
        }
        loop {
            match nix::sys::wait::waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == payload => status = (Some(code), None),
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == payload => {
                    status = (None, Some(sig as i32))
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
            break 'outer;
        }
    }
    let (user_us, sys_us, maxrss) = sys::children_rusage();
    Exit {
        code: status.0,
        signal: status.1,
        user_us,
        sys_us,
        maxrss,
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

/// Move the pipes to 0-4 and close everything else.
fn stdio(fds: [RawFd; 5]) -> Step {
    let [go, stdin, stdout, stderr, proto] = fds;
    let mut moved = [0; 5];
    // Copy every source above the targets first, so no dup2 clobbers a source not yet moved.
    for (slot, from) in moved.iter_mut().zip([stdin, stdout, stderr, proto, go]) {
        *slot = step("fcntl(F_DUPFD)", sys::dup_above(from, 64))?;
    }
    for (from, to) in moved.into_iter().zip([0, 1, 2, CHILD_FD, GO_FD]) {
        step("dup2", sys::dup2(from, to))?;
    }
    step("close_range", sys::close_from(GO_FD + 1))
}
