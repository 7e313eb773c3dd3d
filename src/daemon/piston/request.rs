//! Piston v2 requests: lenient body parsing, runtime lookup, and validation in Piston's own
//! order with its exact error strings (engineer-man/piston `api/src/api/v2.js` `get_job`, and
//! `job.js` for file names, encodings, stdin and args).

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Map, Value};

use super::super::app::App;
use super::super::error::{ApiError, Code};
use super::super::limits;
use super::super::semver::{self, Version};
use crate::profile::{InlineFile, Profile};

/// A Piston validation error: always 400 with `{"message"}`.
pub(super) fn invalid(message: impl Into<String>) -> ApiError {
    let mut e = ApiError::new(Code::InvalidRequest, message).piston();
    e.status = Some(StatusCode::BAD_REQUEST);
    e
}

/// Parse a body as JSON whatever the Content-Type says (piston-client sends text/plain, curl -d
/// form-urlencoded); a body that is not JSON gets Piston's 415 unless it claimed to be JSON.
pub(super) fn parse_lenient(headers: &HeaderMap, bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    let values = limits::json_values(bytes);
    if values > limits::MAX_JSON_VALUES {
        return Err(invalid(format!(
            "the request body holds about {values} JSON values; at most {} are accepted",
            limits::MAX_JSON_VALUES
        )));
    }
    let claims_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    serde_json::from_slice(bytes).map_err(|e| {
        if claims_json {
            invalid(format!("invalid JSON body: {e}"))
        } else {
            let mut e = ApiError::new(
                Code::UnsupportedMediaType,
                "requests must be of type application/json",
            )
            .piston();
            e.status = Some(StatusCode::UNSUPPORTED_MEDIA_TYPE);
            e
        }
    })
}

/// A runtime a request may name: a profile with an interpreter that is installed.
pub(super) struct Runtime {
    pub profile: Profile,
    pub version: Version,
}

/// Piston's language names where they differ from stockade's profile names: Piston's node
/// package provides the language `javascript` (and reports `runtime: "node"`), and clients look
/// runtimes up by that name (piston-client filters `/runtimes` on `language`).
const PISTON_NAMES: &[(&str, &str)] = &[("node", "javascript"), ("cpp", "c++")];

/// The Piston language name of a profile.
pub(super) fn language_of(profile: &str) -> &str {
    PISTON_NAMES
        .iter()
        .find(|(p, _)| *p == profile)
        .map_or(profile, |(_, l)| l)
}

/// Latest installed runtime whose name or alias is `language` and whose version satisfies `range`.
pub(super) async fn find_runtime(app: &App, language: &str, range: &str) -> Option<Runtime> {
    let versions = app.versions().await;
    let catalog = app.catalog();
    catalog
        .runtimes()
        .filter(|p| {
            p.name == language
                || language_of(&p.name) == language
                || p.aliases.iter().any(|a| a == language)
        })
        .filter_map(|p| Some((p, App::version_of(&versions, &p.name)?)))
        .filter(|(_, v)| semver::satisfies(*v, range))
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.name.cmp(&a.0.name)))
        .map(|(p, v)| Runtime {
            profile: p.clone(),
            version: v,
        })
}

/// The six limits, in Piston's check order, with the profile value each is checked against.
const CONSTRAINTS: [(&str, &str); 6] = [
    ("compile_memory_limit", "memory"),
    ("run_memory_limit", "memory"),
    ("compile_timeout", "timeout"),
    ("run_timeout", "timeout"),
    ("compile_cpu_time", "cpu_time"),
    ("run_cpu_time", "cpu_time"),
];

/// Piston's "configured limit" of a constraint. Run limits are the profile's maxima, and where
/// the profile has none (Piston would not check a limit ≤ 0 at all) the service's ceiling, so no
/// number from the wire goes unbounded. Compile limits are checked against the ceiling only:
/// clients send 10000 (piston-client, pyston) or 30000 (piston_rs) whatever the runtime, so
/// `super::compile` lowers them to the profile's compile stage instead of refusing them.
fn configured(p: &Profile, name: &str, kind: &str) -> u64 {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let ceiling = match kind {
        "memory" => limits::MAX_MEMORY,
        _ => ms(limits::MAX_TIME),
    };
    if name.starts_with("compile_") {
        return ceiling;
    }
    let profile = match kind {
        "memory" => p.policy.limits.memory,
        "timeout" => p.policy.limits.wall.map(ms),
        _ => p.policy.limits.cpu.map(ms),
    };
    profile.unwrap_or(ceiling)
}

/// JavaScript's falsy values (a falsy limit means "the default").
fn falsy(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// Validate a request exactly in Piston's order; returns the runtime and the requested limits.
pub(super) async fn validate(
    app: &App,
    body: &Value,
) -> Result<(Runtime, [Option<f64>; 6]), ApiError> {
    let language = body
        .get("language")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let language = language.ok_or_else(|| invalid("language is required as a string"))?;
    let version = body
        .get("version")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let version = version.ok_or_else(|| invalid("version is required as a string"))?;
    let files = body.get("files").and_then(Value::as_array);
    let files = files.ok_or_else(|| invalid("files is required as an array"))?;
    if files.len() > limits::MAX_FILES {
        let n = files.len();
        return Err(invalid(format!(
            "files has {n} entries; at most {} are accepted",
            limits::MAX_FILES
        )));
    }
    for (i, f) in files.iter().enumerate() {
        if !f.get("content").is_some_and(Value::is_string) {
            return Err(invalid(format!(
                "files[{i}].content is required as a string"
            )));
        }
    }
    let Some(rt) = find_runtime(app, language, version).await else {
        return Err(invalid(format!("{language}-{version} runtime is unknown")));
    };
    let mut asked = [None; 6];
    for (k, (name, kind)) in CONSTRAINTS.iter().enumerate() {
        let value = body.get(*name).unwrap_or(&Value::Null);
        if falsy(value) {
            continue;
        }
        let Some(n) = value.as_f64() else {
            return Err(invalid(format!("If specified, {name} must be a number")));
        };
        // Lenient: clients (piston_rs, piston-client, pyston) always send -1 for "no memory limit".
        if *kind == "memory" && n == -1.0 {
            continue;
        }
        let limit = configured(&rt.profile, name, kind);
        #[allow(clippy::cast_precision_loss)]
        if !n.is_finite() || n > limit as f64 {
            return Err(invalid(format!(
                "{name} cannot exceed the configured limit of {limit}"
            )));
        }
        if n < 0.0 {
            return Err(invalid(format!("{name} must be non-negative")));
        }
        asked[k] = Some(n);
    }
    Ok((rt, asked))
}

/// `files[]` → work files, the first utf8 file first (Piston runs `code_files[0]`).
pub(super) fn files(body: &Value) -> Result<Vec<InlineFile>, ApiError> {
    let mut out = Vec::new();
    let mut main = None;
    for (i, f) in body["files"].as_array().into_iter().flatten().enumerate() {
        let content = f["content"].as_str().unwrap_or_default();
        let encoding = f.get("encoding").and_then(Value::as_str).unwrap_or("utf8");
        let contents = match encoding {
            "base64" => decode_base64(content)
                .ok_or_else(|| invalid(format!("files[{i}].content is not valid base64")))?,
            "hex" => decode_hex(content)
                .ok_or_else(|| invalid(format!("files[{i}].content is not valid hex")))?,
            _ => {
                main.get_or_insert(out.len());
                content.as_bytes().to_vec()
            }
        };
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty());
        let name = match name {
            Some(n) => normalize(n).ok_or_else(|| {
                invalid(format!(
                    "File path \"{n}\" tries to escape parent directory"
                ))
            })?,
            None => format!("file{i}.code"),
        };
        out.push(InlineFile { name, contents });
    }
    match main {
        Some(m) => {
            let first = out.remove(m);
            out.insert(0, first);
            Ok(out)
        }
        None => Err(invalid("files must include at least one utf8 encoded file")),
    }
}

/// Piston joins names onto the submission directory (`/a.py` and `x/../a.py` are `a.py`) and
/// refuses a name that leaves it.
fn normalize(name: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    (!parts.is_empty() && !name.contains('\0')).then(|| parts.join("/"))
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    // Node's Buffer.from(s, 'base64') ignores whitespace and accepts missing padding and the
    // URL-safe alphabet.
    let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let cfg = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let standard = GeneralPurpose::new(&base64::alphabet::STANDARD, cfg);
    let url = GeneralPurpose::new(&base64::alphabet::URL_SAFE, cfg);
    standard.decode(&clean).or_else(|_| url.decode(&clean)).ok()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let t = text.trim();
    if t.len() % 2 != 0 {
        return None;
    }
    (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(t.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `args`: an array (items as JavaScript would print them), or a string spread into characters
/// the way `[file, ...args]` does (so the `""` clients send means no arguments). The count is
/// checked before one string per item (or per character) is made.
pub(super) fn args(body: &Value) -> Result<Vec<String>, ApiError> {
    let count = match body.get("args") {
        Some(Value::Array(items)) => items.len(),
        Some(Value::String(s)) => s.chars().count(),
        _ => 0,
    };
    if count > limits::MAX_ARGS {
        return Err(invalid(format!(
            "args has {count} items; at most {} are accepted",
            limits::MAX_ARGS
        )));
    }
    Ok(match body.get("args") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        Some(Value::String(s)) => s.chars().map(String::from).collect(),
        _ => Vec::new(),
    })
}

/// `stdin` with the newline Piston appends when it is missing.
pub(super) fn stdin(body: &Value) -> Vec<u8> {
    let mut s = match body.get("stdin") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_are_joined_like_piston() {
        assert_eq!(normalize("a.py").as_deref(), Some("a.py"));
        assert_eq!(normalize("/a.py").as_deref(), Some("a.py"));
        assert_eq!(normalize("x/../lib/b.py").as_deref(), Some("lib/b.py"));
        assert_eq!(normalize("../etc/passwd"), None);
        assert_eq!(normalize("."), None);
    }

    #[test]
    fn the_first_utf8_file_runs_and_names_default() {
        let body = json!({"files": [
            {"name": "data.bin", "content": "aGk=", "encoding": "base64"},
            {"content": "print(1)"},
            {"name": "h.txt", "content": "6869", "encoding": "hex"},
        ]});
        let f = files(&body).unwrap();
        assert_eq!(f[0].name, "file1.code");
        assert_eq!(f[1].contents, b"hi");
        assert_eq!(f[2].contents, b"hi");
        let only_binary = json!({"files": [{"content": "aGk=", "encoding": "base64"}]});
        let e = files(&only_binary).unwrap_err();
        assert_eq!(
            e.message,
            "files must include at least one utf8 encoded file"
        );
    }

    #[test]
    fn args_and_stdin_follow_piston() {
        let args = |v| args(&v).unwrap();
        assert_eq!(args(json!({"args": ["1", 2, true]})), ["1", "2", "true"]);
        assert!(args(json!({"args": ""})).is_empty());
        assert_eq!(args(json!({"args": "ab"})), ["a", "b"]);
        assert!(args(json!({})).is_empty());
        assert_eq!(stdin(&json!({})), b"\n");
        assert_eq!(stdin(&json!({"stdin": "x"})), b"x\n");
        assert_eq!(stdin(&json!({"stdin": "x\n"})), b"x\n");
    }

    #[test]
    fn a_long_args_string_is_refused_before_it_is_split() {
        let body = json!({"args": "a".repeat(limits::MAX_ARGS + 1)});
        let e = args(&body).unwrap_err();
        assert_eq!(e.message, "args has 4097 items; at most 4096 are accepted");
        assert_eq!(
            args(&json!({"args": "é".repeat(limits::MAX_ARGS)}))
                .unwrap()
                .len(),
            4096
        );
        let many = json!({"args": vec![0; limits::MAX_ARGS + 1]});
        assert!(args(&many).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Issue 11 item 5: a 1 MB body grew the service by 90 MB. Now the parsed tree plus the
        /// arguments, files and stdin made of it stay a small multiple of the body.
        #[test]
        fn piston_requests_do_not_amplify(shape in 0usize..4, n in 1usize..200_000) {
            let text = match shape {
                0 => format!(r#"{{"args":"{}"}}"#, "a".repeat(n)),
                1 => format!(r#"{{"args":"{}"}}"#, "é".repeat(n)),
                2 => format!(r#"{{"args":[{}]}}"#, vec!["\"a\""; n].join(",")),
                _ => format!(r#"{{"files":[{}]}}"#, vec![r#"{"content":"a"}"#; n / 10 + 1].join(",")),
            };
            let h = HeaderMap::new();
            let Ok(body) = parse_lenient(&h, text.as_bytes()) else {
                // Refused before a tree was built.
                proptest::prop_assert!(limits::json_values(text.as_bytes()) > limits::MAX_JSON_VALUES);
                return Ok(());
            };
            let mut heap = crate::daemon::limits::tests::value_heap(&body);
            if let Ok(a) = args(&body) {
                heap += a.capacity() * 24 + a.iter().map(|s| s.len().max(16) + 16).sum::<usize>();
            }
            if let Ok(f) = files(&body) {
                heap += f.iter().map(|f| 64 + f.name.len().max(16) + 16 + f.contents.len().max(16) + 16).sum::<usize>();
            }
            heap += stdin(&body).capacity();
            proptest::prop_assert!(
                heap <= 4 * text.len() + (4 << 20),
                "{heap} bytes from a {}-byte body", text.len()
            );
        }
    }

    #[test]
    fn falsy_limits_mean_default() {
        for v in [json!(null), json!(0), json!(false), json!("")] {
            assert!(falsy(&v), "{v}");
        }
        assert!(!falsy(&json!(-1)) && !falsy(&json!("5")));
    }
}
