//! Piston v2 wire compatibility (`/api/v2` and `/api/v2/piston`): the runtimes list, execute and
//! the packages listing, with Piston's field names, defaults, validation order and error strings
//! (engineer-man/piston `api/src/api/v2.js`, `job.js`; /work/shared/API-COMPAT.md §2).
//!
//! Where Piston is buggy the compatible field is kept and a correct one added beside it: `memory`
//! is KiB×1000 as Piston reports it, `memory_bytes` is bytes; OOM, timeouts and truncation get
//! `oom_killed`, `timed_out` and `truncated`; `verdict` is stockade's own status.
//! Deliberate leniency (clients in the wild rely on it): any Content-Type with a JSON body,
//! `*_memory_limit: -1` meaning "the default", unknown encodings read as utf8.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::app::App;
use super::error::{ApiError, Code};
use super::exec::{self, Ask, Collected, LimitAsk, Plan};
use super::native::plan_off_thread;
use super::semver::{self, Version};
use super::server::{RequestId, read_body};
use crate::profile::{CodeInput, InlineFile, Profile};
use crate::verdict::{Status, Stream, Verdict};

/// A Piston validation error: always 400 with `{"message"}`.
fn invalid(message: impl Into<String>) -> ApiError {
    let mut e = ApiError::new(Code::InvalidRequest, message).piston();
    e.status = Some(StatusCode::BAD_REQUEST);
    e
}

/// Piston answers every error as `{"message"}`; validation errors are 400 whatever our code.
fn piston_error(mut e: ApiError) -> Response {
    let keep = matches!(e.code, Code::QueueFull | Code::BodyTooLarge) || e.status.is_some();
    if e.status().is_client_error() && !keep {
        e.status = Some(StatusCode::BAD_REQUEST);
    }
    e.piston().into_response()
}

/// Parse a body as JSON whatever the Content-Type says (piston-client sends text/plain, curl -d
/// form-urlencoded); a body that is not JSON gets Piston's 415 unless it claimed to be JSON.
fn parse_lenient(headers: &HeaderMap, bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
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
struct Runtime {
    profile: Profile,
    version: Version,
}

/// Piston's language names where they differ from stockade's profile names: Piston's node
/// package provides the language `javascript` (and reports `runtime: "node"`), and clients look
/// runtimes up by that name (piston-client filters `/runtimes` on `language`).
const PISTON_NAMES: &[(&str, &str)] = &[("node", "javascript")];

/// The Piston language name of a profile.
fn language_of(profile: &str) -> &str {
    PISTON_NAMES
        .iter()
        .find(|(p, _)| *p == profile)
        .map_or(profile, |(_, l)| l)
}

/// Latest installed runtime whose name or alias is `language` and whose version satisfies `range`.
async fn find_runtime(app: &App, language: &str, range: &str) -> Option<Runtime> {
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

/// Piston's "configured limit" of a constraint (`None`: not checked, as Piston does for a
/// configured limit ≤ 0). Run limits are the profile's maxima. Profiles have no compile stage, so
/// the compile limits bound nothing and are not checked: clients send 10000 (piston-client,
/// pyston) or 30000 (piston_rs) there, which a stock Piston would refuse above its own default.
fn configured(p: &Profile, name: &str, kind: &str) -> Option<u64> {
    if name.starts_with("compile_") {
        return None;
    }
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    match kind {
        "memory" => p.policy.limits.memory,
        "timeout" => p.policy.limits.wall.map(ms),
        _ => p.policy.limits.cpu.map(ms),
    }
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
async fn validate(app: &App, body: &Value) -> Result<(Runtime, [Option<f64>; 6]), ApiError> {
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
        if let Some(limit) = configured(&rt.profile, name, kind) {
            if n > limit as f64 {
                return Err(invalid(format!(
                    "{name} cannot exceed the configured limit of {limit}"
                )));
            }
        }
        if n < 0.0 {
            return Err(invalid(format!("{name} must be non-negative")));
        }
        asked[k] = Some(n);
    }
    Ok((rt, asked))
}

/// `files[]` → work files, the first utf8 file first (Piston runs `code_files[0]`).
fn files(body: &Value) -> Result<Vec<InlineFile>, ApiError> {
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
/// the way `[file, ...args]` does (so the `""` clients send means no arguments).
fn args(body: &Value) -> Vec<String> {
    match body.get("args") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        Some(Value::String(s)) => s.chars().map(String::from).collect(),
        _ => Vec::new(),
    }
}

/// `stdin` with the newline Piston appends when it is missing.
fn stdin(body: &Value) -> Vec<u8> {
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

/// `POST /api/v2/execute`.
pub async fn execute(
    State(app): State<Arc<App>>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match execute_inner(&app, &id, &headers, body).await {
        Ok(r) => r,
        Err(e) => piston_error(e),
    }
}

async fn execute_inner(
    app: &Arc<App>,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(body, app.config.max_body).await?;
    let body = parse_lenient(headers, &bytes)?;
    let (rt, asked) = validate(app, &body).await?;
    let files = files(&body)?;
    let ms = |v: Option<f64>| v.map(|ms| Duration::from_secs_f64(ms / 1000.0));
    let profile_output = rt.profile.policy.limits.output;
    let ask = Ask {
        input: CodeInput::Files {
            files,
            args: args(&body),
        },
        stdin: Some(stdin(&body)),
        env: Vec::new(),
        limits: LimitAsk {
            wall: ms(asked[3]),
            cpu: ms(asked[5]),
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            memory: asked[1].map(|b| b.round() as u64),
            output: app
                .config
                .piston
                .output_max_size
                .map(|o| o.min(profile_output)),
            ..LimitAsk::default()
        },
        check: None,
    };
    let prepared = match plan_off_thread(rt.profile.clone(), ask, bytes.len()).await? {
        Plan::Refuse { verdict, .. } => {
            app.metrics.verdict(verdict.status.as_str(), Duration::ZERO);
            return Err(invalid(verdict.message.unwrap_or_default()));
        }
        Plan::Run(p) => *p,
    };
    let running = exec::start(app, prepared, app.config.queue_timeout, id).await?;
    let done = exec::collect(running).await?;
    if done.verdict.status == Status::SetupFailed {
        let msg = done.verdict.message.unwrap_or_default();
        return Err(ApiError::new(Code::Internal, msg));
    }
    Ok(Json(ExecuteResponse {
        run: stage(&done),
        language: language_of(&rt.profile.name).to_string(),
        version: rt.version.to_string(),
        request_id: id.to_string(),
    })
    .into_response())
}

#[derive(Debug, Serialize)]
struct ExecuteResponse {
    run: StageOut,
    language: String,
    version: String,
    /// stockade: the request id (also in the `x-request-id` header).
    request_id: String,
}

/// A stage in Piston's key order, then stockade's additions.
#[derive(Debug, Serialize)]
struct StageOut {
    signal: Option<String>,
    stdout: String,
    stderr: String,
    code: Option<i32>,
    output: String,
    /// Piston's unit: isolate's KiB × 1000.
    memory: Option<u64>,
    message: Option<String>,
    status: Option<&'static str>,
    cpu_time: u64,
    wall_time: u64,
    /// Peak memory in bytes.
    memory_bytes: Option<u64>,
    oom_killed: bool,
    timed_out: bool,
    /// Some output was cut at the cap.
    truncated: bool,
    /// stockade's verdict status (`ok`, `timeout_wall`, `oom`, ...).
    verdict: &'static str,
}

fn text(s: &Stream) -> String {
    use base64::Engine;
    match s.encoding.as_str() {
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(&s.data)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default(),
        _ => s.data.clone(),
    }
}

fn signal_name(n: i32) -> String {
    nix::sys::signal::Signal::try_from(n)
        .map_or_else(|_| format!("SIG{n}"), |s| s.as_str().to_string())
}

/// isolate's status, message and signal for a verdict, as Piston passes them through.
fn isolate_view(v: &Verdict) -> (Option<&'static str>, Option<String>, Option<String>) {
    let kill = Some("SIGKILL".to_string());
    match v.status {
        Status::Ok => (None, None, None),
        Status::ExitNonzero => (
            Some("RE"),
            Some(format!(
                "Exited with error status {}",
                v.exit_code.unwrap_or(1)
            )),
            None,
        ),
        Status::Signaled | Status::SeccompViolation | Status::Oom => {
            let sig = v.signal.unwrap_or(libc::SIGKILL);
            (
                Some("SG"),
                Some(format!("Caught fatal signal {sig}")),
                Some(signal_name(sig)),
            )
        }
        Status::TimeoutWall => (
            Some("TO"),
            Some("Time limit exceeded (wall clock)".into()),
            kill,
        ),
        Status::TimeoutCpu => (Some("TO"), Some("Time limit exceeded".into()), kill),
        Status::OutputLimit if v.stdout.truncated => {
            (Some("OL"), Some("stdout length exceeded".into()), kill)
        }
        Status::OutputLimit => (Some("EL"), Some("stderr length exceeded".into()), kill),
        Status::SetupFailed | Status::RejectedByPolicy => (Some("XX"), v.message.clone(), None),
    }
}

fn stage(done: &Collected) -> StageOut {
    let v = &done.verdict;
    let (status, message, signal) = isolate_view(v);
    StageOut {
        signal,
        stdout: text(&v.stdout),
        stderr: text(&v.stderr),
        code: if v.signal.is_none() {
            v.exit_code
        } else {
            None
        },
        output: String::from_utf8_lossy(&done.output).into_owned(),
        memory: v.memory_peak_bytes.map(|b| b / 1024 * 1000),
        message,
        status,
        cpu_time: v.cpu_ms.total_ms,
        wall_time: v.wall_ms,
        memory_bytes: v.memory_peak_bytes,
        oom_killed: v.status == Status::Oom,
        timed_out: matches!(v.status, Status::TimeoutWall | Status::TimeoutCpu),
        truncated: v.stdout.truncated || v.stderr.truncated,
        verdict: v.status.as_str(),
    }
}

/// `GET /api/v2/runtimes`.
pub async fn runtimes(State(app): State<Arc<App>>) -> Response {
    let versions = app.versions().await;
    let list: Vec<Value> = app
        .catalog()
        .runtimes()
        .filter_map(|p| {
            let v = App::version_of(&versions, &p.name)?;
            let language = language_of(&p.name);
            let mut rt =
                json!({"language": language, "version": v.to_string(), "aliases": p.aliases});
            if language != p.name {
                rt["runtime"] = json!(p.name);
            }
            Some(rt)
        })
        .collect();
    Json(list).into_response()
}

/// `GET /api/v2/packages`: every installed runtime, as an installed package.
pub async fn packages(State(app): State<Arc<App>>) -> Response {
    let versions = app.versions().await;
    let list: Vec<Value> = app
        .catalog()
        .runtimes()
        .filter_map(|p| {
            let v = App::version_of(&versions, &p.name)?;
            let language = language_of(&p.name);
            Some(
                json!({"language": language, "language_version": v.to_string(), "installed": true}),
            )
        })
        .collect();
    Json(list).into_response()
}

/// `POST /api/v2/packages`: runtimes are profiles, so "installing" one that exists is a no-op.
pub async fn install(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    package_op(&app, &headers, body, false)
        .await
        .unwrap_or_else(piston_error)
}

/// `DELETE /api/v2/packages`: profiles are the operator's; nothing is uninstalled over the API.
pub async fn uninstall(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    package_op(&app, &headers, body, true)
        .await
        .unwrap_or_else(piston_error)
}

async fn package_op(
    app: &App,
    headers: &HeaderMap,
    body: Body,
    delete: bool,
) -> Result<Response, ApiError> {
    let bytes = read_body(body, app.config.max_body).await?;
    let body = parse_lenient(headers, &bytes)?;
    let language = body
        .get("language")
        .and_then(Value::as_str)
        .unwrap_or("undefined");
    let version = body
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or("undefined");
    let Some(rt) = find_runtime(app, language, version).await else {
        let msg = format!("Requested package {language}-{version} does not exist");
        return Ok((StatusCode::NOT_FOUND, Json(json!({"message": msg}))).into_response());
    };
    if delete {
        let msg = "runtimes are stockade profiles managed by the operator; nothing was uninstalled";
        return Ok((
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"message": msg})),
        )
            .into_response());
    }
    let language = language_of(&rt.profile.name);
    Ok(Json(json!({"language": language, "version": rt.version.to_string()})).into_response())
}

/// Any other path under the Piston prefix (Express's default 404).
pub async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response()
}

#[cfg(test)]
mod tests {
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
        assert_eq!(args(&json!({"args": ["1", 2, true]})), ["1", "2", "true"]);
        assert!(args(&json!({"args": ""})).is_empty());
        assert_eq!(args(&json!({"args": "ab"})), ["a", "b"]);
        assert!(args(&json!({})).is_empty());
        assert_eq!(stdin(&json!({})), b"\n");
        assert_eq!(stdin(&json!({"stdin": "x"})), b"x\n");
        assert_eq!(stdin(&json!({"stdin": "x\n"})), b"x\n");
    }

    #[test]
    fn falsy_limits_mean_default() {
        for v in [json!(null), json!(0), json!(false), json!("")] {
            assert!(falsy(&v), "{v}");
        }
        assert!(!falsy(&json!(-1)) && !falsy(&json!("5")));
    }

    #[test]
    fn verdicts_map_to_isolate_statuses() {
        let mut v = Verdict::not_started(Status::TimeoutWall, Default::default(), String::new());
        assert_eq!(
            isolate_view(&v),
            (
                Some("TO"),
                Some("Time limit exceeded (wall clock)".into()),
                Some("SIGKILL".into())
            )
        );
        v.status = Status::ExitNonzero;
        v.exit_code = Some(3);
        assert_eq!(
            isolate_view(&v).1.as_deref(),
            Some("Exited with error status 3")
        );
        v.status = Status::Signaled;
        v.signal = Some(11);
        assert_eq!(isolate_view(&v).2.as_deref(), Some("SIGSEGV"));
        v.status = Status::OutputLimit;
        v.stdout.truncated = true;
        assert_eq!(isolate_view(&v).0, Some("OL"));
    }
}
