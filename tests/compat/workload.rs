//! One workload, run twice: bare on the host and inside `stockade run --profile …`, with the same
//! files, arguments and environment (the profile's), each in a fresh work dir and `/tmp`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::outcome::{self, Difference};

/// How a workload's output is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// `python3 -m test -v MODULE`: per test case.
    Regrtest,
    /// `key=value` facts on stdout, plus the exit status.
    Facts,
}

#[derive(Debug, Clone)]
pub struct Workload {
    pub name: String,
    /// The shipped profile the sandboxed run uses.
    pub profile: &'static str,
    /// What the profile puts before the arguments (its `[run] command`); the bare run starts with it.
    pub interpreter: Vec<&'static str>,
    /// The arguments after `--`, identical in both runs.
    pub args: Vec<String>,
    /// Files under tests/compat copied into the work dir (`/sandbox` inside) under their file name.
    pub files: Vec<String>,
    /// `stockade run` flags on top of the profile (limits big enough for a test suite).
    pub flags: Vec<String>,
    pub check: Check,
}

/// What one run produced.
#[derive(Debug, Default)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    /// `exit N`, `signal N`, or for the sandbox the verdict's status.
    pub status: String,
    /// For a sandbox run killed by seccomp: the syscall the verdict names.
    pub syscall: Option<String>,
    pub seconds: f64,
}

/// The comparison of the two runs.
#[derive(Debug)]
pub struct Report {
    pub workload: Workload,
    pub bare: Run,
    pub sandboxed: Run,
    /// Test cases (or facts) compared; 0 means the workload produced nothing to compare.
    pub compared: usize,
    pub differences: Vec<Difference>,
}

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat")
}

impl Workload {
    pub fn run(self) -> Report {
        let bare = self.run_bare();
        let sandboxed = self.run_sandboxed();
        let (compared, differences) = match self.check {
            Check::Regrtest => {
                let b = regrtest_cases(&bare);
                let s = regrtest_cases(&sandboxed);
                (b.len(), outcome::compare_cases(&b, &s))
            }
            Check::Facts => {
                let with_exit = |r: &Run| format!("{}exit={}\n", r.stdout, exit_word(&r.status));
                let b = with_exit(&bare);
                let count = b.lines().filter(|l| l.contains('=')).count();
                (count, outcome::compare_facts(&b, &with_exit(&sandboxed)))
            }
        };
        Report {
            workload: self,
            bare,
            sandboxed,
            compared,
            differences,
        }
    }

    fn run_bare(&self) -> Run {
        let work = tempfile::tempdir().expect("bare work dir");
        let (home, tmp) = (work.path().join("sandbox"), work.path().join("tmp"));
        std::fs::create_dir_all(&home).expect("bare /sandbox");
        std::fs::create_dir_all(&tmp).expect("bare /tmp");
        for file in &self.files {
            let src = data_dir().join(file);
            std::fs::copy(&src, home.join(file_name(file)))
                .unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        }
        // A hung bare run must not hang the suite; the sandbox has its own wall limit.
        let mut cmd = Command::new("timeout");
        cmd.args(["--kill-after=10", "900"])
            .args(&self.interpreter)
            .args(&self.args)
            .current_dir(&home)
            .env_clear();
        for (k, v) in self.profile_env() {
            cmd.env(k, v);
        }
        cmd.env("HOME", &home).env("TMPDIR", &tmp);
        let started = Instant::now();
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.name));
        let status = match (
            out.status.code(),
            std::os::unix::process::ExitStatusExt::signal(&out.status),
        ) {
            (Some(code), _) => format!("exit {code}"),
            (None, sig) => format!("signal {}", sig.unwrap_or(0)),
        };
        Run {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            status,
            syscall: None,
            seconds: started.elapsed().as_secs_f64(),
        }
    }

    fn run_sandboxed(&self) -> Run {
        let scratch = tempfile::tempdir().expect("report dir");
        let report = scratch.path().join("verdict.json");
        let mut cmd = Command::new(crate::common::bin());
        cmd.args(["run", "--profile", self.profile, "--report"])
            .arg(&report)
            .args(&self.flags);
        // For diagnosis only (docs/compat.md): e.g. `--seccomp log` shows what would still differ
        // once no syscall kills.
        if let Ok(extra) = std::env::var("STOCKADE_COMPAT_FLAGS") {
            cmd.args(extra.split_whitespace());
        }
        if !crate::common::is_root() {
            // cgroup limits need a delegated cgroup, which an ordinary user rarely has.
            cmd.args(["--best-effort", "cgroup"]);
        }
        for file in &self.files {
            let src = data_dir().join(file);
            cmd.arg("--copy-in")
                .arg(format!("{}:/sandbox/{}", src.display(), file_name(file)));
        }
        cmd.arg("--").args(&self.args).current_dir(scratch.path());
        let started = Instant::now();
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {} in the sandbox: {e}", self.name));
        let seconds = started.elapsed().as_secs_f64();
        let verdict: serde_json::Value = std::fs::read(&report)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let mut status = verdict["status"]
            .as_str()
            .unwrap_or("no verdict")
            .to_string();
        if let Some(code) = verdict["exit_code"].as_i64() {
            status = format!("{status} (exit {code})");
        }
        Run {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            status,
            syscall: verdict["seccomp_violation"]["syscall"]
                .as_str()
                .map(str::to_string),
            seconds,
        }
    }

    /// The environment the profile (with the workload's flags, e.g. a preset) gives the payload
    /// (`--print-policy`), for the bare run.
    fn profile_env(&self) -> Vec<(String, String)> {
        let out = Command::new(crate::common::bin())
            .args(["run", "--profile", self.profile, "--print-policy"])
            .args(&self.flags)
            .arg("--")
            .args(&self.args)
            .output()
            .expect("stockade run --print-policy");
        let text = String::from_utf8_lossy(&out.stdout);
        let policy: toml::Table = toml::from_str(&text)
            .unwrap_or_else(|e| panic!("--print-policy of {}: {e}\n{text}", self.profile));
        policy
            .get("env")
            .and_then(toml::Value::as_table)
            .map(|env| {
                env.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Cases from both streams: regrtest reports on stdout, `python3 -m unittest` on stderr.
pub fn regrtest_cases(run: &Run) -> std::collections::BTreeMap<String, outcome::Case> {
    let mut cases = outcome::parse_regrtest(&run.stderr);
    cases.extend(outcome::parse_regrtest(&run.stdout));
    cases
}

/// `exit N` from a bare status or a verdict's `status (exit N)`; `ok` is `exit 0`.
fn exit_word(status: &str) -> String {
    if status == "ok" {
        return "0".into();
    }
    match status.rsplit_once("exit ") {
        Some((_, code)) => code.trim_end_matches(')').to_string(),
        None => status.to_string(),
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
