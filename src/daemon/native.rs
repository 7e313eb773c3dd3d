//! The native API under `/v1`: execute (whole or streamed), check, profiles and runtimes.
//! Request bodies are strict: unknown fields and wrong types are refused with `invalid_body`.
//! docs/openapi.yaml describes every shape here; keep the two in step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use super::app::App;
use super::error::{ApiError, Code};
use super::exec::{self, Ask, LimitAsk, Plan};
use super::limits;
use super::security::authz::Grant;
use super::security::layer::{self as security, Ctx};
use super::server::{RequestId, read_body};
use super::stream::{self, Format};
use crate::analysis::Language;
use crate::policy::AnalysisMode;
use crate::profile::{CodeInput, InlineFile, Profile};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    /// A profile by name or alias (or use `language`).
    pub profile: Option<String>,
    /// A language name or alias, resolved like `profile`.
    pub language: Option<String>,
    /// A security preset applied on top of the language profile (docs/profiles.md,
    /// "Language × preset"): `{"profile": "python", "preset": "data_science"}`.
    pub preset: Option<String>,
    /// Code as text, delivered the way the profile says.
    pub code: Option<String>,
    /// Files written to /sandbox; the first is the program.
    #[serde(default, deserialize_with = "limits::de_files")]
    pub files: Option<Vec<FileIn>>,
    /// Arguments after the program (or the whole command under a preset).
    #[serde(default, deserialize_with = "limits::de_args")]
    pub args: Vec<String>,
    /// Standard input, then end of file.
    pub stdin: Option<String>,
    /// Extra environment variables.
    #[serde(default, deserialize_with = "limits::de_env")]
    pub env: BTreeMap<String, String>,
    /// Lower limits than the profile's.
    #[serde(default)]
    pub limits: LimitsIn,
    /// Lower limits than the profile's compile stage (compiled languages only).
    #[serde(default)]
    pub compile_limits: CompileLimitsIn,
    /// Pre-flight analysis mode: `off`, `warn` or `enforce` (never below the profile's).
    pub check: Option<CheckMode>,
    /// Longest wait for a sandbox slot, in ms (never above the service's queue timeout).
    pub queue_timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileIn {
    pub name: String,
    pub content: String,
    #[serde(default)]
    pub encoding: Encoding,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub enum Encoding {
    #[default]
    #[serde(rename = "utf-8", alias = "utf8")]
    Utf8,
    #[serde(rename = "base64")]
    Base64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsIn {
    pub wall_ms: Option<u64>,
    pub cpu_ms: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub pids: Option<u64>,
    pub cpus: Option<f64>,
    pub output_bytes: Option<u64>,
}

/// `compile_limits`: the compile stage's own limits (no `cpus`: a compiler gets the run's share).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompileLimitsIn {
    pub wall_ms: Option<u64>,
    pub cpu_ms: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub pids: Option<u64>,
    pub output_bytes: Option<u64>,
}

impl CompileLimitsIn {
    fn ask(&self) -> LimitAsk {
        LimitAsk {
            wall: self.wall_ms.map(Duration::from_millis),
            cpu: self.cpu_ms.map(Duration::from_millis),
            memory: self.memory_bytes,
            pids: self.pids,
            cpus: None,
            output: self.output_bytes,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckMode {
    Off,
    Warn,
    Enforce,
}

impl From<CheckMode> for AnalysisMode {
    fn from(m: CheckMode) -> Self {
        match m {
            CheckMode::Off => AnalysisMode::Off,
            CheckMode::Warn => AnalysisMode::Warn,
            CheckMode::Enforce => AnalysisMode::Enforce,
        }
    }
}

/// Parse a strict JSON body; the content type may be JSON, text/plain or absent (curl's `-d`
/// sends form-urlencoded with a JSON body, which is accepted too).
pub fn parse<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, ApiError> {
    if let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        let ct = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let json_like = ct.is_empty()
            || ct == "application/json"
            || ct.ends_with("+json")
            || ct == "text/plain"
            || ct == "application/x-www-form-urlencoded";
        if !json_like {
            let msg = format!("request bodies are JSON; `{ct}` is not accepted");
            return Err(ApiError::new(Code::UnsupportedMediaType, msg));
        }
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(Code::InvalidBody, format!("invalid request body: {e}")))
}

fn resolve(app: &App, grant: &Grant, req: &ExecuteRequest) -> Result<Profile, ApiError> {
    let name = match (&req.profile, &req.language) {
        (Some(p), None) => p,
        (None, Some(l)) => l,
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                Code::InvalidRequest,
                "give `profile` or `language`, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::new(
                Code::InvalidRequest,
                "`profile` (or `language`) is required",
            ));
        }
    };
    let language = lookup(app, grant, name)?;
    match &req.preset {
        Some(preset) => with_preset(app, &language, preset),
        None => Ok(language),
    }
}

/// `language` with the catalog's `preset` on top; its authorization name is `language+preset`.
fn with_preset(app: &App, language: &Profile, preset: &str) -> Result<Profile, ApiError> {
    let catalog = app.catalog();
    let Some(found) = catalog.resolve(preset) else {
        let presets: Vec<String> = catalog
            .names()
            .into_iter()
            .filter(|n| catalog.resolve(n).is_some_and(crate::profile::is_preset))
            .collect();
        let hint = crate::profile::nearest(preset, &presets)
            .map(|n| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
        let msg = format!(
            "no preset named `{preset}` (presets: {}){hint}",
            presets.join(", ")
        );
        return Err(ApiError::new(Code::InvalidRequest, msg));
    };
    crate::profile::compose(language, found)
        .map_err(|e| ApiError::new(Code::InvalidRequest, e.to_string()))
}

/// A profile by name or alias. The "did you mean" hint names only profiles the caller was
/// granted, so a listing of what others may run does not leak through typos.
pub fn lookup(app: &App, grant: &Grant, name: &str) -> Result<Profile, ApiError> {
    let catalog = app.catalog();
    if let Some(p) = catalog.resolve(name) {
        return Ok(p.clone());
    }
    let names: Vec<String> = catalog
        .names()
        .into_iter()
        .filter(|n| catalog.resolve(n).is_some_and(|p| grant.allows(&p.name)))
        .collect();
    let hint = crate::profile::nearest(name, &names)
        .map(|n| format!("; did you mean `{n}`?"))
        .unwrap_or_default();
    Err(ApiError::new(
        Code::UnknownProfile,
        format!("no profile or language named `{name}`{hint}"),
    ))
}

pub(super) fn ask(req: ExecuteRequest) -> Result<Ask, ApiError> {
    let input = match (req.code, req.files) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                Code::InvalidRequest,
                "give `code` or `files`, not both",
            ));
        }
        (Some(code), None) => CodeInput::Code {
            code,
            args: req.args,
        },
        (None, Some(files)) => {
            let files = files
                .into_iter()
                .enumerate()
                .map(|(i, f)| decode_file(i, f))
                .collect::<Result<_, _>>()?;
            CodeInput::Files {
                files,
                args: req.args,
            }
        }
        (None, None) => CodeInput::Args(req.args),
    };
    let l = req.limits;
    let compile = req.compile_limits.ask();
    Ok(Ask {
        input,
        stdin: req.stdin.map(String::into_bytes),
        env: req.env.into_iter().collect(),
        limits: LimitAsk {
            wall: l.wall_ms.map(Duration::from_millis),
            cpu: l.cpu_ms.map(Duration::from_millis),
            memory: l.memory_bytes,
            pids: l.pids,
            cpus: l.cpus,
            output: l.output_bytes,
        },
        compile,
        check: req.check.map(AnalysisMode::from),
    })
}

fn decode_file(i: usize, f: FileIn) -> Result<InlineFile, ApiError> {
    let contents = match f.encoding {
        Encoding::Utf8 => f.content.into_bytes(),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(f.content.trim())
            .map_err(|e| {
                ApiError::new(
                    Code::InvalidRequest,
                    format!("`files[{i}].content` is not valid base64: {e}"),
                )
            })?,
    };
    Ok(InlineFile {
        name: f.name,
        contents,
    })
}

/// `POST /v1/execute`: the verdict, or a stream of events when `Accept` asks for one.
pub async fn execute(
    State(app): State<Arc<App>>,
    Extension(RequestId(id)): Extension<RequestId>,
    Extension(ctx): Extension<Arc<Ctx>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(body, app.config.max_body).await?;
    let req: ExecuteRequest = parse(&headers, &bytes)?;
    let format = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(Format::from_accept);
    let queue_timeout = req.queue_timeout_ms.map_or(app.config.queue_timeout, |ms| {
        Duration::from_millis(ms).min(app.config.queue_timeout)
    });
    let mut profile = resolve(&app, &ctx.grant, &req)?;
    let ask = ask(req)?;
    security::authorize(&ctx, &mut profile, &ask)?;
    let plan = plan_off_thread(profile, ask, bytes.len()).await?;
    let prepared = match plan {
        Plan::Refuse { profile, verdict } => {
            app.metrics.verdict(verdict.status.as_str(), Duration::ZERO);
            ctx.note(|r| r.verdict(&verdict));
            return Ok(match format {
                Some(f) => streamed(f, stream::refused_body(f, &id, &profile, &verdict)),
                None => verdict_response(&id, &profile, &verdict),
            });
        }
        Plan::Run(p) => *p,
    };
    let profile = prepared.profile.clone();
    match format {
        Some(f) => {
            let running = security::start(&app, &ctx, prepared, queue_timeout, &id).await?;
            Ok(streamed(f, stream::body(f, running, &id, &profile)))
        }
        None => {
            let (done, cache) = security::run(&app, &ctx, prepared, queue_timeout, &id).await?;
            let mut r = verdict_response(&id, &profile, &done.verdict);
            security::cache_status(&mut r, cache);
            Ok(r)
        }
    }
}

/// The analysis parses the code; large inputs are parsed off the async threads.
pub async fn plan_off_thread(profile: Profile, ask: Ask, size: usize) -> Result<Plan, ApiError> {
    if size < 16 << 10 {
        return exec::plan(&profile, ask);
    }
    tokio::task::spawn_blocking(move || exec::plan(&profile, ask))
        .await
        .map_err(|e| ApiError::internal("-", &e))?
}

fn verdict_response(id: &str, profile: &str, verdict: &crate::verdict::Verdict) -> Response {
    Json(stream::VerdictOut {
        request_id: id,
        profile,
        verdict,
    })
    .into_response()
}

fn streamed(format: Format, body: Body) -> Response {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        format.content_type().parse().expect("static header"),
    );
    h.insert(
        header::CACHE_CONTROL,
        "no-cache".parse().expect("static header"),
    );
    // Tell proxies (nginx) not to buffer the stream.
    h.insert("x-accel-buffering", "no".parse().expect("static header"));
    r
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    pub profile: Option<String>,
    pub language: Option<String>,
    pub code: String,
    /// Analysis preset instead of the profile's.
    pub preset: Option<String>,
}

/// `POST /v1/check`: the pre-flight analysis alone, under a profile's (or a named) preset. A
/// profile must be granted to the caller, as for execute.
pub async fn check(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Arc<Ctx>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(body, app.config.max_body).await?;
    let req: CheckRequest = parse(&headers, &bytes)?;
    let (policy, language) = match (&req.profile, &req.language) {
        (Some(p), None) => {
            let p = lookup(&app, &ctx.grant, p)?;
            security::check_granted(&ctx, &p.name)?;
            let p = p.policy;
            let lang = Language::from_argv(&p.argv).unwrap_or(Language::Shell);
            (p.analysis, lang)
        }
        (None, Some(l)) => {
            let lang = Language::from_name(l).ok_or_else(|| {
                ApiError::new(
                    Code::InvalidRequest,
                    format!("unknown language `{l}` (expected python, javascript or shell)"),
                )
            })?;
            (crate::policy::AnalysisPolicy::default(), lang)
        }
        _ => {
            return Err(ApiError::new(
                Code::InvalidRequest,
                "give `profile` or `language` (exactly one)",
            ));
        }
    };
    let mut policy = policy;
    if let Some(preset) = req.preset {
        if !crate::analysis::preset_names().contains(&preset.as_str()) {
            let known = crate::analysis::preset_names().join(", ");
            return Err(ApiError::new(
                Code::InvalidRequest,
                format!("unknown preset `{preset}` (built-in: {known})"),
            ));
        }
        policy.preset = preset;
    }
    let code = req.code;
    let report =
        tokio::task::spawn_blocking(move || crate::analysis::evaluate(&policy, &code, language))
            .await
            .map_err(|e| ApiError::internal("-", &e))?
            .map_err(|e| ApiError::new(Code::InvalidRequest, e.to_string()))?;
    Ok(Json(report).into_response())
}

/// `GET /v1/profiles`: the profiles granted to the caller.
pub async fn profiles(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Arc<Ctx>>,
) -> Response {
    let mut list = app.catalog().summaries();
    list.retain(|s| ctx.grant.allows(&s.name));
    Json(list).into_response()
}

/// `GET /v1/profiles/{name}`: 404 for a profile not granted to the caller, as for one that does
/// not exist.
pub async fn profile(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Arc<Ctx>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let p = lookup(&app, &ctx.grant, &name)?;
    let summary = app
        .catalog()
        .summaries()
        .into_iter()
        .filter(|s| ctx.grant.allows(&s.name))
        .find(|s| s.name == p.name);
    summary
        .map(|s| Json(s).into_response())
        .ok_or_else(|| ApiError::new(Code::UnknownProfile, format!("no profile named `{name}`")))
}

/// `GET /v1/runtimes`: profiles with an interpreter granted to the caller, with the
/// interpreter's version.
pub async fn runtimes(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Arc<Ctx>>,
) -> Response {
    let versions = app.versions().await;
    let catalog = app.catalog();
    let list: Vec<_> = catalog
        .runtimes()
        .filter(|p| ctx.grant.allows(&p.name))
        .map(|p| {
            let version = App::version_of(&versions, &p.name).map(|v| v.to_string());
            json!({
                "name": p.name,
                "aliases": p.aliases,
                "version": version,
                "installed": version.is_some(),
                "command": p.policy.argv,
                "language": p.policy.analysis.language,
            })
        })
        .collect();
    Json(list).into_response()
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// `GET /readyz`: 503 while draining or when the launcher is gone.
pub async fn readyz(State(app): State<Arc<App>>) -> Response {
    match app.ready() {
        Ok(()) => Json(json!({"ready": true})).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": reason})),
        )
            .into_response(),
    }
}

/// `GET /metrics`.
pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    let mut text = app.metrics.render(app.gauges());
    app.security.render_metrics(&mut text);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `GET /v1/openapi.yaml`.
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/yaml")],
        include_str!("../../docs/openapi.yaml"),
    )
        .into_response()
}
