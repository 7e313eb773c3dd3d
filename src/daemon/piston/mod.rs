//! Piston v2 wire compatibility (`/api/v2` and `/api/v2/piston`): the runtimes list, execute and
//! the packages listing, with Piston's field names, defaults, validation order and error strings
//! (engineer-man/piston `api/src/api/v2.js`, `job.js`; /work/shared/API-COMPAT.md §2).
//!
//! Where Piston is buggy the compatible field is kept and a correct one added beside it: `memory`
//! is KiB×1000 as Piston reports it, `memory_bytes` is bytes; OOM, timeouts and truncation get
//! `oom_killed`, `timed_out` and `truncated`; `verdict` is stockade's own status.
//! Deliberate leniency (clients in the wild rely on it): any Content-Type with a JSON body,
//! `*_memory_limit: -1` meaning "the default", unknown encodings read as utf8.

mod compile;
mod request;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use self::request::{
    args, files, find_runtime, invalid, language_of, parse_lenient, stdin, validate,
};
use super::app::App;
use super::error::{ApiError, Code};
use super::exec::{Ask, Collected, LimitAsk, Plan};
use super::limits;
use super::native::plan_off_thread;
use super::security::layer::{self as security, Ctx};
use super::server::{RequestId, read_body};
use crate::profile::CodeInput;
use crate::verdict::{Status, Stream, Verdict};

/// Piston answers every error as `{"message"}`; validation errors are 400 whatever our code.
fn piston_error(mut e: ApiError) -> Response {
    let keep = matches!(
        e.code,
        Code::QueueFull | Code::BodyTooLarge | Code::Forbidden
    ) || e.status.is_some();
    if e.status().is_client_error() && !keep {
        e.status = Some(StatusCode::BAD_REQUEST);
    }
    e.piston().into_response()
}

/// `POST /api/v2/execute`.
pub async fn execute(
    State(app): State<Arc<App>>,
    Extension(RequestId(id)): Extension<RequestId>,
    Extension(ctx): Extension<Arc<Ctx>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match execute_inner(&app, &ctx, &id, &headers, body).await {
        Ok(r) => r,
        Err(e) => piston_error(e),
    }
}

async fn execute_inner(
    app: &Arc<App>,
    ctx: &Ctx,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(body, app.config.max_body).await?;
    let body = parse_lenient(headers, &bytes)?;
    let (rt, asked) = validate(app, &body).await?;
    let files = files(&body)?;
    let ms = |field: &str, v: Option<f64>| {
        v.map(|ms| limits::millis(field, ms, limits::MAX_TIME))
            .transpose()
    };
    let mut profile = rt.profile.clone();
    let mut ask = Ask {
        input: CodeInput::Files {
            files,
            args: args(&body)?,
        },
        stdin: Some(stdin(&body)),
        env: Vec::new(),
        limits: LimitAsk {
            wall: ms("run_timeout", asked[3])?,
            cpu: ms("run_cpu_time", asked[5])?,
            // `validate` bounded it to 0..=MAX_MEMORY, so the conversion is exact.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            memory: asked[1].map(|b| b.round() as u64),
            ..LimitAsk::default()
        },
        compile: LimitAsk::default(),
        check: None,
    };
    security::authorize(ctx, &mut profile, &ask)?;
    // Clamped to the compile stage as the caller's grant left it.
    ask.compile = compile::compile_limits(&profile, &asked);
    // The output cap comes from the configuration, not the client: set after authorization.
    let profile_output = profile.policy.limits.output;
    ask.limits.output = app
        .config
        .piston
        .output_max_size
        .map(|o| o.min(profile_output));
    let prepared = match plan_off_thread(profile, ask, bytes.len()).await? {
        Plan::Refuse { verdict, .. } => {
            app.metrics.verdict(verdict.status.as_str(), Duration::ZERO);
            ctx.note(|r| r.verdict(&verdict));
            return Err(invalid(verdict.message.unwrap_or_default()));
        }
        Plan::Run(p) => *p,
    };
    let (done, cache) = security::run(app, ctx, prepared, app.config.queue_timeout, id).await?;
    if done.verdict.status == Status::SetupFailed {
        let msg = done.verdict.message.unwrap_or_default();
        return Err(ApiError::new(Code::Internal, msg));
    }
    let compiled = compile::compile_stage(&done.verdict);
    let run = match &compiled {
        Some(c) if compile::compile_failed(&done.verdict) => c.clone(),
        _ => stage(&done),
    };
    let mut response = Json(ExecuteResponse {
        compile: compiled,
        run,
        language: language_of(&rt.profile.name).to_string(),
        version: rt.version.to_string(),
        request_id: id.to_string(),
    })
    .into_response();
    security::cache_status(&mut response, cache);
    Ok(response)
}

#[derive(Debug, Serialize)]
struct ExecuteResponse {
    /// Only for a runtime with a compile stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    compile: Option<StageOut>,
    run: StageOut,
    language: String,
    version: String,
    /// stockade: the request id (also in the `x-request-id` header).
    request_id: String,
}

/// A stage in Piston's key order, then stockade's additions.
#[derive(Debug, Clone, Serialize)]
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
        // Only the top level says this; the compile stage's own verdict has the real cause.
        Status::CompileFailed => (Some("RE"), v.message.clone(), None),
    }
}

fn stage(done: &Collected) -> StageOut {
    stage_of(
        &done.verdict,
        String::from_utf8_lossy(&done.output).into_owned(),
    )
}

fn stage_of(v: &Verdict, output: String) -> StageOut {
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
        output,
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

/// `GET /api/v2/runtimes`: the runtimes granted to the caller.
pub async fn runtimes(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Arc<Ctx>>,
) -> Response {
    let versions = app.versions().await;
    let list: Vec<Value> = app
        .catalog()
        .runtimes()
        .filter(|p| ctx.grant.allows(&p.name))
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

/// `GET /api/v2/packages`: every installed runtime granted to the caller, as an installed
/// package.
pub async fn packages(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Arc<Ctx>>,
) -> Response {
    let versions = app.versions().await;
    let list: Vec<Value> = app
        .catalog()
        .runtimes()
        .filter(|p| ctx.grant.allows(&p.name))
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
