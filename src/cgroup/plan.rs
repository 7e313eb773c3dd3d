//! The cgroup writes of one run, as data: limits in, `(hierarchy, file, value)` out.
//!
//! Files and units: cgroup-v2.rst (`memory.max` bytes, `memory.swap.max`, `memory.oom.group`,
//! `pids.max`, `cpu.max` "$MAX $PERIOD" in µs) and the v1 documents memory.rst
//! (`memory.limit_in_bytes`, `memory.memsw.limit_in_bytes` = memory + swap, `memory.swappiness`),
//! pids.rst and sched-bwc.rst (`cpu.cfs_period_us`, `cpu.cfs_quota_us`).

use crate::policy::Limits;

use super::BackendKind;
use super::detect::Layout;
use super::error::CgroupError;

/// Which group directory a write goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The cgroup2 group (`v2` backend).
    Unified,
    /// The group in `layout.v1[i]`.
    V1(usize),
}

/// One write into a fresh group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Write {
    pub target: Target,
    pub file: &'static str,
    pub value: String,
    /// A missing file (`ENOENT`) is not an error: the kernel lacks the feature and the write
    /// only tightens what is already limited (e.g. `memory.swap.max` without swap accounting).
    pub optional: bool,
}

/// The kernel's default CFS period (sched-bwc.rst), which a fresh group already has.
const DEFAULT_PERIOD_US: u64 = 100_000;
/// The smallest quota and period the kernel accepts (1 ms).
const MIN_US: u64 = 1_000;
/// The largest period the kernel accepts (1 s).
const MAX_PERIOD_US: u64 = 1_000_000;

/// `cpus` cores as (quota, period) in µs; small shares use a longer period so that the quota
/// stays at or above the kernel's 1 ms minimum.
pub(crate) fn cpu_quota(cpus: f64) -> Result<(u64, u64), CgroupError> {
    if !cpus.is_finite() || cpus <= 0.0 {
        return Err(CgroupError::CpusInvalid { cpus });
    }
    for period in [DEFAULT_PERIOD_US, MAX_PERIOD_US] {
        let quota = (cpus * period as f64).round();
        if quota >= MIN_US as f64 {
            // Saturating float-to-int cast: absurd core counts become "u64::MAX µs".
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "finite and at least MIN_US here; float-to-int `as` saturates"
            )]
            let quota = quota as u64;
            return Ok((quota, period));
        }
    }
    Err(CgroupError::CpusTooSmall { cpus })
}

/// The writes that put `limits` on one fresh group, in order. Only limits that are `Some` and
/// whose controller the layout has produce writes; `enforced()` reports the rest.
pub(crate) fn plan(layout: &Layout, limits: &Limits) -> Result<Vec<Write>, CgroupError> {
    let cpu = limits.cpus.map(cpu_quota).transpose()?;
    let mut out = Vec::new();
    let mut push = |target, file, value: String, optional| {
        out.push(Write {
            target,
            file,
            value,
            optional,
        })
    };
    match layout.backend {
        BackendKind::V2 => {
            let ctl = layout
                .unified
                .as_ref()
                .map(|u| u.enabled)
                .unwrap_or_default();
            let t = Target::Unified;
            if ctl.memory {
                if let Some(bytes) = limits.memory {
                    push(t, "memory.max", bytes.to_string(), false);
                }
                // No swap: a memory limit that can be dodged by swapping is no limit.
                push(t, "memory.swap.max", "0".into(), true);
                // One OOM kill takes the whole sandbox, so no half-dead process tree survives.
                push(t, "memory.oom.group", "1".into(), false);
            }
            if let (true, Some(n)) = (ctl.pids, limits.pids) {
                push(t, "pids.max", n.to_string(), false);
            }
            if let (true, Some((quota, period))) = (ctl.cpu, cpu) {
                push(t, "cpu.max", format!("{quota} {period}"), false);
            }
        }
        BackendKind::V1 => {
            for (i, h) in layout.v1.iter().enumerate() {
                let t = Target::V1(i);
                if let (true, Some(bytes)) = (h.ctl.memory, limits.memory) {
                    // The plain limit first: memsw must never be below it (memory.rst 2.5).
                    push(t, "memory.limit_in_bytes", bytes.to_string(), false);
                    if layout.v1_memsw {
                        push(t, "memory.memsw.limit_in_bytes", bytes.to_string(), false);
                    } else {
                        // Without swap accounting the group could swap past its limit.
                        push(t, "memory.swappiness", "0".into(), false);
                    }
                }
                if let (true, Some(n)) = (h.ctl.pids, limits.pids) {
                    push(t, "pids.max", n.to_string(), false);
                }
                if let (true, Some((quota, period))) = (h.ctl.cpu, cpu) {
                    if period != DEFAULT_PERIOD_US {
                        push(t, "cpu.cfs_period_us", period.to_string(), false);
                    }
                    push(t, "cpu.cfs_quota_us", quota.to_string(), false);
                }
            }
        }
        BackendKind::None => {}
    }
    Ok(out)
}
