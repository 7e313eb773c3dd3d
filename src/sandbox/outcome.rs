//! What the supervisor saw of one exec, and the verdict it makes: the status precedence (set-up
//! failure, time limits, OOM, output cap, the program's own end), the message, CPU and memory.

use std::time::Duration;

use nix::errno::Errno;

use super::protocol::{self, Exit};
use super::supervise::CpuBase;
use crate::cgroup::RunGroup;
use crate::policy::Limits;
use crate::verdict::{CpuTime, SeccompDenied, SeccompViolation, Status, Stream, Verdict};

#[derive(Default)]
pub(super) struct Capture {
    pub(super) data: Vec<u8>,
    pub(super) total: u64,
    pub(super) open: bool,
}

/// What the supervisor saw; turned into a verdict by `into_verdict`.
pub(super) struct Outcome {
    pub(super) exit: Option<Exit>,
    pub(super) init_signal: Option<i32>,
    pub(super) setup_error: Option<protocol::SetupError>,
    pub(super) exec_failed: Option<(String, i32)>,
    pub(super) killed_for: Option<Status>,
    pub(super) stdout: Capture,
    pub(super) stderr: Capture,
    pub(super) wall: Duration,
    /// The first dangerous call during this exec (its caller was killed).
    pub(super) seccomp_violation: Option<SeccompViolation>,
    /// Refused calls answered with an errno during this exec.
    pub(super) seccomp_denied: Vec<SeccompDenied>,
    pub(super) cancelled: bool,
    /// The init is gone: the sandbox cannot run anything more.
    pub(super) init_gone: bool,
}

impl Outcome {
    /// Whether the sandbox ended with this exec (its init is gone, or a limit killed it).
    pub(super) fn ended_sandbox(&self) -> bool {
        self.init_gone || self.killed_for.is_some()
    }

    pub(super) fn new() -> Outcome {
        let open = || Capture {
            open: true,
            ..Capture::default()
        };
        Outcome {
            exit: None,
            init_signal: None,
            setup_error: None,
            exec_failed: None,
            killed_for: None,
            stdout: open(),
            stderr: open(),
            wall: Duration::ZERO,
            seccomp_violation: None,
            seccomp_denied: Vec::new(),
            cancelled: false,
            init_gone: false,
        }
    }

    pub(super) fn into_verdict(
        self,
        limits: &Limits,
        group: Option<&RunGroup>,
        base: CpuBase,
    ) -> Verdict {
        let stats = group.map(RunGroup::stats);
        let oom = stats
            .as_ref()
            .and_then(|s| s.oom_kills)
            .is_some_and(|n| n > 0);
        let exit = self.exit;
        let signal = exit.and_then(|e| e.signal).or(self.init_signal);
        // RLIMIT_CPU is the CPU limit's per-process backstop: its SIGXCPU is that limit, even when
        // the tick-sampled count it fires on is ahead of the precise rusage (a loaded host). Its
        // hard SIGKILL is told from other kills by the CPU the payload used.
        let cpu_limited = limits.cpu.is_some()
            && (signal == Some(libc::SIGXCPU)
                || signal == Some(libc::SIGKILL)
                    && exit.is_some_and(|e| {
                        Duration::from_micros(e.user_us + e.sys_us) + Duration::from_millis(50)
                            >= limits.cpu.unwrap_or_default()
                    }));
        // The precedence is one unit-tested table (`verdict::status_of`).
        let status = crate::verdict::status_of(&crate::verdict::Ending {
            setup_failed: self.setup_error.is_some(),
            killed_for: self.killed_for,
            oom,
            exit: exit.and_then(|e| match (e.code, e.signal) {
                (_, Some(sig)) => Some(crate::verdict::Exit::Signal(sig)),
                (Some(code), None) => Some(crate::verdict::Exit::Code(code)),
                (None, None) => None,
            }),
            cpu_limited,
            seccomp_violation: self.seccomp_violation.is_some(),
        });
        let mut message = match &self.setup_error {
            Some(e) => Some(format!(
                "sandbox set-up failed at {}: {}",
                e.step, e.message
            )),
            // No exit, no cause: the init ended without reporting anything.
            None if status == Status::SetupFailed && self.killed_for.is_none() => Some(format!(
                "the sandbox init ended without a report (signal {:?})",
                self.init_signal
            )),
            None => None,
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
                limits.output
            ));
        }
        let cpu = match stats.as_ref().map(|s| (s.cpu_user_us, s.cpu_system_us)) {
            Some((Some(u), Some(s))) => CpuTime::from_micros(
                u.saturating_sub(base.user_us),
                s.saturating_sub(base.system_us),
            ),
            _ => exit
                .map(|e| CpuTime::from_micros(e.user_us, e.sys_us))
                .unwrap_or_default(),
        };
        let seccomp_violation = (status == Status::SeccompViolation).then(|| {
            self.seccomp_violation.unwrap_or(SeccompViolation {
                syscall: None,
                nr: None,
            })
        });
        Verdict {
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
            limits: limits.clone(),
            enforced: Default::default(),
            policy: None,
            seccomp_violation,
            seccomp_denied: self.seccomp_denied,
            message,
            compile: None,
        }
    }
}
