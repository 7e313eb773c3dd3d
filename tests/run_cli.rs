//! `stockade run` behaviour through the built binary: verdicts, exit codes, limits, input.

mod common;

use std::time::Instant;

use common::{Who, identities, shared_dir, stdout_of, stockade, verdict};

fn code(out: &std::process::Output) -> i32 {
    out.status.code().expect("exited normally")
}

#[test]
fn interpreters_run_with_threads_and_subprocesses() {
    for who in identities() {
        let py = "import threading, subprocess\nt = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\nprint(subprocess.run(['sh', '-c', 'echo sub'], capture_output=True, text=True).stdout.strip())";
        let v = verdict(who, &["--", "/usr/bin/python3", "-c", py]);
        assert_eq!(v["status"], "ok", "{who:?}: {v}");
        assert_eq!(stdout_of(&v), "thread\nsub\n");
        let js = "const {execSync} = require('child_process'); const {Worker} = require('worker_threads');\nnew Worker('require(\"worker_threads\").parentPort.postMessage(7)', {eval: true}).on('message', m => console.log('worker', m, execSync('echo sub').toString().trim()));";
        let v = verdict(who, &["--", "node", "-e", js]);
        assert_eq!(v["status"], "ok", "{who:?}: {v}");
        assert_eq!(stdout_of(&v), "worker 7 sub\n");
        let v = verdict(who, &["--", "sh", "-c", "echo $(echo nested) | cat"]);
        assert_eq!(
            (v["status"].as_str(), stdout_of(&v).as_str()),
            (Some("ok"), "nested\n"),
            "{who:?}"
        );
    }
}

#[test]
fn plain_run_streams_output_and_passes_the_exit_code() {
    let out = stockade(
        Who::Me,
        &["run", "--", "sh", "-c", "echo hi; echo err >&2; exit 3"],
        None,
    );
    assert_eq!(code(&out), 3);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
}

#[test]
fn stdin_passes_through() {
    let out = stockade(
        Who::Me,
        &["run", "--", "/usr/bin/python3", "-"],
        Some(b"print(40+2)\n"),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "42\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(code(&out), 0);
    let file = shared_dir().join("stdin.txt");
    std::fs::write(&file, "from file\n").unwrap();
    let v = verdict(Who::Me, &["--stdin", file.to_str().unwrap(), "--", "cat"]);
    assert_eq!(stdout_of(&v), "from file\n");
}

#[test]
fn wall_timeout_kills_the_whole_tree() {
    for who in identities() {
        let start = Instant::now();
        let out = stockade(
            who,
            &[
                "run",
                "--json",
                "--wall-time",
                "500ms",
                "--",
                "sh",
                "-c",
                "sleep 30 & sleep 30 & sleep 30",
            ],
            None,
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["status"], "timeout_wall", "{who:?}: {v}");
        assert_eq!(code(&out), 124);
        let wall = v["wall_ms"].as_u64().unwrap();
        // Generous sanity bounds (shared, noisy machine); the precise overshoot is in the benchmark.
        assert!((500..3000).contains(&wall), "{who:?}: wall_ms {wall}");
        assert!(start.elapsed().as_secs() < 10);
        let left = std::process::Command::new("pgrep")
            .args(["-x", "sleep"])
            .output()
            .unwrap();
        let survivors: Vec<_> = String::from_utf8_lossy(&left.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        for pid in survivors {
            let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            assert!(
                !cmd.contains("30"),
                "{who:?}: a sandboxed sleep survived: pid {pid}"
            );
        }
    }
}

#[test]
fn output_flood_stops_at_the_cap() {
    let v = verdict(
        Who::Me,
        &["--output", "64KiB", "--", "sh", "-c", "yes flood"],
    );
    assert_eq!(v["status"], "output_limit", "{v}");
    assert_eq!(v["stdout"]["data"].as_str().unwrap().len(), 65536);
    assert_eq!(v["stdout"]["truncated"], true);
    let v = verdict(
        Who::Me,
        &[
            "--output",
            "1KiB",
            "--output-mode",
            "truncate",
            "--",
            "sh",
            "-c",
            "head -c 100000 /dev/zero | tr '\\0' x; echo done >&2",
        ],
    );
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["stdout"]["bytes"], 100_000);
    assert_eq!(v["stdout"]["data"].as_str().unwrap().len(), 1024);
    assert_eq!(v["stderr"]["data"], "done\n");
}

#[test]
fn exit_codes_for_missing_commands_and_signals() {
    let out = stockade(Who::Me, &["run", "--", "no-such-command"], None);
    assert_eq!(code(&out), 127);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("command not found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = stockade(Who::Me, &["run", "--", "/etc/passwd"], None);
    assert_eq!(code(&out), 126);
    let v = verdict(Who::Me, &["--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(
        (v["status"].as_str(), v["signal"].as_i64()),
        (Some("signaled"), Some(15))
    );
    let out = stockade(Who::Me, &["run", "--", "sh", "-c", "kill -TERM $$"], None);
    assert_eq!(code(&out), 143);
}

#[test]
fn copy_in_env_and_cwd() {
    let script = shared_dir().join("main.py");
    std::fs::write(
        &script,
        "import os\nprint(os.getcwd(), os.environ['GREETING'])\n",
    )
    .unwrap();
    let copy = format!("{}:/sandbox/app/main.py", script.display());
    let v = verdict(
        Who::Me,
        &[
            "--copy-in",
            &copy,
            "--env",
            "GREETING=hello",
            "--cwd",
            "/sandbox/app",
            "--",
            "python3",
            "main.py",
        ],
    );
    assert_eq!(stdout_of(&v), "/sandbox/app hello\n", "{v}");
    // Symlinks on the host side are refused.
    let link = shared_dir().join("link.py");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&script, &link).unwrap();
    let copy = format!("{}:/sandbox/main.py", link.display());
    let v = verdict(Who::Me, &["--copy-in", &copy, "--", "true"]);
    assert_eq!(v["status"], "setup_failed");
    assert!(v["message"].as_str().unwrap().contains("symlink"), "{v}");
}

#[test]
fn docker_size_spellings_are_accepted_by_the_limit_flags() {
    // Docker's `512m` is MiB; `10MB` is decimal (docs/profiles.md, "Sizes").
    let out = stockade(
        Who::Me,
        &[
            "run",
            "--print-policy",
            "--memory",
            "512m",
            "--tmp-size",
            "10MB",
            "--",
            "true",
        ],
        None,
    );
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("memory = \"512MiB\""), "{text}");
    assert!(text.contains("tmp_size = \"10000000\""), "{text}");
    if !common::is_root() {
        eprintln!("cgroup limits need root here; the enforced run is skipped");
        return;
    }
    let v = verdict(Who::Me, &["--memory", "512m", "--", "true"]);
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["limits"]["memory"], 512u64 << 20, "{v}");
    assert_eq!(
        v["enforced"]["cgroup"]["memory_limit_enforced"], true,
        "{v}"
    );
}

#[test]
fn bad_arguments_exit_125_with_a_clear_message() {
    for (args, needle) in [
        (
            vec!["run", "--memory", "12 parsecs", "--", "true"],
            "unknown unit",
        ),
        (
            vec!["run", "--best-effort", "seccomp", "--", "true"],
            "unknown layer",
        ),
        (
            vec!["run", "--copy-in", "nocolon", "--", "true"],
            "HOST:SANDBOX",
        ),
        (vec!["run"], "no command given"),
    ] {
        let out = stockade(Who::Me, &args, None);
        assert_eq!(code(&out), 125, "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn report_file_holds_the_same_verdict() {
    let report = shared_dir().join("verdict.json");
    let out = stockade(
        Who::Me,
        &[
            "run",
            "--report",
            report.to_str().unwrap(),
            "--",
            "echo",
            "x",
        ],
        None,
    );
    assert_eq!(code(&out), 0);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(stdout_of(&v), "x\n");
    assert!(v["wall_ms"].is_u64() && v["cpu_ms"]["total_ms"].is_u64());
    assert_eq!(v["limits"]["output"], 1 << 20);
}

#[test]
fn sandbox_cannot_see_a_different_user_s_work() {
    // Both identities run the same command; neither sees the other's files (each /sandbox is fresh).
    for who in identities() {
        let v = verdict(who, &["--", "sh", "-c", "ls -A /sandbox /tmp | wc -w"]);
        assert_eq!(
            stdout_of(&v).trim(),
            "2",
            "{who:?}: only the two headers: {v}"
        );
    }
}

#[test]
fn a_profile_threshold_changes_what_enforce_refuses() {
    // Importing socket is a MEDIUM finding under the production preset.
    let profile = shared_dir().join("threshold.toml");
    for (threshold, want) in [("medium", 126), ("high", 0)] {
        let text = format!(
            "description = \"t\"\nextends = \"python\"\n[policy]\nmode = \"enforce\"\npreset = \"production\"\nthreshold = \"{threshold}\"\n"
        );
        std::fs::write(&profile, text).unwrap();
        let path = profile.to_str().unwrap();
        let shown = stockade(Who::Me, &["run", "--profile", path, "--print-policy"], None);
        let shown = String::from_utf8_lossy(&shown.stdout);
        assert!(
            shown.contains(&format!("threshold = \"{threshold}\"")),
            "{shown}"
        );
        let out = stockade(
            Who::Me,
            &["run", "--profile", path, "--code", "import socket"],
            None,
        );
        assert_eq!(
            out.status.code(),
            Some(want),
            "threshold {threshold}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn an_interrupt_reaches_the_payload_as_the_same_signal() {
    use std::io::{BufRead, Read};
    // SIGINT to stockade goes to the payload as SIGINT (python raises KeyboardInterrupt).
    // The handler is in place before `up` is printed, so the signal cannot land outside it.
    let code = "import signal, sys, time\nsignal.signal(signal.SIGINT, lambda *_: (print('interrupted'), sys.exit(0)))\nprint('up', flush=True)\ntime.sleep(30)";
    let mut child = std::process::Command::new(common::bin())
        .args(["run", "--", "python3", "-c", code])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "up\n");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "interrupted\n");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn zero_cpu_time_means_no_limit_as_zero_wall_time_does() {
    // A profile's CPU limit is lifted, not turned into "no CPU at all".
    let v = verdict(
        Who::Me,
        &[
            "--cpu-time",
            "0",
            "--",
            "sh",
            "-c",
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo done",
        ],
    );
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["limits"]["cpu"], serde_json::Value::Null);
    assert_eq!(stdout_of(&v), "done\n");
}
