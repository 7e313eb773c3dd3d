//! Irreversible in-process tests: each one forks, installs a filter in the child, tries system
//! calls and reports through a pipe or its exit status.
//!
//! The test harness is multi-threaded, so a forked child may inherit locked malloc or stdio
//! locks: children only make raw system calls on memory prepared before `fork`, then `_exit`.
//! Probe arguments are chosen so that, without the filter, the kernel would fail them with a
//! different errno (or succeed), which makes a filter hit unmistakable.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::FromRawFd;

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

/// Apply `filters` in a child, run every probe, return their results.
fn probe(filters: &Filters, probes: &[(&str, Call)]) -> Vec<i64> {
    let (r, w) = pipe();
    let (_, status) = in_child(|| {
        if filters.apply().is_err() {
            return 100;
        }
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
    chunks
        .map(|c| i64::from_ne_bytes(c.try_into().expect("8 bytes")))
        .collect()
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
    pub fn socket_netlink() -> i64 {
        socket_of(libc::AF_NETLINK.into(), libc::SOCK_RAW.into())
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

/// `(name, call, expected)`; `OK` means any non-negative result.
const OK: i64 = i64::MAX;

fn check(filters: &Filters, cases: &[(&str, Call, i64)]) {
    let probes: Vec<(&str, Call)> = cases.iter().map(|&(n, c, _)| (n, c)).collect();
    let got = probe(filters, &probes);
    assert_eq!(got.len(), cases.len(), "every probe reported");
    let wrong: Vec<String> = cases
        .iter()
        .zip(&got)
        .filter(|&(&(_, _, want), &got)| if want == OK { got < 0 } else { got != want })
        .map(|(&(name, _, want), got)| format!("{name}: got {got}, want {want}"))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn errno_mode_refuses_the_escape_calls() {
    use calls::*;
    let f = compiled(SeccompDefault::Errno, NetworkMode::None);
    check(
        &f,
        &[
            ("mount", mount, EPERM),
            ("unshare(CLONE_NEWUSER)", unshare_user, EPERM),
            ("setns", setns, EPERM),
            ("ptrace", ptrace, EPERM),
            ("keyctl", keyctl, EPERM),
            ("bpf", bpf, EPERM),
            ("perf_event_open", perf_event_open, EPERM),
            ("userfaultfd", userfaultfd, EPERM),
            ("open_by_handle_at", open_by_handle_at, EPERM),
            ("io_uring_setup", io_uring_setup, ENOSYS),
            ("clone3", clone3, ENOSYS),
            ("clone(CLONE_NEWUSER)", clone_newuser, EPERM),
            ("fork via clone", fork, 0),
            ("socket(AF_INET)", socket_inet, EPERM),
            ("socket(AF_INET6)", socket_inet6, EPERM),
            ("socket(AF_INET | 1<<32)", socket_inet_high_bits, EPERM),
            ("socket(AF_UNIX)", socket_unix, OK),
            ("socket(AF_NETLINK)", socket_netlink, EPERM),
            ("socketpair(AF_INET)", socketpair_inet, EPERM),
            ("ioctl(TIOCSTI)", ioctl_tiocsti, EPERM),
            ("ioctl(TIOCSTI | 1<<32)", ioctl_tiocsti_high_bits, EPERM),
            ("ioctl(TIOCLINUX)", ioctl_tioclinux, EPERM),
            (
                "ioctl(-1, FIONREAD) passes to the kernel",
                ioctl_fionread,
                -9,
            ),
            (
                "personality(READ_IMPLIES_EXEC)",
                personality_read_implies_exec,
                EPERM,
            ),
            (
                "personality(ADDR_NO_RANDOMIZE)",
                personality_addr_no_randomize,
                EPERM,
            ),
            ("personality(0xffffffff)", personality_query, OK),
            ("x32 getpid", x32_getpid, EPERM),
            ("getpriority (not listed)", getpriority, EPERM),
            ("getpid", getpid, OK),
        ],
    );
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
            ("socket(AF_NETLINK)", socket_netlink, EPERM),
            ("socketpair(AF_INET)", socketpair_inet, EPERM),
        ],
    );
}

#[test]
fn log_mode_allows_unlisted_calls_but_not_the_hard_rules() {
    use calls::*;
    let f = compiled(SeccompDefault::Log, NetworkMode::None);
    check(
        &f,
        &[
            ("getpriority (logged)", getpriority, OK),
            ("unshare(CLONE_NEWUSER)", unshare_user, EPERM),
            ("socket(AF_INET)", socket_inet, EPERM),
            ("clone3", clone3, ENOSYS),
        ],
    );
}

#[test]
fn int80_i386_calls_are_refused() {
    let f = compiled(SeccompDefault::Errno, NetworkMode::None);
    let (_, status) = in_child(|| {
        if f.apply().is_err() {
            return 100;
        }
        i32::from(calls::int80_getpid() != EPERM)
    });
    // A kernel booted with ia32_emulation=0 answers int 0x80 with SIGSEGV before seccomp runs.
    if signaled(status) == Some(libc::SIGSEGV) {
        eprintln!("int 0x80 unavailable on this kernel (ia32 emulation off): nothing to filter");
        return;
    }
    assert_eq!(
        exited(status),
        Some(0),
        "int 0x80 getpid was not refused with EPERM"
    );
}

/// Kill mode: the child dies with SIGSYS, and the kernel log names the call.
fn dies_with_sigsys(call: Call) -> i32 {
    let f = compiled(SeccompDefault::Kill, NetworkMode::None);
    let (pid, status) = in_child(|| {
        if f.apply().is_err() {
            return 100;
        }
        call();
        0
    });
    assert_eq!(signaled(status), Some(libc::SIGSYS), "status {status:#x}");
    pid
}

#[test]
fn kill_mode_kills_with_sigsys() {
    dies_with_sigsys(calls::x32_getpid);
    dies_with_sigsys(calls::clone_newuser);
    dies_with_sigsys(calls::socket_inet);
    dies_with_sigsys(calls::ioctl_tiocsti_high_bits);
    // clone3 and io_uring are ENOSYS even in kill mode, so libc falls back instead of dying.
    let f = compiled(SeccompDefault::Kill, NetworkMode::None);
    let (_, status) = in_child(|| {
        if f.apply().is_err() {
            return 100;
        }
        i32::from(calls::clone3() != ENOSYS || calls::io_uring_setup() != ENOSYS)
    });
    assert_eq!(
        exited(status),
        Some(0),
        "clone3/io_uring_setup not ENOSYS in kill mode"
    );
}

#[test]
fn kmsg_names_the_killing_syscall() {
    let logged = std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_logged")
        .is_ok_and(|s| s.split_whitespace().any(|a| a == "kill_process"));
    let Some(mut watch) = KmsgWatch::open().filter(|_| logged) else {
        eprintln!("/dev/kmsg unreadable or kill_process not logged: skipping");
        return;
    };
    // The records go through printk_ratelimit() (10 per 5 s, kernel-wide): when other tests
    // just spent the burst, the next window brings ours.
    let mut found = None;
    for _ in 0..3 {
        let pid = dies_with_sigsys(calls::getpriority);
        let start = std::time::Instant::now();
        if let Some(nr) = watch.find_kill(Some(pid)) {
            eprintln!("kmsg record found after {:?}", start.elapsed());
            found = Some((pid, nr));
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(5));
    }
    let (pid, nr) = found.expect("no audit record for three seccomp kills in 15 s");
    assert_eq!(nr, libc::SYS_getpriority);
    assert_eq!(syscall_name(nr), Some("getpriority"));
    // Nothing else was killed since: a second look finds nothing (and gives up quickly).
    let wait = std::time::Duration::from_millis(20);
    assert_eq!(watch.find_kill_within(Some(pid), wait), None);
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

/// Run `argv` under the kill-mode default filter and return (exit code, output).
fn run_under_filter(argv: &[&str]) -> (Option<i32>, String) {
    let f = compiled(SeccompDefault::Kill, NetworkMode::None);
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
    let (_, status) = in_child(|| {
        // SAFETY: dup2 onto stdout/stderr, then execve with NULL-terminated arrays of C strings
        // built before the fork.
        unsafe {
            libc::dup2(w, 1);
            libc::dup2(w, 2);
            if f.apply().is_err() {
                return 100;
            }
            libc::execve(argp[0], argp.as_ptr(), envp.as_ptr());
        }
        127
    });
    close(w);
    let out = String::from_utf8_lossy(&read_all(r)).into_owned();
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
