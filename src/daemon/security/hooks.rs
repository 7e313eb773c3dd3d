//! The execute path's side of the security layer: authorization of a resolved request (403),
//! the circuit breaker around starting a sandbox (503), the result cache around a whole run, and
//! the hooks through which a finished run reports its verdict and set-up outcome.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::HeaderValue;
use axum::response::Response;

use super::audit::Pending;
use super::authz::Asked;
use super::breaker::{Outcome, Ticket};
use super::cache::{self, Cache, Source};
use super::config::CacheMode;
use super::layer::Ctx;
use crate::daemon::app::App;
use crate::daemon::error::{ApiError, Code};
use crate::daemon::exec::{self, Ask, Collected, Prepared, Running};
use crate::policy::AnalysisMode;
use crate::profile::{CodeInput, Profile};
use crate::verdict::{Status, Verdict};

fn forbidden(ctx: &Ctx, message: String) -> ApiError {
    ctx.security
        .counters
        .forbidden
        .fetch_add(1, Ordering::Relaxed);
    ctx.note(|r| r.reject("forbidden", &message));
    ApiError::new(Code::Forbidden, message)
}

fn rank(mode: AnalysisMode) -> u8 {
    match mode {
        AnalysisMode::Off => 0,
        AnalysisMode::Warn => 1,
        AnalysisMode::Enforce => 2,
    }
}

/// 403 unless the caller was granted `profile` (for requests other than execute, e.g. check).
pub fn check_granted(ctx: &Ctx, profile: &str) -> Result<(), ApiError> {
    ctx.grant
        .check_profile(&ctx.principal.name, profile)
        .map_err(|d| forbidden(ctx, d.0))
}

/// Authorize `ask` under `profile` for the caller: the profile must be granted, explicit limits
/// within the grant (403 otherwise); the profile's limits are capped at the grant, and a granted
/// `skip_check` lets the request lower the pre-flight mode. Records profile and code digest.
pub fn authorize(ctx: &Ctx, profile: &mut Profile, ask: &Ask) -> Result<(), ApiError> {
    ctx.note(|r| {
        r.profile = Some(profile.name.clone());
        match &ask.input {
            CodeInput::Code { code, .. } => r.code(&[code.as_bytes()]),
            CodeInput::Files { files, .. } => {
                r.code(
                    &files
                        .iter()
                        .map(|f| f.contents.as_slice())
                        .collect::<Vec<_>>(),
                );
            }
            CodeInput::Args(args) => r.code(&[args.join("\0").as_bytes()]),
        }
    });
    let who = &ctx.principal.name;
    ctx.grant
        .check_profile(who, &profile.name)
        .map_err(|d| forbidden(ctx, d.0))?;
    let l = &ask.limits;
    let asked = Asked {
        wall: l.wall,
        cpu: l.cpu,
        memory: l.memory,
        pids: l.pids,
        output: l.output,
    };
    ctx.grant
        .apply(who, &asked, &mut profile.policy)
        .map_err(|d| forbidden(ctx, d.0))?;
    if let Some(mode) = ask.check {
        if ctx.grant.skip_check && rank(mode) < rank(profile.policy.analysis.mode) {
            profile.policy.analysis.mode = mode;
        }
    }
    Ok(())
}

/// What `Running` reports back when the run ends: the verdict to the audit record, the set-up
/// outcome to the circuit breaker.
pub struct RunHooks {
    ticket: Option<Ticket>,
    audit: Option<Arc<Pending>>,
}

impl RunHooks {
    /// The run ended with `v`; `host_failure` says a set-up failure was the host's (only those
    /// count towards the breaker: a request whose files cannot be laid out must not close the
    /// service for everyone).
    pub fn finished(mut self, v: &Verdict, host_failure: bool) {
        if let Some(t) = self.ticket.take() {
            t.record(match v.status {
                Status::SetupFailed if host_failure => Outcome::SetupFailed,
                Status::SetupFailed => Outcome::Refused,
                _ => Outcome::Started,
            });
        }
        if let Some(a) = &self.audit {
            a.with(|r| r.verdict(v));
        }
    }

    /// The worker ended without a verdict; `host_failure` when nothing shows the sandbox started
    /// (the launcher died, or a worker failed before any output).
    pub fn lost(mut self, host_failure: bool) {
        if let Some(t) = self.ticket.take() {
            t.record(if host_failure {
                Outcome::SetupFailed
            } else {
                Outcome::Started
            });
        }
    }
}

/// `exec::start` behind the circuit breaker: refused with 503 `sandbox_unavailable` while it is
/// open; a launcher failure counts as a set-up failure.
pub async fn start(
    app: &Arc<App>,
    ctx: &Ctx,
    prepared: Prepared,
    queue_timeout: Duration,
    request_id: &str,
) -> Result<Running, ApiError> {
    let ticket = ctx.security.breaker.admit().map_err(|wait| {
        ctx.security
            .counters
            .breaker_refused
            .fetch_add(1, Ordering::Relaxed);
        let msg =
            "sandbox set-up is failing on this host; the service refuses runs until it recovers";
        ctx.note(|r| r.reject("sandbox_unavailable", msg));
        ApiError::new(Code::SandboxUnavailable, msg).retry_after(wait.as_secs().max(1))
    })?;
    match exec::start(app, prepared, queue_timeout, request_id).await {
        Ok(mut running) => {
            running.attach(RunHooks {
                ticket: Some(ticket),
                audit: ctx.audit.clone(),
            });
            Ok(running)
        }
        Err(e) => {
            if e.code == Code::Unavailable {
                ticket.record(Outcome::SetupFailed);
            }
            Err(e)
        }
    }
}

/// Run to completion, through the result cache when the profile and the request opt in. The
/// second value is the `Cache-Status` header when the cache was consulted.
pub async fn run(
    app: &Arc<App>,
    ctx: &Ctx,
    prepared: Prepared,
    queue_timeout: Duration,
    request_id: &str,
) -> Result<(Collected, Option<String>), ApiError> {
    let Some((cache, shared)) = cache_for(ctx, &prepared.profile) else {
        let running = start(app, ctx, prepared, queue_timeout, request_id).await?;
        return Ok((exec::collect(running).await?, None));
    };
    let scope = if shared {
        "*"
    } else {
        ctx.principal.name.as_str()
    };
    let key = job_key(scope, &prepared);
    let size = |c: &Collected| {
        c.output.len() + c.verdict.stdout.data.len() + c.verdict.stderr.data.len() + 2048
    };
    let keep =
        |c: &Collected| !matches!(c.verdict.status, Status::SetupFailed | Status::TimeoutWall);
    let lookup = cache
        .get_or_run(key, size, keep, || async move {
            let running = start(app, ctx, prepared, queue_timeout, request_id).await?;
            exec::collect(running).await
        })
        .await?;
    let source = lookup.source;
    ctx.note(|r| {
        r.cache = Some(match source {
            Source::Hit => "hit",
            Source::Joined => "joined",
            Source::Miss => "miss",
        });
        if source != Source::Miss {
            r.verdict(&lookup.value.verdict);
        }
    });
    let status = source.cache_status(lookup.stored, lookup.ttl_left);
    let c = Collected {
        verdict: lookup.value.verdict.clone(),
        output: lookup.value.output.clone(),
    };
    Ok((c, Some(status)))
}

fn cache_for<'a>(ctx: &'a Ctx, profile: &str) -> Option<(&'a Cache<Collected>, bool)> {
    let conf = ctx.security.config.cache.as_ref()?;
    let cache = ctx.security.cache.as_ref()?;
    let wanted = match conf.mode {
        CacheMode::Request => ctx.cache_pref == Some(true),
        CacheMode::Always => ctx.cache_pref != Some(false),
    };
    (wanted && conf.profiles.iter().any(|p| p == profile)).then_some((cache, conf.shared))
}

/// The cache key: the scope (principal or shared), the fully resolved policy (the profile's
/// content with the request's limits, environment and command), the files and stdin.
fn job_key(scope: &str, p: &Prepared) -> cache::Key {
    let policy = serde_json::to_vec(&p.job.policy).unwrap_or_default();
    let mut parts: Vec<&[u8]> = vec![scope.as_bytes(), &policy, &p.job.stdin];
    let names: Vec<String> = p
        .job
        .files
        .iter()
        .map(|(path, _)| path.display().to_string())
        .collect();
    for ((_, data), name) in p.job.files.iter().zip(&names) {
        parts.push(name.as_bytes());
        parts.push(data);
    }
    cache::key(&parts)
}

/// Add the `Cache-Status` header to an answer.
pub fn cache_status(r: &mut Response, status: Option<String>) {
    if let Some(v) = status.and_then(|s| HeaderValue::from_str(&s).ok()) {
        r.headers_mut().insert("cache-status", v);
    }
}
