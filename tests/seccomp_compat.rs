//! Issue 10: ordinary programs run unchanged under the shipped language profiles. What the
//! profile refuses by design (network under `network = none`) fails the way the program already
//! handles, with an errno, and the verdict lists it in `seccomp_denied`.

mod common;

use common::{Who, identities};

/// The verdict of `stockade run ARGS` as `who`. The unprivileged user has no delegated cgroup
/// here, so the cgroup layer is best-effort (rlimits) for everyone.
fn verdict(who: Who, args: &[&str]) -> serde_json::Value {
    let mut full = vec!["--best-effort", "cgroup"];
    full.extend_from_slice(args);
    common::verdict(who, &full)
}

fn has_python_module(module: &str) -> bool {
    std::process::Command::new("/usr/bin/python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn denied_count(v: &serde_json::Value, syscall: &str) -> u64 {
    v["seccomp_denied"]
        .as_array()
        .expect("seccomp_denied list")
        .iter()
        .find(|d| d["syscall"] == syscall)
        .and_then(|d| d["count"].as_u64())
        .unwrap_or(0)
}

const PYTHON_PROBES: &str = r#"
import os, socket, uuid, urllib.request
try:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    print("inet=ok")
except OSError as e:
    print("inet=" + str(e.errno == 97))
try:
    urllib.request.urlopen("http://192.0.2.1/", timeout=2)
except OSError as e:
    print("urllib=caught")
print("uuid1=" + str(uuid.uuid1().version))
fd = os.memfd_create("x")
os.write(fd, b"abc")
print("memfd=" + str(os.fstat(fd).st_size))
os.sched_setaffinity(0, os.sched_getaffinity(0))
print("affinity=ok")
print("nice=" + str(os.nice(1)))
print("done")
"#;

#[test]
fn python_profile_programs_that_probe_get_errors_they_handle() {
    for who in identities() {
        let v = verdict(who, &["--profile", "python", "--code", PYTHON_PROBES]);
        assert_eq!(v["status"], "ok", "{who:?}: {v}");
        let out = v["stdout"]["data"].as_str().unwrap();
        for line in [
            "inet=True",
            "urllib=caught",
            "uuid1=1",
            "memfd=3",
            "affinity=ok",
            "nice=1",
            "done",
        ] {
            assert!(out.lines().any(|l| l == line), "{who:?}: {line} in {out}");
        }
        assert!(denied_count(&v, "socket") >= 2, "{who:?}: {v}");
        assert!(v.get("seccomp_violation").is_none(), "{who:?}: {v}");
    }
}

#[test]
fn numpy_imports_and_multiplies_under_python_and_data_science() {
    if !has_python_module("numpy") {
        eprintln!("python3-numpy is not installed (scripts/deps): skipping");
        return;
    }
    let code = "import numpy as np\na = np.arange(9.0).reshape(3, 3)\nprint((a @ a).sum())\n";
    for who in identities() {
        for preset in [
            &["--profile", "python"][..],
            &["--profile", "data_science", "--", "python3", "-c", code][..],
        ] {
            let mut args = preset.to_vec();
            if preset.len() == 2 {
                args.extend_from_slice(&["--code", code]);
            }
            let v = verdict(who, &args);
            assert_eq!(v["status"], "ok", "{who:?} {preset:?}: {v}");
            assert_eq!(v["stdout"]["data"], "486.0\n", "{who:?} {preset:?}: {v}");
        }
    }
}

const NODE_PROBES: &str = r#"
const os = require('os');
console.log('ifaces=' + typeof os.networkInterfaces());
fetch('http://192.0.2.1/').then(() => console.log('fetch=ok'), () => console.log('fetch=caught'));
"#;

#[test]
fn node_profile_network_probes_fail_gracefully() {
    if !std::path::Path::new("/usr/bin/node").exists() {
        eprintln!("no /usr/bin/node: skipping");
        return;
    }
    for who in identities() {
        // Without a cgroup the memory limit is RLIMIT_AS, and V8 reserves address space far
        // beyond what it uses (fetch instantiates WebAssembly, ~10 GiB of guard regions).
        let args = [
            "--memory",
            "64GiB",
            "--profile",
            "node",
            "--code",
            NODE_PROBES,
        ];
        let v = verdict(who, &args);
        assert_eq!(v["status"], "ok", "{who:?}: {v}");
        let out = v["stdout"]["data"].as_str().unwrap();
        assert!(out.contains("ifaces=object"), "{who:?}: {out}");
        assert!(out.contains("fetch=caught"), "{who:?}: {out}");
        assert!(denied_count(&v, "socket") >= 1, "{who:?}: {v}");
    }
}

#[test]
fn java_starts_with_its_ipv6_probe_refused() {
    let conf = std::path::Path::new("/etc/java-17-openjdk");
    if !std::path::Path::new("/usr/bin/java").exists() || !conf.is_dir() {
        eprintln!("no java 17: skipping");
        return;
    }
    let src = "public class Main { public static void main(String[] a) { System.out.println(\"java ok\"); } }";
    let dir = std::env::temp_dir().join(format!("stockade-java-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("Main.java");
    std::fs::write(&file, src).unwrap();
    let copy = format!("{}:/sandbox/Main.java", file.display());
    let v = verdict(
        Who::Me,
        &[
            "--copy-in",
            &copy,
            "--ro-bind",
            "/etc/java-17-openjdk",
            "--memory",
            "1GiB",
            "--pids",
            "256",
            "--",
            "java",
            "/sandbox/Main.java",
        ],
    );
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["stdout"]["data"], "java ok\n", "{v}");
    assert!(v.get("seccomp_violation").is_none(), "{v}");
}
