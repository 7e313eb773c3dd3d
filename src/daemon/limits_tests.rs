//! The request limits: file sets that cannot be laid out, command lines `execve` refuses, numbers
//! out of range, and parsers whose memory stays a small multiple of the body (amplification).

use std::path::PathBuf;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::daemon::exec::Ask;
use crate::daemon::native::{self, ExecuteRequest};
use crate::policy::{BindMount, CopyIn};
use crate::profile::CodeInput;

fn files(names: &[&str]) -> Vec<(PathBuf, Vec<u8>)> {
    names
        .iter()
        .map(|n| (Path::new(SANDBOX_DIR).join(n), b"x".to_vec()))
        .collect()
}

fn refused(names: &[&str]) -> ApiError {
    check_files(&files(names), &Policy::default()).expect_err("refused")
}

#[test]
fn file_sets_that_cannot_be_laid_out_are_refused_with_the_reason() {
    assert!(
        check_files(
            &files(&["a.py", "lib/b.py", "lib/c/d.py"]),
            &Policy::default()
        )
        .is_ok()
    );
    let e = refused(&["a", "a/b"]);
    assert_eq!(e.code, Code::InvalidFiles);
    assert!(
        e.message
            .contains("`a` is a file and also the directory of `a/b`"),
        "{e}"
    );
    let e = refused(&["x/y/z", "x/y"]);
    assert!(e.message.contains("`x/y` is a file"), "{e}");
    let e = refused(&["a.py", "a.py"]);
    assert!(e.message.contains("given twice"), "{e}");
    let long = "n".repeat(256);
    let e = refused(&[long.as_str()]);
    assert!(
        e.message
            .contains("256 bytes; components are limited to 255"),
        "{e}"
    );
    let deep = vec!["d"; 2100].join("/");
    let e = refused(&[deep.as_str()]);
    assert!(e.message.contains("paths are limited to 4095 bytes"), "{e}");
    for bad in ["../x", "a/../../b", "a\0b"] {
        assert_eq!(refused(&[bad]).code, Code::InvalidFiles, "{bad:?}");
    }
    let outside = vec![(PathBuf::from("/etc/passwd"), Vec::new())];
    assert!(check_files(&outside, &Policy::default()).is_err());
    let root = vec![(PathBuf::from(SANDBOX_DIR), Vec::new())];
    assert!(check_files(&root, &Policy::default()).is_err());
}

#[test]
fn file_sets_must_fit_the_work_dir_and_the_caps() {
    let mut policy = Policy::default();
    policy.limits.sandbox_size = 1 << 20;
    // 1 MiB: 256 pages; 300 one-byte files take a page each.
    let many: Vec<String> = (0..300).map(|i| format!("f{i}")).collect();
    let names: Vec<&str> = many.iter().map(String::as_str).collect();
    let e = check_files(&files(&names), &policy).expect_err("too many pages");
    assert_eq!(e.code, Code::RequestTooLarge);
    assert!(e.message.contains("work dir"), "{e}");
    let big = vec![(PathBuf::from("/sandbox/big"), vec![0u8; (1 << 20) + 1])];
    assert!(check_files(&big, &policy).is_err());
    // Inodes: 1024 for a small work dir, some kept free.
    policy.limits.sandbox_size = 4 << 20;
    let many: Vec<String> = (0..1000).map(|i| format!("d{i}/f")).collect();
    let names: Vec<&str> = many.iter().map(String::as_str).collect();
    let e = check_files(&files(&names), &policy).expect_err("too many inodes");
    assert!(e.message.contains("inodes"), "{e}");
    let many: Vec<String> = (0..=MAX_FILES).map(|i| format!("f{i}")).collect();
    let names: Vec<&str> = many.iter().map(String::as_str).collect();
    assert!(refused(&names).message.contains("at most 1000"));
}

#[test]
fn request_files_stay_off_the_profiles_own_paths() {
    let mut policy = Policy::default();
    policy.copy_in.push(CopyIn {
        source: "/etc/hostname".into(),
        target: "/sandbox/data.txt".into(),
    });
    policy.mounts.push(BindMount {
        source: "/usr/share".into(),
        target: "/sandbox/share".into(),
        writable: false,
    });
    for bad in ["data.txt", "share/x", "data.txt/y"] {
        let e = check_files(&files(&[bad]), &policy).expect_err(bad);
        assert_eq!(e.code, Code::InvalidFiles, "{bad}");
    }
    assert!(check_files(&files(&["shared.txt"]), &policy).is_ok());
}

#[test]
fn command_lines_execve_would_refuse_are_refused() {
    let argv = |n: usize, len: usize| vec!["a".repeat(len); n];
    assert!(check_exec(&argv(10, 10), &[]).is_ok());
    assert!(check_exec(&argv(MAX_ARGS + 1, 1), &[]).is_err());
    let e = check_exec(&argv(1, MAX_ARG_BYTES), &[]).expect_err("one too long");
    assert_eq!(e.code, Code::RequestTooLarge);
    assert!(
        check_exec(&argv(16, 100_000), &[]).is_err(),
        "1.6 MB in total"
    );
    let env = vec![("K".to_string(), "v".repeat(MAX_ARG_BYTES))];
    assert!(check_exec(&argv(1, 1), &env).is_err());
}

#[test]
fn numbers_from_the_wire_are_converted_fallibly() {
    assert_eq!(
        millis("run_timeout", 1500.0, MAX_TIME).unwrap(),
        Duration::from_millis(1500)
    );
    for bad in [-1.0, f64::NAN, f64::INFINITY, 1e30] {
        assert!(millis("run_cpu_time", bad, MAX_TIME).is_err(), "{bad}");
    }
}

#[test]
fn set_up_failures_are_blamed_on_the_request_only_when_it_caused_them() {
    let b = Blame::new(&files(&["a/b.py"]), false);
    assert!(b.caused_by_request(
        "sandbox set-up failed at mount tree: write \"/sandbox/a/b.py\": No space left on device"
    ));
    assert!(b.caused_by_request("mkdir \"/sandbox/a\": File exists"));
    assert!(!b.caused_by_request("clone3 into new namespaces: EPERM; hint"));
    // A longer path the request's path is a prefix of is not the request's.
    let d = Blame::new(&files(&["d"]), false);
    assert!(!d.caused_by_request("copy-in \"/sandbox/data.txt\": EACCES"));
    assert!(d.caused_by_request("write \"/sandbox/d\": ENOSPC"));
    assert!(d.caused_by_request("write /sandbox/d/x: ENOTDIR"));
    assert!(!b.caused_by_request("mount tree: mount \"/usr\" on \"/x/usr\": EPERM"));
    let tight = Blame::new(&[], true);
    assert!(tight.caused_by_request("the sandbox init ended without a report (signal Some(9))"));
    assert!(!tight.caused_by_request("sandbox set-up failed at landlock: ENOSYS"));
    assert!(!tight.caused_by_request("cgroup: write memory.max: EACCES"));
}

#[test]
fn json_values_are_counted_without_parsing() {
    assert_eq!(json_values(br#"{"a":[1,2,"x,[y"]}"#), 5);
    assert_eq!(json_values(br#""a\",b""#), 1);
    // An upper bound: a container is counted when it opens and when a comma precedes it.
    assert_eq!(json_values(b"[[],[],[]]"), 7);
}

#[test]
fn request_lists_are_capped_while_parsing() {
    let body = |field: &str, v: Value| {
        let mut b = json!({"profile": "python"});
        b[field] = v;
        serde_json::to_vec(&b).unwrap()
    };
    let h = axum::http::HeaderMap::new();
    let ok: Result<ExecuteRequest, _> =
        native::parse(&h, &body("args", json!(vec!["x"; MAX_ARGS])));
    assert!(ok.is_ok());
    let e = native::parse::<ExecuteRequest>(&h, &body("args", json!(vec!["x"; MAX_ARGS + 1])))
        .expect_err("too many args");
    assert!(e.message.contains("more than 4096 items"), "{e}");
    let f = json!({"name": "a", "content": ""});
    let e = native::parse::<ExecuteRequest>(&h, &body("files", json!(vec![f; MAX_FILES + 1])))
        .expect_err("too many files");
    assert!(e.message.contains("more than 1000 items"), "{e}");
    let env: serde_json::Map<String, Value> = (0..=MAX_ENV)
        .map(|i| (format!("V{i}"), json!("x")))
        .collect();
    let e = native::parse::<ExecuteRequest>(&h, &body("env", Value::Object(env)))
        .expect_err("too many variables");
    assert!(e.message.contains("more than 256 entries"), "{e}");
}

/// An allocation as the allocator sees it: at least 16 bytes plus 16 of bookkeeping.
fn alloc(bytes: usize) -> usize {
    if bytes == 0 { 0 } else { bytes.max(16) + 16 }
}

fn string_heap(s: &str) -> usize {
    alloc(s.len())
}

/// Heap held by a parsed JSON tree (the `Value` itself excluded).
pub(crate) fn value_heap(v: &Value) -> usize {
    let node = std::mem::size_of::<Value>();
    match v {
        Value::String(s) => string_heap(s),
        Value::Array(a) => alloc(a.capacity() * node) + a.iter().map(value_heap).sum::<usize>(),
        // A B-tree entry: the key, the value and about a pointer of node overhead each.
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                std::mem::size_of::<String>() + node + 16 + string_heap(k) + value_heap(v)
            })
            .sum(),
        _ => 0,
    }
}

fn ask_heap(a: &Ask) -> usize {
    let strings = |v: &Vec<String>| {
        alloc(v.capacity() * std::mem::size_of::<String>())
            + v.iter().map(|s| string_heap(s)).sum::<usize>()
    };
    let input = match &a.input {
        CodeInput::Args(args) => strings(args),
        CodeInput::Code { code, args } => string_heap(code) + strings(args),
        CodeInput::Files { files, args } => {
            files
                .iter()
                .map(|f| 64 + string_heap(&f.name) + alloc(f.contents.len()))
                .sum::<usize>()
                + strings(args)
        }
    };
    let env = a
        .env
        .iter()
        .map(|(k, v)| 48 + string_heap(k) + string_heap(v))
        .sum::<usize>();
    input + env + a.stdin.as_ref().map_or(0, |s| alloc(s.len()))
}

/// Bodies built to amplify: many tiny items of every list a request has.
fn hostile_body() -> impl Strategy<Value = Vec<u8>> {
    let item = prop_oneof![Just("a".to_string()), Just("é".to_string()), "[a-z]{0,3}"];
    (0usize..6, 1usize..6000, item).prop_map(|(shape, n, s)| {
        let q = serde_json::to_string(&s).unwrap();
        let list = |one: &str| vec![one; n].join(",");
        let text = match shape {
            0 => format!(r#"{{"profile":"sh","args":[{}]}}"#, list(&q)),
            1 => format!(
                r#"{{"profile":"sh","files":[{}]}}"#,
                list(&format!(r#"{{"name":{q},"content":{q}}}"#))
            ),
            2 => {
                let env: Vec<String> = (0..n).map(|i| format!(r#""V{i}":{q}"#)).collect();
                format!(r#"{{"profile":"sh","env":{{{}}}}}"#, env.join(","))
            }
            3 => format!(
                r#"{{"profile":"sh","code":{q},"stdin":{}}}"#,
                serde_json::to_string(&s.repeat(n)).unwrap()
            ),
            4 => format!(r#"{{"profile":"sh","args":[{}]}}"#, list("\"\"")),
            _ => format!(
                r#"{{"profile":"sh","files":[{}]}}"#,
                list(r#"{"name":"","content":""}"#)
            ),
        };
        text.into_bytes()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Whatever the body, the parsed request and the `Ask` made of it hold at most a small
    /// multiple of the body's size plus what the count caps allow (or the body is refused).
    #[test]
    fn native_requests_do_not_amplify(body in hostile_body()) {
        let h = axum::http::HeaderMap::new();
        if let Ok(req) = native::parse::<ExecuteRequest>(&h, &body) {
            let parsed = req.args.iter().map(|s| 24 + string_heap(s)).sum::<usize>()
                + req.files.as_ref().map_or(0, |f| f.iter().map(|f| 64 + string_heap(&f.name) + string_heap(&f.content)).sum())
                + req.env.iter().map(|(k, v)| 64 + string_heap(k) + string_heap(v)).sum::<usize>();
            // `ask` moves the parsed strings; decoding copies only base64 contents.
            if let Ok(ask) = native::ask(req) {
                let heap = parsed.max(ask_heap(&ask));
                prop_assert!(heap <= 16 * body.len() + (512 << 10), "{heap} bytes from a {}-byte body {}", body.len(), String::from_utf8_lossy(&body[..body.len().min(120)]));
            }
        }
    }
}
