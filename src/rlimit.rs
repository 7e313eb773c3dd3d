//! Resource limits (setrlimit): per-process backstops that need no cgroup.

use nix::errno::Errno;

use crate::policy::Limits;
use crate::sys;

#[derive(Debug, thiserror::Error)]
#[error("setrlimit({resource}, soft={soft}, hard={hard}): {errno}")]
pub struct RlimitError {
    resource: &'static str,
    soft: u64,
    hard: u64,
    pub(crate) errno: Errno,
}

/// One `setrlimit` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub name: &'static str,
    pub resource: libc::__rlimit_resource_t,
    pub soft: u64,
    pub hard: u64,
}

/// Which limits no cgroup enforces, so that an rlimit stands in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backstops {
    /// RLIMIT_AS for the memory limit: it counts address space, so it breaks runtimes that
    /// reserve large ranges such as V8; the verdict reports `memory_limit_enforced: false`.
    pub memory: bool,
    /// RLIMIT_NPROC for the pids limit. Since Linux 5.14 the count is kept per user namespace
    /// (ucounts), and every sandbox has its own, so it counts this sandbox's tasks only; the
    /// payload has no CAP_SYS_RESOURCE/CAP_SYS_ADMIN in the initial namespace to bypass it.
    pub pids: bool,
}

/// The rlimits of a payload, with the backstops for limits no cgroup enforces.
pub fn plan(limits: &Limits, backstops: Backstops) -> Vec<Rlimit> {
    let one = |name, resource, value: u64| Rlimit {
        name,
        resource,
        soft: value,
        hard: value,
    };
    let mut out = vec![
        one("RLIMIT_CORE", libc::RLIMIT_CORE, 0),
        one("RLIMIT_FSIZE", libc::RLIMIT_FSIZE, limits.file_size),
        one("RLIMIT_NOFILE", libc::RLIMIT_NOFILE, limits.open_files),
        one("RLIMIT_STACK", libc::RLIMIT_STACK, limits.stack),
    ];
    if let Some(cpu) = limits.cpu {
        out.push(cpu_limit(cpu));
    }
    if let (true, Some(mem)) = (backstops.memory, limits.memory) {
        out.push(one("RLIMIT_AS", libc::RLIMIT_AS, mem));
    }
    if let (true, Some(pids)) = (backstops.pids, limits.pids) {
        out.push(one("RLIMIT_NPROC", libc::RLIMIT_NPROC, pids));
    }
    out
}

/// RLIMIT_CPU for a CPU-time limit: per process, whole seconds rounded up, SIGXCPU at the soft
/// limit and SIGKILL one second later. The supervisor's cgroup accounting is the precise limit.
pub fn cpu_limit(cpu: std::time::Duration) -> Rlimit {
    let secs = cpu.as_secs() + u64::from(cpu.subsec_nanos() > 0);
    Rlimit {
        name: "RLIMIT_CPU",
        resource: libc::RLIMIT_CPU,
        soft: secs,
        hard: secs + 1,
    }
}

/// Apply a plan to the calling process (inherited across fork and execve).
pub fn apply(plan: &[Rlimit]) -> Result<(), RlimitError> {
    for r in plan {
        sys::setrlimit(r.resource, r.soft, r.hard).map_err(|errno| RlimitError {
            resource: r.name,
            soft: r.soft,
            hard: r.hard,
            errno,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn core_dumps_are_off_and_cpu_rounds_up() {
        let mut limits = Limits::default();
        limits.cpu = Some(Duration::from_millis(1500));
        let plan = plan(&limits, Backstops::default());
        assert!(plan.contains(&Rlimit {
            name: "RLIMIT_CORE",
            resource: libc::RLIMIT_CORE,
            soft: 0,
            hard: 0
        }));
        let cpu = plan.iter().find(|r| r.name == "RLIMIT_CPU").unwrap();
        assert_eq!((cpu.soft, cpu.hard), (2, 3));
        assert!(!plan.iter().any(|r| r.name == "RLIMIT_AS"));
    }

    #[test]
    fn address_space_limit_only_without_cgroup_memory() {
        let mut limits = Limits::default();
        limits.memory = Some(64 << 20);
        assert!(
            !plan(&limits, Backstops::default())
                .iter()
                .any(|r| r.name == "RLIMIT_AS")
        );
        let as_limit = plan(
            &limits,
            Backstops {
                memory: true,
                pids: false,
            },
        )
        .into_iter()
        .find(|r| r.name == "RLIMIT_AS")
        .unwrap();
        assert_eq!(as_limit.soft, 64 << 20);
    }

    #[test]
    fn task_limit_by_rlimit_only_without_cgroup_pids() {
        let mut limits = Limits::default();
        limits.pids = Some(32);
        assert!(
            !plan(&limits, Backstops::default())
                .iter()
                .any(|r| r.name == "RLIMIT_NPROC")
        );
        let nproc = plan(
            &limits,
            Backstops {
                memory: false,
                pids: true,
            },
        )
        .into_iter()
        .find(|r| r.name == "RLIMIT_NPROC")
        .unwrap();
        assert_eq!((nproc.soft, nproc.hard), (32, 32));
    }
}
