//! The verdict: one JSON object per run, and the CLI exit code derived from it.
//!
//! Field names and units are stable (bytes are bytes, times are milliseconds); see
//! `docs/verdict.md`.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::policy::Limits;

/// Why a run ended, most specific cause first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    ExitNonzero,
    Signaled,
    TimeoutWall,
    TimeoutCpu,
    Oom,
    OutputLimit,
    SeccompViolation,
    SetupFailed,
    RejectedByPolicy,
    /// The compile stage did not succeed; the run stage was not started (see `Verdict::compile`).
    CompileFailed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::ExitNonzero => "exit_nonzero",
            Status::Signaled => "signaled",
            Status::TimeoutWall => "timeout_wall",
            Status::TimeoutCpu => "timeout_cpu",
            Status::Oom => "oom",
            Status::OutputLimit => "output_limit",
            Status::SeccompViolation => "seccomp_violation",
            Status::SetupFailed => "setup_failed",
            Status::RejectedByPolicy => "rejected_by_policy",
            Status::CompileFailed => "compile_failed",
        }
    }
}

/// What the supervisor saw when a run ended: the facts `status_of` ranks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ending {
    /// The child reported a set-up error before `execve`.
    pub setup_failed: bool,
    /// Why the supervisor killed the sandbox, if it did: `TimeoutWall`, `TimeoutCpu`,
    /// `OutputLimit`, `SetupFailed` (it stalled in set-up) or `Signaled` (a forwarded signal).
    pub killed_for: Option<Status>,
    /// The cgroup counted an OOM kill.
    pub oom: bool,
    /// The payload was reaped: its exit code, or the signal that ended it.
    pub exit: Option<Exit>,
    /// The payload ran into its CPU limit (SIGXCPU, or SIGKILL at the hard limit).
    pub cpu_limited: bool,
    /// A dangerous system call anywhere in the sandbox's process tree (its caller was killed).
    pub seccomp_violation: bool,
}

/// How a reaped payload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// The verdict's status for an ending, by precedence: a set-up error explains everything after
/// it; the supervisor's own time-limit kills come next (they cause the signal the payload died
/// of); then an OOM kill (the kernel's SIGKILL looks like any other); then the output cap and a
/// set-up stall; then a dangerous system call anywhere in the tree (even when the top process went
/// on and exited); then how the payload itself ended (SIGSYS is seccomp's kill, a signal at the CPU
/// limit is the CPU limit). A run with no exit and no cause is a set-up failure: the init ended
/// without reporting anything.
pub fn status_of(e: &Ending) -> Status {
    if e.setup_failed {
        return Status::SetupFailed;
    }
    if let Some(why @ (Status::TimeoutWall | Status::TimeoutCpu)) = e.killed_for {
        return why;
    }
    if e.oom {
        return Status::Oom;
    }
    if let Some(why @ (Status::OutputLimit | Status::SetupFailed)) = e.killed_for {
        return why;
    }
    if e.seccomp_violation {
        return Status::SeccompViolation;
    }
    match e.exit {
        Some(Exit::Signal(libc::SIGSYS)) => Status::SeccompViolation,
        Some(Exit::Signal(_)) if e.cpu_limited => Status::TimeoutCpu,
        Some(Exit::Signal(_)) => Status::Signaled,
        Some(Exit::Code(0)) => Status::Ok,
        Some(Exit::Code(_)) => Status::ExitNonzero,
        None if e.killed_for == Some(Status::Signaled) => Status::Signaled,
        None => Status::SetupFailed,
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTime {
    pub user_ms: u64,
    pub system_ms: u64,
    pub total_ms: u64,
}

impl CpuTime {
    pub fn from_micros(user_us: u64, system_us: u64) -> Self {
        CpuTime {
            user_ms: user_us / 1000,
            system_ms: system_us / 1000,
            total_ms: (user_us + system_us) / 1000,
        }
    }
}

/// One captured output stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stream {
    /// The captured bytes: UTF-8 text, or base64 when `encoding` says so.
    pub data: String,
    /// `utf-8` or `base64` (when the bytes are not valid UTF-8).
    pub encoding: String,
    /// Bytes the payload wrote to the stream (including any discarded past the cap).
    pub bytes: u64,
    /// Whether `data` holds fewer bytes than the payload wrote.
    pub truncated: bool,
}

impl Stream {
    pub fn new(captured: &[u8], total: u64) -> Self {
        let (data, encoding) = match std::str::from_utf8(captured) {
            Ok(s) => (s.to_string(), "utf-8"),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(captured),
                "base64",
            ),
        };
        Stream {
            data,
            encoding: encoding.to_string(),
            bytes: total,
            truncated: total > captured.len() as u64,
        }
    }
}

/// Which isolation layers were really active in this run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enforced {
    pub userns: bool,
    pub pidns: bool,
    pub netns: bool,
    pub mountns: bool,
    pub ipcns: bool,
    pub utsns: bool,
    pub cgroupns: bool,
    /// A time namespace of its own: uptime and boot time start near zero (Linux 5.6).
    pub timens: bool,
    /// Outer uid the sandbox's root is mapped to.
    pub outer_uid: u32,
    pub landlock: LandlockStatus,
    pub seccomp: SeccompStatus,
    pub capabilities_dropped: bool,
    pub no_new_privs: bool,
    pub readonly_root: bool,
    pub cgroup: CgroupEnforced,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockStatus {
    /// `fully_enforced`, `partially_enforced` or `not_enforced`.
    pub status: String,
    /// The ABI the kernel provided (0 when Landlock is unavailable).
    pub abi: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompStatus {
    pub enabled: bool,
    /// `kill`, `errno` or `log`.
    pub default_action: String,
    /// Instructions in the allowlist program.
    pub instructions: usize,
}

/// What the limit manager enforced (see `crate::cgroup`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupEnforced {
    /// `v2`, `v1`, `hybrid` or `none`.
    pub backend: String,
    pub memory_limit_enforced: bool,
    pub pids_limit_enforced: bool,
    pub cpu_limit_enforced: bool,
    /// Whether the whole tree can be killed at once (`cgroup.kill`).
    pub kill_all: bool,
}

/// A finding of the pre-execution analysis, as it appears in the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyFinding {
    pub rule: String,
    pub severity: String,
    pub message: String,
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyReport {
    pub preset: String,
    pub mode: String,
    pub safe: bool,
    pub findings: Vec<PolicyFinding>,
}

impl PolicyReport {
    /// One line for a refusal: the preset and the first findings with their positions.
    pub fn rejection_message(&self) -> String {
        let worst: Vec<String> = self
            .findings
            .iter()
            .take(3)
            .map(|f| format!("{} at {}:{} ({})", f.rule, f.line, f.column, f.severity))
            .collect();
        format!(
            "refused by the {} analysis preset: {}",
            self.preset,
            worst.join("; ")
        )
    }
}

/// The first dangerous system call of the run (its process was killed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompViolation {
    /// The x86_64 name; `null` for a foreign ABI (i386 `int 0x80`, x32).
    pub syscall: Option<String>,
    pub nr: Option<i64>,
}

/// One kind of system call the filter refused with an errno (the program went on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompDenied {
    /// The x86_64 name; `null` for a number the kernel does not name (and the overflow entry).
    pub syscall: Option<String>,
    /// The syscall number; `null` only for the overflow entry.
    pub nr: Option<i64>,
    /// The errno the caller got, e.g. `ENOSYS`, `EAFNOSUPPORT`.
    pub errno: String,
    /// How many times it was refused.
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    pub status: Status,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub wall_ms: u64,
    pub cpu_ms: CpuTime,
    pub memory_peak_bytes: Option<u64>,
    pub pids_peak: Option<u64>,
    /// Times a fork was refused because `pids.max` was reached.
    pub pids_limit_hits: Option<u64>,
    pub stdout: Stream,
    pub stderr: Stream,
    pub limits: Limits,
    pub enforced: Enforced,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seccomp_violation: Option<SeccompViolation>,
    /// System calls refused with an errno, by number (see docs/verdict.md).
    #[serde(default)]
    pub seccomp_denied: Vec<SeccompDenied>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The compile stage of a compiled-language profile, with the same fields as a run (its own
    /// status, output, times, memory, limits). Absent for profiles without a compile stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile: Option<Box<Verdict>>,
}

impl Verdict {
    /// A verdict for a run that never started (bad input, failed set-up, refused by policy).
    pub fn not_started(status: Status, limits: Limits, message: String) -> Self {
        Verdict {
            status,
            exit_code: None,
            signal: None,
            wall_ms: 0,
            cpu_ms: CpuTime::default(),
            memory_peak_bytes: None,
            pids_peak: None,
            pids_limit_hits: None,
            stdout: Stream::new(b"", 0),
            stderr: Stream::new(b"", 0),
            limits,
            enforced: Enforced::default(),
            policy: None,
            seccomp_violation: None,
            seccomp_denied: Vec::new(),
            message: Some(message),
            compile: None,
        }
    }

    /// The CLI exit code (DESIGN §4): the payload's own code, 128+n for signal n, 124 for a
    /// timeout, 125 when stockade itself failed, 137 for OOM, 153 (128+SIGXFSZ) when the output
    /// cap killed the run, 126 when refused by policy.
    pub fn exit_code(&self) -> i32 {
        match self.status {
            Status::Ok => 0,
            Status::ExitNonzero => self.exit_code.unwrap_or(1),
            Status::Signaled => 128 + self.signal.unwrap_or(9),
            // Whichever process made the dangerous call, and even if the top one exited.
            Status::SeccompViolation => 128 + libc::SIGSYS,
            Status::TimeoutWall | Status::TimeoutCpu => 124,
            Status::Oom => 137,
            Status::OutputLimit => 128 + libc::SIGXFSZ,
            Status::SetupFailed => 125,
            Status::RejectedByPolicy => 126,
            // The compiler's own code (gcc and javac exit 1), or 124/137/... when a limit ended it.
            Status::CompileFailed => match &self.compile {
                Some(c) if c.status != Status::CompileFailed => c.exit_code(),
                _ => 1,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(status: Status, code: Option<i32>, signal: Option<i32>) -> Verdict {
        let mut v = Verdict::not_started(status, Limits::default(), String::new());
        v.exit_code = code;
        v.signal = signal;
        v
    }

    #[test]
    fn exit_codes_follow_the_design_table() {
        assert_eq!(verdict(Status::Ok, Some(0), None).exit_code(), 0);
        assert_eq!(verdict(Status::ExitNonzero, Some(3), None).exit_code(), 3);
        assert_eq!(
            verdict(Status::ExitNonzero, Some(127), None).exit_code(),
            127
        );
        assert_eq!(verdict(Status::Signaled, None, Some(15)).exit_code(), 143);
        assert_eq!(
            verdict(Status::SeccompViolation, None, Some(31)).exit_code(),
            159
        );
        assert_eq!(verdict(Status::TimeoutWall, None, Some(9)).exit_code(), 124);
        assert_eq!(verdict(Status::TimeoutCpu, None, Some(9)).exit_code(), 124);
        assert_eq!(verdict(Status::Oom, None, Some(9)).exit_code(), 137);
        assert_eq!(verdict(Status::OutputLimit, None, Some(9)).exit_code(), 153);
        assert_eq!(verdict(Status::SetupFailed, None, None).exit_code(), 125);
        assert_eq!(
            verdict(Status::RejectedByPolicy, None, None).exit_code(),
            126
        );
    }

    #[test]
    fn verdicts_round_trip_through_json() {
        let mut v = verdict(Status::Oom, None, Some(9));
        v.limits.wall = Some(std::time::Duration::from_millis(1500));
        v.stdout = Stream::new(&[0xff], 1);
        let back: Verdict = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        assert_eq!(back.status, Status::Oom);
        assert_eq!(back.limits, v.limits);
        assert_eq!(back.stdout, v.stdout);
    }

    #[test]
    fn status_precedence_table() {
        let sig = |n| Some(Exit::Signal(n));
        let kill = |s| Some(s);
        let end = |setup_failed, killed_for, oom, exit, cpu_limited| Ending {
            setup_failed,
            killed_for,
            oom,
            exit,
            cpu_limited,
            seccomp_violation: false,
        };
        let violation = |ending: Ending| Ending {
            seccomp_violation: true,
            ..ending
        };
        #[rustfmt::skip]
        let table = [
            // set-up error beats every later cause
            (end(true, kill(Status::TimeoutWall), true, sig(9), false), Status::SetupFailed),
            // the supervisor's time kills beat the OOM and the signal they caused
            (end(false, kill(Status::TimeoutWall), true, sig(9), false), Status::TimeoutWall),
            (end(false, kill(Status::TimeoutCpu), false, sig(9), true), Status::TimeoutCpu),
            // OOM beats the output cap and the SIGKILL it delivered
            (end(false, kill(Status::OutputLimit), true, sig(9), false), Status::Oom),
            (end(false, None, true, Some(Exit::Code(0)), false), Status::Oom),
            (end(false, kill(Status::OutputLimit), false, sig(9), false), Status::OutputLimit),
            (end(false, kill(Status::SetupFailed), false, None, false), Status::SetupFailed),
            // a dangerous call anywhere in the tree, even when the top process exits 0; the
            // causes above still come first
            (violation(end(false, None, false, Some(Exit::Code(0)), false)), Status::SeccompViolation),
            (violation(end(false, kill(Status::TimeoutWall), false, sig(9), false)), Status::TimeoutWall),
            (violation(end(false, None, true, sig(9), false)), Status::Oom),
            // then how the payload ended
            (end(false, None, false, sig(libc::SIGSYS), true), Status::SeccompViolation),
            (end(false, None, false, sig(libc::SIGXCPU), true), Status::TimeoutCpu),
            (end(false, None, false, sig(libc::SIGSEGV), false), Status::Signaled),
            (end(false, kill(Status::Signaled), false, sig(15), false), Status::Signaled),
            (end(false, None, false, Some(Exit::Code(0)), false), Status::Ok),
            (end(false, None, false, Some(Exit::Code(3)), false), Status::ExitNonzero),
            // a forwarded signal that ended the init before the payload was reaped
            (end(false, kill(Status::Signaled), false, None, false), Status::Signaled),
            // nothing known: the init ended without a report
            (end(false, None, false, None, false), Status::SetupFailed),
        ];
        for (ending, want) in table {
            assert_eq!(status_of(&ending), want, "{ending:?}");
        }
    }

    #[test]
    fn status_names_are_stable() {
        let json = serde_json::to_value(verdict(Status::TimeoutWall, None, None)).unwrap();
        assert_eq!(json["status"], "timeout_wall");
        assert_eq!(Status::SeccompViolation.as_str(), "seccomp_violation");
        assert_eq!(
            serde_json::to_value(Status::RejectedByPolicy).unwrap(),
            "rejected_by_policy"
        );
    }

    #[test]
    fn streams_encode_binary_as_base64_and_count_truncation() {
        let s = Stream::new(b"hi\n", 3);
        assert_eq!(
            (s.data.as_str(), s.encoding.as_str(), s.truncated),
            ("hi\n", "utf-8", false)
        );
        let s = Stream::new(&[0xff, 0xfe], 10);
        assert_eq!(
            (s.data.as_str(), s.encoding.as_str(), s.bytes, s.truncated),
            ("//4=", "base64", 10, true)
        );
    }
}
