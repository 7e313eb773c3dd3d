//! Real third-party Piston clients, installed from their registries by the test itself (npm
//! `piston-client`, PyPI `aiopyston` and `piston-rspy`, pinned), run unchanged against a live
//! `stockade serve`. The scripts in tests/clients/ hold the checks; each prints `OK <n> checks`.
//!
//! Installs go to cargo's per-target temp dir and are reused while it exists; each is bounded by a
//! timeout and quiet unless it fails.

mod serve_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serve_support::Server;

const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Run a command with a deadline (killing it by pid when it passes); panics with its output on
/// failure.
fn run(cmd: &mut Command, timeout: Duration, what: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what}: no result after {timeout:?}\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A directory holding an installed client; `install` runs once per directory.
fn installed(name: &str, install: impl FnOnce(&Path)) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("serve-clients")
        .join(name);
    let marker = dir.join(".installed");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        install(&dir);
        std::fs::write(&marker, b"ok").unwrap();
    }
    dir
}

fn venv_with(name: &str, package: &str) -> PathBuf {
    let dir = installed(name, |dir| {
        run(
            Command::new("python3")
                .args(["-m", "venv"])
                .arg(dir.join("venv")),
            INSTALL_TIMEOUT,
            "python3 -m venv",
        );
        run(
            Command::new(dir.join("venv/bin/pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
                package,
            ]),
            INSTALL_TIMEOUT,
            &format!("pip install {package}"),
        );
    });
    dir.join("venv/bin/python")
}

fn assert_ok(out: &Output, what: &str) {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.trim_start().starts_with("OK "), "{what}: {text}");
    let n: u32 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(n >= 10, "{what} ran only {n} checks");
}

#[test]
fn npm_piston_client() {
    let dir = installed("npm-piston-client", |dir| {
        run(
            Command::new("npm")
                .args([
                    "install",
                    "--silent",
                    "--no-audit",
                    "--no-fund",
                    "--no-package-lock",
                    "--prefix",
                ])
                .arg(dir)
                .arg("piston-client@1.0.2"),
            INSTALL_TIMEOUT,
            "npm install piston-client",
        );
    });
    let s = Server::start(&[]);
    let out = run(
        Command::new("node")
            .arg(clients_dir().join("piston_client.mjs"))
            .arg(s.url())
            .arg(dir.join("node_modules")),
        RUN_TIMEOUT,
        "piston-client checks",
    );
    assert_ok(&out, "piston-client");
}

#[test]
fn pypi_aiopyston() {
    let python = venv_with("pypi-aiopyston", "aiopyston==1.2.1");
    let s = Server::start(&[]);
    let out = run(
        Command::new(python)
            .arg(clients_dir().join("pyston_client.py"))
            .arg(s.url()),
        RUN_TIMEOUT,
        "aiopyston checks",
    );
    assert_ok(&out, "aiopyston");
}

#[test]
fn pypi_piston_rspy() {
    let python = venv_with("pypi-piston-rspy", "piston-rspy==0.4.3");
    let s = Server::start(&[]);
    let out = run(
        Command::new(python)
            .arg(clients_dir().join("piston_rspy_client.py"))
            .arg(s.url()),
        RUN_TIMEOUT,
        "piston-rspy checks",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("OK "), "{text}");
}
