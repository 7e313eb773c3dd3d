//! Usage statistics of one group, read from cgroupfs once the run has ended.
//!
//! Sources (all optional: older kernels lack some files, and a missing file is `None`, never a
//! guess): v2 `memory.peak` (5.19), `pids.peak`, `pids.events` `max`, `cpu.stat` `user_usec` /
//! `system_usec` / `throttled_usec`, `memory.events` `oom_kill`; v1 `memory.max_usage_in_bytes`,
//! `pids.peak` (6.x kernels also have it in v1), `pids.events`, `cpuacct.usage_user`/`_sys` (ns),
//! or `cpuacct.stat` (USER_HZ ticks), `cpu.stat` `throttled_time` (ns), `memory.oom_control`
//! `oom_kill`.

use std::path::{Path, PathBuf};

use nix::unistd::{SysconfVar, sysconf};
use serde::Serialize;

use super::detect::Ctl;
use super::fsops::CgFs;

/// What the verdict reports about one run's group. `None` means "this host cannot tell".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GroupStats {
    /// Highest memory use of the group in bytes (v2 `memory.peak`, v1 `memory.max_usage_in_bytes`).
    pub memory_peak_bytes: Option<u64>,
    /// Highest number of tasks at once (`pids.peak`; absent on kernels before 6.1 in v1).
    pub pids_peak: Option<u64>,
    /// Forks refused because `pids.max` was reached (`pids.events` `max`).
    pub pids_limit_hits: Option<u64>,
    /// User CPU time of all members, in µs.
    pub cpu_user_us: Option<u64>,
    /// System CPU time of all members, in µs.
    pub cpu_system_us: Option<u64>,
    /// Time the group was held back by its CPU quota, in µs.
    pub cpu_throttled_us: Option<u64>,
    /// Processes the kernel OOM killer killed in the group.
    pub oom_kills: Option<u64>,
}

/// The directories of one group, by role.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sources {
    /// The cgroup2 group (v2 backend, or the hybrid tracker) and its enabled controllers.
    pub v2: Option<(PathBuf, Ctl)>,
    /// v1 groups: memory, pids, cpu, cpuacct (co-mounted controllers share one dir).
    pub memory: Option<PathBuf>,
    pub pids: Option<PathBuf>,
    pub cpu: Option<PathBuf>,
    pub cpuacct: Option<PathBuf>,
}

/// The value after `key` in a flat-keyed file (`key value` per line, cgroup-v2.rst
/// "Conventions").
pub(crate) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// A single-value file; `max` (unlimited) and garbage are `None`.
pub(crate) fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

fn read_keyed(fs: &dyn CgFs, file: &Path, key: &str) -> Option<u64> {
    fs.read(file).ok().and_then(|t| keyed(&t, key))
}

fn read_number(fs: &dyn CgFs, file: &Path) -> Option<u64> {
    fs.read(file).ok().and_then(|t| number(&t))
}

/// Read every statistic the group's files offer.
pub(crate) fn collect(fs: &dyn CgFs, src: &Sources) -> GroupStats {
    let v2 = src.v2.as_ref();
    let v2_has = |pick: fn(Ctl) -> bool| v2.filter(|(_, c)| pick(*c)).map(|(d, _)| d);
    let mem_v2 = v2_has(|c| c.memory);
    let pids_v2 = v2_has(|c| c.pids);
    let (cpu_user_us, cpu_system_us) = cpu_times(fs, src);
    GroupStats {
        memory_peak_bytes: match (mem_v2, &src.memory) {
            (Some(d), _) => read_number(fs, &d.join("memory.peak")),
            (None, Some(d)) => read_number(fs, &d.join("memory.max_usage_in_bytes")),
            _ => None,
        },
        pids_peak: pids_v2
            .or(src.pids.as_ref())
            .and_then(|d| read_number(fs, &d.join("pids.peak"))),
        pids_limit_hits: pids_v2
            .or(src.pids.as_ref())
            .and_then(|d| read_keyed(fs, &d.join("pids.events"), "max")),
        cpu_user_us,
        cpu_system_us,
        cpu_throttled_us: match (v2_has(|c| c.cpu), &src.cpu) {
            (Some(d), _) => read_keyed(fs, &d.join("cpu.stat"), "throttled_usec"),
            (None, Some(d)) => {
                read_keyed(fs, &d.join("cpu.stat"), "throttled_time").map(|ns| ns / 1000)
            }
            _ => None,
        },
        oom_kills: match (mem_v2, &src.memory) {
            (Some(d), _) => read_keyed(fs, &d.join("memory.events"), "oom_kill"),
            (None, Some(d)) => read_keyed(fs, &d.join("memory.oom_control"), "oom_kill"),
            _ => None,
        },
    }
}

/// User and system CPU time in µs: cgroup2 `cpu.stat` (core statistics, present in every group
/// even without the cpu controller), else cpuacct.
fn cpu_times(fs: &dyn CgFs, src: &Sources) -> (Option<u64>, Option<u64>) {
    if let Some((d, _)) = &src.v2 {
        let text = fs.read(&d.join("cpu.stat")).unwrap_or_default();
        return (keyed(&text, "user_usec"), keyed(&text, "system_usec"));
    }
    let Some(d) = &src.cpuacct else {
        return (None, None);
    };
    let ns = |f: &str| read_number(fs, &d.join(f)).map(|ns| ns / 1000);
    match (ns("cpuacct.usage_user"), ns("cpuacct.usage_sys")) {
        (Some(u), Some(s)) => (Some(u), Some(s)),
        _ => {
            // cpuacct.stat counts USER_HZ ticks (cgroup-v1/cpuacct.rst).
            let text = fs.read(&d.join("cpuacct.stat")).unwrap_or_default();
            let hz = sysconf(SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100);
            let us =
                |ticks: u64| ticks.saturating_mul(1_000_000) / u64::try_from(hz).unwrap_or(100);
            (keyed(&text, "user").map(us), keyed(&text, "system").map(us))
        }
    }
}

/// The CPU time in µs from a polled file's bytes: cgroup2 `cpu.stat` (`usage_usec`) or v1
/// `cpuacct.usage` (ns).
pub(crate) fn cpu_usage_from(bytes: &[u8], v2: bool) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if v2 {
        keyed(text, "usage_usec")
    } else {
        number(text).map(|ns| ns / 1000)
    }
}
