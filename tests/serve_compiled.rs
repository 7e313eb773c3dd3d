//! Compiled languages through the service: the native `/v1/execute` verdict with its `compile`
//! part and `compile_limits`, and Piston's compile stage (`compile_*` limits, the `compile` object,
//! `run` copied from `compile` when compilation fails, the runtimes list).

mod serve_support;

use serde_json::{Value, json};
use serve_support::Server;

const C_ECHO: &str = "#include <stdio.h>\nint main(void){char b[64]; if(fgets(b,sizeof b,stdin)) printf(\"got %s\", b); puts(\"hello\"); return 0;}\n";
const C_BROKEN: &str = "int main(void){ return undefined_name; }\n";
const JAVA_THROWS: &str = "public class Main { public static void main(String[] a) { throw new IllegalStateException(\"bad input\"); } }\n";
const CPP_HELLO: &str =
    "#include <iostream>\nint main(){ std::cout << \"hi c++\" << std::endl; }\n";

fn root() -> bool {
    nix::unistd::Uid::current().is_root()
}

fn piston(s: &Server, body: Value) -> (u16, Value) {
    let r = s.post("/api/v2/execute", &body);
    (r.status, r.json())
}

const STAGE_KEYS: [&str; 10] = [
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
];

#[test]
fn piston_compiles_then_runs() {
    if !root() {
        return;
    }
    let s = Server::start(&[]);
    let list = s.get("/api/v2/runtimes").json();
    let find = |lang: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|r| r["language"] == lang)
            .cloned()
            .unwrap_or_else(|| panic!("{lang} runtime missing: {list}"))
    };
    for lang in ["c", "c++", "java"] {
        let rt = find(lang);
        let version = rt["version"].as_str().unwrap();
        assert_eq!(version.split('.').count(), 3, "{rt}");
        assert_ne!(version, "0.0.0", "the compiler's own version: {rt}");
        assert!(rt["aliases"].is_array());
    }
    assert_eq!(find("c++")["runtime"], "cpp");

    let body = json!({"language": "c", "version": "*", "files": [{"name": "main.c", "content": C_ECHO}],
        "stdin": "from piston", "compile_timeout": 30000, "compile_memory_limit": -1, "compile_cpu_time": 10000});
    let raw = s.post("/api/v2/execute", &body);
    assert_eq!(raw.status, 200, "{}", raw.text());
    // `compile` comes before `run`, each stage with Piston's keys in safe_call's order.
    let text = raw.text();
    let mut at = text.find("\"compile\":{").expect("compile object");
    for key in STAGE_KEYS {
        let i = text[at..].find(&format!("\"{key}\":")).map(|i| i + at);
        at = i.unwrap_or_else(|| panic!("{key} missing or out of order: {text}"));
    }
    assert!(text[at..].contains("\"run\":{"), "{text}");
    let r = raw.json();
    assert_eq!(r["compile"]["code"], 0, "{r}");
    assert_eq!(r["compile"]["status"], Value::Null);
    assert_eq!(r["run"]["stdout"], "got from piston\nhello\n", "{r}");
    assert_eq!(r["run"]["code"], 0);

    let (_, r) = piston(
        &s,
        json!({"language": "c++", "version": "*", "files": [{"content": CPP_HELLO}]}),
    );
    assert_eq!(r["run"]["stdout"], "hi c++\n", "{r}");
    assert_eq!(r["language"], "c++");

    let (_, r) = piston(
        &s,
        json!({"language": "java", "version": "*", "files": [{"content": JAVA_THROWS}]}),
    );
    assert_eq!(r["compile"]["code"], 0, "{r}");
    assert_eq!(r["run"]["code"], 1, "{r}");
    assert_eq!(r["run"]["status"], "RE");
    let err = r["run"]["stderr"].as_str().unwrap();
    assert!(err.contains("IllegalStateException: bad input"), "{err}");
}

#[test]
fn piston_compile_failure_is_the_run_too() {
    if !root() {
        return;
    }
    let s = Server::start(&[]);
    let (status, r) = piston(
        &s,
        json!({"language": "gcc", "version": "*", "files": [{"content": C_BROKEN}]}),
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["compile"]["code"], 1, "{r}");
    assert_eq!(r["compile"]["status"], "RE");
    let diag = r["compile"]["stderr"].as_str().unwrap();
    assert!(
        diag.contains("undefined_name") && diag.contains("error"),
        "{diag}"
    );
    assert_eq!(r["compile"]["output"], r["compile"]["stderr"]);
    assert_eq!(r["run"], r["compile"], "Piston copies compile into run");

    // compile_timeout is the compile stage's wall limit (1 ms: the compiler cannot finish).
    let (_, r) = piston(
        &s,
        json!({"language": "c", "version": "*", "files": [{"content": C_ECHO}], "compile_timeout": 1}),
    );
    assert_eq!(r["compile"]["status"], "TO", "{r}");
    assert_eq!(r["compile"]["signal"], "SIGKILL");
    assert_eq!(r["run"], r["compile"]);
    // A runtime without a compile stage has no `compile` object and ignores compile limits.
    let (status, r) = piston(
        &s,
        json!({"language": "python", "version": "*", "files": [{"content": "print(1)"}], "compile_timeout": 5}),
    );
    assert_eq!(status, 200, "{r}");
    assert!(r.get("compile").is_none(), "{r}");
    assert_eq!(r["run"]["stdout"], "1\n");
}

#[test]
fn native_verdict_has_a_compile_part() {
    if !root() {
        return;
    }
    let s = Server::start(&[]);
    let r = s.post(
        "/v1/execute",
        &json!({"profile": "c", "code": C_ECHO, "stdin": "native\n", "compile_limits": {"wall_ms": 8000, "memory_bytes": 300000000u64}}),
    );
    let v = r.json();
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["stdout"]["data"], "got native\nhello\n");
    assert_eq!(v["compile"]["status"], "ok");
    assert_eq!(v["compile"]["limits"]["wall"], 8000);
    assert_eq!(v["compile"]["limits"]["memory"], 300000000u64);

    let r = s.post("/v1/execute", &json!({"language": "c", "code": C_BROKEN}));
    let v = r.json();
    assert_eq!(v["status"], "compile_failed", "{v}");
    assert_eq!(v["exit_code"], Value::Null);
    let diag = v["compile"]["stderr"]["data"].as_str().unwrap();
    assert!(diag.contains("undefined_name"), "{diag}");

    // A Java file keeps its name, so its public class may have any name.
    let hello = "public class Hello { public static void main(String[] a) { System.out.println(\"hi \" + a[0]); } }";
    let r = s.post(
        "/v1/execute",
        &json!({"profile": "java", "files": [{"name": "Hello.java", "content": hello}], "args": ["there"]}),
    );
    let v = r.json();
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["stdout"]["data"], "hi there\n");

    // Compile limits stay within the profile's, and only profiles with a compile stage take them.
    let r = s.post(
        "/v1/execute",
        &json!({"profile": "c", "code": C_ECHO, "compile_limits": {"wall_ms": 3600000}}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["code"], "limit_exceeds_profile");
    let r = s.post(
        "/v1/execute",
        &json!({"profile": "python", "code": "print(1)", "compile_limits": {"wall_ms": 1000}}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("no compile stage"), "{}", r.text());
}

#[test]
fn a_stream_carries_the_program_and_ends_with_both_stages() {
    if !root() {
        return;
    }
    let s = Server::start(&[]);
    // A warning on the compiler's stderr, and the program's own output on both streams.
    let code = "#include <stdio.h>\nint main(void){ int unused; puts(\"out\"); fputs(\"err\\n\", stderr); return 0; }\n";
    let body = serde_json::to_vec(&json!({"profile": "c", "code": code})).unwrap();
    let r = s.request(
        "POST",
        "/v1/execute",
        &[("accept", "application/x-ndjson")],
        &body,
    );
    let evs: Vec<Value> = r
        .body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let text = |name: &str| -> String {
        evs.iter()
            .filter(|e| e["event"] == name)
            .map(|e| e["data"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(text("stdout"), "out\n");
    assert_eq!(
        text("stderr"),
        "err\n",
        "the compiler's warning is not streamed"
    );
    let end = evs.last().unwrap();
    assert_eq!(end["event"], "end");
    assert_eq!(end["verdict"]["status"], "ok", "{end}");
    let warning = end["verdict"]["compile"]["stderr"]["data"]
        .as_str()
        .unwrap();
    assert!(warning.contains("unused"), "{warning}");
}
