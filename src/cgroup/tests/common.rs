//! Parsing, forced backends, and reaping of stale groups by owner record.

use std::path::PathBuf;

use super::{Fixture, PID, START, limits, put, stat_line};
use crate::cgroup::cleanup::{Owner, parse_record, start_time, write_record};
use crate::cgroup::detect::{Mount, parse_mountinfo, parse_proc_cgroup};
use crate::cgroup::plan::cpu_quota;
use crate::cgroup::stats::{keyed, number};
use crate::cgroup::{BackendKind, CgroupError, CgroupOptions};

#[test]
fn mountinfo_parsing_keeps_cgroup_mounts_and_unescapes_paths() {
    let text = "22 1 0:21 / /proc rw - proc proc rw\n\
                41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:7 - cgroup2 cgroup2 rw\n\
                32 31 0:29 /a\\040b /mnt/my\\040cg rw - cgroup cgroup rw,cpu,cpuacct\n";
    assert_eq!(
        parse_mountinfo(text),
        vec![
            Mount {
                root: "/".into(),
                point: "/sys/fs/cgroup/unified".into(),
                v2: true,
                options: "rw".into()
            },
            Mount {
                root: "/a b".into(),
                point: "/mnt/my cg".into(),
                v2: false,
                options: "rw,cpu,cpuacct".into()
            },
        ]
    );
}

#[test]
fn proc_cgroup_parsing_names_the_bad_line() {
    let ok = parse_proc_cgroup("/p".as_ref(), "4:memory:/x/y\n0::/\n").unwrap();
    assert_eq!(
        (ok[0].id, ok[0].controllers.as_str(), ok[0].path.as_str()),
        (4, "memory", "/x/y")
    );
    let err = parse_proc_cgroup("/proc/self/cgroup".as_ref(), "0::/\ngarbage\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "parse /proc/self/cgroup: malformed line \"garbage\" (expected id:controllers:path)"
    );
}

#[test]
fn start_time_is_field_22_even_with_parentheses_in_the_name() {
    assert_eq!(start_time(&stat_line(12, 98765)), Some(98765));
    assert_eq!(start_time("12 (x) S 1"), None);
}

#[test]
fn flat_keyed_and_single_value_files_parse() {
    assert_eq!(keyed("max 0\noom 1\noom_kill 2\n", "oom_kill"), Some(2));
    assert_eq!(
        keyed("oom_kill_disable 0\noom_kill 5\n", "oom_kill"),
        Some(5)
    );
    assert_eq!(keyed("populated 1\n", "frozen"), None);
    assert_eq!(number("67108864\n"), Some(67108864));
    assert_eq!(number("max\n"), None);
}

#[test]
fn cpu_shares_become_quota_and_period() {
    assert_eq!(cpu_quota(0.5).unwrap(), (50_000, 100_000));
    assert_eq!(cpu_quota(2.0).unwrap(), (200_000, 100_000));
    assert_eq!(cpu_quota(0.01).unwrap(), (1_000, 100_000));
    assert_eq!(cpu_quota(0.005).unwrap(), (5_000, 1_000_000));
    assert!(matches!(
        cpu_quota(0.0001),
        Err(CgroupError::CpusTooSmall { .. })
    ));
    assert!(matches!(
        cpu_quota(f64::NAN),
        Err(CgroupError::CpusInvalid { .. })
    ));
    assert!(matches!(
        cpu_quota(-1.0),
        Err(CgroupError::CpusInvalid { .. })
    ));
}

#[test]
fn an_invalid_cpu_limit_fails_before_anything_is_created() {
    let f = Fixture::hybrid();
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    let err = mgr.create(&limits(None, None, Some(0.0001))).unwrap_err();
    assert!(matches!(err, CgroupError::CpusTooSmall { .. }));
    assert!(f.records().is_empty());
    assert!(f.fs.writes.lock().unwrap().is_empty());
    assert!(mgr.require(&limits(None, None, Some(0.0001))).is_err());
}

#[test]
fn the_rlimit_backend_is_forced_and_honest() {
    let f = Fixture::hybrid();
    let opts = CgroupOptions {
        root: None,
        force: Some(BackendKind::None),
    };
    let mgr = f.detect(&opts).unwrap();
    assert_eq!(
        (mgr.backend(), mgr.backend_name()),
        (BackendKind::None, "none")
    );
    let err = mgr.require(&limits(Some(1 << 20), None, None)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no cgroups are in use (rlimit backend), so the memory limit is not kernel-enforced; run \
         with a cgroup backend or mark the cgroup layer best-effort (`--best-effort cgroup`)"
    );
    assert!(mgr.require(&limits(None, None, None)).is_ok());
    let g = mgr
        .create(&limits(Some(1 << 20), Some(4), Some(1.0)))
        .unwrap();
    let e = g.enforced();
    assert_eq!(e.backend, "none");
    assert!(
        !e.memory_limit_enforced && !e.pids_limit_enforced && !e.cpu_limit_enforced && !e.kill_all
    );
    assert!(g.clone_into_fd().is_none() && g.event_fd().is_none() && g.cpu_usage_us().is_none());
    g.attach(1).unwrap();
    assert!(!g.kill().unwrap());
    assert_eq!(g.stats(), Default::default());
    assert_eq!(g.populated(), None);
    g.destroy().unwrap();
    assert!(f.fs.writes.lock().unwrap().is_empty());
    assert!(!f.host.state_dir.exists(), "no cgroup work, no state dir");
}

#[test]
fn forcing_an_absent_backend_or_having_none_is_an_error_with_the_fix() {
    let f = Fixture::v2();
    let err = f
        .detect(&CgroupOptions {
            root: None,
            force: Some(BackendKind::V1),
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the v1 cgroup backend was forced but is not available here: no cgroup v1 hierarchy \
         with the memory, pids or cpu controller is mounted"
    );
    put(
        &f.path("proc/self/mountinfo"),
        "22 1 0:21 / /proc rw - proc proc rw\n",
    );
    let err = f.detect(&CgroupOptions::default()).unwrap_err();
    assert!(matches!(err, CgroupError::NoCgroups { .. }));
    assert!(
        err.to_string().contains("mount cgroup2 on /sys/fs/cgroup"),
        "{err}"
    );
}

/// A group left by an owner, with a member in every dir, and its record.
fn leave_group(f: &Fixture, name: &str, owner: Owner, bases: &[&str]) -> (Vec<PathBuf>, PathBuf) {
    let dirs: Vec<PathBuf> = bases
        .iter()
        .map(|b| f.path(&format!("{b}/{name}")))
        .collect();
    for d in &dirs {
        f.mkdir(&f.rel(d));
        put(&d.join("cgroup.procs"), &format!("{}\n", 6000 + owner.pid));
    }
    std::fs::create_dir_all(&f.host.state_dir).unwrap();
    let record = write_record(&f.host.state_dir, name, owner, &dirs).unwrap();
    (dirs, record)
}

#[test]
fn groups_of_dead_owners_are_reaped_by_record_and_live_ones_are_left_alone() {
    let f = Fixture::hybrid();
    let bases = ["cg/unified", "cg/memory/process_api/abc", "cg/pids"];
    let (dead, dead_rec) = leave_group(&f, "sandbox-99-0", Owner { pid: 99, start: 5 }, &bases);
    // Pid 100 is running again, but it is another process (another start time).
    put(&f.path("proc/100/stat"), &stat_line(100, 9));
    let (reused, reused_rec) =
        leave_group(&f, "sandbox-100-3", Owner { pid: 100, start: 8 }, &bases);
    let (live, live_rec) = leave_group(
        &f,
        "sandbox-4242-77",
        Owner {
            pid: PID,
            start: START,
        },
        &bases,
    );
    // A directory with a name like ours but no record is not ours to touch.
    f.mkdir("cg/pids/sandbox-1-1");
    let _mgr = f.detect(&CgroupOptions::default()).unwrap();
    for d in dead.iter().chain(&reused) {
        assert!(!d.exists(), "{} survived", d.display());
    }
    assert!(!dead_rec.exists() && !reused_rec.exists());
    assert!(live.iter().all(|d| d.exists()) && live_rec.exists());
    assert!(f.path("cg/pids/sandbox-1-1").exists());
    // The cgroup2 group was emptied with cgroup.kill; the v1 ones then had no members left.
    assert_eq!(f.fs.written("cgroup.kill").len(), 2);
    assert!(f.fs.signals.lock().unwrap().is_empty());
}

#[test]
fn records_naming_paths_outside_the_cgroup_mounts_are_never_acted_on() {
    let f = Fixture::hybrid();
    let outside = f.path("etc/important");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(&f.host.state_dir).unwrap();
    let rec = write_record(
        &f.host.state_dir,
        "sandbox-5-0",
        Owner { pid: 5, start: 1 },
        std::slice::from_ref(&outside),
    )
    .unwrap();
    let _mgr = f.detect(&CgroupOptions::default()).unwrap();
    assert!(outside.exists() && rec.exists());
}

#[test]
fn an_empty_record_from_a_crash_before_its_write_is_dropped() {
    let f = Fixture::hybrid();
    put(&f.host.state_dir.join("sandbox-5-0"), "");
    put(&f.host.state_dir.join("sandbox-5-1"), "not a record\n");
    let _mgr = f.detect(&CgroupOptions::default()).unwrap();
    let names: Vec<String> = f
        .records()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["sandbox-5-1"]);
}

#[test]
fn records_round_trip() {
    let owner = Owner { pid: 7, start: 8 };
    let dirs = vec![PathBuf::from("/sys/fs/cgroup/a b/sandbox-7-0")];
    let tmp = tempfile::tempdir().unwrap();
    let rec = write_record(tmp.path(), "sandbox-7-0", owner, &dirs).unwrap();
    let text = std::fs::read_to_string(&rec).unwrap();
    assert_eq!(parse_record(&text), Some((owner, dirs.clone())));
    assert!(
        write_record(tmp.path(), "sandbox-7-0", owner, &dirs).is_err(),
        "O_EXCL"
    );
    assert_eq!(parse_record("stockade-cgroup-owner 1\npid 7\n"), None);
}

#[test]
fn a_state_dir_removed_after_start_up_is_recreated() {
    let f = Fixture::hybrid();
    let mgr = f.detect(&CgroupOptions::default()).unwrap();
    std::fs::remove_dir_all(&f.host.state_dir).unwrap();
    let g = mgr.create(&limits(None, None, None)).unwrap();
    assert_eq!(f.records().len(), 1);
    g.destroy().unwrap();
    assert!(f.records().is_empty());
}
