//! End-to-end isolation checks: a probe runs *inside* the sandbox and reports what it could do.
//! Every check runs as root and as an unprivileged user.

mod common;

use common::{Who, fact, facts, identities, probe, stdout_of, verdict};

fn probe_facts(
    who: Who,
    extra: &[&str],
    mode: &str,
) -> (
    serde_json::Value,
    std::collections::BTreeMap<String, Vec<String>>,
) {
    let copy = format!("{}:/sandbox/probe", probe().display());
    let mut args = vec!["--copy-in", copy.as_str(), "--tmp-size", "8MiB"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "/sandbox/probe", mode]);
    let v = verdict(who, &args);
    let f = facts(&stdout_of(&v));
    (v, f)
}

#[test]
fn the_probe_sees_only_its_own_sandbox() {
    for who in identities() {
        let (v, f) = probe_facts(who, &[], "facts");
        assert_eq!(v["status"], "ok", "{who:?}: {v}");
        // PID namespace: the payload is PID 1's child and sees no host processes.
        assert_eq!(fact(&f, "pid"), "2", "{who:?}");
        assert_eq!(fact(&f, "ppid"), "1", "{who:?}");
        assert_eq!(
            fact(&f, "proc_pids"),
            "2",
            "{who:?}: the init is hidden (hidepid) and nothing else exists"
        );
        assert_eq!(fact(&f, "uid"), "0", "{who:?}");
        assert_eq!(fact(&f, "hostname"), "stockade");
        // Network namespace: only lo, and nothing to connect to.
        assert_eq!(f["iface"], vec!["lo".to_string()], "{who:?}");
        // Issue 10 changed this contract: a refused family is an errno, never a kill.
        assert_eq!(fact(&f, "socket_inet"), "EAFNOSUPPORT", "{who:?}");
        assert_eq!(fact(&f, "socket_unix"), "ok", "{who:?}");
        // Read-only root.
        for key in ["write_root", "write_usr", "write_etc"] {
            assert_eq!(fact(&f, key), "EROFS", "{who:?} {key}");
        }
        assert_eq!(fact(&f, "write_tmp"), "ok", "{who:?}");
        assert_eq!(fact(&f, "write_sandbox"), "ok", "{who:?}");
        assert_ne!(fact(&f, "write_dev"), "ok", "{who:?}");
        // /tmp is size-capped (8 MiB asked).
        assert_eq!(fact(&f, "tmp_fill_stop"), "ENOSPC", "{who:?}");
        assert!(
            fact(&f, "tmp_fill_mib").parse::<u64>().unwrap() <= 8,
            "{who:?}"
        );
        // Privileges: every capability set empty, no_new_privs, seccomp filter mode.
        for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(fact(&f, key), "0000000000000000", "{who:?} {key}");
        }
        assert_eq!(fact(&f, "NoNewPrivs"), "1", "{who:?}");
        assert_eq!(fact(&f, "Seccomp"), "2", "{who:?}");
        // Escalation and kernel attack surface: see every_dangerous_syscall_kills_its_caller.
        assert_eq!(fact(&f, "io_uring_setup"), "ENOSYS", "{who:?}");
        assert_eq!(fact(&f, "clone3"), "ENOSYS", "{who:?}");
        assert_eq!(fact(&f, "personality_query"), "ok", "{who:?}");
        // The init cannot be signalled from inside.
        assert_ne!(fact(&f, "kill_init"), "ok", "{who:?}");
        // Nothing of the caller leaks in: fds, environment, host files.
        assert_eq!(
            fact(&f, "fds"),
            "0,1,2,3",
            "{who:?}: 3 is the probe's own directory handle"
        );
        let env = &f["env"];
        assert!(
            !env.iter().any(|e| e.contains("STOCKADE_TEST_SECRET")),
            "{who:?}: {env:?}"
        );
        assert!(
            env.contains(&"PATH=/usr/local/bin:/usr/bin:/bin".to_string()),
            "{who:?}: {env:?}"
        );
        assert_eq!(
            env.len(),
            4,
            "{who:?}: only the default environment: {env:?}"
        );
        for key in ["open_shadow", "open_root_home", "open_home"] {
            assert_eq!(fact(&f, key), "ENOENT", "{who:?} {key}");
        }
        assert_ne!(fact(&f, "proc1_environ"), "ok", "{who:?}");
        let mut dev: Vec<&str> = fact(&f, "dev").split(',').collect();
        dev.sort_unstable();
        assert_eq!(
            dev.join(","),
            // ptmx and pts: the sandbox's own devpts instance (openpty, python's pty module).
            "fd,full,null,ptmx,pts,random,shm,stderr,stdin,stdout,urandom,zero",
            "{who:?}"
        );
        // The verdict reports the layers.
        let e = &v["enforced"];
        for key in [
            "userns",
            "pidns",
            "netns",
            "mountns",
            "capabilities_dropped",
            "no_new_privs",
            "readonly_root",
        ] {
            assert_eq!(e[key], true, "{who:?} enforced.{key}");
        }
        assert_eq!(e["landlock"]["status"], "fully_enforced", "{who:?}");
        assert_ne!(
            e["outer_uid"], 0,
            "{who:?}: sandbox root is never outer root"
        );
    }
}

#[test]
fn every_dangerous_syscall_kills_its_caller() {
    for who in identities() {
        // One child per call (tests/probe/probe.c `dangerous`), so the probe itself survives and
        // exits 0: the violation must be reported anyway.
        let (v, f) = probe_facts(who, &[], "dangerous");
        let mut n = 0;
        for (key, values) in &f {
            if key == "after" {
                continue;
            }
            n += 1;
            // int 0x80 on a kernel without ia32 emulation faults before seccomp runs.
            let allowed: &[&str] = if key == "int80" {
                &["killed:9", "killed:11"]
            } else {
                &["killed:9"]
            };
            assert!(
                allowed.contains(&values[0].as_str()),
                "{who:?}: {key} must kill, got {values:?}"
            );
        }
        assert_eq!(n, 33, "{who:?}: every case reported: {f:?}");
        assert_eq!(fact(&f, "after"), "yes", "{who:?}");
        assert_eq!(v["status"], "seccomp_violation", "{who:?}: {v}");
        assert_eq!(v["exit_code"], 0, "{who:?}: the probe itself went on");
        assert_eq!(v["seccomp_violation"]["syscall"], "unshare", "{who:?}: {v}");
        assert_eq!(v["seccomp_violation"]["nr"], 272, "{who:?}: {v}");
    }
}

#[test]
fn a_grandchilds_seccomp_kill_is_named_in_the_verdict() {
    for who in identities() {
        let script =
            r#"python3 -c "import ctypes; ctypes.CDLL(None).syscall(101, 0, 0, 0, 0)"; echo after"#;
        let v = verdict(who, &["--", "sh", "-c", script]);
        assert_eq!(v["status"], "seccomp_violation", "{who:?}: {v}");
        assert_eq!(v["seccomp_violation"]["syscall"], "ptrace", "{who:?}: {v}");
        assert_eq!(v["stdout"]["data"], "after\n", "{who:?}: the shell went on");
        assert_eq!(v["exit_code"], 0, "{who:?}");
    }
}

#[test]
fn foreign_architecture_syscalls_kill_in_every_mode() {
    for who in identities() {
        for mode in ["errno", "kill", "log"] {
            for (probe_mode, nr) in [("int80", 20), ("x32", 39 | 0x4000_0000)] {
                let (v, f) = probe_facts(who, &["--seccomp", mode], probe_mode);
                if probe_mode == "int80" && v["signal"] == 11 {
                    continue; // no ia32 emulation: the kernel faults before seccomp runs
                }
                assert_eq!(v["status"], "seccomp_violation", "{who:?} {mode}: {v}");
                assert!(!f.contains_key(probe_mode), "{who:?} {mode}");
                assert_eq!(v["seccomp_violation"]["syscall"], serde_json::Value::Null);
                assert_eq!(v["seccomp_violation"]["nr"], nr, "{who:?} {mode}: {v}");
            }
        }
    }
}

#[test]
fn probes_get_an_errno_and_the_verdict_counts_them() {
    for who in identities() {
        let (v, f) = probe_facts(who, &[], "compat");
        assert_eq!(v["status"], "ok", "{who:?}: {v}");
        for (key, want) in [
            ("socket_inet", "EAFNOSUPPORT"),
            ("socket_inet6", "EAFNOSUPPORT"),
            ("socket_packet", "EAFNOSUPPORT"),
            ("socket_netlink_route", "ok"),
            ("unknown_syscall", "ENOSYS"),
            ("clock_settime", "EPERM"),
            ("memfd_create", "ok"),
            ("sched_getaffinity", "ok"),
            ("sched_setaffinity", "ok"),
            ("set_mempolicy", "ok"),
            ("nice_lower", "ok"),
            // The kernel refuses this one itself (no CAP_SYS_NICE): not a seccomp refusal.
            ("nice_raise", "EPERM"),
            ("after", "yes"),
        ] {
            assert_eq!(fact(&f, key), want, "{who:?} {key}");
        }
        let denied = v["seccomp_denied"].as_array().expect("seccomp_denied list");
        let entry = |nr: i64| denied.iter().find(|d| d["nr"] == nr).cloned();
        let socket = entry(41).expect("socket listed");
        assert_eq!(
            (&socket["syscall"], &socket["errno"], &socket["count"]),
            (&"socket".into(), &"EAFNOSUPPORT".into(), &3.into()),
            "{who:?}: {v}"
        );
        let unknown = entry(1000).expect("syscall 1000 listed");
        assert_eq!(unknown["syscall"], serde_json::Value::Null);
        assert_eq!(unknown["errno"], "ENOSYS");
        assert_eq!(entry(227).expect("clock_settime")["errno"], "EPERM");
        assert_eq!(denied.len(), 3, "{who:?}: nothing else: {v}");
    }
}

#[test]
fn kill_mode_kills_unlisted_calls_and_names_them() {
    let (v, f) = probe_facts(Who::Me, &["--seccomp", "kill"], "compat");
    assert_eq!(v["status"], "seccomp_violation", "{v}");
    assert_eq!(v["seccomp_violation"]["nr"], 1000, "{v}");
    // Refused socket families are an errno even in kill mode; the probe died at syscall 1000.
    assert_eq!(fact(&f, "socket_inet"), "EAFNOSUPPORT");
    assert!(!f.contains_key("unknown_syscall"));
    assert_eq!(v["signal"], 9);
    assert_eq!(v["seccomp_denied"][0]["syscall"], "socket", "{v}");
}

#[test]
fn a_double_forked_daemon_does_not_survive_the_run() {
    for who in identities() {
        let (v, f) = probe_facts(who, &[], "daemon");
        assert_eq!(v["status"], "ok", "{who:?}: {v}");
        assert_eq!(fact(&f, "daemon"), "started");
        // The daemon was a copy of the probe; none may be left on the host.
        let left = std::process::Command::new("pgrep")
            .args(["-f", "/sandbox/probe daemon"])
            .output()
            .unwrap();
        assert!(
            left.stdout.is_empty(),
            "{who:?}: survivors: {}",
            String::from_utf8_lossy(&left.stdout)
        );
    }
}
