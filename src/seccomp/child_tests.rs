//! Irreversible in-process tests: each one forks, installs a filter in the child, tries system
//! calls and reports through a pipe or its exit status. The payload filter sends refused calls
//! to a listener, so the parent serves it with the real [`Notifier`] while the child runs.
//!
//! The test harness is multi-threaded, so a forked child may inherit locked malloc or stdio
//! locks: children only make raw system calls on memory prepared before `fork`, then `_exit`.
//! Probe arguments are chosen so that, without the filter, the kernel would fail them with a
//! different errno (or succeed), which makes a filter hit unmistakable.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, FromRawFd};

use super::*;

type Call = fn() -> i64;

/// `-errno` for a failed raw call, the return value otherwise.
fn raw(ret: libc::c_long) -> i64 {
    if ret == -1 {
        -i64::from(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        ret
    }
}

fn pipe() -> (i32, i32) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid two-element array for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    (fds[0], fds[1])
}

/// Fork; the child runs `body` and exits with its result. Returns the child's pid and raw
/// wait status.
fn in_child(body: impl FnOnce() -> i32) -> (i32, i32) {
    // SAFETY: the child only runs `body`, which makes raw system calls on memory prepared before
    // the fork (no allocation, no locks), then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        let code = body();
        // SAFETY: ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid out pointer.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid, "waitpid: {}", io::Error::last_os_error());
    (pid, status)
}

/// Fork; the child installs `filters` with its listener handed to us, runs `body` and exits
/// with its result, while we serve the listener. Returns the child's raw wait status and the
/// notifier (its counts and violation).
pub(super) fn in_served_child(filters: &Filters, body: impl FnOnce() -> i32) -> (i32, Notifier) {
    in_served_child_with(filters, || {}, body)
}

/// [`in_served_child`] with `before` run in the child before the filter is installed.
fn in_served_child_with(
    filters: &Filters,
    before: impl FnOnce(),
    body: impl FnOnce() -> i32,
) -> (i32, Notifier) {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair");
    // SAFETY: as in `in_child`; the child makes raw calls only (apply_notifying allocates
    // nothing), then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        before();
        let code = match filters.apply_notifying(theirs.as_fd()) {
            Ok(()) => {
                drop(theirs);
                body()
            }
            Err(_) => 100,
        };
        // SAFETY: ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    drop(theirs);
    let mut notifier = Notifier::new(filters, ours);
    let status = serve_until_exit(pid, &mut notifier);
    (status, notifier)
}

/// Serve `notifier` until child `pid` has exited; its raw wait status.
fn serve_until_exit(pid: i32, notifier: &mut Notifier) -> i32 {
    loop {
        let mut status = 0;
        // SAFETY: polls our own child; `status` is a valid out pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(rc >= 0, "waitpid: {}", io::Error::last_os_error());
        if rc == pid {
            return status;
        }
        let ready = notifier.poll_fd().is_some_and(|fd| {
            let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
            nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10u8)).unwrap_or(0) > 0
        });
        if ready && notifier.serve() == Served::EndRun {
            // SAFETY: kills our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if notifier.poll_fd().is_none() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

fn read_all(fd: i32) -> Vec<u8> {
    // SAFETY: `fd` is the read end of a pipe this test owns; File takes over closing it.
    let mut file = unsafe { File::from_raw_fd(fd) };
    let mut out = Vec::new();
    file.read_to_end(&mut out).expect("read pipe");
    out
}

fn close(fd: i32) {
    // SAFETY: closes a descriptor this test created and no longer uses.
    unsafe { libc::close(fd) };
}

fn exited(status: i32) -> Option<i32> {
    libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status))
}

fn signaled(status: i32) -> Option<i32> {
    libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status))
}

/// Apply `filters` in a served child, run every probe, return their results and the notifier.
fn probe(filters: &Filters, probes: &[(&str, Call)]) -> (Vec<i64>, Notifier) {
    let (r, w) = pipe();
    let (status, notifier) = in_served_child(filters, || {
        for (_, call) in probes {
            let v = call().to_ne_bytes();
            // SAFETY: writes 8 bytes from a live stack buffer to our pipe.
            if unsafe { libc::write(w, v.as_ptr().cast(), v.len()) } != 8 {
                return 101;
            }
        }
        0
    });
    close(w);
    let bytes = read_all(r);
    assert_eq!(exited(status), Some(0), "probe child status {status:#x}");
    let chunks = bytes.chunks_exact(8);
    let got = chunks
        .map(|c| i64::from_ne_bytes(c.try_into().expect("8 bytes")))
        .collect();
    (got, notifier)
}

fn compiled(default_action: SeccompDefault, network: NetworkMode) -> Filters {
    let policy = SeccompPolicy {
        default_action,
        ..SeccompPolicy::default()
    };
    compile(&policy, network).expect("compile")
}

const HIGH: libc::c_long = 1 << 32;

// SAFETY (all probes below): raw system calls with integer arguments or null pointers; the
// kernel validates them and none touches memory of ours.
#[allow(clippy::undocumented_unsafe_blocks)]
mod calls {
    use libc::{SYS_clone, SYS_clone3, SYS_ioctl, SYS_personality, SYS_socket, c_long, syscall};

    use super::{HIGH, raw};
    const NULL: c_long = 0;

    pub fn mount() -> i64 {
        raw(unsafe { syscall(libc::SYS_mount, NULL, NULL, NULL, 0, NULL) })
    }
    pub fn unshare_user() -> i64 {
        raw(unsafe { syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) })
    }
    pub fn setns() -> i64 {
        raw(unsafe { syscall(libc::SYS_setns, -1, 0) })
    }
    pub fn ptrace() -> i64 {
        raw(unsafe { syscall(libc::SYS_ptrace, libc::PTRACE_PEEKDATA, 0, NULL, NULL) })
    }
    pub fn keyctl() -> i64 {
        raw(unsafe { syscall(libc::SYS_keyctl, 9999, 0, 0, 0, 0) })
    }
    pub fn bpf() -> i64 {
        raw(unsafe { syscall(libc::SYS_bpf, 9999, NULL, 0) })
    }
    pub fn perf_event_open() -> i64 {
        raw(unsafe { syscall(libc::SYS_perf_event_open, NULL, 0, -1, -1, 0) })
    }
    pub fn userfaultfd() -> i64 {
        raw(unsafe { syscall(libc::SYS_userfaultfd, -1) })
    }
    pub fn open_by_handle_at() -> i64 {
        raw(unsafe { syscall(libc::SYS_open_by_handle_at, -1, NULL, 0) })
    }
    pub fn io_uring_setup() -> i64 {
        raw(unsafe { syscall(libc::SYS_io_uring_setup, 0, NULL) })
    }
    pub fn clone3() -> i64 {
        raw(unsafe { syscall(SYS_clone3, NULL, 0) })
    }
    /// CLONE_NEWUSER|CLONE_FS is invalid, so an unfiltered kernel says EINVAL and forks nothing.
    pub fn clone_newuser() -> i64 {
        let flags = libc::CLONE_NEWUSER | libc::CLONE_FS | libc::SIGCHLD;
        raw(unsafe { syscall(SYS_clone, flags, NULL, NULL, NULL, NULL) })
    }
    /// A plain fork through the raw clone call (glibc's fork() would take malloc locks that a
    /// thread of the test harness may have held at our own fork); the grandchild exits at once.
    pub fn fork() -> i64 {
        let pid = raw(unsafe { syscall(SYS_clone, libc::SIGCHLD, NULL, NULL, NULL, NULL) });
        if pid == 0 {
            unsafe { libc::_exit(0) };
        }
        if pid < 0 {
            return pid;
        }
        let mut status = 0;
        let pid = i32::try_from(pid).unwrap_or(-1);
        let reaped =
            raw(unsafe { syscall(libc::SYS_wait4, pid, &mut status as *mut i32, 0, NULL) });
        if reaped < 0 {
            reaped
        } else {
            i64::from(status)
        }
    }
    fn socket_of(domain: c_long, kind: c_long) -> i64 {
        let fd = raw(unsafe { syscall(SYS_socket, domain, kind, 0) });
        if fd >= 0 {
            unsafe { libc::close(i32::try_from(fd).unwrap_or(-1)) };
        }
        fd
    }
    pub fn socket_inet() -> i64 {
        socket_of(libc::AF_INET.into(), libc::SOCK_STREAM.into())
    }
    pub fn socket_inet6() -> i64 {
        socket_of(libc::AF_INET6.into(), libc::SOCK_DGRAM.into())
    }
    pub fn socket_inet_high_bits() -> i64 {
        socket_of(HIGH | c_long::from(libc::AF_INET), libc::SOCK_STREAM.into())
    }
    pub fn socket_unix() -> i64 {
        socket_of(libc::AF_UNIX.into(), libc::SOCK_STREAM.into())
    }
    pub fn socketpair_inet() -> i64 {
        let mut fds = [0i32; 2];
        let (domain, kind) = (libc::AF_INET, libc::SOCK_STREAM);
        raw(unsafe { syscall(libc::SYS_socketpair, domain, kind, 0, fds.as_mut_ptr()) })
    }
    pub fn ioctl_tiocsti() -> i64 {
        raw(unsafe { syscall(SYS_ioctl, -1, libc::TIOCSTI, NULL) })
    }
    pub fn ioctl_tiocsti_high_bits() -> i64 {
        raw(unsafe { syscall(SYS_ioctl, -1, HIGH | 0x5412, NULL) })
    }
    pub fn ioctl_tioclinux() -> i64 {
        raw(unsafe { syscall(SYS_ioctl, -1, libc::TIOCLINUX, NULL) })
    }
    pub fn ioctl_tiocsetd() -> i64 {
        raw(unsafe { syscall(SYS_ioctl, -1, libc::TIOCSETD, NULL) })
    }
    pub fn ioctl_fionread() -> i64 {
        raw(unsafe { syscall(SYS_ioctl, -1, libc::FIONREAD, NULL) })
    }
    pub fn personality_read_implies_exec() -> i64 {
        raw(unsafe { syscall(SYS_personality, 0x0040_0000) })
    }
    pub fn personality_addr_no_randomize() -> i64 {
        raw(unsafe { syscall(SYS_personality, 0x0004_0000) })
    }
    pub fn personality_query() -> i64 {
        raw(unsafe { syscall(SYS_personality, 0xffff_ffff_u32) })
    }
    pub fn x32_getpid() -> i64 {
        raw(unsafe { syscall(libc::SYS_getpid | 0x4000_0000) })
    }
    pub fn getpriority() -> i64 {
        raw(unsafe { syscall(libc::SYS_getpriority, libc::PRIO_PROCESS, 0) })
    }
    pub fn syncfs_bad_fd() -> i64 {
        raw(unsafe { syscall(libc::SYS_syncfs, -1) })
    }
    /// A number no kernel assigns (yet): new syscalls must fail the way old kernels fail them.
    pub fn unknown_1000() -> i64 {
        raw(unsafe { syscall(1000) })
    }
    pub fn clock_settime() -> i64 {
        raw(unsafe { syscall(libc::SYS_clock_settime, libc::CLOCK_REALTIME, NULL) })
    }
    pub fn netlink_route() -> i64 {
        let fd = raw(unsafe { syscall(SYS_socket, libc::AF_NETLINK, libc::SOCK_RAW, 0) });
        if fd >= 0 {
            unsafe { libc::close(i32::try_from(fd).unwrap_or(-1)) };
        }
        fd
    }
    pub fn netlink_audit() -> i64 {
        raw(unsafe { syscall(SYS_socket, libc::AF_NETLINK, libc::SOCK_RAW, 9) })
    }
    /// MPOL_DEFAULT for the calling thread (OpenBLAS does this at import).
    pub fn set_mempolicy() -> i64 {
        raw(unsafe { syscall(libc::SYS_set_mempolicy, 0, NULL, 0) })
    }
    pub fn memfd_create() -> i64 {
        let fd = raw(unsafe { syscall(libc::SYS_memfd_create, c"probe".as_ptr(), 0) });
        if fd >= 0 {
            unsafe { libc::close(i32::try_from(fd).unwrap_or(-1)) };
        }
        fd
    }
    /// Lower our own priority (nice +1): allowed; raising it needs CAP_SYS_NICE.
    pub fn setpriority_lower() -> i64 {
        raw(unsafe { syscall(libc::SYS_setpriority, libc::PRIO_PROCESS, 0, 1) })
    }
    pub fn getpid() -> i64 {
        raw(unsafe { syscall(libc::SYS_getpid) })
    }
    /// i386 `getpid` (20) through `int 0x80`: arch is AUDIT_ARCH_I386 for this entry.
    pub fn int80_getpid() -> i64 {
        let ret: i64;
        unsafe { std::arch::asm!("int 0x80", inlateout("rax") 20i64 => ret, options(nostack)) };
        ret
    }
}

const EPERM: i64 = -(libc::EPERM as i64);
const ENOSYS: i64 = -(libc::ENOSYS as i64);
const EAFNOSUPPORT: i64 = -(libc::EAFNOSUPPORT as i64);

/// `(name, call, expected)`; `OK` means any non-negative result.
const OK: i64 = i64::MAX;

fn check(filters: &Filters, cases: &[(&str, Call, i64)]) -> Notifier {
    let probes: Vec<(&str, Call)> = cases.iter().map(|&(n, c, _)| (n, c)).collect();
    let (got, notifier) = probe(filters, &probes);
    assert_eq!(got.len(), cases.len(), "every probe reported");
    let wrong: Vec<String> = cases
        .iter()
        .zip(&got)
        .filter(|&(&(_, _, want), &got)| if want == OK { got < 0 } else { got != want })
        .map(|(&(name, _, want), got)| format!("{name}: got {got}, want {want}"))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
    notifier
}

/// `(syscall name, count)` of the notifier's denied list.
fn denied(n: &Notifier) -> Vec<(String, u64)> {
    n.denied()
        .into_iter()
        .map(|d| (d.syscall.unwrap_or_else(|| "?".into()), d.count))
        .collect()
}

#[test]
fn errno_mode_refuses_politely_and_counts() {
    use calls::*;
    let f = compiled(SeccompDefault::Errno, NetworkMode::None);
    let n = check(
        &f,
        &[
            ("io_uring_setup", io_uring_setup, ENOSYS),
            ("clone3", clone3, ENOSYS),
            ("fork via clone", fork, 0),
            ("socket(AF_INET)", socket_inet, EAFNOSUPPORT),
            ("socket(AF_INET6)", socket_inet6, EAFNOSUPPORT),
            (
                "socket(AF_INET | 1<<32)",
                socket_inet_high_bits,
                EAFNOSUPPORT,
            ),
            ("socket(AF_UNIX)", socket_unix, OK),
            ("socket(AF_NETLINK, NETLINK_ROUTE)", netlink_route, OK),
            (
                "socket(AF_NETLINK, NETLINK_AUDIT)",
                netlink_audit,
                EAFNOSUPPORT,
            ),
            ("socketpair(AF_INET)", socketpair_inet, EAFNOSUPPORT),
            (
                "ioctl(-1, FIONREAD) passes to the kernel",
                ioctl_fionread,
                -9,
            ),
            ("personality(0xffffffff)", personality_query, OK),
            ("syncfs (not listed)", syncfs_bad_fd, ENOSYS),
            ("syscall 1000 (unknown)", unknown_1000, ENOSYS),
            ("clock_settime", clock_settime, EPERM),
            ("set_mempolicy", set_mempolicy, OK),
            ("memfd_create", memfd_create, OK),
            ("setpriority(+1)", setpriority_lower, OK),
            ("getpriority", getpriority, OK),
            ("getpid", getpid, OK),
        ],
    );
    assert_eq!(n.violation(), None);
    assert_eq!(
        denied(&n),
        [
            ("socket".into(), 4),
            ("socketpair".into(), 1),
            ("clock_settime".into(), 1),
            ("syncfs".into(), 1),
            ("?".into(), 1),
        ],
        "by number; clone3 and io_uring are answered in the filter and not counted"
    );
    let unknown = n.denied().into_iter().find(|d| d.nr == Some(1000)).unwrap();
    assert_eq!((unknown.syscall, unknown.errno.as_str()), (None, "ENOSYS"));
}

/// Run `call` in a served child under `mode`: it must be killed and named.
fn killed_and_named(mode: SeccompDefault, call: Call) -> Option<String> {
    let f = compiled(mode, NetworkMode::None);
    let (status, n) = in_served_child(&f, || {
        call();
        0
    });
    assert_eq!(signaled(status), Some(libc::SIGKILL), "status {status:#x}");
    n.violation().expect("violation recorded").syscall
}

#[test]
fn dangerous_calls_kill_in_every_mode_and_are_named() {
    use calls::*;
    let cases: [(&str, Call); 17] = [
        ("mount", mount),
        ("unshare", unshare_user),
        ("setns", setns),
        ("ptrace", ptrace),
        ("keyctl", keyctl),
        ("bpf", bpf),
        ("perf_event_open", perf_event_open),
        ("userfaultfd", userfaultfd),
        ("open_by_handle_at", open_by_handle_at),
        ("clone", clone_newuser),
        ("ioctl", ioctl_tiocsti),
        ("ioctl", ioctl_tiocsti_high_bits),
        ("ioctl", ioctl_tioclinux),
        ("ioctl", ioctl_tiocsetd),
        ("personality", personality_read_implies_exec),
        ("personality", personality_addr_no_randomize),
        ("x32", x32_getpid),
    ];
    for mode in [
        SeccompDefault::Errno,
        SeccompDefault::Log,
        SeccompDefault::Kill,
    ] {
        for (name, call) in cases {
            let got = killed_and_named(mode, call);
            let want = (name != "x32").then(|| name.to_string());
            assert_eq!(got, want, "{mode:?}");
        }
    }
}

#[test]
fn loopback_mode_allows_inet_sockets_only() {
    use calls::*;
    let f = compiled(SeccompDefault::Errno, NetworkMode::Loopback);
    check(
        &f,
        &[
            ("socket(AF_INET)", socket_inet, OK),
            ("socket(AF_INET6)", socket_inet6, OK),
            ("socket(AF_UNIX)", socket_unix, OK),
            (
                "socket(AF_NETLINK, NETLINK_AUDIT)",
                netlink_audit,
                EAFNOSUPPORT,
            ),
            ("socketpair(AF_INET)", socketpair_inet, EAFNOSUPPORT),
        ],
    );
}

#[test]
fn log_mode_allows_unlisted_calls() {
    use calls::*;
    let f = compiled(SeccompDefault::Log, NetworkMode::None);
    let n = check(
        &f,
        &[
            ("syncfs(-1) reaches the kernel", syncfs_bad_fd, -9),
            ("socket(AF_INET)", socket_inet, EAFNOSUPPORT),
            ("clone3", clone3, ENOSYS),
        ],
    );
    assert_eq!(denied(&n), [("socket".into(), 1)]);
}

#[test]
fn kill_mode_kills_unlisted_calls_but_refuses_sockets_politely() {
    use calls::*;
    assert_eq!(
        killed_and_named(SeccompDefault::Kill, syncfs_bad_fd),
        Some("syncfs".into())
    );
    let f = compiled(SeccompDefault::Kill, NetworkMode::None);
    check(
        &f,
        &[
            ("socket(AF_INET)", socket_inet, EAFNOSUPPORT),
            ("clone3", clone3, ENOSYS),
            ("io_uring_setup", io_uring_setup, ENOSYS),
        ],
    );
}

#[test]
fn int80_i386_calls_are_killed() {
    let f = compiled(SeccompDefault::Errno, NetworkMode::None);
    let (status, n) = in_served_child(&f, || i32::from(calls::int80_getpid() >= 0));
    // A kernel booted with ia32_emulation=0 answers int 0x80 with SIGSEGV before seccomp runs.
    if signaled(status) == Some(libc::SIGSEGV) {
        eprintln!("int 0x80 unavailable on this kernel (ia32 emulation off): nothing to filter");
        return;
    }
    assert_eq!(signaled(status), Some(libc::SIGKILL), "status {status:#x}");
    let v = n.violation().expect("violation");
    assert_eq!((v.syscall, v.nr), (None, Some(20)));
}

#[test]
fn without_a_supervisor_refused_and_dangerous_calls_fail_with_enosys() {
    // The listener is closed at once: the kernel then fails every notified call with ENOSYS,
    // so a dangerous call still never runs (the sandbox also dies with its supervisor).
    use calls::*;
    let f = compiled(SeccompDefault::Errno, NetworkMode::None);
    let (r, w) = pipe();
    let (_, status) = in_child(|| {
        let Ok((keep, gone)) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            None,
            nix::sys::socket::SockFlag::empty(),
        ) else {
            return 99;
        };
        if f.apply_notifying(gone.as_fd()).is_err() {
            return 100;
        }
        // Receiving end closed with the listener still queued: the filter's only listener
        // is freed with it.
        drop(keep);
        drop(gone);
        for call in [mount, ptrace, socket_inet, unshare_user] {
            let v = call().to_ne_bytes();
            // SAFETY: writes 8 bytes from a live stack buffer to our pipe.
            if unsafe { libc::write(w, v.as_ptr().cast(), v.len()) } != 8 {
                return 101;
            }
        }
        0
    });
    close(w);
    let got: Vec<i64> = read_all(r)
        .chunks_exact(8)
        .map(|c| i64::from_ne_bytes(c.try_into().expect("8 bytes")))
        .collect();
    assert_eq!(exited(status), Some(0), "status {status:#x}");
    assert_eq!(got, [ENOSYS; 4]);
}

#[test]
fn init_filter_waits_reaps_and_reports_then_kills_anything_else() {
    let init = compile_init().unwrap();
    let (r, w) = pipe();
    let (_, status) = in_child(|| {
        // Like the real init: SIGCHLD blocked and waited for synchronously, the payload forked
        // before the init installs its filter (DESIGN.md §1 step 11).
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
        // SAFETY: sigset manipulation on a local set, then blocking it for this thread.
        unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            libc::sigaddset(set.as_mut_ptr(), libc::SIGCHLD);
            libc::sigprocmask(libc::SIG_BLOCK, set.as_ptr(), std::ptr::null_mut());
        }
        // SAFETY: raw clone with SIGCHLD is a fork; the grandchild only sleeps and exits.
        let child = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) };
        if child == 0 {
            let nap = libc::timespec {
                tv_sec: 0,
                tv_nsec: 20_000_000,
            };
            // SAFETY: valid timespec; then leave without atexit handlers.
            unsafe { libc::nanosleep(&nap, std::ptr::null_mut()) };
            // SAFETY: see above.
            unsafe { libc::_exit(7) };
        }
        let child = i32::try_from(child).unwrap_or(-1);
        if init.apply().is_err() {
            return 100;
        }
        let (mut st, mut ru) = (0, std::mem::MaybeUninit::<libc::rusage>::zeroed());
        // SAFETY: the calls the init makes, with valid pointers into this stack frame; then a
        // socket() the init filter must not allow.
        unsafe {
            libc::kill(child, 0);
            libc::sigwaitinfo(set.as_ptr(), std::ptr::null_mut());
            libc::wait4(-1, &mut st, libc::WNOHANG, std::ptr::null_mut());
            libc::getrusage(libc::RUSAGE_CHILDREN, ru.as_mut_ptr());
            libc::write(w, (&st as *const i32).cast(), 4);
            libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_STREAM, 0);
        }
        0
    });
    close(w);
    let reported = read_all(r);
    assert_eq!(reported.len(), 4, "init reported the payload's status");
    let payload_status = i32::from_ne_bytes(reported[..4].try_into().expect("4 bytes"));
    assert_eq!(
        exited(payload_status),
        Some(7),
        "init reaped the payload's exit code"
    );
    assert_eq!(
        signaled(status),
        Some(libc::SIGSYS),
        "socket() must kill the init"
    );
}

/// Run `argv` under the default filter, served, and return (exit code, output). Any denied call
/// or violation fails the test: the workloads need none.
fn run_under_filter(argv: &[&str]) -> (Option<i32>, String) {
    let f = compiled(SeccompDefault::Errno, NetworkMode::None);
    let cstr = |s: &str| CString::new(s).expect("no NUL");
    let args: Vec<CString> = argv.iter().map(|a| cstr(a)).collect();
    let env: Vec<CString> = ["PATH=/usr/bin:/bin", "HOME=/tmp", "LANG=C.UTF-8"]
        .map(cstr)
        .to_vec();
    let mut argp: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    argp.push(std::ptr::null());
    envp.push(std::ptr::null());
    let (r, w) = pipe();
    // SAFETY: dup2 onto stdout/stderr before the filter, so the output reaches our pipe.
    let redirect = || unsafe {
        libc::dup2(w, 1);
        libc::dup2(w, 2);
    };
    let (status, n) = in_served_child_with(&f, redirect, || {
        // SAFETY: execve with NULL-terminated arrays of C strings built before the fork.
        unsafe { libc::execve(argp[0], argp.as_ptr(), envp.as_ptr()) };
        127
    });
    close(w);
    let out = String::from_utf8_lossy(&read_all(r)).into_owned();
    assert_eq!(n.violation(), None, "{out}");
    assert_eq!(n.denied(), [], "{out}");
    if let Some(sig) = signaled(status) {
        return (Some(128 + sig), out);
    }
    (exited(status), out)
}

const PYTHON: &str = include_str!("testdata/interpreters.py");
const NODE: &str = include_str!("testdata/interpreters.js");
const SHELL: &str = include_str!("testdata/interpreters.sh");

#[test]
fn python_runs_with_threads_and_subprocesses() {
    let (code, out) = run_under_filter(&["/usr/bin/python3", "-c", PYTHON]);
    assert_eq!(code, Some(0), "python3 under the filter:\n{out}");
    assert!(out.contains("PY-OK"), "{out}");
}

#[test]
fn node_runs_with_workers_and_child_processes() {
    if !std::path::Path::new("/usr/bin/node").exists() {
        eprintln!("no /usr/bin/node: skipping");
        return;
    }
    let (code, out) = run_under_filter(&["/usr/bin/node", "-e", NODE]);
    assert_eq!(code, Some(0), "node under the filter:\n{out}");
    assert!(out.contains("NODE-OK"), "{out}");
}

#[test]
fn dash_and_bash_run_pipelines_and_jobs() {
    for shell in ["/usr/bin/dash", "/usr/bin/bash"] {
        let (code, out) = run_under_filter(&[shell, "-c", SHELL]);
        assert_eq!(code, Some(0), "{shell} under the filter:\n{out}");
        assert!(out.contains("SH-OK"), "{shell}: {out}");
    }
}
