//! Raw Linux syscalls that nix does not wrap: the only module with `unsafe`.
//!
//! Every function here is a thin, typed wrapper; callers turn `Errno` into their own step errors.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

mod notify;
pub use self::notify::*;

/// `CLONE_INTO_CGROUP` (linux/sched.h). libc's constant is deprecated and overflows `c_int`.
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Result of `clone3` as seen by the caller.
pub enum Cloned {
    /// We are the new child.
    Child,
    /// We are the parent; the child's pid and its pidfd.
    Parent { pid: i32, pidfd: OwnedFd },
}

/// `clone3(2)` with `CLONE_PIDFD`, `exit_signal = SIGCHLD` and an optional target cgroup.
///
/// The caller must be single-threaded (DESIGN §3): the child continues with a copy of the
/// caller's memory, including any lock another thread held.
pub fn clone3(flags: u64, cgroup: Option<BorrowedFd<'_>>) -> Result<Cloned, Errno> {
    let mut pidfd: libc::c_int = -1;
    let mut args: libc::clone_args = clone_args_zeroed();
    args.flags = flags | libc::CLONE_PIDFD as u64;
    args.pidfd = std::ptr::addr_of_mut!(pidfd) as u64;
    args.exit_signal = libc::SIGCHLD as u64;
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = u64::try_from(fd.as_raw_fd()).map_err(|_| Errno::EBADF)?;
    }
    // SAFETY: `args` is a valid, fully initialised clone_args of the size we pass; no stack is
    // given, so the child runs on a copy of the caller's stack like fork(2).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::addr_of_mut!(args),
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Cloned::Child),
        pid => Ok(Cloned::Parent {
            pid: i32::try_from(pid).map_err(|_| Errno::EOVERFLOW)?,
            // SAFETY: the kernel stored a fresh pidfd that nobody else owns.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}

fn clone_args_zeroed() -> libc::clone_args {
    // SAFETY: clone_args is a plain C struct of integers; all-zero is its documented default.
    unsafe { std::mem::zeroed() }
}

/// `pidfd_send_signal(2)`: signal a process through its pidfd (no pid-reuse race).
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> Result<(), Errno> {
    // SAFETY: plain syscall with an fd we borrow and a null siginfo.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(ret).map(drop)
}

/// `close_range(first, ~0, 0)`: close every fd from `first` up.
pub fn close_from(first: RawFd) -> Result<(), Errno> {
    let first = u32::try_from(first).map_err(|_| Errno::EBADF)?;
    // SAFETY: closing fds the caller no longer uses; no Rust object in the child owns them.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0) };
    Errno::result(ret).map(drop)
}

/// `prctl(option, arg2, 0, 0, 0)`.
pub fn prctl(option: i32, arg2: u64) -> Result<i32, Errno> {
    // SAFETY: prctl with integer arguments only; options used here take no pointers.
    let ret = unsafe { libc::prctl(option, arg2, 0u64, 0u64, 0u64) };
    Errno::result(ret)
}

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)`: a fresh anonymous session keyring, so the
/// caller's session keyring is not reachable from the sandbox.
pub fn join_new_session_keyring() -> Result<(), Errno> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: a null name asks the kernel for a new anonymous keyring.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// `openat2(AT_FDCWD, path, O_RDONLY|O_CLOEXEC, RESOLVE_NO_SYMLINKS)`: open a host file without
/// following a symlink anywhere on the path.
pub fn open_no_symlinks(path: &CStr) -> Result<OwnedFd, Errno> {
    openat2(
        libc::AT_FDCWD,
        path,
        libc::O_RDONLY | libc::O_NOCTTY,
        0,
        RESOLVE_NO_SYMLINKS,
    )
}

/// `RESOLVE_NO_MAGICLINKS` (linux/openat2.h): no `/proc/*/fd` style links.
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
/// `RESOLVE_NO_SYMLINKS`: no symlink anywhere on the path (implies no magic links).
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
/// `RESOLVE_IN_ROOT`: resolve as if `dir` were `/` (`..` and absolute paths stay beneath it).
pub const RESOLVE_IN_ROOT: u64 = 0x10;

/// `openat2(2)` relative to `dir` (a raw fd or `AT_FDCWD`) with `O_CLOEXEC` added to `flags`.
pub fn openat2(
    dir: RawFd,
    path: &CStr,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> Result<OwnedFd, Errno> {
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: u64::from(u32::from_ne_bytes((flags | libc::O_CLOEXEC).to_ne_bytes())),
        mode: u64::from(mode),
        resolve,
    };
    // SAFETY: `path` is a valid C string and `how` a valid open_how of the size we pass.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            path.as_ptr(),
            std::ptr::addr_of!(how),
            std::mem::size_of::<OpenHow>(),
        )
    };
    let fd = Errno::result(ret)?;
    // SAFETY: the kernel returned a fresh fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(RawFd::try_from(fd).map_err(|_| Errno::EBADF)?) })
}

/// Whether the write end of the pipe `fd` reads from is closed everywhere (`POLLHUP`), without
/// consuming anything.
pub fn hung_up(fd: RawFd) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(borrow_fd(fd), PollFlags::empty())];
    matches!(nix::poll::poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
}

/// `MOUNT_ATTR_RDONLY` (linux/mount.h).
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// `MOUNT_ATTR_NOSUID`: set-user-ID bits and file capabilities are ignored on exec.
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
/// `MOUNT_ATTR_NODEV`: device nodes cannot be opened.
pub const MOUNT_ATTR_NODEV: u64 = 0x4;

/// `mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, {attr_set: set})` (Linux 5.12): add
/// mount attributes to the mount `fd` refers to and to every mount beneath it. Attributes the
/// kernel has locked in a user namespace are only ever added here, never cleared.
pub fn mount_setattr_recursive(fd: BorrowedFd<'_>, set: u64) -> Result<(), Errno> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the empty path is a valid C string, `attr` a valid mount_attr of the size we pass,
    // and `fd` is open for the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            std::ptr::addr_of!(attr),
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// Bring the loopback interface up (`SIOCSIFFLAGS` with `IFF_UP|IFF_RUNNING`) in the current
/// network namespace.
pub fn loopback_up() -> Result<(), Errno> {
    // SAFETY: socket() with constant arguments.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    let sock = Errno::result(sock)?;
    // SAFETY: `sock` was just created and is owned here.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    // SAFETY: ifreq is a plain C struct/union; zero is a valid start.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    #[allow(
        clippy::cast_possible_truncation,
        reason = "IFF_UP | IFF_RUNNING is 0x41, which fits the kernel's short flags field"
    )]
    let flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    req.ifr_ifru.ifru_flags = flags;
    // SAFETY: SIOCSIFFLAGS reads a valid ifreq we own.
    let ret = unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCSIFFLAGS,
            std::ptr::addr_of!(req),
        )
    };
    Errno::result(ret).map(drop)
}

/// Overwrite `[start, end)` of our own address space with zeros.
///
/// Used on the inherited environment block so `/proc/1/environ` of the sandbox's init cannot show
/// the caller's environment. The addresses come from `/proc/self/stat` (`env_start`, `env_end`).
pub fn scrub_memory(start: usize, end: usize) {
    if start == 0 || end <= start {
        return;
    }
    let ptr = start as *mut u8;
    for i in 0..(end - start) {
        // SAFETY: the range is the kernel-reported, mapped and writable env (or arg) block of this
        // process; nothing reads it as Rust data (std copies the environment on access).
        unsafe { std::ptr::write_volatile(ptr.add(i), 0) };
    }
}

/// `_exit(2)`: leave without running atexit handlers or flushing stdio (the child shares the
/// parent's buffers).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// `rt_sigaction(signal, handler)` for a handler that does nothing: lets PID 1 of a PID namespace
/// receive the signal (the kernel drops default-disposition signals sent to a namespace init).
pub fn install_noop_handler(signal: i32) -> Result<(), Errno> {
    extern "C" fn noop(_: libc::c_int) {}
    // SAFETY: sigaction is a plain C struct; zero is a valid start.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = noop as extern "C" fn(libc::c_int) as usize;
    act.sa_flags = libc::SA_RESTART;
    // SAFETY: installing a handler that touches no state.
    let ret = unsafe { libc::sigaction(signal, &act, std::ptr::null_mut()) };
    Errno::result(ret).map(drop)
}

/// `setrlimit(resource, soft, hard)`.
pub fn setrlimit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> Result<(), Errno> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads a valid rlimit struct.
    let ret = unsafe { libc::setrlimit(resource, &lim) };
    Errno::result(ret).map(drop)
}

/// How a child ended and what it used, from `wait4(2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub user_us: u64,
    pub sys_us: u64,
    /// Peak resident set in bytes.
    pub maxrss: u64,
}

/// `wait4(pid, nohang)`: reap one child (`-1`: any) and return its pid, how it ended and its own
/// resource usage (with that of the descendants it reaped). `Ok(None)`: none has ended yet
/// (`nohang`). Retries on `EINTR`; allocates nothing (the init runs it under its tiny filter).
pub fn reap(pid: i32, nohang: bool) -> Result<Option<(i32, Reaped)>, Errno> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is a plain C struct filled by the kernel.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if nohang { libc::WNOHANG } else { 0 };
    let reaped = loop {
        // SAFETY: valid pointers to our status and rusage.
        let ret = unsafe { libc::wait4(pid, &mut status, flags, &mut ru) };
        match Errno::result(ret) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(0) => return Ok(None),
            Ok(pid) => break pid,
        }
    };
    let us = |tv: libc::timeval| {
        u64::try_from(tv.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(tv.tv_usec).unwrap_or(0)
    };
    Ok(Some((
        reaped,
        Reaped {
            code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
            signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
            user_us: us(ru.ru_utime),
            sys_us: us(ru.ru_stime),
            maxrss: u64::try_from(ru.ru_maxrss).unwrap_or(0) * 1024,
        },
    )))
}

/// `clone(CLONE_PARENT | SIGCHLD)`: like fork(2), but the new process is our sibling: a child of
/// our parent, which reaps it and sees its exit status. Returns 0 in the new process.
///
/// The caller must be single-threaded (no lock held by another thread is copied); no fork
/// handlers run.
pub fn clone_sibling() -> Result<i32, Errno> {
    let flags = libc::CLONE_PARENT as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: a null stack makes clone behave like fork (the child runs on a copy of our stack);
    // no pointers for tids or TLS are passed.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    i32::try_from(Errno::result(ret)?).map_err(|_| Errno::EOVERFLOW)
}

/// The pid (in our PID namespace) of the process a pidfd refers to, from
/// `/proc/self/fdinfo/FD`; `None` once it has been reaped.
pub fn pidfd_pid(pidfd: BorrowedFd<'_>) -> Option<i32> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse().ok())
        .filter(|&pid: &i32| pid > 0)
}

/// `sigtimedwait(set, timeout)` returning the signal number.
pub fn sigwait(set: &nix::sys::signal::SigSet) -> Result<i32, Errno> {
    let raw: &libc::sigset_t = set.as_ref();
    // SAFETY: valid sigset; a null siginfo and no timeout are allowed.
    let ret = unsafe { libc::sigwaitinfo(raw, std::ptr::null_mut()) };
    Errno::result(ret)
}

/// Whether the fd is a terminal.
pub fn is_terminal(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: isatty only inspects the fd.
    unsafe { libc::isatty(fd.as_raw_fd()) == 1 }
}

/// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`: the kernel's Landlock ABI
/// version, 0 when Landlock is missing or disabled.
pub fn landlock_abi() -> u32 {
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
    // SAFETY: the version query takes a null attribute pointer and size 0.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(ret).unwrap_or(0)
}

/// Borrow an fd number the caller knows stays open for the rest of the process (the child's fixed
/// descriptors 0-3).
pub fn borrow_fd(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: callers only pass descriptors that are never closed while the process lives.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// `fork(2)` in a single-threaded process.
pub fn fork() -> Result<nix::unistd::ForkResult, Errno> {
    // SAFETY: callers are single-threaded (the sandbox's init), so the child inherits no lock held
    // by another thread.
    unsafe { nix::unistd::fork() }
}

/// `dup2(from, to)` on raw descriptor numbers (the child's fixed layout).
pub fn dup2(from: RawFd, to: RawFd) -> Result<(), Errno> {
    // SAFETY: both are descriptor numbers; dup2 closes `to` first, which nothing else owns.
    Errno::result(unsafe { libc::dup2(from, to) }).map(drop)
}

/// `fcntl(fd, F_DUPFD, min)`: a copy of `fd` numbered at least `min`.
pub fn dup_above(fd: RawFd, min: RawFd) -> Result<RawFd, Errno> {
    // SAFETY: F_DUPFD only creates a new descriptor.
    Errno::result(unsafe { libc::fcntl(fd, libc::F_DUPFD, min) })
}

/// Make sure descriptors 0-2 are open (on /dev/null when the caller closed them), so pipes we
/// create never land on a standard descriptor number.
pub fn ensure_stdio_open() {
    for fd in 0..3 {
        // SAFETY: F_GETFD only inspects the descriptor.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            // SAFETY: open returns the lowest free descriptor, which is `fd`; we keep it forever.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}

/// (start, end) of our argv block and environment block, from `/proc/self/stat` fields 48-51.
pub fn arg_env_ranges() -> [(usize, usize); 2] {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return [(0, 0); 2];
    };
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<usize> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // `rest` starts at field 3 (state): field N is at index N - 3.
    let get = |n: usize| f.get(n - 3).copied().unwrap_or(0);
    [(get(48), get(49)), (get(50), get(51))]
}

/// `pidfd_open(pid, 0)`.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: plain syscall with integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = Errno::result(ret)?;
    // SAFETY: the kernel returned a fresh fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(RawFd::try_from(fd).map_err(|_| Errno::EBADF)?) })
}

/// Set SIGCHLD to SIG_IGN (children are reaped by the kernel) or back to SIG_DFL.
pub fn set_sigchld_ignored(ignored: bool) -> Result<(), Errno> {
    let handler = if ignored {
        nix::sys::signal::SigHandler::SigIgn
    } else {
        nix::sys::signal::SigHandler::SigDfl
    };
    // SAFETY: SIG_IGN and SIG_DFL are not functions; no handler code runs.
    unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGCHLD, handler) }.map(drop)
}

/// Most descriptors one `recv_fds` accepts: the kernel's own `SCM_MAX_FD`, so a sender can never
/// make the control message overflow (`MSG_CTRUNC` would leave installed descriptors we cannot see).
const SCM_MAX_FD: usize = 253;

/// A `SOCK_SEQPACKET` Unix socketpair, both ends close-on-exec: message boundaries are kept and a
/// datagram larger than the reader's buffer is reported (`MSG_TRUNC`), never split.
pub fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd), Errno> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
}

/// `sendmsg(2)`: one datagram `data` with `fds` attached as `SCM_RIGHTS`.
pub fn send_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), Errno> {
    use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let rights = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &rights };
    let iov = [std::io::IoSlice::new(data)];
    loop {
        match sendmsg::<UnixAddr>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(n) if n == data.len() => return Ok(()),
            // A seqpacket datagram goes whole or not at all.
            Ok(_) => return Err(Errno::EMSGSIZE),
        }
    }
}

/// One datagram received by `recv_fds`.
pub struct Received {
    /// Bytes stored in the caller's buffer; 0 means the peer closed its end.
    pub len: usize,
    /// The datagram was longer than the buffer (the rest is lost).
    pub truncated: bool,
    /// Descriptors that came with it, owned (and close-on-exec) from here on.
    pub fds: Vec<OwnedFd>,
}

/// `recvmsg(2)` of one datagram into `buf`, taking ownership of any `SCM_RIGHTS` descriptors
/// (received with `MSG_CMSG_CLOEXEC`, so none leaks into a later `execve`). `nonblocking` adds
/// `MSG_DONTWAIT`.
pub fn recv_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    nonblocking: bool,
) -> Result<Received, Errno> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixAddr, recvmsg};
    let mut space = nix::cmsg_space!([RawFd; SCM_MAX_FD]);
    let mut flags = MsgFlags::MSG_CMSG_CLOEXEC;
    if nonblocking {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<UnixAddr>(sock.as_raw_fd(), &mut iov, Some(&mut space), flags) {
            Err(Errno::EINTR) => continue,
            other => break other?,
        }
    };
    let mut fds = Vec::new();
    // The buffer holds SCM_MAX_FD descriptors, so the control data is never truncated.
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            for fd in raw {
                // SAFETY: SCM_RIGHTS installed this descriptor in our table for us alone; nothing
                // else refers to the number.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Ok(Received {
        len: msg.bytes,
        truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
        fds,
    })
}

/// Set `signal` to SIG_IGN or back to SIG_DFL.
pub fn set_ignored(signal: i32, ignored: bool) -> Result<(), Errno> {
    use nix::sys::signal::{SigHandler, Signal};
    let handler = if ignored {
        SigHandler::SigIgn
    } else {
        SigHandler::SigDfl
    };
    let signal = Signal::try_from(signal)?;
    // SAFETY: SIG_IGN and SIG_DFL are not functions; no handler code runs.
    unsafe { nix::sys::signal::signal(signal, handler) }.map(drop)
}

/// `recvmsg(2)` of one datagram into `buf`, with at most one descriptor attached as
/// `SCM_RIGHTS` (received close-on-exec, so none leaks into a later `execve`; any further ones
/// are closed). Returns the datagram's length, 0 when the peer closed its end, and the
/// descriptor if one came.
pub fn recv_with_fd(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> Result<(usize, Option<OwnedFd>), Errno> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixAddr, recvmsg};
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<UnixAddr>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            other => break other?,
        }
    };
    let mut owned = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: SCM_RIGHTS just installed this descriptor in our table for us alone;
                // nothing else refers to the number.
                owned.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    let bytes = msg.bytes;
    Ok((bytes, owned.into_iter().next()))
}
