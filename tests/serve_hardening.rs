//! The attacks of issue 11 against a spawned `stockade serve`, as an API client on loopback does
//! them: file sets that cannot be laid out (they used to open the circuit breaker for everyone),
//! Piston numbers that used to panic the service, bodies that used to amplify memory, and keys
//! configured without `[auth] tcp` (they used to leave the service open).

mod serve_support;

use serde_json::{Value, json};
use serve_support::Server;

fn config(dir: &tempfile::TempDir, text: &str) -> String {
    let p = dir.path().join("stockade.toml");
    std::fs::write(&p, format!("[audit]\nsink = \"off\"\n{text}")).unwrap();
    p.display().to_string()
}

fn breaker_closed(s: &Server) {
    let ready = s.get("/readyz");
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(
        s.metric("stockade_breaker_state{state=\"closed\"}"),
        Some(1.0)
    );
}

#[test]
fn file_sets_that_cannot_be_laid_out_never_open_the_breaker() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir, "[breaker]\nfailures = 2\nrecovery = \"60s\"\n");
    let s = Server::start(&["--config", &cfg]);
    let file = |name: &str| json!({"name": name, "content": "print(1)"});
    let long = "n".repeat(300);
    let many: Vec<Value> = (0..1001).map(|i| file(&format!("f{i}.py"))).collect();
    let native = [
        (
            json!([file("a"), file("a/b")]),
            "invalid_files",
            "is a file and also the directory",
        ),
        (
            json!([file("x.py"), file("x.py")]),
            "invalid_files",
            "given twice",
        ),
        (
            json!([file(&long)]),
            "invalid_files",
            "components are limited to 255",
        ),
        (json!(many), "invalid_body", "more than 1000 items"),
    ];
    // Five rounds: more than enough bad requests to open a breaker that opens after two.
    for _ in 0..5 {
        for (files, code, reason) in &native {
            let r = s.post("/v1/execute", &json!({"profile": "python", "files": files}));
            assert_eq!(r.status, 400, "{}", r.text());
            let v = r.json();
            assert_eq!(v["code"], *code, "{v}");
            assert!(v["message"].as_str().unwrap().contains(reason), "{v}");
        }
        let r = s.post(
            "/api/v2/execute",
            &json!({"language": "python", "version": "*", "files": [
                {"name": "a", "content": "print(1)"}, {"name": "a/b", "content": ""}]}),
        );
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap()
                .contains("`a` is a file")
        );
    }
    breaker_closed(&s);
    let r = s.post(
        "/v1/execute",
        &json!({"profile": "python", "files": [file("main.py"), file("lib/b.py")]}),
    );
    assert_eq!(r.json()["status"], "ok", "{}", r.text());
}

#[test]
fn set_up_failures_a_request_causes_with_its_limits_do_not_count() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir, "[breaker]\nfailures = 1\nrecovery = \"60s\"\n");
    let s = Server::start(&["--config", &cfg]);
    for _ in 0..3 {
        // Too few tasks for the sandbox's own init and payload: whatever it ends as, it is the
        // request's doing.
        let r = s.post(
            "/v1/execute",
            &json!({"profile": "sh", "code": "echo hi", "limits": {"pids": 1}}),
        );
        assert!(r.status == 200 || r.status == 400, "{}", r.text());
    }
    breaker_closed(&s);
    let r = s.post("/v1/execute", &json!({"profile": "sh", "code": "echo hi"}));
    assert_eq!(r.json()["status"], "ok", "{}", r.text());
}

#[test]
fn out_of_range_numbers_get_400_and_the_service_lives() {
    let s = Server::start(&[]);
    let py = |extra: Value| {
        let mut b =
            json!({"language": "python", "version": "*", "files": [{"content": "print(1)"}]});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    // The python profile sets no CPU limit: 1e30 ms used to reach Duration::from_secs_f64.
    let cases = [
        (json!({"run_cpu_time": 1e30}), "run_cpu_time cannot exceed"),
        (
            json!({"run_cpu_time": -5}),
            "run_cpu_time must be non-negative",
        ),
        (
            json!({"run_cpu_time": "NaN"}),
            "If specified, run_cpu_time must be a number",
        ),
        (json!({"run_timeout": 1e300}), "run_timeout cannot exceed"),
        (
            json!({"compile_timeout": 1e30}),
            "compile_timeout cannot exceed",
        ),
        (
            json!({"compile_cpu_time": 1e30}),
            "compile_cpu_time cannot exceed",
        ),
        (
            json!({"run_memory_limit": 1e30}),
            "run_memory_limit cannot exceed",
        ),
        (
            json!({"compile_memory_limit": 1e30}),
            "compile_memory_limit cannot exceed",
        ),
    ];
    for (extra, message) in cases {
        let r = s.post("/api/v2/execute", &py(extra.clone()));
        assert_eq!(r.status, 400, "{extra}: {}", r.text());
        let v = r.json();
        assert!(
            v["message"].as_str().unwrap().starts_with(message),
            "{extra}: {v}"
        );
        assert!(v.get("code").is_none(), "Piston's error shape: {v}");
    }
    // The native API: no profile maximum leaves a number unbounded.
    for limits in [
        json!({"cpu_ms": u64::MAX}),
        json!({"memory_bytes": u64::MAX}),
        json!({"pids": u64::MAX}),
        json!({"cpus": 1e-9}),
    ] {
        let r = s.post(
            "/v1/execute",
            &json!({"profile": "python", "code": "print(1)", "limits": limits}),
        );
        assert_eq!(r.status, 400, "{limits}: {}", r.text());
    }
    assert_eq!(s.get("/healthz").status, 200);
    let r = s.post("/api/v2/execute", &py(json!({"run_cpu_time": 2000})));
    assert_eq!(r.json()["run"]["stdout"], "1\n", "{}", r.text());
}

/// The service's peak resident memory (`VmHWM`), in bytes.
fn peak_rss(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn bodies_built_to_amplify_are_refused_without_growing_the_service() {
    let s = Server::start(&[]);
    // Warm up the paths (first requests allocate pools and caches).
    s.post(
        "/api/v2/execute",
        &json!({"language": "python", "version": "*", "files": [{"content": "print(1)"}]}),
    );
    let before = peak_rss(s.pid());
    let near_1mb = 1_000_000;
    let bodies = [
        // One String per character used to make 1 MB into ~90 MB.
        json!({"language": "python", "version": "*", "files": [{"content": ""}], "args": "a".repeat(near_1mb)}),
        json!({"language": "python", "version": "*", "files": [{"content": ""}], "args": vec!["a"; near_1mb / 4]}),
        json!({"language": "python", "version": "*", "files": vec![json!({}); near_1mb / 3]}),
    ];
    for body in &bodies {
        let r = s.post("/api/v2/execute", body);
        assert_eq!(r.status, 400, "{}", r.text());
    }
    let r = s.post(
        "/v1/execute",
        &json!({"profile": "sh", "code": "true", "args": vec!["a"; near_1mb / 4]}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let grown = peak_rss(s.pid()).saturating_sub(before);
    assert!(
        grown < 24 << 20,
        "4 bodies of ~1 MB grew the service by {grown} bytes"
    );
}

#[test]
fn configured_keys_are_required_without_auth_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(serve_support::bin())
        .args(["key", "new", "--json", "--principal", "ci"])
        .output()
        .unwrap();
    let k: Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = k["key"].as_str().unwrap();
    // The reproduction of issue 11 item 8: keys and grants, no `[auth] tcp`.
    let text = format!(
        "[[auth.keys]]\nid = \"{}\"\nsha256 = \"{}\"\nprincipal = \"ci\"\n[principals.ci]\nprofiles = [\"python\"]\n",
        k["id"].as_str().unwrap(),
        k["sha256"].as_str().unwrap()
    );
    let cfg = config(&dir, &text);
    let check = std::process::Command::new(serve_support::bin())
        .args([
            "serve",
            "--config",
            &cfg,
            "--check-config",
            "--listen",
            "127.0.0.1:2000",
        ])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let key_line = format!("api key {}: principal ci", k["id"].as_str().unwrap());
    for line in [
        "listener tcp:127.0.0.1:2000: api_key (default: the configured credentials)",
        "principal ci: profiles python",
        key_line.as_str(),
    ] {
        assert!(printed.contains(line), "{line:?} not in:\n{printed}");
    }
    let s = Server::start(&["--config", &cfg]);
    let run = |auth: &[(&str, &str)], profile: &str| {
        let mut h = vec![("content-type", "application/json")];
        h.extend_from_slice(auth);
        let body = json!({"profile": profile, "code": "print(1)"});
        s.request(
            "POST",
            "/v1/execute",
            &h,
            &serde_json::to_vec(&body).unwrap(),
        )
        .status
    };
    let wrong = format!("{}x", &key[..key.len() - 1]);
    assert_eq!(run(&[], "python"), 401, "no key");
    assert_eq!(run(&[("x-api-key", &wrong)], "python"), 401, "wrong key");
    assert_eq!(
        run(&[("x-api-key", key)], "bash"),
        403,
        "profile not granted"
    );
    assert_eq!(run(&[("x-api-key", key)], "python"), 200);
    // An explicit empty method list beside the keys is refused, naming the line.
    let cfg = config(&dir, &format!("[auth]\ntcp = []\n{text}"));
    let check = std::process::Command::new(serve_support::bin())
        .args([
            "serve",
            "--config",
            &cfg,
            "--check-config",
            "--listen",
            "127.0.0.1:2000",
        ])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(125));
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(err.contains("`[auth] tcp` lists no method"), "{err}");
}

#[test]
fn web_pages_cannot_drive_the_loopback_service() {
    use std::io::{Read, Write};
    let s = Server::start(&[]);
    let send = |head: &str, body: &str| {
        let mut c = s.connect().unwrap();
        let req = format!(
            "POST /v1/execute HTTP/1.1\r\n{head}connection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        c.write_all(req.as_bytes()).unwrap();
        let mut raw = Vec::new();
        c.read_to_end(&mut raw).unwrap();
        serve_support::Response::parse(&raw).unwrap()
    };
    let body = r#"{"profile":"sh","code":"echo ran"}"#;
    // DNS rebinding: the page's own name, resolving to 127.0.0.1.
    let r = send(
        "host: rebind.evil.example:2000\r\ncontent-type: application/json\r\n",
        body,
    );
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (403, json!("host_not_allowed"))
    );
    // A cross-site form or text/plain post (no preflight needed).
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let head =
            format!("host: 127.0.0.1\r\norigin: https://evil.example\r\ncontent-type: {ct}\r\n");
        let r = send(&head, body);
        assert_eq!(r.status, 415, "{ct}: {}", r.text());
    }
    // Non-browser clients keep working: curl -d (form-urlencoded) and text/plain without Origin.
    for ct in ["application/x-www-form-urlencoded", "text/plain"] {
        let r = send(
            &format!("host: localhost:2000\r\ncontent-type: {ct}\r\n"),
            body,
        );
        assert_eq!(r.json()["stdout"]["data"], "ran\n", "{ct}: {}", r.text());
    }
}

#[test]
fn listings_show_only_what_is_granted_and_check_is_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(serve_support::bin())
        .args(["key", "new", "--json", "--principal", "ci"])
        .output()
        .unwrap();
    let k: Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = k["key"].as_str().unwrap();
    let cfg = config(
        &dir,
        &format!(
            "[[auth.keys]]\nid = \"{}\"\nsha256 = \"{}\"\nprincipal = \"ci\"\n[principals.ci]\nprofiles = [\"python\"]\nrate = \"1/min\"\nburst = 4\n",
            k["id"].as_str().unwrap(),
            k["sha256"].as_str().unwrap()
        ),
    );
    let s = Server::start(&["--config", &cfg]);
    let auth = [("x-api-key", key), ("content-type", "application/json")];
    let get = |path: &str| s.request("GET", path, &auth, b"");
    let names = |v: Value, field: &str| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| p[field].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(get("/v1/profiles").json(), "name"), ["python"]);
    assert_eq!(names(get("/v1/runtimes").json(), "name"), ["python"]);
    assert_eq!(
        names(get("/api/v2/runtimes").json(), "language"),
        ["python"]
    );
    assert_eq!(
        names(get("/api/v2/packages").json(), "language"),
        ["python"]
    );
    assert_eq!(get("/v1/profiles/bash").status, 404);
    assert_eq!(get("/v1/profiles/python").status, 200);
    // "Did you mean" names only granted profiles.
    let r = s.request(
        "POST",
        "/v1/execute",
        &auth,
        br#"{"profile":"bassh","code":"true"}"#,
    );
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("bash"), "{}", r.text());
    // /v1/check needs the profile granted, and shares the principal's rate with execute (burst 4).
    let check = |profile: &str| {
        let body = json!({"profile": profile, "code": "print(1)"});
        s.request(
            "POST",
            "/v1/check",
            &auth,
            &serde_json::to_vec(&body).unwrap(),
        )
    };
    assert_eq!(check("bash").status, 403);
    assert_eq!(check("python").status, 200);
    assert_eq!(check("python").status, 200);
    let r = check("python");
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (429, json!("rate_limited"))
    );
}

#[test]
fn the_pre_flight_analysis_covers_every_file_of_the_request() {
    let s = Server::start(&[]);
    let run = |helper: &str| {
        s.post(
            "/v1/execute",
            &json!({"profile": "python", "check": "enforce", "files": [
                {"name": "main.py", "content": "import helper\nprint(helper.X)"},
                {"name": "lib/helper.py", "content": helper},
                {"name": "notes.txt", "content": "os.system('not code')"},
            ]}),
        )
        .json()
    };
    // The refused construct moved into a helper module is found there.
    let v = run("import os\nos.system('id')\nX = 1\n");
    assert_eq!(v["status"], "rejected_by_policy", "{v}");
    let findings = v["policy"]["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["rule"] == "system-command"
            && f["message"]
                .as_str()
                .unwrap()
                .starts_with("`lib/helper.py`: ")),
        "{v}"
    );
    // Files in no language the analyzer knows (data) are not parsed as code.
    let v = run("X = 1\n");
    assert_eq!(
        v["status"], "exit_nonzero",
        "helper is not importable from lib/: {v}"
    );
    assert_eq!(v["policy"]["safe"], true, "{v}");
}
