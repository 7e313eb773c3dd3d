//! The native API's request caps while parsing, and parsers whose memory stays a small multiple
//! of the body (amplification).

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{ExecuteRequest, ask, parse};
use crate::daemon::engine::Ask;
use crate::daemon::engine::limits::tests::{alloc, string_heap};
use crate::daemon::engine::limits::{MAX_ARGS, MAX_ENV, MAX_FILES};
use crate::profile::CodeInput;

#[test]
fn request_lists_are_capped_while_parsing() {
    let body = |field: &str, v: Value| {
        let mut b = json!({"profile": "python"});
        b[field] = v;
        serde_json::to_vec(&b).unwrap()
    };
    let h = axum::http::HeaderMap::new();
    let ok: Result<ExecuteRequest, _> = parse(&h, &body("args", json!(vec!["x"; MAX_ARGS])));
    assert!(ok.is_ok());
    let e = parse::<ExecuteRequest>(&h, &body("args", json!(vec!["x"; MAX_ARGS + 1])))
        .expect_err("too many args");
    assert!(e.message.contains("more than 4096 items"), "{e}");
    let f = json!({"name": "a", "content": ""});
    let e = parse::<ExecuteRequest>(&h, &body("files", json!(vec![f; MAX_FILES + 1])))
        .expect_err("too many files");
    assert!(e.message.contains("more than 1000 items"), "{e}");
    let env: serde_json::Map<String, Value> = (0..=MAX_ENV)
        .map(|i| (format!("V{i}"), json!("x")))
        .collect();
    let e = parse::<ExecuteRequest>(&h, &body("env", Value::Object(env)))
        .expect_err("too many variables");
    assert!(e.message.contains("more than 256 entries"), "{e}");
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
        if let Ok(req) = parse::<ExecuteRequest>(&h, &body) {
            let parsed = req.args.iter().map(|s| 24 + string_heap(s)).sum::<usize>()
                + req.files.as_ref().map_or(0, |f| f.iter().map(|f| 64 + string_heap(&f.name) + string_heap(&f.content)).sum())
                + req.env.iter().map(|(k, v)| 64 + string_heap(k) + string_heap(v)).sum::<usize>();
            // `ask` moves the parsed strings; decoding copies only base64 contents.
            if let Ok(ask) = ask(req) {
                let heap = parsed.max(ask_heap(&ask));
                prop_assert!(heap <= 16 * body.len() + (512 << 10), "{heap} bytes from a {}-byte body {}", body.len(), String::from_utf8_lossy(&body[..body.len().min(120)]));
            }
        }
    }
}
