//! The supervisor's side of seccomp user notification (`seccomp_unotify(2)`).
//!
//! The payload's filter sends every refused or dangerous call to a listener instead of deciding
//! in BPF. The payload hands the listener over a dedicated Unix socket right after installing the
//! filter and closes its copy (`Filters::apply_notifying`); the supervisor polls it with
//! everything else. For each notification it looks up the [`Answer`] the policy compiled for
//! that number: `Fail(errno)` is sent back and counted (the verdict's `seccomp_denied`), `Kill`
//! kills the calling process and is recorded (the verdict's `seccomp_violation`). The notified
//! call never runs in either case: no answer ever lets it continue.
//!
//! The kill is aimed at the process the kernel names (`pid` in our PID namespace) through a
//! pidfd opened before `SECCOMP_IOCTL_NOTIF_ID_VALID` confirms the caller is still blocked in
//! that very call, so a recycled pid cannot redirect it. When that cannot be established (a
//! thread that does not lead its group on a kernel without `PIDFD_THREAD`, a caller outside our
//! PID namespace), the supervisor ends the whole run instead: it fails closed.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::{Answer, Filters, Responder, errno_name, syscall_name};
use crate::sys;
use crate::verdict::{SeccompDenied, SeccompViolation};

/// Distinct syscall numbers counted one by one; any further ones share one overflow entry, so a
/// payload calling a million different numbers cannot grow the verdict.
const MAX_KINDS: usize = 64;

/// What serving one wake-up did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Nothing that concerns the run (a denied call answered, the listener arrived or hung up).
    Nothing,
    /// A dangerous call: its process was killed and the violation recorded.
    Killed,
    /// A dangerous call whose process could not be pinned down: end the whole run.
    EndRun,
}

/// Serves the payload's seccomp listener and keeps the counts for the verdict.
pub struct Notifier {
    /// Our end of the hand-over socket, until the listener has arrived (or the child is gone).
    handover: Option<OwnedFd>,
    listener: Option<OwnedFd>,
    responder: Responder,
    /// Denied calls by number: (errno, count).
    denied: BTreeMap<i32, (i32, u64)>,
    /// Denied calls beyond `MAX_KINDS` distinct numbers.
    overflow: u64,
    /// The first dangerous call: (number, `None` for a foreign ABI).
    violation: Option<(i32, bool)>,
}

impl Notifier {
    /// `handover` is the supervisor's end of the socket the payload sends the listener on.
    pub fn new(filters: &Filters, handover: OwnedFd) -> Notifier {
        Notifier {
            handover: Some(handover),
            listener: None,
            responder: filters.responder().clone(),
            denied: BTreeMap::new(),
            overflow: 0,
            violation: None,
        }
    }

    /// The descriptor to poll for `POLLIN`: the hand-over socket until the listener arrives, then
    /// the listener; `None` once both are done.
    pub fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        self.listener
            .as_ref()
            .or(self.handover.as_ref())
            .map(AsFd::as_fd)
    }

    /// Handle what made [`Notifier::poll_fd`] ready. Never blocks: the listener is read only
    /// when a fresh zero-timeout poll says a notification is pending (`RECV` would wait for one).
    pub fn serve(&mut self) -> Served {
        if let Some(listener) = self.listener.take() {
            let served = match pending(listener.as_fd()) {
                Some(true) => self.answer(listener.as_fd()),
                // Hung up: every process with the filter is gone.
                Some(false) => return Served::Nothing,
                None => Served::Nothing,
            };
            self.listener = Some(listener);
            return served;
        }
        if let Some(sock) = self.handover.take() {
            match sys::recv_fd(sock.as_fd()) {
                Ok(Some(listener)) => self.listener = Some(listener),
                // End of file: the child ended before installing its filter.
                Ok(None) => {}
                Err(Errno::EINTR | Errno::EAGAIN) => self.handover = Some(sock),
                // Anything else (a message without a descriptor): stop listening.
                Err(_) => {}
            }
        }
        Served::Nothing
    }

    fn answer(&mut self, listener: BorrowedFd<'_>) -> Served {
        let Ok(n) = sys::notif_recv(listener) else {
            // ENOENT: the caller died between poll and receive.
            return Served::Nothing;
        };
        match self.responder.answer(n.arch, n.nr) {
            Answer::Fail(errno) => {
                self.count(n.nr, errno);
                let _ = sys::notif_fail(listener, n.id, errno);
                Served::Nothing
            }
            Answer::Kill => {
                let native = n.arch == super::bpf::AUDIT_ARCH_X86_64
                    && u32::try_from(n.nr).is_ok_and(|nr| nr < super::bpf::X32_SYSCALL_BIT);
                self.violation.get_or_insert((n.nr, native));
                kill_caller(listener, n.id, n.pid)
            }
        }
    }

    fn count(&mut self, nr: i32, errno: i32) {
        if let Some((_, count)) = self.denied.get_mut(&nr) {
            *count += 1;
        } else if self.denied.len() < MAX_KINDS {
            self.denied.insert(nr, (errno, 1));
        } else {
            self.overflow += 1;
        }
    }

    /// The verdict's `seccomp_denied` list, by syscall number, the overflow entry last.
    pub fn denied(&self) -> Vec<SeccompDenied> {
        let mut out: Vec<SeccompDenied> = self
            .denied
            .iter()
            .map(|(&nr, &(errno, count))| SeccompDenied {
                syscall: syscall_name(i64::from(nr)).map(str::to_string),
                nr: Some(i64::from(nr)),
                errno: errno_name(errno),
                count,
            })
            .collect();
        if self.overflow > 0 {
            out.push(SeccompDenied {
                syscall: None,
                nr: None,
                errno: "mixed".into(),
                count: self.overflow,
            });
        }
        out
    }

    /// `violation` and `denied` so far, then start counting afresh: one exec's share of a
    /// listener that serves every program a sandbox runs.
    pub fn take_counts(&mut self) -> (Option<SeccompViolation>, Vec<SeccompDenied>) {
        let counts = (self.violation(), self.denied());
        self.denied.clear();
        self.overflow = 0;
        self.violation = None;
        counts
    }

    /// The first dangerous call, if any: the verdict's `seccomp_violation`.
    pub fn violation(&self) -> Option<SeccompViolation> {
        self.violation.map(|(nr, native)| SeccompViolation {
            syscall: native
                .then(|| syscall_name(i64::from(nr)))
                .flatten()
                .map(str::to_string),
            nr: Some(i64::from(nr)),
        })
    }
}

/// `Some(true)` when a notification is pending, `Some(false)` when the listener hung up.
fn pending(listener: BorrowedFd<'_>) -> Option<bool> {
    let mut fds = [PollFd::new(listener, PollFlags::POLLIN)];
    match nix::poll::poll(&mut fds, PollTimeout::ZERO) {
        Ok(_) => {
            let revents = fds[0].revents().unwrap_or(PollFlags::empty());
            if revents.contains(PollFlags::POLLIN) {
                Some(true)
            } else if revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
                Some(false)
            } else {
                None
            }
        }
        Err(_) => None,
    }
}

/// Kill the process blocked in notification `id`, made by thread `tid` (our PID namespace).
fn kill_caller(listener: BorrowedFd<'_>, id: u64, tid: u32) -> Served {
    let Ok(tid) = i32::try_from(tid).map_err(drop).and_then(|t| {
        // 0: the caller is not visible in our PID namespace.
        if t > 0 { Ok(t) } else { Err(()) }
    }) else {
        return Served::EndRun;
    };
    let pidfd = match sys::pidfd_open_thread(tid) {
        Ok(fd) => fd,
        Err(Errno::ESRCH) if !sys::notif_id_valid(listener, id) => return Served::Killed,
        Err(_) => return Served::EndRun,
    };
    // The pidfd is pinned; if the notification is still pending, it belongs to that very task.
    if !sys::notif_id_valid(listener, id) {
        // Already gone (killed by someone else): nothing left to kill.
        return Served::Killed;
    }
    match sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL) {
        Ok(()) => Served::Killed,
        Err(_) => Served::EndRun,
    }
}
