//! cgroup v2 backend against the fake tree.

use nix::errno::Errno;

use super::{Fixture, PID, limits, put, readable};
use crate::cgroup::fake::Op;
use crate::cgroup::{BackendKind, CgroupError, CgroupOptions};

const SVC: &str = "cg/system.slice/stockade.service";

#[test]
fn detect_moves_into_a_leaf_and_enables_controllers_only_on_its_own_cgroup() {
    let f = Fixture::v2();
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    assert_eq!(mgr.backend(), BackendKind::V2);
    assert_eq!(mgr.backend_name(), "v2");
    let log = f.fs.writes.lock().unwrap().clone();
    assert_eq!(
        log,
        vec![
            (format!("{SVC}/supervisor/cgroup.procs"), PID.to_string()),
            (
                format!("{SVC}/cgroup.subtree_control"),
                "+memory +pids +cpu".to_string()
            ),
        ]
    );
    // Ancestors keep exactly what they had.
    assert_eq!(
        std::fs::read_to_string(f.path("cg/cgroup.subtree_control")).unwrap(),
        "cpu memory pids\n"
    );
    assert_eq!(
        std::fs::read_to_string(f.path("cg/system.slice/cgroup.subtree_control")).unwrap(),
        "cpu memory pids\n"
    );
    assert!(f.records().is_empty(), "detect writes no owner record");
}

#[test]
fn create_writes_the_limits_in_order_and_destroy_removes_everything() {
    let f = Fixture::v2();
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    f.fs.writes.lock().unwrap().clear();
    let g = mgr
        .create(&limits(Some(64 << 20), Some(32), Some(0.5)))
        .unwrap();
    let dir = f.rel(&g.paths()[0]);
    assert_eq!(g.paths().len(), 1);
    assert!(dir.starts_with(&format!("{SVC}/sandbox-{PID}-")), "{dir}");
    let log = f.fs.writes.lock().unwrap().clone();
    let expect: Vec<(String, String)> = [
        ("memory.max", "67108864"),
        ("memory.swap.max", "0"),
        ("memory.oom.group", "1"),
        ("pids.max", "32"),
        ("cpu.max", "50000 100000"),
    ]
    .iter()
    .map(|(file, v)| (format!("{dir}/{file}"), v.to_string()))
    .collect();
    assert_eq!(log, expect);
    let e = g.enforced();
    assert_eq!(e.backend, "v2");
    assert!(e.memory_limit_enforced && e.pids_limit_enforced && e.cpu_limit_enforced && e.kill_all);
    assert!(g.clone_into_fd().is_some());
    assert!(g.event_fd().is_some());
    // CLONE_INTO_CGROUP places the child in the only hierarchy, so attach writes nothing.
    g.attach(999).unwrap();
    assert_eq!(f.fs.writes.lock().unwrap().len(), 5);
    let records = f.records();
    assert_eq!(records.len(), 1);
    let text = std::fs::read_to_string(&records[0]).unwrap();
    assert!(
        text.contains(&format!(
            "pid {PID}\nstart 777\ndir {}",
            g.paths()[0].display()
        )),
        "{text}"
    );
    let path = g.paths()[0].clone();
    g.destroy().unwrap();
    assert!(!path.exists());
    assert!(f.records().is_empty());
}

#[test]
fn a_group_without_limits_gets_no_limit_writes_and_reports_nothing_enforced() {
    let f = Fixture::v2();
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    f.fs.writes.lock().unwrap().clear();
    let g = mgr.create(&limits(None, None, None)).unwrap();
    let files: Vec<String> =
        f.fs.writes
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p.rsplit('/').next().unwrap().to_string())
            .collect();
    assert_eq!(files, ["memory.swap.max", "memory.oom.group"]);
    let e = g.enforced();
    assert!(!e.memory_limit_enforced && !e.pids_limit_enforced && !e.cpu_limit_enforced);
    assert!(e.kill_all);
}

#[test]
fn a_missing_controller_names_the_parent_to_enable_it_on() {
    let f = Fixture::v2();
    put(&f.path(&format!("{SVC}/cgroup.controllers")), "cpu pids\n");
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    assert_eq!(f.fs.written("cgroup.subtree_control")[0].1, "+pids +cpu");
    let want = limits(Some(1 << 20), Some(8), None);
    let err = mgr.require(&want).unwrap_err().to_string();
    let base = f.path(SVC);
    assert_eq!(
        err,
        format!(
            "the memory controller is not available in {}/cgroup.controllers, so the memory \
             limit cannot be kernel-enforced; enable it on the parent: echo +memory > \
             {}/cgroup.subtree_control (as a systemd service: Delegate=yes)",
            base.display(),
            f.path("cg/system.slice").display()
        )
    );
    assert!(mgr.require(&limits(None, Some(8), Some(1.0))).is_ok());
    let g = mgr.create(&want).unwrap();
    assert!(!g.enforced().memory_limit_enforced);
    assert!(g.enforced().pids_limit_enforced);
    assert!(g.event_fd().is_none(), "no memory controller, no OOM watch");
    assert!(f.fs.written("memory.max").is_empty());
}

#[test]
fn other_processes_in_our_cgroup_make_enabling_fail_with_a_hint() {
    let f = Fixture::v2();
    put(
        &f.path(&format!("{SVC}/cgroup.procs")),
        &format!("{PID}\n999\n"),
    );
    let err = f.detect(&CgroupOptions::default()).unwrap_err();
    let msg = err.to_string();
    let file = f.path(&format!("{SVC}/cgroup.subtree_control"));
    assert!(
        msg.starts_with(&format!(
            "write \"+memory +pids +cpu\" to {}: EBUSY; ",
            file.display()
        )),
        "{msg}"
    );
    assert!(
        msg.contains("(pids 999)") && msg.contains("Delegate=yes"),
        "{msg}"
    );
}

#[test]
fn an_explicit_root_is_used_as_is_and_must_be_cgroup2() {
    let f = Fixture::v2();
    std::fs::create_dir_all(f.path("plain")).unwrap();
    let err = f
        .detect(&CgroupOptions {
            root: Some(f.path("plain")),
            force: None,
        })
        .unwrap_err();
    assert!(matches!(err, CgroupError::RootNotCgroup2 { .. }));
    assert!(
        err.to_string().contains("is not a cgroup2 directory"),
        "{err}"
    );

    f.mkdir("cg/system.slice/work");
    let opts = CgroupOptions {
        root: Some(f.path("cg/system.slice/work")),
        force: None,
    };
    let mgr = f.detect(&opts).unwrap();
    // We are not inside the root, so nothing moves; only the root's subtree_control changes.
    let log = f.fs.writes.lock().unwrap().clone();
    assert_eq!(
        log,
        vec![(
            "cg/system.slice/work/cgroup.subtree_control".to_string(),
            "+memory +pids +cpu".to_string()
        )]
    );
    let g = mgr.create(&limits(Some(1 << 20), None, None)).unwrap();
    assert!(
        f.rel(&g.paths()[0])
            .starts_with("cg/system.slice/work/sandbox-")
    );
}

#[test]
fn an_unwritable_cgroup_is_not_delegated_and_the_error_says_how_to_fix_it() {
    let f = Fixture::v2();
    f.fs.readonly.lock().unwrap().insert(f.path(SVC));
    let err = f.detect(&CgroupOptions::default()).unwrap_err();
    assert!(matches!(err, CgroupError::NotDelegated { uid: 0, .. }));
    let msg = err.to_string();
    assert!(msg.contains(&f.path(SVC).display().to_string()));
    assert!(
        msg.contains("Delegate=yes") && msg.contains("--cgroup-root"),
        "{msg}"
    );
}

#[test]
fn a_second_detect_after_the_leaf_move_keeps_the_same_base() {
    let f = Fixture::v2();
    drop(f.detect(&CgroupOptions::default()).unwrap());
    put(
        &f.path("proc/self/cgroup"),
        "0::/system.slice/stockade.service/supervisor\n",
    );
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    let g = mgr.create(&limits(None, None, None)).unwrap();
    assert!(f.rel(&g.paths()[0]).starts_with(&format!("{SVC}/sandbox-")));
}

#[test]
fn oom_events_wake_the_inotify_fd_and_are_counted() {
    let f = Fixture::v2();
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    let g = mgr.create(&limits(Some(1 << 20), None, None)).unwrap();
    let fd = g.event_fd().unwrap();
    assert!(!readable(fd));
    assert_eq!(g.oom_kills(), Some(0));
    put(
        &g.paths()[0].join("memory.events"),
        "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n",
    );
    assert!(readable(fd));
    assert_eq!(g.oom_kills(), Some(2));
    assert!(!readable(fd), "oom_kills drains the fd");
}

#[test]
fn stats_and_cpu_polling_read_the_v2_files() {
    let f = Fixture::v2();
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    let g = mgr
        .create(&limits(Some(1 << 20), Some(4), Some(1.0)))
        .unwrap();
    let d = g.paths()[0].clone();
    put(&d.join("memory.peak"), "67108864\n");
    put(&d.join("pids.peak"), "4\n");
    put(&d.join("pids.events"), "max 69\n");
    put(
        &d.join("memory.events"),
        "low 0\nhigh 0\nmax 35\noom 1\noom_kill 2\noom_group_kill 1\n",
    );
    put(
        &d.join("cpu.stat"),
        "usage_usec 1564000\nuser_usec 1500000\nsystem_usec 64000\nnr_periods 53\nnr_throttled 47\nthrottled_usec 1370000\n",
    );
    let s = g.stats();
    assert_eq!(s.memory_peak_bytes, Some(67108864));
    assert_eq!(s.pids_peak, Some(4));
    assert_eq!(s.pids_limit_hits, Some(69));
    assert_eq!(
        (s.cpu_user_us, s.cpu_system_us),
        (Some(1_500_000), Some(64_000))
    );
    assert_eq!(s.cpu_throttled_us, Some(1_370_000));
    assert_eq!(s.oom_kills, Some(2));
    assert_eq!(g.cpu_usage_us(), Some(1_564_000));
    put(
        &d.join("cpu.stat"),
        "usage_usec 2000001\nuser_usec 2000000\nsystem_usec 1\n",
    );
    assert_eq!(
        g.cpu_usage_us(),
        Some(2_000_001),
        "polling re-reads the open file"
    );
}

#[test]
fn kill_uses_cgroup_kill_and_destroy_kills_what_is_left() {
    let f = Fixture::v2();
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    let g = mgr.create(&limits(None, None, None)).unwrap();
    let d = g.paths()[0].clone();
    put(&d.join("cgroup.procs"), "5555\n");
    assert_eq!(
        g.populated(),
        Some(false),
        "cgroup.events says populated 0 in the fake"
    );
    assert!(g.kill().unwrap());
    assert_eq!(f.fs.written("cgroup.kill").len(), 1);
    put(&d.join("cgroup.procs"), "5556\n");
    put(&d.join("cgroup.freeze"), "1\n");
    g.destroy().unwrap();
    assert!(!d.exists());
    assert_eq!(
        f.fs.written("cgroup.freeze"),
        vec![(f.rel(&d.join("cgroup.freeze")), "0".to_string())]
    );
    assert_eq!(f.fs.written("cgroup.kill").len(), 2);
}

#[test]
fn rmdir_ebusy_that_never_clears_is_reported_and_the_record_kept() {
    let f = Fixture::v2();
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    let g = mgr.create(&limits(None, None, None)).unwrap();
    let d = g.paths()[0].clone();
    f.fs.inject(Op::Rmdir, "/sandbox-", Errno::EBUSY);
    let msg = g.destroy().unwrap_err().to_string();
    assert!(
        msg.starts_with(&format!(
            "cgroup {} still has members after 30 ms",
            d.display()
        )),
        "{msg}"
    );
    assert!(msg.contains("is kept so the next start reaps it"), "{msg}");
    assert!(d.exists());
    assert_eq!(f.records().len(), 1);
}

#[test]
fn dropping_a_group_without_destroy_still_cleans_up() {
    let f = Fixture::v2();
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    let g = mgr.create(&limits(Some(1 << 20), None, None)).unwrap();
    let d = g.paths()[0].clone();
    drop(g);
    assert!(!d.exists());
    assert!(f.records().is_empty());
}
