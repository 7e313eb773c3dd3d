//! Helpers for end-to-end tests: run the built `stockade` binary, as root and as an unprivileged
//! user created for the tests, and read the verdict and the probe's facts.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The unprivileged account the suite also runs as (created on demand when we are root).
pub const TEST_USER: &str = "stockade-test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// Whoever runs the tests (root on CI).
    Me,
    /// The unprivileged test user.
    User,
}

/// Identities every isolation check runs as: ourselves, and the unprivileged user when we are root.
pub fn identities() -> Vec<Who> {
    if is_root() && test_user().is_some() {
        vec![Who::Me, Who::User]
    } else {
        vec![Who::Me]
    }
}

/// Whether the tests run as root (cgroup limits and over-mounting /proc need it on this host).
pub fn is_root() -> bool {
    nix::unistd::Uid::current().is_root()
}

/// (uid, gid) of the test user, creating it if needed.
pub fn test_user() -> Option<(u32, u32)> {
    static USER: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    *USER.get_or_init(|| {
        let lookup = || {
            nix::unistd::User::from_name(TEST_USER)
                .ok()
                .flatten()
                .map(|u| (u.uid.as_raw(), u.gid.as_raw()))
        };
        if lookup().is_none() {
            let _ = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    TEST_USER,
                ])
                .status();
        }
        lookup()
    })
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_stockade")
}

/// A world-readable scratch directory for files the test user must read.
pub fn shared_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("stockade-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    })
}

/// The probe binary (tests/probe/probe.c), compiled once per test process.
pub fn probe() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        let out = shared_dir().join("probe");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probe/probe.c");
        let status = Command::new("cc")
            .args(["-O1", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .expect("cc (gcc) is needed to build the probe");
        assert!(status.success(), "compiling the probe failed");
        out
    })
}

/// A command that runs the built `stockade` as `who` (through setpriv for the test user).
pub fn command(who: Who) -> Command {
    match who {
        Who::Me => Command::new(bin()),
        Who::User => {
            let (uid, gid) = test_user().expect("test user");
            let mut c = Command::new("setpriv");
            c.args([
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".into(),
                "--".into(),
                bin().into(),
            ]);
            c.env_remove("XDG_RUNTIME_DIR");
            c
        }
    }
}

/// `stockade ARGS` as `who`, with stdin from /dev/null unless `stdin` is given.
pub fn stockade(who: Who, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = command(who);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.env("STOCKADE_TEST_SECRET", "do-not-leak");
    match stdin {
        None => {
            cmd.stdin(Stdio::null());
            cmd.output().expect("run stockade")
        }
        Some(bytes) => {
            cmd.stdin(Stdio::piped());
            let mut child = cmd.spawn().expect("spawn stockade");
            let mut input = child.stdin.take().unwrap();
            let bytes = bytes.to_vec();
            let writer = std::thread::spawn(move || std::io::Write::write_all(&mut input, &bytes));
            let out = child.wait_with_output().unwrap();
            let _ = writer.join();
            out
        }
    }
}

/// Run with `--json` and parse the verdict.
pub fn verdict(who: Who, args: &[&str]) -> serde_json::Value {
    let mut full = vec!["run", "--json"];
    full.extend_from_slice(args);
    let out = stockade(who, &full, None);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no verdict JSON ({e}); status {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The payload's stdout from a verdict.
pub fn stdout_of(v: &serde_json::Value) -> String {
    v["stdout"]["data"].as_str().unwrap_or_default().to_string()
}

/// `key=value` lines into a multimap.
pub fn facts(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            map.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    map
}

pub fn fact<'a>(facts: &'a BTreeMap<String, Vec<String>>, key: &str) -> &'a str {
    facts
        .get(key)
        .and_then(|v| v.first())
        .map_or("<missing>", String::as_str)
}
