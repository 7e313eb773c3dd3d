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
        // errno mode so each refused syscall is reported instead of killing the probe.
        let (v, f) = probe_facts(who, &["--seccomp", "errno"], "facts");
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
        assert_eq!(fact(&f, "socket_inet"), "EPERM", "{who:?}");
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
        // Escalation and kernel attack surface refused.
        for key in [
            "unshare_user",
            "unshare_ns",
            "mount",
            "ptrace",
            "keyctl",
            "bpf",
            "perf_event_open",
            "personality_exec",
            "tiocsti",
            "tiocsti_high_bits",
        ] {
            assert_eq!(fact(&f, key), "EPERM", "{who:?} {key}");
        }
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
            "fd,full,null,random,shm,stderr,stdin,stdout,urandom,zero",
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
fn foreign_architecture_syscalls_are_refused() {
    for who in identities() {
        // i386 getpid through `int 0x80` would return the pid (2). Errno mode answers -EPERM (-1);
        // kill mode kills the probe.
        let (v, f) = probe_facts(who, &["--seccomp", "errno"], "int80");
        assert_eq!(fact(&f, "int80"), "-1", "{who:?}: {v}");
        let (v, f) = probe_facts(who, &[], "int80");
        assert_eq!(v["status"], "seccomp_violation", "{who:?}: {v}");
        assert!(!f.contains_key("int80"), "{who:?}");
        // The x32 ABI (syscall number with bit 30 set) is refused the same way.
        let (v, f) = probe_facts(who, &["--seccomp", "errno"], "x32");
        assert_eq!(fact(&f, "x32"), "EPERM", "{who:?}: {v}");
        let (v, _) = probe_facts(who, &[], "x32");
        assert_eq!(v["status"], "seccomp_violation", "{who:?}: {v}");
    }
}

#[test]
fn kill_mode_reports_the_violation() {
    let (v, f) = probe_facts(Who::Me, &[], "facts");
    assert_eq!(v["status"], "seccomp_violation", "{v}");
    assert_eq!(v["signal"], 31);
    // The probe got as far as the first refused syscall and no further.
    assert!(f.contains_key("pid"));
    assert!(!f.contains_key("tmp_fill_mib"));
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
