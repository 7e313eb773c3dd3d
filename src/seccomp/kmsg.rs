//! Names the syscall behind a seccomp kill from the kernel's audit record in `/dev/kmsg`.
//!
//! With `SECCOMP_RET_KILL_PROCESS` the supervisor only sees SIGSYS; the `si_syscall` of the
//! signal never leaves the dying process. But seccomp logs every kill (`kill_process` is in
//! `/proc/sys/kernel/seccomp/actions_logged` by default) as an `AUDIT_SECCOMP` (type 1326) record,
//! and when no audit daemon is registered the kernel prints audit records to the kernel log
//! (kernel/audit.c `audit_printk_skb`):
//!
//! `audit: type=1326 audit(...): auid=... uid=0 gid=0 ses=... pid=8811 comm="k" exe="/tmp/k"
//! sig=31 arch=c000003e syscall=39 compat=0 ip=0x... code=0x80000000`
//!
//! `pid` is the thread-group id in the initial PID namespace, so it is the host pid even for a
//! process inside the sandbox's PID namespace. Limits: the records are printed through
//! `printk_ratelimit()` (bursts of 10 per 5 s, shared with the rest of the kernel), they go to
//! auditd instead when one runs, and reading `/dev/kmsg` needs CAP_SYSLOG when
//! `kernel.dmesg_restrict=1`. So the name is best effort: the verdict is `seccomp_violation`
//! whether or not a record is found.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::bpf::AUDIT_ARCH_X86_64;

/// `AUDIT_SECCOMP` (linux/audit.h).
const AUDIT_SECCOMP: &str = "1326";
/// SIGSYS: what both kill actions deliver; `SECCOMP_RET_LOG` records carry `sig=0`.
const SIGSYS: &str = "31";
/// How long [`KmsgWatch::find_kill`] waits for a record that is not there yet. kauditd prints
/// the record asynchronously, shortly after the process is already dead and reaped.
const WAIT_FOR_RECORD: Duration = Duration::from_millis(250);
/// One kmsg record is at most `CONSOLE_EXT_LOG_MAX` (8 KiB) including the dictionary.
const RECORD_MAX: usize = 8192;

/// A reader positioned at the end of the kernel log when it was opened.
#[derive(Debug)]
pub struct KmsgWatch {
    file: File,
}

impl KmsgWatch {
    /// Open `/dev/kmsg` non-blocking and skip everything already logged. `None` when the log is
    /// not readable (no CAP_SYSLOG with `dmesg_restrict=1`, no `/dev/kmsg`).
    pub fn open() -> Option<KmsgWatch> {
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/kmsg")
            .ok()?;
        file.seek(SeekFrom::End(0)).ok()?;
        Some(KmsgWatch { file })
    }

    /// The x86_64 syscall number of the first seccomp kill logged since `open` (or the previous
    /// call) for `host_pid` (any process when `None`). Waits up to 250 ms for the record, so
    /// call it only after seeing a SIGSYS death.
    pub fn find_kill(&mut self, host_pid: Option<i32>) -> Option<i64> {
        self.find_kill_within(host_pid, WAIT_FOR_RECORD)
    }

    /// [`find_kill`](Self::find_kill) with an explicit wait.
    pub fn find_kill_within(&mut self, host_pid: Option<i32>, wait: Duration) -> Option<i64> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(nr) = self.drain(host_pid) {
                return Some(nr);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return None,
            }
        }
    }

    /// Read the records available now; stop at the first matching kill.
    fn drain(&mut self, host_pid: Option<i32>) -> Option<i64> {
        let mut buf = [0u8; RECORD_MAX];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => match parse_kill(&buf[..n]) {
                    Some((pid, nr)) if host_pid.is_none_or(|p| p == pid) => return Some(nr),
                    _ => {}
                },
                Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
                // EPIPE: records were overwritten before we read them; the next read resumes at
                // the oldest record still in the buffer (Documentation/ABI/testing/dev-kmsg).
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }
}

/// `(pid, syscall)` of a seccomp kill record for the native architecture. Values an untrusted
/// process controls (`comm`, `exe`) are quoted, or hex-encoded when they contain spaces or
/// quotes (`audit_log_untrustedstring`), so whitespace-separated `key=value` tokens are reliable.
fn parse_kill(record: &[u8]) -> Option<(i32, i64)> {
    let text = std::str::from_utf8(record).ok()?;
    // "<prio>,<seq>,<usec>,<flags>;<message>\n" followed by optional " KEY=value" lines.
    let message = text.split_once(';')?.1.lines().next()?;
    let mut fields = message.strip_prefix("audit: ")?.split_whitespace();
    if fields.next()?.strip_prefix("type=")? != AUDIT_SECCOMP {
        return None;
    }
    let (mut pid, mut sig, mut arch, mut nr) = (None, None, None, None);
    for token in fields {
        match token.split_once('=') {
            Some(("pid", v)) => pid = v.parse().ok(),
            Some(("sig", v)) => sig = Some(v),
            Some(("arch", v)) => arch = u32::from_str_radix(v, 16).ok(),
            Some(("syscall", v)) => nr = v.parse().ok(),
            _ => {}
        }
    }
    (sig? == SIGSYS && arch? == AUDIT_ARCH_X86_64).then_some((pid?, nr?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KILL: &str = concat!(
        "5,1234,651672907,-;audit: type=1326 audit(1795325291.527:2): auid=4294967295 uid=0 ",
        "gid=0 ses=4294967295 pid=8791 comm=\"k\" exe=\"/tmp/sw/k\" sig=31 arch=c000003e ",
        "syscall=39 compat=0 ip=0x7f555cce1829 code=0x80000000\n"
    );

    #[test]
    fn parses_a_kill_record() {
        assert_eq!(parse_kill(KILL.as_bytes()), Some((8791, 39)));
    }

    #[test]
    fn ignores_log_records_other_arches_and_other_types() {
        let log = KILL
            .replace("sig=31", "sig=0")
            .replace("code=0x80000000", "code=0x7ffc0000");
        assert_eq!(parse_kill(log.as_bytes()), None);
        let i386 = KILL.replace("arch=c000003e", "arch=40000003");
        assert_eq!(parse_kill(i386.as_bytes()), None);
        let avc = KILL.replace("type=1326", "type=1400");
        assert_eq!(parse_kill(avc.as_bytes()), None);
        assert_eq!(parse_kill(b"6,1,2,-;EXT4-fs (vda): mounted\n"), None);
    }

    #[test]
    fn a_process_name_cannot_forge_fields() {
        // The kernel hex-encodes names with spaces; a name without spaces stays one token.
        let forged = KILL.replace("comm=\"k\"", "comm=\"pid=1\"");
        assert_eq!(parse_kill(forged.as_bytes()), Some((8791, 39)));
    }
}
