//! `stockade doctor` end to end: its report matches what the kernel says when asked directly, it
//! leaves nothing behind, and its verdict on a profile matches what `stockade run` then does.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{Who, stockade, test_user};
use serde_json::Value;

fn doctor_json(who: Who) -> (Value, i32) {
    let out = stockade(who, &["doctor", "--json"], None);
    let code = out.status.code().unwrap_or(-1);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json is not JSON ({e}); status {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (v, code)
}

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no {id} line in {report:#}"))
}

fn profile<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no profile {name}"))
}

/// The Landlock ABI straight from the kernel, independently of stockade's code.
fn kernel_landlock_abi() -> u32 {
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
    // SAFETY: the version query takes a null attribute pointer and size 0 and touches no memory.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(ret).unwrap_or(0)
}

/// `v2`, `hybrid`, `v1` or `none` from our own reading of mountinfo.
fn mounted_cgroup_mode() -> &'static str {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let fstypes: Vec<(&str, &str)> = info
        .lines()
        .filter_map(|l| {
            let mut right = l.split_once(" - ")?.1.split(' ');
            Some((right.next()?, right.nth(1).unwrap_or("")))
        })
        .collect();
    let v2 = fstypes.iter().any(|(t, _)| *t == "cgroup2");
    let v1 = fstypes.iter().any(|(t, o)| {
        *t == "cgroup" && o.split(',').any(|c| matches!(c, "memory" | "pids" | "cpu"))
    });
    match (v1, v2) {
        (true, true) => "hybrid",
        (true, false) => "v1",
        (false, true) => "v2",
        (false, false) => "none",
    }
}

/// Whether `who` can create a user namespace, asked through util-linux's `unshare`.
fn unshare_works(who: Who) -> Option<bool> {
    let mut cmd = match who {
        Who::Me => Command::new("unshare"),
        Who::User => {
            let (uid, gid) = test_user()?;
            let mut c = Command::new("setpriv");
            c.args([
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".into(),
                "unshare".into(),
            ]);
            c
        }
    };
    cmd.args(["--user", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.status().ok().map(|s| s.success())
}

/// Sandbox groups of the process `pid` anywhere under /sys/fs/cgroup (depth-limited walk).
fn groups_of(pid: u32) -> Vec<String> {
    fn walk(dir: &Path, depth: usize, prefix: &str, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) {
                out.push(e.path().display().to_string());
            }
            if depth > 0 {
                walk(&e.path(), depth - 1, prefix, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(
        Path::new("/sys/fs/cgroup"),
        5,
        &format!("sandbox-{pid}-"),
        &mut out,
    );
    out
}

fn status_of(v: &Value) -> &str {
    v["status"].as_str().unwrap()
}

#[test]
fn the_json_report_has_the_documented_shape() {
    let (v, _) = doctor_json(Who::Me);
    assert!(v["kernel"].as_str().is_some_and(|k| !k.is_empty()));
    assert!(v["uid"].is_u64());
    assert!(v["default_profile_runs"].is_boolean());
    let ids: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "sandbox", "userns", "landlock", "seccomp", "cgroup", "proc", "clone3", "rootfs", "etc"
        ]
    );
    for c in v["checks"].as_array().unwrap() {
        let mut keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["affects", "detail", "fix", "id", "status", "summary"],
            "{c}"
        );
        assert!(matches!(status_of(c), "OK" | "DEGRADED" | "MISSING"), "{c}");
        assert!(c["summary"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(c["detail"].is_string() && c["affects"].is_array());
        // A fix exactly when something is wrong.
        assert_eq!(c["fix"].is_null(), status_of(c) == "OK", "{c}");
    }
    for p in v["profiles"].as_array().unwrap() {
        for key in ["name", "command", "runs", "blocked_by", "weaker"] {
            assert!(p.get(key).is_some(), "profile without {key}: {p}");
        }
        assert_eq!(
            p["runs"].as_bool().unwrap(),
            p["blocked_by"].as_array().unwrap().is_empty()
        );
    }
    assert_eq!(v["profiles"][0]["name"], "default");
    // Every shipped profile is judged.
    for name in ["python", "node", "bash", "sh", "minimal", "strict"] {
        profile(&v, name);
    }
}

#[test]
fn the_report_matches_this_host() {
    let out = stockade(Who::Me, &["doctor", "--json"], None);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["default_profile_runs"], true);
    assert_eq!(status_of(check(&v, "sandbox")), "OK", "{v:#}");

    if let Some(works) = unshare_works(Who::Me) {
        assert_eq!(status_of(check(&v, "userns")) == "OK", works);
    }
    assert_eq!(status_of(check(&v, "userns")), "OK");

    let abi = kernel_landlock_abi();
    assert_eq!(v["facts"]["landlock"]["abi"], abi);
    let want = match abi {
        0 => "MISSING",
        1..=5 => "DEGRADED",
        _ => "OK",
    };
    assert_eq!(status_of(check(&v, "landlock")), want);
    assert!(
        check(&v, "landlock")["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("ABI {abi}"))
    );

    let actions = std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail").unwrap();
    let reported: Vec<&str> = v["facts"]["seccomp"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(reported, actions.split_whitespace().collect::<Vec<_>>());
    assert_eq!(status_of(check(&v, "seccomp")), "OK");

    let mode = mounted_cgroup_mode();
    assert_eq!(v["facts"]["cgroup"]["mode"], mode);
    if nix::unistd::Uid::current().is_root() && matches!(mode, "hybrid" | "v1") {
        // Root owns the v1 hierarchies: all three limits are kernel-enforced.
        let c = check(&v, "cgroup");
        assert_eq!(status_of(c), "OK", "{c}");
        assert_eq!(v["facts"]["cgroup"]["backend"], mode);
        for limit in ["memory", "pids", "cpu"] {
            assert_eq!(v["facts"]["cgroup"]["enforced"][limit], true, "{limit}");
        }
    }
    assert_eq!(status_of(check(&v, "proc")), "OK");
    assert_eq!(status_of(check(&v, "clone3")), "OK");

    for (name, path) in v["facts"]["interpreters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i[0].as_str().unwrap(), &i[1]))
    {
        let present = ["/usr/local/bin", "/usr/bin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(name).is_file());
        assert_eq!(!path.is_null(), present, "interpreter {name}");
    }
}

#[test]
fn doctor_leaves_no_cgroup_behind() {
    let child = Command::new(common::bin())
        .args(["doctor", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["facts"]["cgroup"]["leftovers"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(groups_of(pid), Vec::<String>::new());
    let records = Path::new("/run/stockade/cgroups");
    if let Ok(entries) = std::fs::read_dir(records) {
        let mine: Vec<_> = entries
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("sandbox-{pid}-"))
            })
            .collect();
        assert!(mine.is_empty(), "owner records left: {mine:?}");
    }
}

#[test]
fn unprivileged_doctor_reports_missing_delegation_and_still_exits_0() {
    if !nix::unistd::Uid::current().is_root() || test_user().is_none() {
        eprintln!("skipped: needs root to run as {}", common::TEST_USER);
        return;
    }
    let (v, code) = doctor_json(Who::User);
    assert_eq!(code, 0, "the default policy needs no cgroup: {v:#}");
    assert_eq!(v["default_profile_runs"], true);
    if let Some(works) = unshare_works(Who::User) {
        assert_eq!(status_of(check(&v, "userns")) == "OK", works);
    }
    let c = check(&v, "cgroup");
    if mounted_cgroup_mode() == "v2" {
        // A v2 host may delegate to users; only the hybrid/v1 expectation is certain.
        return;
    }
    assert!(
        matches!(status_of(c), "DEGRADED" | "MISSING"),
        "cgroup line as an unprivileged user: {c}"
    );
    let fix = c["fix"].as_str().unwrap();
    assert!(
        fix.contains("Delegate=yes") && fix.contains("root"),
        "the fix names delegation: {fix}"
    );
    let affects: Vec<&str> = c["affects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(affects.contains(&"python"), "{affects:?}");
    assert_eq!(profile(&v, "python")["runs"], false);
    assert_eq!(profile(&v, "python")["blocked_by"][0]["check"], "cgroup");
    // minimal marks cgroup best-effort: it runs, with weaker limits.
    assert_eq!(profile(&v, "minimal")["runs"], true);
    assert_eq!(profile(&v, "minimal")["weaker"][0]["check"], "cgroup");
}

/// What doctor says about a profile is what `stockade run` then does.
#[test]
fn profile_verdicts_match_real_runs() {
    let mut who = vec![Who::Me];
    if nix::unistd::Uid::current().is_root() && test_user().is_some() {
        who.push(Who::User);
    }
    for w in who {
        let (v, _) = doctor_json(w);
        for name in ["sh", "minimal"] {
            let runs = profile(&v, name)["runs"].as_bool().unwrap();
            let args: &[&str] = match name {
                "sh" => &["run", "--profile", "sh", "--", "-c", "exit 0"],
                _ => &["run", "--profile", "minimal", "--", "true"],
            };
            let out = stockade(w, args, None);
            assert_eq!(
                out.status.code() == Some(0),
                runs,
                "{w:?} {name}: doctor says runs={runs}; stockade run: {:?} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn the_table_is_readable_and_plain_when_piped() {
    let out = stockade(Who::Me, &["doctor"], None);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains('\x1b'),
        "no colour codes when piped:\n{text}"
    );
    let header = text.lines().find(|l| l.starts_with("CHECK")).unwrap();
    assert!(header.contains("STATUS") && header.contains("SUMMARY"));
    for id in [
        "sandbox", "userns", "landlock", "seccomp", "cgroup", "proc", "clone3", "rootfs",
    ] {
        let row = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_else(|| panic!("no {id} row in:\n{text}"));
        let status = row.split_whitespace().nth(1).unwrap();
        assert!(matches!(status, "OK" | "DEGRADED" | "MISSING"), "{row}");
    }
    assert!(text.lines().any(|l| l.starts_with("PROFILE")));
    assert!(text.contains("The default policy runs on this host (exit 0)."));
}

#[test]
fn the_etc_line_lists_what_the_sandbox_sees_of_etc() {
    let (v, _) = doctor_json(Who::Me);
    let etc = &v["facts"]["etc"];
    let present: Vec<&str> = etc["present"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(present.contains(&"ld.so.cache"), "{etc}");
    assert!(
        !present
            .iter()
            .any(|n| n.starts_with("shadow") || n.starts_with("ssh"))
    );
    // Each entry doctor says is there is there inside a sandbox, and vice versa for the
    // top-level names of the sandbox's /etc (apart from the generated files).
    let out = stockade(
        Who::Me,
        &["run", "--", "sh", "-c", "cd /etc && ls -A"],
        None,
    );
    let inside: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let mut expected: Vec<String> = present
        .iter()
        .map(|n| n.split('/').next().unwrap().to_string())
        .chain(["passwd", "group", "hostname", "hosts"].map(String::from))
        .collect();
    expected.sort();
    expected.dedup();
    let mut inside_sorted = inside.clone();
    inside_sorted.sort();
    assert_eq!(inside_sorted, expected);
    let line = check(&v, "etc");
    let clean = etc["missing"].as_array().unwrap().is_empty()
        && etc["dangling"].as_array().unwrap().is_empty();
    assert_eq!(status_of(line) == "OK", clean, "{line}");
}
