//! Piston v2 compatibility, field by field against /work/shared/API-COMPAT.md §2 (engineer-man/
//! piston `v2.js`/`job.js`): routes and prefixes, the runtimes list, execute's response shape and
//! key order, validation order with the exact error strings, defaults, and how verdicts map to
//! isolate's statuses; plus the correct fields stockade adds beside the compatible ones.

mod serve_support;

use serde_json::{Value, json};
use serve_support::Server;

fn exec(s: &Server, body: Value) -> (u16, Value) {
    let r = s.post("/api/v2/execute", &body);
    (r.status, r.json())
}

fn py(code: &str) -> Value {
    json!({"language": "python", "version": "*", "files": [{"content": code}]})
}

#[test]
fn runtimes_and_routes() {
    let s = Server::start(&[]);
    let list = s.get("/api/v2/runtimes").json();
    let list = list.as_array().unwrap();
    let python = list
        .iter()
        .find(|r| r["language"] == "python")
        .expect("python runtime");
    let keys: Vec<&String> = python.as_object().unwrap().keys().collect();
    assert_eq!(
        keys.len(),
        3,
        "only language, version, aliases (no `runtime`): {python}"
    );
    assert!(python["aliases"].is_array(), "clients require an array");
    let version = python["version"].as_str().unwrap();
    assert_eq!(version.split('.').count(), 3, "a full semver: {version}");
    assert!(version.split('.').all(|p| p.parse::<u64>().is_ok()));
    assert!(
        list.iter().all(|r| r["language"] != "strict"),
        "presets are not runtimes"
    );
    // emkc.org's prefix and Express's lenient trailing slash.
    for path in [
        "/api/v2/piston/runtimes",
        "/api/v2/runtimes/",
        "/api/v2/piston/runtimes/",
    ] {
        assert_eq!(s.get(path).json(), Value::Array(list.clone()), "{path}");
    }
    let r = s.post("/api/v2/piston/execute/", &py("print(1)"));
    assert_eq!(r.json()["run"]["stdout"], "1\n");
    // Unknown routes and methods: Express's 404.
    for (m, p) in [
        ("GET", "/api/v2/nothing"),
        ("GET", "/api/v2/execute"),
        ("PUT", "/api/v2/runtimes"),
    ] {
        let r = s.request(m, p, &[], b"");
        assert_eq!(
            (r.status, r.json()),
            (404, json!({"message": "Not Found"})),
            "{m} {p}"
        );
    }
    // Packages: installed runtimes.
    let pk = s.get("/api/v2/packages").json();
    let p = pk
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["language"] == "python")
        .unwrap();
    assert_eq!(
        (p["language_version"].as_str(), p["installed"].as_bool()),
        (Some(version), Some(true))
    );
    let r = s.post(
        "/api/v2/packages",
        &json!({"language": "cobol", "version": "1.0.0"}),
    );
    assert_eq!(
        (r.status, r.json()),
        (
            404,
            json!({"message": "Requested package cobol-1.0.0 does not exist"})
        )
    );
    let r = s.post(
        "/api/v2/packages",
        &json!({"language": "python", "version": version}),
    );
    assert_eq!(r.json(), json!({"language": "python", "version": version}));
}

#[test]
fn execute_response_field_by_field() {
    let s = Server::start(&[]);
    let r = s.request(
        "POST",
        "/api/v2/execute",
        &[("content-type", "application/json")],
        br#"{"language":"py","version":"3.x","files":[{"name":"","content":"import sys\nprint('out')\nprint('err', file=sys.stderr)"}]}"#,
    );
    assert_eq!(r.status, 200);
    let text = r.text();
    // Stage keys in the order Piston's safe_call emits them, then stockade's additions.
    let order = [
        "signal",
        "stdout",
        "stderr",
        "code",
        "output",
        "memory",
        "message",
        "status",
        "cpu_time",
        "wall_time",
        "memory_bytes",
        "oom_killed",
        "timed_out",
        "truncated",
        "verdict",
    ];
    let mut at = 0;
    for key in order {
        let i = text[at..].find(&format!("\"{key}\":")).map(|i| i + at);
        at = i.unwrap_or_else(|| panic!("{key} missing or out of order: {text}"));
    }
    let v = r.json();
    assert_eq!(
        v["language"], "python",
        "the canonical name, not the alias sent"
    );
    assert!(v["version"].as_str().unwrap().starts_with("3."));
    assert!(
        v.get("compile").is_none(),
        "interpreted runtimes have no compile stage"
    );
    let run = &v["run"];
    assert_eq!(run["stdout"], "out\n");
    assert_eq!(run["stderr"], "err\n");
    assert_eq!(run["output"], "out\nerr\n");
    assert_eq!(run["code"], 0);
    assert_eq!(run["signal"], Value::Null);
    assert_eq!(run["status"], Value::Null);
    assert_eq!(run["message"], Value::Null);
    assert!(run["cpu_time"].is_number() && run["wall_time"].is_number());
    let bytes = run["memory_bytes"].as_u64().unwrap();
    assert_eq!(
        run["memory"].as_u64().unwrap(),
        bytes / 1024 * 1000,
        "Piston's KiB×1000"
    );
    assert_eq!(run["verdict"], "ok");
    assert_eq!(r.header("x-request-id"), v["request_id"].as_str());

    // Defaults: file name `file0.code`, stdin gets a trailing newline, args are spread after it.
    let (_, v) = exec(
        &s,
        json!({"language": "python", "version": "*", "stdin": "x", "args": ["1", "2"],
               "files": [{"content": "import sys\nprint(sys.argv[0].rsplit('/', 1)[-1], sys.argv[1:], repr(sys.stdin.read()))"}]}),
    );
    assert_eq!(v["run"]["stdout"], "file0.code ['1', '2'] 'x\\n'\n", "{v}");
    // `args: ""` (what several clients send) is no arguments; a non-utf8 file is written beside.
    let (_, v) = exec(
        &s,
        json!({"language": "python", "version": "*", "args": "",
               "files": [{"name": "d.bin", "content": "aGk=", "encoding": "base64"},
                         {"name": "m.py", "content": "import sys\nprint(open('d.bin').read(), sys.argv[1:])"}]}),
    );
    assert_eq!(v["run"]["stdout"], "hi []\n", "{v}");
}

#[test]
fn validation_order_and_messages_are_pistons() {
    let s = Server::start(&[]);
    let msg = |body: Value| {
        let (status, v) = exec(&s, body);
        assert_eq!(status, 400, "{v}");
        v.as_object()
            .unwrap()
            .len()
            .eq(&1)
            .then_some(())
            .expect("only `message`");
        v["message"].as_str().unwrap().to_string()
    };
    assert_eq!(msg(json!({})), "language is required as a string");
    assert_eq!(
        msg(json!({"language": 5, "version": 1})),
        "language is required as a string"
    );
    assert_eq!(
        msg(json!({"language": "python"})),
        "version is required as a string"
    );
    assert_eq!(
        msg(json!({"language": "python", "version": "*", "files": "x"})),
        "files is required as an array"
    );
    assert_eq!(
        msg(
            json!({"language": "python", "version": "*", "files": [{"content": "1"}, {"name": "a"}]})
        ),
        "files[1].content is required as a string"
    );
    assert_eq!(
        msg(json!({"language": "cobol", "version": "*", "files": []})),
        "cobol-* runtime is unknown"
    );
    assert_eq!(
        msg(json!({"language": "python", "version": "2.x", "files": []})),
        "python-2.x runtime is unknown"
    );
    assert_eq!(
        msg(
            json!({"language": "python", "version": "*", "files": [{"content": "aGk=", "encoding": "base64"}]})
        ),
        "files must include at least one utf8 encoded file"
    );
    let with = |k: &str, v: Value| {
        let mut b = py("print(1)");
        b[k] = v;
        b
    };
    assert_eq!(
        msg(with("run_timeout", json!("5"))),
        "If specified, run_timeout must be a number"
    );
    assert_eq!(
        msg(with("run_timeout", json!(10001))),
        "run_timeout cannot exceed the configured limit of 10000"
    );
    assert_eq!(
        msg(with("run_memory_limit", json!(268435457))),
        "run_memory_limit cannot exceed the configured limit of 268435456"
    );
    assert_eq!(
        msg(with("run_cpu_time", json!(-5))),
        "run_cpu_time must be non-negative"
    );
    // Memory limits come before timeouts.
    let mut b = with("run_timeout", json!(99999));
    b["run_memory_limit"] = json!("x");
    assert_eq!(msg(b), "If specified, run_memory_limit must be a number");

    // Leniency: -1 memory (piston-client, pyston, piston_rs), falsy limits, compile limits of
    // runtimes without a compile stage, a text/plain body (node-fetch's default).
    let mut b = py("print(2)");
    for (k, v) in [
        ("run_memory_limit", json!(-1)),
        ("compile_memory_limit", json!(-1)),
        ("compile_timeout", json!(30000)),
        ("run_timeout", json!(0)),
    ] {
        b[k] = v;
    }
    let (status, v) = exec(&s, b);
    assert_eq!(
        (status, v["run"]["stdout"].as_str()),
        (200, Some("2\n")),
        "{v}"
    );
    let r = s.request(
        "POST",
        "/api/v2/execute",
        &[("content-type", "text/plain;charset=UTF-8")],
        py("print(3)").to_string().as_bytes(),
    );
    assert_eq!(r.json()["run"]["stdout"], "3\n");
    // A real form body is refused the way Piston refuses it.
    let r = s.request(
        "POST",
        "/api/v2/execute",
        &[("content-type", "application/x-www-form-urlencoded")],
        b"language=python&version=*",
    );
    assert_eq!(
        (r.status, r.json()),
        (
            415,
            json!({"message": "requests must be of type application/json"})
        )
    );
    // A name escaping the submission directory is refused.
    let (status, v) = exec(
        &s,
        json!({"language": "python", "version": "*", "files": [{"name": "../../x.py", "content": "1"}]}),
    );
    assert_eq!(status, 400);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("tries to escape parent directory")
    );
}

#[test]
fn verdicts_map_to_isolate_statuses_with_correct_fields_beside() {
    let s = Server::start(&[]);
    let (_, v) = exec(&s, py("import sys\nsys.exit(3)"));
    let run = &v["run"];
    assert_eq!(
        (run["code"].as_i64(), run["status"].as_str()),
        (Some(3), Some("RE"))
    );
    assert_eq!(run["message"], "Exited with error status 3");
    assert_eq!(run["signal"], Value::Null);

    let mut b = py("import time\ntime.sleep(10)");
    b["run_timeout"] = json!(300);
    let (_, v) = exec(&s, b);
    let run = &v["run"];
    assert_eq!(
        (run["status"].as_str(), run["signal"].as_str()),
        (Some("TO"), Some("SIGKILL"))
    );
    assert_eq!(run["message"], "Time limit exceeded (wall clock)");
    assert_eq!(
        (run["code"].clone(), run["timed_out"].as_bool()),
        (Value::Null, Some(true))
    );

    let (_, v) = exec(
        &s,
        py("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)"),
    );
    let run = &v["run"];
    assert_eq!(
        (run["status"].as_str(), run["signal"].as_str()),
        (Some("SG"), Some("SIGSEGV"))
    );
    assert_eq!(run["message"], "Caught fatal signal 11");

    let mut b = py("x = bytearray(64 << 20)\nwhile True: x += bytearray(16 << 20)");
    b["run_memory_limit"] = json!(64 << 20);
    let (_, v) = exec(&s, b);
    let run = &v["run"];
    assert_eq!(run["verdict"], "oom", "{v}");
    assert_eq!(
        (run["oom_killed"].as_bool(), run["signal"].as_str()),
        (Some(true), Some("SIGKILL"))
    );
    assert_eq!(
        run["status"], "SG",
        "isolate reports an OOM kill as a signal"
    );
}

#[test]
fn output_cap_is_pistons_output_max_size() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("stockade.toml");
    std::fs::write(&cfg, "[piston]\noutput_max_size = \"1024\"\n").unwrap();
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    let (_, v) = exec(&s, py("print('x' * 5000)"));
    let run = &v["run"];
    assert_eq!(
        (run["status"].as_str(), run["message"].as_str()),
        (Some("OL"), Some("stdout length exceeded"))
    );
    assert_eq!(
        (run["signal"].as_str(), run["truncated"].as_bool()),
        (Some("SIGKILL"), Some(true))
    );
    assert!(run["stdout"].as_str().unwrap().len() <= 1024);
    let (_, v) = exec(&s, py("import sys\nsys.stderr.write('e' * 5000)"));
    assert_eq!(v["run"]["status"], "EL");
    // The native API keeps the profile's own output limit.
    let r = s.post(
        "/v1/execute",
        &json!({"profile": "python", "code": "print('x' * 5000)"}),
    );
    assert_eq!(r.json()["status"], "ok");
}
