//! Raw calls behind seccomp user notification (`seccomp_unotify(2)`): installing a filter that
//! returns a listener fd, passing that fd over a Unix socket, and the listener's ioctls.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use seccompiler::sock_filter;

/// `PIDFD_THREAD` (= `O_EXCL`, Linux 6.9): a pidfd for a thread that is not the group leader.
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;

/// `seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, prog)` on the calling
/// thread; returns the listener. The caller has set `PR_SET_NO_NEW_PRIVS`. Does not allocate.
pub fn seccomp_filter_with_listener(program: &[sock_filter]) -> Result<OwnedFd, Errno> {
    let prog = libc::sock_fprog {
        len: u16::try_from(program.len()).map_err(|_| Errno::EINVAL)?,
        // The kernel only reads the program; the cast drops `const` for the C struct.
        filter: program.as_ptr().cast_mut().cast(),
    };
    // SAFETY: `prog` points at `program`, which outlives the call; the kernel copies it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &prog as *const libc::sock_fprog,
        )
    };
    let fd = RawFd::try_from(Errno::result(ret)?).map_err(|_| Errno::EBADF)?;
    // SAFETY: the kernel returned a fresh fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Send `fd` over the Unix socket `sock` as `SCM_RIGHTS` with a one-byte payload. Does not
/// allocate (the control buffer is on the stack), so it is safe in a child of `clone`.
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> Result<(), Errno> {
    // Room for one cmsghdr plus one int, 8-byte aligned (CMSG_SPACE(sizeof(int)) = 24 on x86_64).
    let mut control = [0u64; 4];
    let mut byte = [b'L'];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: an all-zero msghdr is valid; the pointers are filled in below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure size computation.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(4) } as usize;
    // SAFETY: msg_control points at `control`, large enough for CMSG_SPACE(4) bytes, so the
    // first header and its data lie inside it.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(4) as usize;
        libc::CMSG_DATA(cmsg)
            .cast::<RawFd>()
            .write_unaligned(fd.as_raw_fd());
    }
    loop {
        // SAFETY: `msg` and everything it points at live until the call returns.
        let ret = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        match Errno::result(ret) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(_) => return Ok(()),
        }
    }
}

/// Receive one fd sent by [`send_fd`]. `Ok(None)` at end of file (the peer closed without
/// sending). The received fd is close-on-exec.
pub fn recv_fd(sock: BorrowedFd<'_>) -> Result<Option<OwnedFd>, Errno> {
    let mut control = [0u64; 4];
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: an all-zero msghdr is valid; the pointers are filled in below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: `msg` and its buffers live until the call returns.
    let n = Errno::result(unsafe {
        libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC)
    })?;
    if n == 0 {
        return Ok(None);
    }
    // SAFETY: the kernel filled `msg_controllen` bytes of `control`; CMSG_FIRSTHDR/CMSG_DATA stay
    // within them, and an SCM_RIGHTS header carries at least one int.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(Errno::EBADMSG);
        }
        let fd = libc::CMSG_DATA(cmsg).cast::<RawFd>().read_unaligned();
        // The kernel installed a fresh fd for us.
        Ok(Some(OwnedFd::from_raw_fd(fd)))
    }
}

/// One pending notification (`struct seccomp_notif`), as the supervisor needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    pub id: u64,
    /// Thread id of the caller, in the reader's PID namespace (0 if not visible there).
    pub pid: u32,
    pub nr: i32,
    pub arch: u32,
    pub args: [u64; 6],
}

/// `SECCOMP_IOCTL_NOTIF_RECV`. `ENOENT` when the caller died between poll and receive.
pub fn notif_recv(listener: BorrowedFd<'_>) -> Result<Notification, Errno> {
    // SAFETY: the kernel requires a zeroed struct (EINVAL otherwise); all-zero is valid.
    let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: RECV fills `n`, a valid seccomp_notif owned by this frame.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut n as *mut libc::seccomp_notif,
        )
    };
    Errno::result(ret)?;
    Ok(Notification {
        id: n.id,
        pid: n.pid,
        nr: n.data.nr,
        arch: n.data.arch,
        args: n.data.args,
    })
}

/// `SECCOMP_IOCTL_NOTIF_SEND`: fail the call `id` with `errno`. `ENOENT` when the caller is gone.
pub fn notif_fail(listener: BorrowedFd<'_>, id: u64, errno: i32) -> Result<(), Errno> {
    let mut resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: -errno,
        flags: 0,
    };
    // SAFETY: SEND reads `resp`, a valid seccomp_notif_resp owned by this frame.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut resp as *mut libc::seccomp_notif_resp,
        )
    };
    Errno::result(ret).map(drop)
}

/// `SECCOMP_IOCTL_NOTIF_ID_VALID`: is the caller of `id` still blocked in that call?
pub fn notif_id_valid(listener: BorrowedFd<'_>, id: u64) -> bool {
    let mut id = id;
    // SAFETY: ID_VALID reads one u64 from a valid pointer.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &mut id as *mut u64,
        )
    };
    ret == 0
}

/// A pidfd for thread `tid`: `pidfd_open(tid, 0)` when it leads its thread group, else
/// `pidfd_open(tid, PIDFD_THREAD)` (Linux 6.9).
pub fn pidfd_open_thread(tid: i32) -> Result<OwnedFd, Errno> {
    let open = |flags: libc::c_uint| {
        // SAFETY: plain syscall with integer arguments.
        let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, tid, flags) };
        let fd = RawFd::try_from(Errno::result(ret)?).map_err(|_| Errno::EBADF)?;
        // SAFETY: the kernel returned a fresh fd that nobody else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    match open(0) {
        Err(Errno::EINVAL) => open(PIDFD_THREAD),
        other => other,
    }
}
