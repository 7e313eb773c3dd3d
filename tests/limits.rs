//! Kernel-enforced limits through `stockade run` on this host (cgroup v1/hybrid as root; the
//! rlimit backend when forced). The same checks run on cgroup v2 in `scripts/vm-test`.

mod common;

use common::{Who, stdout_of, verdict};

#[test]
fn memory_limit_ends_in_oom_with_the_peak() {
    if !common::is_root() {
        eprintln!("cgroup limits need root or a delegated subtree here; skipped");
        return;
    }
    let v = verdict(
        Who::Me,
        &[
            "--memory",
            "64MiB",
            "--",
            "python3",
            "-c",
            "b = bytearray(1 << 30)",
        ],
    );
    assert_eq!(v["status"], "oom", "{v}");
    assert_eq!(v["enforced"]["cgroup"]["memory_limit_enforced"], true);
    let peak = v["memory_peak_bytes"].as_u64().unwrap();
    assert!(peak > 32 << 20 && peak <= 64 << 20, "peak {peak}");
    assert_eq!(v["limits"]["memory"], 64 << 20);
}

#[test]
fn fork_bomb_is_held_at_pids_max() {
    if !common::is_root() {
        return;
    }
    let v = verdict(
        Who::Me,
        &[
            "--pids",
            "16",
            "--wall-time",
            "2s",
            "--",
            "bash",
            "-c",
            ":(){ :|:& };:; sleep 0.5",
        ],
    );
    assert_eq!(v["enforced"]["cgroup"]["pids_limit_enforced"], true, "{v}");
    assert!(v["pids_limit_hits"].as_u64().unwrap() > 0, "{v}");
    assert!(v["pids_peak"].as_u64().unwrap_or(0) <= 16, "{v}");
    // The host is unaffected and nothing is left behind: a second run works normally.
    let v = verdict(Who::Me, &["--", "true"]);
    assert_eq!(v["status"], "ok");
}

#[test]
fn cpu_time_limit_ends_in_timeout_cpu() {
    let v = verdict(
        Who::Me,
        &[
            "--cpu-time",
            "1s",
            "--wall-time",
            "20s",
            "--",
            "python3",
            "-c",
            "while 1: pass",
        ],
    );
    assert_eq!(v["status"], "timeout_cpu", "{v}");
    let cpu = v["cpu_ms"]["total_ms"].as_u64().unwrap();
    assert!((800..3000).contains(&cpu), "cpu_ms {cpu}");
}

#[test]
fn cpu_quota_throttles_to_about_half_a_core() {
    if !common::is_root() {
        return;
    }
    let v = verdict(
        Who::Me,
        &[
            "--cpus",
            "0.5",
            "--wall-time",
            "2s",
            "--",
            "python3",
            "-c",
            "while 1: pass",
        ],
    );
    assert_eq!(v["status"], "timeout_wall", "{v}");
    assert_eq!(v["enforced"]["cgroup"]["cpu_limit_enforced"], true);
    let ratio = v["cpu_ms"]["total_ms"].as_f64().unwrap() / v["wall_ms"].as_f64().unwrap();
    // Generous bounds: the machine is shared and noisy; without the quota this is ~1.0.
    assert!((0.2..0.75).contains(&ratio), "cpu/wall {ratio}");
}

#[test]
fn the_rlimit_backend_is_honest() {
    let v = verdict(
        Who::Me,
        &[
            "--cgroup-backend",
            "none",
            "--memory",
            "64MiB",
            "--best-effort",
            "cgroup",
            "--",
            "python3",
            "-c",
            "b = bytearray(1 << 30)",
        ],
    );
    // RLIMIT_AS stops the allocation inside python (MemoryError), without an OOM kill.
    assert_eq!(v["status"], "exit_nonzero", "{v}");
    assert!(
        v["stderr"]["data"]
            .as_str()
            .unwrap()
            .contains("MemoryError")
    );
    assert_eq!(v["enforced"]["cgroup"]["backend"], "none");
    assert_eq!(v["enforced"]["cgroup"]["memory_limit_enforced"], false);
}

#[test]
fn no_group_is_left_after_runs() {
    if !common::is_root() {
        return;
    }
    for args in [
        vec![
            "--memory",
            "32MiB",
            "--",
            "python3",
            "-c",
            "b = bytearray(1 << 30)",
        ],
        vec![
            "--pids",
            "8",
            "--wall-time",
            "300ms",
            "--",
            "sh",
            "-c",
            "sleep 5 & sleep 5",
        ],
    ] {
        let _ = verdict(Who::Me, &args);
    }
    let mine = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    for line in mine.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrl, path) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        let mount = match ctrl {
            "" => "/sys/fs/cgroup/unified".to_string(),
            c if c.starts_with("name=") => continue,
            c => format!("/sys/fs/cgroup/{}", c.split(',').next().unwrap()),
        };
        let dir = std::path::Path::new(&mount).join(path.trim_start_matches('/'));
        let leftovers: Vec<_> = walk(&dir)
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("sandbox-"))
            })
            .collect();
        // Other tests may be running right now; a group of a finished run must be gone, so only
        // groups with live processes are allowed.
        for group in leftovers {
            let procs = std::fs::read_to_string(group.join("cgroup.procs")).unwrap_or_default();
            assert!(
                !procs.trim().is_empty(),
                "empty sandbox group left behind: {}",
                group.display()
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(entry.path());
            out.extend(walk(&entry.path()));
        }
    }
    out
}

#[test]
fn ro_bind_is_visible_and_read_only() {
    let dir = common::shared_dir().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("input.txt"), "shared\n").unwrap();
    let bind = format!("{}:/data", dir.display());
    let v = verdict(
        Who::Me,
        &[
            "--ro-bind",
            &bind,
            "--",
            "sh",
            "-c",
            "cat /data/input.txt; touch /data/x 2>&1 | grep -o 'Read-only file system'",
        ],
    );
    assert_eq!(stdout_of(&v), "shared\nRead-only file system\n", "{v}");
}
