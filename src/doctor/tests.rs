//! The classification with injected facts, and the probes' pure parsers.

use std::path::PathBuf;

use super::classify::kernel_version;
use super::probe::{cgroup_mode, proc_overmounts};
use super::*;

fn profile(name: &str, command: Option<&str>, seccomp: &str, limits: bool) -> ProfileNeeds {
    ProfileNeeds {
        name: name.into(),
        command: command.map(str::to_string),
        command_found: command.is_some(),
        rootfs: "host".into(),
        memory: limits,
        pids: limits,
        cpus: limits,
        seccomp_default: seccomp.into(),
        ..ProfileNeeds::default()
    }
}

/// This development machine as root: everything works.
fn healthy() -> Facts {
    let minimal = ProfileNeeds {
        cpus: false,
        best_effort_cgroup: true,
        best_effort_landlock: true,
        ..profile("minimal", None, "errno", true)
    };
    Facts {
        kernel: "6.18.44".into(),
        uid: 0,
        userns: UsernsFacts {
            unshare_error: None,
            max_user_namespaces: Some(96365),
            ..UsernsFacts::default()
        },
        landlock: LandlockFacts { abi: 7, lsm: None },
        seccomp: SeccompFacts {
            actions: Some(
                "kill_process kill_thread trap errno user_notif trace log allow"
                    .split(' ')
                    .map(str::to_string)
                    .collect(),
            ),
            own_mode: Some(0),
            kmsg_readable: true,
        },
        cgroup: CgroupFacts {
            mode: "hybrid".into(),
            v1_controllers: vec!["memory".into(), "pids".into(), "cpu".into()],
            backend: Some("hybrid".into()),
            enforced: Enforced {
                memory: true,
                pids: true,
                cpu: true,
            },
            kill_all: true,
            ..CgroupFacts::default()
        },
        proc_overmounts: Vec::new(),
        run: RunFacts {
            status: "ok".into(),
            exit_code: Some(0),
            wall_ms: 7,
            cgroup_backend: "hybrid".into(),
            landlock_status: "fully_enforced".into(),
            seccomp_instructions: 224,
            ..RunFacts::default()
        },
        interpreters: ["sh", "bash", "python3", "node", "perl"]
            .iter()
            .map(|n| (n.to_string(), Some(format!("/usr/bin/{n}"))))
            .collect(),
        named_rootfs: Vec::new(),
        etc: EtcFacts {
            present: vec!["ld.so.cache".into(), "alternatives".into()],
            ..EtcFacts::default()
        },
        profiles: vec![
            profile("default", None, "kill_process", false),
            profile("python", Some("python3"), "kill_process", true),
            profile("node", Some("node"), "kill_process", true),
            profile("development", None, "errno", true),
            minimal,
        ],
        timings_us: Default::default(),
    }
}

fn line<'a>(r: &'a Report, id: &str) -> &'a Check {
    r.checks.iter().find(|c| c.id == id).unwrap()
}

fn prof<'a>(r: &'a Report, name: &str) -> &'a ProfileReport {
    r.profiles.iter().find(|p| p.name == name).unwrap()
}

fn failed_run(message: &str) -> RunFacts {
    RunFacts {
        status: "setup_failed".into(),
        message: Some(message.into()),
        ..RunFacts::default()
    }
}

/// Invariants every report keeps: a line's `affects` is exactly the profiles it gave a reason,
/// OK lines carry no fix and affect nothing, `runs` means "no blocker".
fn assert_consistent(r: &Report) {
    for c in &r.checks {
        let mut marked: Vec<&str> = r
            .profiles
            .iter()
            .filter(|p| {
                p.blocked_by
                    .iter()
                    .chain(&p.weaker)
                    .any(|x| x.check == c.id)
            })
            .map(|p| p.name.as_str())
            .collect();
        marked.sort_unstable();
        let mut affects: Vec<&str> = c.affects.iter().map(String::as_str).collect();
        affects.sort_unstable();
        if c.id != "sandbox" {
            assert_eq!(affects, marked, "affects of {}", c.id);
        }
        if c.status == Status::Ok {
            assert!(c.fix.is_none() && c.affects.is_empty(), "{c:?}");
        } else {
            assert!(c.fix.as_deref().is_some_and(|f| !f.is_empty()), "{c:?}");
        }
    }
    for p in &r.profiles {
        assert_eq!(p.runs, p.blocked_by.is_empty(), "{p:?}");
    }
    assert_eq!(r.exit_code(), u8::from(!r.default_profile_runs));
}

#[test]
fn a_healthy_host_is_all_ok_and_every_profile_runs() {
    let r = classify(&healthy());
    assert_consistent(&r);
    let ids: Vec<&str> = r.checks.iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        [
            "sandbox", "userns", "landlock", "seccomp", "cgroup", "proc", "clone3", "rootfs", "etc"
        ]
    );
    for c in &r.checks {
        assert_eq!(c.status, Status::Ok, "{c:?}");
    }
    assert!(r.profiles.iter().all(|p| p.runs && p.weaker.is_empty()));
    assert!(r.default_profile_runs);
    assert_eq!(r.exit_code(), 0);
    assert!(line(&r, "clone3").detail.contains("CLONE_INTO_CGROUP"));
}

#[test]
fn unprivileged_on_hybrid_blocks_limit_profiles_but_not_the_default() {
    let mut f = healthy();
    f.uid = 999;
    f.cgroup.backend = None;
    f.cgroup.enforced = Enforced::default();
    f.cgroup.not_delegated = Some(PathBuf::from("/sys/fs/cgroup/pids"));
    f.cgroup.error = Some("cgroup /sys/fs/cgroup/pids is not writable by uid 999".into());
    f.run.cgroup_backend = "none".into();
    let r = classify(&f);
    assert_consistent(&r);
    let c = line(&r, "cgroup");
    assert_eq!(c.status, Status::Missing);
    assert!(c.summary.contains("/sys/fs/cgroup/pids"), "{}", c.summary);
    let fix = c.fix.as_deref().unwrap();
    assert!(
        fix.contains("root") && fix.contains("Delegate=yes"),
        "{fix}"
    );
    assert_eq!(c.affects, ["python", "node", "development", "minimal"]);
    assert!(!prof(&r, "python").runs);
    assert_eq!(prof(&r, "python").blocked_by[0].check, "cgroup");
    let minimal = prof(&r, "minimal");
    assert!(minimal.runs);
    assert!(minimal.weaker[0].reason.contains("memory, pids"));
    assert!(prof(&r, "default").runs);
    assert_eq!(r.exit_code(), 0);
}

#[test]
fn v2_without_delegation_suggests_delegate_yes_and_cgroup_root() {
    let mut f = healthy();
    f.uid = 1000;
    f.cgroup.mode = "v2".into();
    f.cgroup.backend = None;
    f.cgroup.enforced = Enforced::default();
    f.cgroup.error = Some("not writable".into());
    let c = line(&classify(&f), "cgroup").clone();
    let fix = c.fix.unwrap();
    assert!(
        fix.contains("Delegate=yes") && fix.contains("--cgroup-root"),
        "{fix}"
    );
    assert!(!fix.contains("cgroup v1"), "{fix}");
}

#[test]
fn no_user_namespaces_blocks_everything_and_exits_1() {
    let mut f = healthy();
    f.userns.max_user_namespaces = Some(0);
    f.userns.unshare_error = Some("ENOSPC".into());
    f.run = failed_run("clone3 into new namespaces: ENOSPC; user.max_user_namespaces is 0");
    let r = classify(&f);
    assert_consistent(&r);
    let u = line(&r, "userns");
    assert_eq!(u.status, Status::Missing);
    assert!(u.summary.contains("user.max_user_namespaces is 0"));
    assert!(
        u.fix
            .as_deref()
            .unwrap()
            .contains("sysctl -w user.max_user_namespaces=")
    );
    assert_eq!(u.affects.len(), f.profiles.len());
    // The userns line explains the failure, so clone3 does not blame itself.
    assert_eq!(line(&r, "clone3").status, Status::Ok);
    let s = line(&r, "sandbox");
    assert_eq!(s.status, Status::Missing);
    assert!(s.fix.as_deref().unwrap().starts_with("see the userns line"));
    assert!(r.profiles.iter().all(|p| !p.runs));
    assert_eq!(prof(&r, "default").blocked_by[0].check, "userns");
    assert!(!r.default_profile_runs);
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn userns_causes_name_the_sysctl_that_refuses() {
    let mut f = healthy();
    f.uid = 1000;
    f.userns.unshare_error = Some("EPERM".into());
    f.userns.unprivileged_userns_clone = Some(0);
    f.run = failed_run("clone3 into new namespaces: EPERM");
    let u = line(&classify(&f), "userns").clone();
    assert!(u.summary.contains("kernel.unprivileged_userns_clone is 0"));
    assert!(u.fix.unwrap().contains("unprivileged_userns_clone=1"));

    // Root is not subject to that switch: the cause is elsewhere.
    f.uid = 0;
    let u = line(&classify(&f), "userns").clone();
    assert!(
        !u.summary.contains("unprivileged_userns_clone"),
        "{}",
        u.summary
    );

    // A container's seccomp filter.
    f.userns.unprivileged_userns_clone = None;
    f.seccomp.own_mode = Some(2);
    let u = line(&classify(&f), "userns").clone();
    assert!(
        u.summary.contains("seccomp filter around stockade"),
        "{}",
        u.summary
    );
}

#[test]
fn apparmor_restriction_is_caught_by_the_run_when_unshare_succeeds() {
    let mut f = healthy();
    f.uid = 1000;
    f.userns.apparmor_restrict = Some(1);
    let r = classify(&f);
    assert_eq!(line(&r, "userns").status, Status::Ok, "the run worked");

    f.run = failed_run("write \"deny\" to /proc/42/setgroups: EACCES");
    let r = classify(&f);
    assert_consistent(&r);
    let u = line(&r, "userns");
    assert_eq!(u.status, Status::Missing);
    assert!(u.summary.contains("AppArmor"));
    assert!(u.detail.contains("unshare(CLONE_NEWUSER) succeeds"));
    assert!(u.fix.as_deref().unwrap().contains("userns,"));
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn old_landlock_is_degraded_and_names_what_is_missing() {
    let mut f = healthy();
    f.landlock.abi = 3;
    f.run.landlock_status = "partially_enforced".into();
    let r = classify(&f);
    assert_consistent(&r);
    let l = line(&r, "landlock");
    assert_eq!(l.status, Status::Degraded);
    assert!(l.detail.contains("TCP"), "{}", l.detail);
    assert!(l.detail.contains("scoping"), "{}", l.detail);
    assert!(
        !l.detail.contains("truncate"),
        "ABI 3 has truncate: {}",
        l.detail
    );
    assert!(l.fix.as_deref().unwrap().contains("6.12"));
    assert_eq!(l.affects.len(), f.profiles.len());
    assert!(r.profiles.iter().all(|p| p.runs));

    f.landlock.abi = 5;
    let l = line(&classify(&f), "landlock").clone();
    assert_eq!(l.status, Status::Degraded);
    assert!(l.detail.contains("scoping") && !l.detail.contains("TCP"));

    for abi in [6, 7, 9] {
        f.landlock.abi = abi;
        assert_eq!(line(&classify(&f), "landlock").status, Status::Ok);
    }
}

#[test]
fn no_landlock_blocks_required_users_and_weakens_best_effort_ones() {
    let mut f = healthy();
    f.landlock.abi = 0;
    f.landlock.lsm = Some(vec!["capability".into(), "yama".into()]);
    f.run = failed_run("landlock is not enforced by this kernel");
    let r = classify(&f);
    assert_consistent(&r);
    let l = line(&r, "landlock");
    assert_eq!(l.status, Status::Missing);
    assert!(l.detail.contains("capability,yama"));
    assert!(
        l.fix
            .as_deref()
            .unwrap()
            .contains("lsm=landlock,capability,yama")
    );
    assert!(!prof(&r, "python").runs);
    assert!(prof(&r, "minimal").runs);
    assert_eq!(prof(&r, "minimal").weaker[0].check, "landlock");
    assert_eq!(r.exit_code(), 1);

    f.landlock.lsm = None;
    let l = line(&classify(&f), "landlock").clone();
    assert!(l.fix.unwrap().contains("CONFIG_SECURITY_LANDLOCK"));
}

#[test]
fn seccomp_actions_decide_per_profile() {
    let mut f = healthy();
    f.seccomp.actions = Some(vec!["errno".into(), "allow".into()]);
    let r = classify(&f);
    assert_consistent(&r);
    let s = line(&r, "seccomp");
    assert_eq!(s.status, Status::Degraded);
    assert!(s.summary.contains("kill_process"));
    assert!(!prof(&r, "python").runs, "kill profiles need kill_process");
    assert!(prof(&r, "development").runs, "errno profiles do not");

    f.seccomp.actions = None;
    let r = classify(&f);
    assert_eq!(line(&r, "seccomp").status, Status::Missing);
    assert!(r.profiles.iter().all(|p| !p.runs));
}

#[test]
fn unreadable_kmsg_is_a_note_not_a_failure() {
    let mut f = healthy();
    f.seccomp.kmsg_readable = false;
    let s = line(&classify(&f), "seccomp").clone();
    assert_eq!(s.status, Status::Ok);
    assert!(s.detail.contains("/dev/kmsg"));
}

#[test]
fn partial_cgroup_controllers_are_degraded() {
    let mut f = healthy();
    f.cgroup.mode = "v2".into();
    f.cgroup.backend = Some("v2".into());
    f.cgroup.enforced.cpu = false;
    f.cgroup
        .group_errors
        .push("the cpu controller is not available".into());
    let r = classify(&f);
    assert_consistent(&r);
    let c = line(&r, "cgroup");
    assert_eq!(c.status, Status::Degraded);
    assert_eq!(c.summary, "v2: memory, pids enforced, cpu not");
    assert!(c.detail.contains("cpu controller is not available"));
    assert!(c.fix.as_deref().unwrap().contains("cgroup.subtree_control"));
    assert!(!prof(&r, "python").runs);
    assert!(prof(&r, "minimal").runs, "minimal asks for no cpu limit");
    assert!(prof(&r, "minimal").weaker.is_empty());
}

#[test]
fn no_cgroup_mount_is_missing() {
    let mut f = healthy();
    f.cgroup = CgroupFacts {
        mode: "none".into(),
        ..CgroupFacts::default()
    };
    let r = classify(&f);
    assert_consistent(&r);
    let c = line(&r, "cgroup");
    assert_eq!(c.status, Status::Missing);
    assert!(c.fix.as_deref().unwrap().contains("mount -t cgroup2"));
    assert!(r.default_profile_runs);
}

#[test]
fn cgroup_leftovers_are_reported() {
    let mut f = healthy();
    f.cgroup.leftovers = vec!["cgroup /sys/fs/cgroup/x/supervisor (EBUSY)".into()];
    let c = line(&classify(&f), "cgroup").clone();
    assert!(c.detail.contains("could not undo"), "{}", c.detail);
}

#[test]
fn proc_over_mounts_matter_only_when_the_mount_fails() {
    let mut f = healthy();
    f.proc_overmounts = vec!["/proc/sys".into(), "/proc/kcore".into()];
    let p = line(&classify(&f), "proc").clone();
    assert_eq!(p.status, Status::Ok);
    assert!(p.detail.contains("/proc/kcore"));

    f.run = failed_run(
        "mount proc on \"/tmp/.stockade-root/proc\" (MS_NOSUID): EPERM; hint: a fresh /proc cannot be mounted",
    );
    let r = classify(&f);
    assert_consistent(&r);
    let p = line(&r, "proc");
    assert_eq!(p.status, Status::Missing);
    assert!(p.fix.as_deref().unwrap().contains("ProtectKernelTunables"));
    assert_eq!(p.affects.len(), f.profiles.len());
    assert!(line(&r, "sandbox").fix.as_deref().unwrap().contains("proc"));
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn clone3_by_kernel_version_and_by_the_run() {
    let mut f = healthy();
    f.kernel = "5.4.0-150-generic".into();
    let c = line(&classify(&f), "clone3").clone();
    assert_eq!(c.status, Status::Degraded);
    assert!(c.summary.contains("CLONE_INTO_CGROUP"));

    f.kernel = "4.19.0".into();
    f.run = failed_run("clone3 into new namespaces: ENOSYS");
    let r = classify(&f);
    assert_consistent(&r);
    assert_eq!(line(&r, "clone3").status, Status::Missing);

    f.kernel = "6.8.0".into();
    let r = classify(&f);
    let c = line(&r, "clone3");
    assert_eq!(c.status, Status::Missing);
    assert!(c.detail.contains("seccomp filter"), "{}", c.detail);
    assert!(
        line(&r, "sandbox")
            .fix
            .as_deref()
            .unwrap()
            .contains("clone3")
    );
}

#[test]
fn a_missing_interpreter_blocks_its_profile() {
    let mut f = healthy();
    f.interpreters[3].1 = None;
    f.profiles[2].command_found = false;
    let r = classify(&f);
    assert_consistent(&r);
    let c = line(&r, "rootfs");
    assert_eq!(c.status, Status::Degraded);
    assert_eq!(c.summary, "the host root lacks node");
    assert!(c.fix.as_deref().unwrap().contains("apt-get install nodejs"));
    assert_eq!(c.affects, ["node"]);
    assert!(!prof(&r, "node").runs);
    assert!(
        prof(&r, "node").blocked_by[0]
            .reason
            .contains("`node` is not found")
    );
    assert!(prof(&r, "python").runs);
}

#[test]
fn a_profile_that_does_not_load_is_blocked_by_itself() {
    let mut f = healthy();
    f.profiles.push(ProfileNeeds {
        name: "broken".into(),
        load_error: Some("broken.toml:3:1: unknown field `limitz`".into()),
        ..ProfileNeeds::default()
    });
    let r = classify(&f);
    assert_consistent(&r);
    let b = prof(&r, "broken");
    assert!(!b.runs);
    assert_eq!(b.blocked_by[0].check, "profile");
    assert!(r.checks.iter().all(|c| c.status == Status::Ok));
}

#[test]
fn the_json_shape_is_stable() {
    let mut f = healthy();
    f.landlock.abi = 4;
    let v = serde_json::to_value(classify(&f)).unwrap();
    for key in [
        "kernel",
        "uid",
        "default_profile_runs",
        "checks",
        "profiles",
        "facts",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    let l = &v["checks"][2];
    let mut keys: Vec<&str> = l.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["affects", "detail", "fix", "id", "status", "summary"]
    );
    assert_eq!(l["id"], "landlock");
    assert_eq!(l["status"], "DEGRADED");
    assert!(l["affects"].is_array());
    assert_eq!(v["checks"][0]["status"], "OK");
    assert!(v["checks"][0]["fix"].is_null());
    let p = &v["profiles"][1];
    assert_eq!(p["name"], "python");
    assert_eq!(p["runs"], true);
    assert_eq!(p["weaker"][0]["check"], "landlock");
    assert_eq!(v["facts"]["landlock"]["abi"], 4);
}

#[test]
fn kernel_versions_parse() {
    assert_eq!(kernel_version("6.18.44"), Some((6, 18)));
    assert_eq!(kernel_version("6.1.0-56-amd64"), Some((6, 1)));
    assert_eq!(kernel_version("5.4.0-150-generic"), Some((5, 4)));
    assert_eq!(kernel_version("6.18.44-fc-v657"), Some((6, 18)));
    assert_eq!(kernel_version("6.10rc1"), Some((6, 10)));
    assert_eq!(kernel_version("garbage"), None);
}

const MOUNTINFO_HYBRID: &str = "\
25 30 0:23 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
26 25 0:24 / /proc/sys/fs/binfmt_misc rw,relatime shared:13 - autofs systemd-1 rw,fd=29
35 25 0:30 / /proc/kcore ro,relatime - tmpfs tmpfs rw
36 25 0:31 / /proc/my\\040dir rw - tmpfs tmpfs rw
40 30 0:35 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
41 30 0:36 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
42 30 0:37 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
43 30 0:38 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
44 30 0:39 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd
";

#[test]
fn over_mounts_below_proc_are_found_except_binfmt_misc() {
    assert_eq!(
        proc_overmounts(MOUNTINFO_HYBRID),
        ["/proc/kcore", "/proc/my dir"]
    );
    assert!(proc_overmounts("25 30 0:23 / /proc rw - proc proc rw\n").is_empty());
}

#[test]
fn cgroup_modes_come_from_mountinfo() {
    let (mode, v1) = cgroup_mode(MOUNTINFO_HYBRID);
    assert_eq!(mode, "hybrid");
    assert_eq!(v1, ["memory", "pids", "cpu"]);

    let v2 = "40 30 0:35 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
    assert_eq!(cgroup_mode(v2).0, "v2");
    let v1_only: String = MOUNTINFO_HYBRID
        .lines()
        .filter(|l| !l.contains("cgroup2"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(cgroup_mode(&v1_only).0, "v1");
    // Only the named systemd hierarchy: no controllers, no cgroup2.
    let none = "44 30 0:39 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n";
    assert_eq!(cgroup_mode(none), ("none".to_string(), Vec::new()));
}

#[test]
fn an_unexplained_run_failure_blocks_every_profile() {
    let mut f = healthy();
    f.run = failed_run("pivot_root \"/tmp/.stockade-root\": EINVAL");
    let r = classify(&f);
    assert_consistent(&r);
    let s = line(&r, "sandbox");
    assert_eq!(s.status, Status::Missing);
    assert!(s.detail.contains("pivot_root"));
    assert!(s.fix.as_deref().unwrap().contains("--log debug"));
    assert_eq!(s.affects.len(), f.profiles.len());
    assert!(
        r.profiles
            .iter()
            .all(|p| !p.runs && p.blocked_by.iter().any(|b| b.check == "sandbox"))
    );
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn an_explained_run_failure_points_at_the_line_that_explains_it() {
    let mut f = healthy();
    f.landlock.abi = 0;
    f.run = failed_run("landlock is not enforced by this kernel");
    let r = classify(&f);
    let s = line(&r, "sandbox");
    assert_eq!(s.affects, ["default"]);
    assert!(
        s.fix
            .as_deref()
            .unwrap()
            .starts_with("see the landlock line")
    );
    // The best-effort profile is not dragged down by the default policy's failure.
    assert!(prof(&r, "minimal").runs);
    assert!(
        r.profiles
            .iter()
            .all(|p| p.blocked_by.iter().all(|b| b.check != "sandbox"))
    );
}
