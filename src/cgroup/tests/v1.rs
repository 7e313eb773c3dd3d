//! cgroup v1 / hybrid backend against the fake tree (shaped like this development machine).

use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::signal::Signal;

use super::{Fixture, PID, limits, put, readable};
use crate::cgroup::fake::Op;
use crate::cgroup::{BackendKind, CgroupOptions};

const MEM: &str = "cg/memory/process_api/abc";

#[test]
fn detect_picks_v1_with_the_cgroup2_mount_as_tracker_and_writes_nothing() {
    let f = Fixture::hybrid();
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    assert_eq!(mgr.backend(), BackendKind::V1);
    assert_eq!(mgr.backend_name(), "hybrid");
    assert!(f.fs.writes.lock().unwrap().is_empty());
    assert!(f.host.state_dir.is_dir());
}

#[test]
fn create_nests_under_our_own_cgroups_and_attach_joins_every_v1_group() {
    let f = Fixture::hybrid();
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    let g = mgr
        .create(&limits(Some(64 << 20), Some(16), Some(1.5)))
        .unwrap();
    let name = g.name().to_string();
    let dirs: Vec<String> = g.paths().iter().map(|p| f.rel(p)).collect();
    // cpuacct is not used: cgroup2's cpu.stat has the CPU times.
    assert_eq!(
        dirs,
        [
            format!("cg/unified/{name}"),
            format!("cg/pids/{name}"),
            format!("{MEM}/{name}"),
            format!("cg/cpu/{name}"),
        ]
    );
    let log = f.fs.writes.lock().unwrap().clone();
    let value = |file: &str| {
        log.iter()
            .find(|(p, _)| p.ends_with(file))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(value("memory.limit_in_bytes").as_deref(), Some("67108864"));
    assert_eq!(
        value("memory.memsw.limit_in_bytes").as_deref(),
        Some("67108864")
    );
    assert_eq!(value("pids.max").as_deref(), Some("16"));
    assert_eq!(value("cpu.cfs_quota_us").as_deref(), Some("150000"));
    assert_eq!(
        value("cpu.cfs_period_us"),
        None,
        "the default period is not rewritten"
    );
    assert_eq!(value("memory.swappiness"), None);
    // The OOM eventfd is registered as "<eventfd> <memory.oom_control fd>" (memory.rst §9).
    let reg = value("cgroup.event_control").unwrap();
    let efd = g.event_fd().unwrap().as_raw_fd();
    assert!(reg.starts_with(&format!("{efd} ")), "{reg}");
    let before = log.len();
    g.attach(31337).unwrap();
    let log = f.fs.writes.lock().unwrap().clone();
    let attached: Vec<&String> = log[before..].iter().map(|(p, _)| p).collect();
    assert_eq!(
        attached,
        [
            &format!("cg/pids/{name}/cgroup.procs"),
            &format!("{MEM}/{name}/cgroup.procs"),
            &format!("cg/cpu/{name}/cgroup.procs"),
        ]
    );
    assert!(
        g.clone_into_fd().is_some(),
        "the unified group takes CLONE_INTO_CGROUP"
    );
    let e = g.enforced();
    assert_eq!(e.backend, "hybrid");
    assert!(e.memory_limit_enforced && e.pids_limit_enforced && e.cpu_limit_enforced && e.kill_all);
    assert!(g.kill().unwrap(), "cgroup.kill of the unified group");
}

#[test]
fn without_swap_accounting_swappiness_is_set_to_zero() {
    let f = Fixture::hybrid();
    std::fs::remove_file(f.path(&format!("{MEM}/memory.memsw.limit_in_bytes"))).unwrap();
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    let _g = mgr.create(&limits(Some(1 << 20), None, None)).unwrap();
    assert!(f.fs.written("memsw.limit_in_bytes").is_empty());
    assert_eq!(f.fs.written("memory.swappiness")[0].1, "0");
}

#[test]
fn small_cpu_shares_use_a_longer_period() {
    let f = Fixture::hybrid();
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    let _g = mgr.create(&limits(None, None, Some(0.005))).unwrap();
    let log = f.fs.writes.lock().unwrap().clone();
    let files: Vec<(&str, &str)> = log
        .iter()
        .map(|(p, v)| (p.rsplit('/').next().unwrap(), v.as_str()))
        .filter(|(p, _)| p.starts_with("cpu."))
        .collect();
    assert_eq!(
        files,
        [
            ("cpu.cfs_period_us", "1000000"),
            ("cpu.cfs_quota_us", "5000")
        ]
    );
}

#[test]
fn v1_only_uses_cpuacct_and_signals_members_when_there_is_no_cgroup_kill() {
    let f = Fixture::hybrid();
    let info = std::fs::read_to_string(f.path("proc/self/mountinfo")).unwrap();
    let without: String = info
        .lines()
        .filter(|l| !l.contains("cgroup2"))
        .map(|l| format!("{l}\n"))
        .collect();
    put(&f.path("proc/self/mountinfo"), &without);
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    assert_eq!(mgr.backend_name(), "v1");
    let g = mgr.create(&limits(None, None, None)).unwrap();
    assert!(
        g.paths()
            .iter()
            .any(|p| f.rel(p).starts_with("cg/cpuacct/"))
    );
    assert!(g.clone_into_fd().is_none());
    assert!(!g.enforced().kill_all);
    let acct = g
        .paths()
        .iter()
        .find(|p| f.rel(p).starts_with("cg/cpuacct/"))
        .unwrap()
        .clone();
    put(&acct.join("cpuacct.usage"), "2500000000\n");
    put(&acct.join("cpuacct.usage_user"), "2000000000\n");
    put(&acct.join("cpuacct.usage_sys"), "500000000\n");
    assert_eq!(g.cpu_usage_us(), Some(2_500_000));
    let s = g.stats();
    assert_eq!(
        (s.cpu_user_us, s.cpu_system_us),
        (Some(2_000_000), Some(500_000))
    );
    let mem = g
        .paths()
        .iter()
        .find(|p| f.rel(p).starts_with(MEM))
        .unwrap()
        .clone();
    put(&mem.join("cgroup.procs"), "7001\n7002\n");
    assert!(!g.kill().unwrap(), "no cgroup.kill: Ok(false)");
    let sig = f.fs.signals.lock().unwrap().clone();
    assert_eq!(sig, [(7001, Signal::SIGKILL), (7002, Signal::SIGKILL)]);
    assert_eq!(g.populated(), Some(false));
    g.destroy().unwrap();
}

#[test]
fn cpuacct_stat_ticks_are_converted_when_usage_files_are_missing() {
    let f = Fixture::hybrid();
    let info = std::fs::read_to_string(f.path("proc/self/mountinfo")).unwrap();
    put(
        &f.path("proc/self/mountinfo"),
        &info.replace("cgroup2 cgroup2", "tmpfs tmpfs"),
    );
    std::fs::remove_file(f.path("cg/cpuacct/cpuacct.usage_user")).unwrap();
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    let g = mgr.create(&limits(None, None, None)).unwrap();
    let acct = g
        .paths()
        .iter()
        .find(|p| f.rel(p).starts_with("cg/cpuacct/"))
        .unwrap()
        .clone();
    put(&acct.join("cpuacct.stat"), "user 150\nsystem 25\n");
    let hz = u64::try_from(
        nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let s = g.stats();
    assert_eq!(s.cpu_user_us, Some(150 * 1_000_000 / hz));
    assert_eq!(s.cpu_system_us, Some(25 * 1_000_000 / hz));
}

#[test]
fn stats_read_the_v1_files_and_the_unified_cpu_stat() {
    let f = Fixture::hybrid();
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    let g = mgr
        .create(&limits(Some(64 << 20), Some(32), Some(0.5)))
        .unwrap();
    let name = g.name().to_string();
    let d = |rel: &str| f.path(&format!("{rel}/{name}"));
    put(&d(MEM).join("memory.max_usage_in_bytes"), "50331648\n");
    put(
        &d(MEM).join("memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
    );
    put(&d("cg/pids").join("pids.peak"), "32\n");
    put(&d("cg/pids").join("pids.events"), "max 69\n");
    put(
        &d("cg/cpu").join("cpu.stat"),
        "nr_periods 33\nnr_throttled 30\nthrottled_time 1370000000\n",
    );
    put(
        &d("cg/unified").join("cpu.stat"),
        "usage_usec 1539000\nuser_usec 1500000\nsystem_usec 39000\n",
    );
    let s = g.stats();
    assert_eq!(s.memory_peak_bytes, Some(50331648));
    assert_eq!(s.pids_peak, Some(32));
    assert_eq!(s.pids_limit_hits, Some(69));
    assert_eq!(
        (s.cpu_user_us, s.cpu_system_us),
        (Some(1_500_000), Some(39_000))
    );
    assert_eq!(s.cpu_throttled_us, Some(1_370_000));
    assert_eq!(s.oom_kills, Some(1));
    assert_eq!(g.cpu_usage_us(), Some(1_539_000));
    assert_eq!(g.oom_kills(), Some(1));
}

#[test]
fn pids_peak_is_none_where_the_kernel_has_no_such_file() {
    let f = Fixture::hybrid();
    std::fs::remove_file(f.path("cg/pids/pids.peak")).unwrap();
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    let g = mgr.create(&limits(None, Some(4), None)).unwrap();
    assert_eq!(g.stats().pids_peak, None);
    assert_eq!(g.stats().pids_limit_hits, Some(0));
}

#[test]
fn hybrid_joins_only_the_v1_hierarchies_the_limits_need() {
    // A v1 migration waits for an RCU grace period (~10 ms): without limits, cgroup2 alone
    // tracks the run; each limit adds exactly its own hierarchy.
    let f = Fixture::hybrid();
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    let dirs = |g: &crate::cgroup::RunGroup| -> Vec<String> {
        let mut d: Vec<String> = g
            .paths()
            .iter()
            .map(|p| p.strip_prefix(f.path("")).unwrap().display().to_string())
            .collect();
        d.sort();
        d
    };
    let none = mgr.create(&limits(None, None, None)).unwrap();
    assert_eq!(dirs(&none), [format!("cg/unified/{}", none.name())]);
    none.destroy().unwrap();
    let mem = mgr.create(&limits(Some(1 << 20), None, None)).unwrap();
    assert_eq!(
        dirs(&mem),
        [
            format!("{MEM}/{}", mem.name()),
            format!("cg/unified/{}", mem.name())
        ]
    );
    mem.destroy().unwrap();
    let pids = mgr.create(&limits(None, Some(8), None)).unwrap();
    assert_eq!(
        dirs(&pids),
        [
            format!("cg/pids/{}", pids.name()),
            format!("cg/unified/{}", pids.name())
        ]
    );
    pids.destroy().unwrap();
}

#[test]
fn a_failed_mkdir_names_the_dir_and_removes_what_was_created() {
    let f = Fixture::hybrid();
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    f.fs.inject(Op::Mkdir, "cg/pids/sandbox-", Errno::ENOSPC);
    // The pids hierarchy is joined only for a pids limit.
    let err = mgr
        .create(&limits(Some(1 << 20), Some(8), None))
        .unwrap_err()
        .to_string();
    let prefix = format!(
        "create cgroup {}/sandbox-{PID}-",
        f.path("cg/pids").display()
    );
    assert!(err.starts_with(&prefix), "{err}");
    assert!(
        err.contains(": ENOSPC; an ancestor's cgroup.max.descendants"),
        "{err}"
    );
    for base in ["cg/unified", "cg/cpu", MEM, "cg/pids"] {
        let left: Vec<_> = std::fs::read_dir(f.path(base))
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .collect();
        assert!(left.is_empty(), "{base} still has {left:?}");
    }
    assert!(
        f.records().is_empty(),
        "the owner record goes with the dirs"
    );
}

#[test]
fn a_failed_limit_write_names_the_file_and_the_value() {
    let f = Fixture::hybrid();
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    f.fs.inject(Op::Write, "memory.limit_in_bytes", Errno::EBUSY);
    let err = mgr.create(&limits(Some(64 << 20), None, None)).unwrap_err();
    let msg = err.to_string();
    let file_prefix = format!(
        "write \"67108864\" to {}/sandbox-{PID}-",
        f.path(MEM).display()
    );
    assert!(msg.starts_with(&file_prefix), "{msg}");
    assert!(msg.contains("/memory.limit_in_bytes: EBUSY"), "{msg}");
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("os error 16"), "{source}");
    assert!(f.records().is_empty());
}

#[test]
fn the_v1_eventfd_is_drained_by_oom_kills() {
    let f = Fixture::hybrid();
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    let g = mgr.create(&limits(Some(1 << 20), None, None)).unwrap();
    let fd = g.event_fd().unwrap();
    assert!(!readable(fd));
    // Stand in for the kernel: signal the eventfd as an OOM notification would.
    let raw = fd.as_raw_fd();
    nix::unistd::write(fd, &1u64.to_ne_bytes()).unwrap();
    assert!(readable(fd), "fd {raw}");
    assert_eq!(g.oom_kills(), Some(0));
    assert!(!readable(fd));
}
