//! Fail closed: when the host cannot provide a layer, `stockade run` refuses with the layer, the
//! cause and the fix. Each host condition is simulated inside private namespaces, so the machine
//! itself is never changed.

mod common;

use std::process::Command;

fn run_in(setup: &str) -> (i32, serde_json::Value, String) {
    let script = format!("{setup} && exec {} run --json -- true", common::bin());
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .output()
        .expect("unshare");
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_over_mounted_proc_sys_is_refused_with_the_systemd_hint() {
    if !common::is_root() {
        eprintln!("needs root to over-mount /proc/sys in a private mount namespace; skipped");
        return;
    }
    // What systemd's ProtectKernelTunables= does: /proc/sys becomes a read-only bind of itself.
    let (code, v, stderr) = run_in("mount --bind -o ro /proc/sys /proc/sys");
    assert_eq!(code, 125, "{stderr}");
    assert_eq!(v["status"], "setup_failed");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains("mount") && msg.contains("proc") && msg.contains("EPERM"),
        "{msg}"
    );
    assert!(
        msg.contains("ProtectKernelTunables"),
        "the fix is named: {msg}"
    );
}

#[test]
fn disabled_user_namespaces_are_refused_with_the_sysctl_to_change() {
    // Inside a user namespace of our own, max_user_namespaces=0 affects only that namespace.
    let script = format!(
        "echo 0 > /proc/sys/user/max_user_namespaces && exec {} run --json -- true",
        common::bin()
    );
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--", "sh", "-c", &script])
        .output()
        .expect("unshare");
    assert_eq!(
        out.status.code(),
        Some(125),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "setup_failed");
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("clone3") && msg.contains("ENOSPC"), "{msg}");
    assert!(
        msg.contains("user.max_user_namespaces"),
        "the fix is named: {msg}"
    );
}

#[test]
fn kernel_limits_that_cannot_be_enforced_are_refused() {
    // The rlimit-only backend has no memory controller: a memory limit must not silently become
    // "no limit".
    let out = common::stockade(
        common::Who::Me,
        &[
            "run",
            "--json",
            "--cgroup-backend",
            "none",
            "--memory",
            "64MiB",
            "--",
            "true",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(125));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "setup_failed");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains("memory")
            && msg.contains("Delegate=yes")
            && msg.contains("--best-effort cgroup"),
        "{msg}"
    );
    // With the layer marked best-effort it runs, and the verdict says the limit was not enforced.
    let v = common::verdict(
        common::Who::Me,
        &[
            "--cgroup-backend",
            "none",
            "--memory",
            "64MiB",
            "--best-effort",
            "cgroup",
            "--",
            "true",
        ],
    );
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["enforced"]["cgroup"]["memory_limit_enforced"], false);
    assert_eq!(v["enforced"]["cgroup"]["backend"], "none");
}
