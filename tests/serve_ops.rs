//! Operating `stockade serve`: overload answered with 429/503 and Retry-After, client disconnect
//! killing the sandbox, SIGTERM drain (finish, then kill at the deadline), no leftover processes or
//! cgroups after a burst, the Unix socket listener, sd_notify, config errors and readiness.

mod serve_support;

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use serde_json::json;
use serve_support::{Server, children_of, eventually, pids_with, raw_request, unix_request};

/// POST from a thread; returns the response.
fn post_bg(
    s: &Server,
    body: serde_json::Value,
) -> std::thread::JoinHandle<serve_support::Response> {
    let port = s.port;
    std::thread::spawn(move || {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let body = serde_json::to_vec(&body).unwrap();
        c.write_all(&raw_request("POST", "/v1/execute", &[], &body))
            .unwrap();
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut c, &mut raw).unwrap();
        serve_support::Response::parse(&raw).unwrap()
    })
}

#[test]
fn overload_is_answered_never_absorbed() {
    let s = Server::start(&[
        "--max-concurrent",
        "1",
        "--queue-size",
        "2",
        "--queue-timeout",
        "20s",
    ]);
    let sleep = json!({"profile": "sh", "code": "sleep 1.5"});
    let handles: Vec<_> = (0..8).map(|_| post_bg(&s, sleep.clone())).collect();
    let answers: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(answers.len(), 8, "every request got an answer");
    let ok = answers.iter().filter(|r| r.status == 200).count();
    let full: Vec<_> = answers.iter().filter(|r| r.status == 429).collect();
    assert_eq!(
        ok + full.len(),
        8,
        "only 200 and 429: {:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(
        (1..=3).contains(&ok),
        "one running plus at most two queued: {ok}"
    );
    for r in &full {
        assert_eq!(r.json()["code"], "queue_full");
        let secs: u64 = r
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!((1..=60).contains(&secs));
    }
    assert_eq!(
        s.metric(r#"stockade_requests_refused_total{reason="queue_full"}"#),
        Some(full.len() as f64)
    );

    // A request that waits longer than its queue timeout gets 503 with Retry-After.
    let busy = post_bg(&s, json!({"profile": "sh", "code": "sleep 2"}));
    assert!(eventually(Duration::from_secs(5), || s
        .metric("stockade_sandboxes_running")
        == Some(1.0)));
    let r = s.post(
        "/v1/execute",
        &json!({"profile": "sh", "code": "true", "queue_timeout_ms": 200}),
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (503, Some("queue_timeout"))
    );
    assert!(r.header("retry-after").is_some());
    assert_eq!(busy.join().unwrap().status, 200);
}

#[test]
fn client_disconnect_kills_the_sandbox() {
    let s = Server::start(&[]);
    let marker = "sleep 41.7319";
    for stream in [false, true] {
        let body = serde_json::to_vec(&json!({"profile": "sh", "code": marker})).unwrap();
        let mut c = s.connect().unwrap();
        let headers: &[(&str, &str)] = if stream {
            &[("accept", "application/x-ndjson")]
        } else {
            &[]
        };
        c.write_all(&raw_request("POST", "/v1/execute", headers, &body))
            .unwrap();
        assert!(
            eventually(Duration::from_secs(10), || !pids_with(marker).is_empty()),
            "payload never started"
        );
        drop(c);
        assert!(
            eventually(Duration::from_secs(10), || pids_with(marker).is_empty()),
            "the payload outlived its client (stream: {stream})"
        );
    }
    assert!(eventually(Duration::from_secs(5), || s
        .metric("stockade_client_disconnects_total")
        == Some(2.0)));
    assert_eq!(s.metric("stockade_sandboxes_running"), Some(0.0));
}

#[test]
fn sigterm_drains_running_sandboxes_then_exits() {
    let mut s = Server::start(&["--drain-timeout", "20s"]);
    let running = post_bg(
        &s,
        json!({"profile": "sh", "code": "sleep 1.5; echo finished"}),
    );
    assert!(eventually(Duration::from_secs(5), || s
        .metric("stockade_sandboxes_running")
        == Some(1.0)));
    s.sigterm();
    // While draining: not ready, new work refused with 503 and Retry-After, health still fine.
    assert!(eventually(Duration::from_secs(5), || s
        .get("/readyz")
        .status
        == 503));
    assert_eq!(s.get("/readyz").json()["reason"], "draining");
    assert_eq!(s.get("/healthz").status, 200);
    let r = s.post("/v1/execute", &json!({"profile": "sh", "code": "true"}));
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (503, Some("draining"))
    );
    assert!(r.header("retry-after").is_some());
    let r = s.post(
        "/api/v2/execute",
        &json!({"language": "sh", "version": "*", "files": [{"content": "true"}]}),
    );
    assert_eq!(r.status, 503);
    assert!(r.json()["message"].is_string());
    // The running sandbox finishes normally, then the service exits cleanly.
    let done = running.join().unwrap();
    assert_eq!(done.status, 200);
    assert_eq!(done.json()["stdout"]["data"], "finished\n");
    let status = s
        .wait_exit(Duration::from_secs(15))
        .expect("exited after the drain");
    assert!(status.success(), "{status:?}");
    let log = s.log_text();
    assert!(
        log.contains("\"draining\"") && log.contains("drained; exiting"),
        "{log}"
    );
    assert!(
        log.contains("\"finished\":1") && log.contains("\"killed\":0"),
        "{log}"
    );
}

#[test]
fn drain_deadline_kills_what_is_left() {
    let mut s = Server::start(&["--drain-timeout", "500ms"]);
    let marker = "sleep 47.2213";
    let running = post_bg(&s, json!({"profile": "sh", "code": marker}));
    assert!(eventually(Duration::from_secs(10), || !pids_with(marker).is_empty()));
    s.sigterm();
    let r = running.join().unwrap();
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (503, Some("draining")),
        "{}",
        r.text()
    );
    assert!(
        s.wait_exit(Duration::from_secs(15))
            .expect("exited")
            .success()
    );
    assert!(eventually(Duration::from_secs(5), || pids_with(marker).is_empty()));
    assert!(s.log_text().contains("\"killed\":1"));
}

/// Directories named `sandbox-<pid>-*` anywhere under /sys/fs/cgroup (a few levels deep).
fn cgroups_of(pid: i32) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, prefix: &str, depth: usize, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if e.file_name().to_string_lossy().starts_with(prefix) {
                out.push(e.path());
            } else if depth > 0 {
                walk(&e.path(), prefix, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(
        std::path::Path::new("/sys/fs/cgroup"),
        &format!("sandbox-{pid}-"),
        6,
        &mut out,
    );
    out
}

#[test]
fn a_burst_leaves_no_processes_or_cgroups() {
    let s = Server::start(&["--max-concurrent", "4", "--queue-size", "32"]);
    let bodies = [
        json!({"profile": "python", "code": "print(1)"}),
        json!({"profile": "sh", "code": "sleep 5 & sleep 5 & wait", "limits": {"wall_ms": 300}}),
        json!({"profile": "bash", "code": "yes | head -c 100000000 > /dev/null; echo done"}),
        json!({"profile": "sh", "code": "exit 7"}),
    ];
    let handles: Vec<_> = (0..16)
        .map(|i| post_bg(&s, bodies[i % 4].clone()))
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().status, 200);
    }
    assert_eq!(s.metric("stockade_sandboxes_running"), Some(0.0));
    // Only the launcher is left as a child of the service; its workers are gone.
    assert!(
        eventually(Duration::from_secs(5), || children_of(s.pid()).len() == 1),
        "children: {:?}",
        children_of(s.pid())
    );
    let launcher = children_of(s.pid())[0];
    assert!(
        eventually(Duration::from_secs(5), || children_of(launcher).is_empty()),
        "workers left"
    );
    let left = cgroups_of(s.pid());
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
}

#[test]
fn unix_socket_sd_notify_and_watchdog() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let sock = dir.path().join("api.sock");
    let mut s = Server::start_env(
        &["--listen", &format!("unix:{}", sock.display())],
        &[
            ("NOTIFY_SOCKET", notify_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    let mut seen = String::new();
    let mut buf = [0u8; 512];
    while !(seen.contains("READY=1") && seen.contains("WATCHDOG=1")) {
        let n = notify
            .recv(&mut buf)
            .expect("READY and WATCHDOG notifications");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        seen.push('\n');
    }
    assert!(seen.contains("STATUS=serving on"), "{seen}");
    // Both listeners serve: TCP (from the harness) and the Unix socket.
    let r = unix_request(
        &sock,
        "POST",
        "/v1/execute",
        br#"{"profile":"sh","code":"echo unix"}"#,
    );
    assert_eq!(r.json()["stdout"]["data"], "unix\n");
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let meta = std::fs::metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    s.sigterm();
    let mut stopping = false;
    while let Ok(n) = notify.recv(&mut buf) {
        if String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1") {
            stopping = true;
            break;
        }
    }
    assert!(stopping, "STOPPING=1 on SIGTERM");
    assert!(
        s.wait_exit(Duration::from_secs(10))
            .expect("exit")
            .success()
    );
}

#[test]
fn readiness_follows_the_launcher() {
    let s = Server::start(&[]);
    assert_eq!(s.get("/readyz").status, 200);
    assert_eq!(s.metric("stockade_launcher_up"), Some(1.0));
    let launcher = children_of(s.pid());
    assert_eq!(launcher.len(), 1, "one launcher");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(launcher[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(eventually(Duration::from_secs(5), || s
        .get("/readyz")
        .status
        == 503));
    assert_eq!(s.get("/readyz").json()["reason"], "launcher_down");
    assert_eq!(s.metric("stockade_launcher_up"), Some(0.0));
    let r = s.post("/v1/execute", &json!({"profile": "sh", "code": "true"}));
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (503, Some("unavailable")),
        "{}",
        r.text()
    );
}

#[test]
fn config_errors_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("stockade.toml");
    std::fs::write(&cfg, "[capacity]\nqueue_sise = 3\n").unwrap();
    let out = std::process::Command::new(serve_support::bin())
        .args(["serve", "--check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:2:1: unknown field `queue_sise` in [capacity]; did you mean `queue_size`?",
            cfg.display()
        )),
        "{err}"
    );
    std::fs::write(&cfg, "[listen]\ntcp = [\"127.0.0.1:0\"]\n[capacity]\nmax_concurrent = 2\nqueue_timeout = \"2s\"\n").unwrap();
    let out = std::process::Command::new(serve_support::bin())
        .args(["serve", "--check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("2 sandboxes at once") && text.contains("tcp:127.0.0.1:0"),
        "{text}"
    );
    // The shipped example configuration is valid.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/config/stockade.toml");
    let out = std::process::Command::new(serve_support::bin())
        .args(["serve", "--check-config", "--config", example])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
