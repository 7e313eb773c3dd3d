//! The security layer of the router and the hooks of the execute path.
//!
//! `middleware` runs for every request, inside the service's request-id/metrics layer: CORS
//! preflight, audit record, authentication (401), per-address and per-principal rate limits and
//! the per-principal sandbox cap (429 with `Retry-After` and `RateLimit-*`), the request body
//! read with a size limit and a slow-client timeout (413/408), then the handler; afterwards the
//! rate-limit, CORS and security headers. The execute handlers call `authorize` (403), `start`
//! (circuit breaker, 503) and `run` (result cache) with the request's `Ctx` (src/daemon/security/
//! hooks.rs, re-exported here).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::audit::{AuditError, AuditLog, AuditRecord, Pending};
use super::authz::Grant;
use super::breaker::Breaker;
use super::cache::Cache;
use super::config::SecurityConfig;
pub use super::hooks::{RunHooks, authorize, cache_status, check_granted, run, start};
use super::keys::{self, KeyStore};
use super::ratelimit::{Buckets, Concurrency, ConcurrencyGuard, Decision};
use super::{Principal, authn::Peer};
use crate::daemon::exec::Collected;
use crate::daemon::server::RequestId;

/// The request header that opts a request into (`use`) or out of (`bypass`) the result cache.
pub const CACHE_HEADER: &str = "stockade-cache";

/// Counters for /metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub unauthenticated: AtomicU64,
    pub forbidden: AtomicU64,
    pub rate_limited: AtomicU64,
    pub breaker_refused: AtomicU64,
    pub slow_clients: AtomicU64,
}

/// The service's security state, shared by every request.
pub struct Security {
    pub config: SecurityConfig,
    pub audit: Arc<AuditLog>,
    addresses: Buckets,
    principals: Buckets,
    concurrency: Concurrency,
    pub cache: Option<Cache<Collected>>,
    pub breaker: Arc<Breaker>,
    /// The service's body limit (`[capacity] max_body`).
    max_body: usize,
    pub counters: Counters,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security").finish_non_exhaustive()
    }
}

impl Security {
    pub fn new(config: SecurityConfig, max_body: usize) -> Result<Arc<Self>, AuditError> {
        let audit = Arc::new(AuditLog::open(&config.audit)?);
        let cache = config.cache.as_ref().map(|c| Cache::new(c.settings));
        Ok(Arc::new(Security {
            addresses: Buckets::new(config.rate.max_tracked),
            principals: Buckets::new(config.rate.max_tracked),
            concurrency: Concurrency::default(),
            breaker: Breaker::new(config.breaker),
            audit,
            cache,
            max_body,
            counters: Counters::default(),
            config,
        }))
    }

    /// Re-read `[auth] keys_file` (SIGHUP): revoked or removed keys stop working at once. A bad
    /// file leaves the current keys in force.
    pub fn reload_keys(&self) {
        let Some(path) = &self.config.keys_file else {
            return;
        };
        let merged = keys::load_file(path)
            .map_err(|e| e.to_string())
            .and_then(|file| {
                let mut all = self.config.inline_keys.clone();
                for e in file {
                    if all.iter().any(|x| x.id == e.id) {
                        return Err(format!("key id `{}` is also in [[auth.keys]]", e.id));
                    }
                    all.push(e);
                }
                Ok(all)
            });
        match merged {
            Ok(all) => {
                let n = all.len();
                self.config.auth.replace_keys(KeyStore::new(all));
                tracing::info!(keys = n, file = %path.display(), "api keys reloaded (SIGHUP)");
            }
            Err(e) => {
                tracing::error!(file = %path.display(), "api keys not reloaded; the previous keys stay in force: {e}")
            }
        }
    }

    /// Prometheus lines for the security counters, the breaker and the cache.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let c = &self.counters;
        let counters = [
            (
                "stockade_auth_failures_total",
                "Requests refused with 401.",
                &c.unauthenticated,
            ),
            (
                "stockade_forbidden_total",
                "Requests refused with 403.",
                &c.forbidden,
            ),
            (
                "stockade_rate_limited_total",
                "Requests refused with 429 by rate limits or per-principal caps.",
                &c.rate_limited,
            ),
            (
                "stockade_breaker_refused_total",
                "Runs refused with 503 while the circuit breaker was open.",
                &c.breaker_refused,
            ),
            (
                "stockade_slow_clients_total",
                "Requests whose body did not arrive within the body timeout.",
                &c.slow_clients,
            ),
            (
                "stockade_audit_errors_total",
                "Audit records that could not be written.",
                &self.audit.errors,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let state = self.breaker.state();
        let _ = writeln!(
            out,
            "# HELP stockade_breaker_state Circuit breaker state (1 for the current one).\n# TYPE stockade_breaker_state gauge"
        );
        for s in ["closed", "open", "half_open"] {
            let _ = writeln!(
                out,
                "stockade_breaker_state{{state=\"{s}\"}} {}",
                u8::from(s == state)
            );
        }
        if let Some(cache) = &self.cache {
            let (entries, bytes) = cache.usage();
            let st = &cache.stats;
            let _ = writeln!(
                out,
                "# HELP stockade_cache_lookups_total Result cache lookups by outcome.\n# TYPE stockade_cache_lookups_total counter\nstockade_cache_lookups_total{{result=\"hit\"}} {}\nstockade_cache_lookups_total{{result=\"joined\"}} {}\nstockade_cache_lookups_total{{result=\"miss\"}} {}\n# HELP stockade_cache_entries Stored results.\n# TYPE stockade_cache_entries gauge\nstockade_cache_entries {entries}\n# HELP stockade_cache_bytes Memory held by stored results.\n# TYPE stockade_cache_bytes gauge\nstockade_cache_bytes {bytes}",
                st.hits.load(Ordering::Relaxed),
                st.joins.load(Ordering::Relaxed),
                st.misses.load(Ordering::Relaxed)
            );
        }
    }
}

/// What the execute path knows about the caller.
pub struct Ctx {
    pub principal: Principal,
    pub grant: Arc<Grant>,
    pub(super) audit: Option<Arc<Pending>>,
    /// `Stockade-Cache: use` (true) or `bypass` (false).
    pub(super) cache_pref: Option<bool>,
    pub(super) security: Arc<Security>,
}

impl Ctx {
    pub fn note(&self, f: impl FnOnce(&mut AuditRecord)) {
        if let Some(a) = &self.audit {
            a.with(f);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Health,
    Metrics,
    Execute,
    /// `POST /v1/check`: parses code, so it shares the principal's request rate.
    Check,
    Other,
}

fn route(method: &Method, path: &str) -> Route {
    let p = path.trim_end_matches('/');
    match p {
        "/healthz" | "/readyz" => Route::Health,
        "/metrics" => Route::Metrics,
        "/v1/execute" | "/api/v2/execute" | "/api/v2/piston/execute" if method == Method::POST => {
            Route::Execute
        }
        "/v1/check" if method == Method::POST => Route::Check,
        _ => Route::Other,
    }
}

fn piston(path: &str) -> bool {
    path == "/api/v2" || path.starts_with("/api/v2/")
}

/// An error answer in the shape of the API the path belongs to.
fn refuse(status: StatusCode, code: &str, message: &str, path: &str) -> Response {
    let body = if piston(path) {
        serde_json::json!({"message": message})
    } else {
        serde_json::json!({"code": code, "message": message})
    };
    (status, axum::Json(body)).into_response()
}

/// The security middleware (see the module documentation for the order).
pub async fn middleware(
    State(sec): State<Arc<Security>>,
    mut req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    // Request headers are kept for the CORS answer only when CORS is on.
    let cors_headers = sec.config.cors.enabled().then(|| req.headers().clone());
    if let Some(r) = cors_headers
        .as_ref()
        .and_then(|h| sec.config.cors.preflight(&method, h))
    {
        return r;
    }
    let peer = req
        .extensions()
        .get::<Peer>()
        .cloned()
        .unwrap_or_else(|| Peer {
            // Served by something other than our listener (tests): an unknown TCP client.
            addr: Some(std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
            ..Peer::default()
        });
    let class = route(&method, &path);
    let audit = (sec.config.audit_health || !matches!(class, Route::Health | Route::Metrics))
        .then(|| Pending::new(Arc::clone(&sec.audit), record(&req, &peer)));
    let mut response = match admit(&sec, &mut req, &peer, class, audit.as_ref()).await {
        Ok((ctx, limits, guard)) => {
            req.extensions_mut().insert(ctx);
            let mut r = next.run(req).await;
            rate_headers(&mut r, limits);
            hold(r, audit.clone(), guard)
        }
        Err(r) => r,
    };
    if let Some(a) = &audit {
        let status = response.status();
        a.with(|rec| rec.status = status.as_u16());
        if status.as_u16() >= 400 {
            response = note_error(response, a).await;
        }
    }
    if let Some(h) = &cors_headers {
        sec.config.cors.decorate(h, &mut response);
    }
    let h = response.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn record(req: &Request, peer: &Peer) -> AuditRecord {
    AuditRecord {
        time: super::audit::rfc3339(SystemTime::now()),
        request_id: req
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
        client: Some(peer.client()),
        uid: peer.uid,
        method: req.method().to_string(),
        // Paths are client text: bounded and redacted like every free-text field.
        path: super::redact::redact(&req.uri().path().chars().take(200).collect::<String>()),
        ..AuditRecord::default()
    }
}

type Admitted = (Arc<Ctx>, Option<Decision>, Option<ConcurrencyGuard>);

/// Authentication, rate limits and the body; an `Err` is the answer.
async fn admit(
    sec: &Arc<Security>,
    req: &mut Request,
    peer: &Peer,
    class: Route,
    audit: Option<&Arc<Pending>>,
) -> Result<Admitted, Response> {
    let path = req.uri().path().to_string();
    let reject = |status: StatusCode, code: &str, message: &str| {
        if let Some(a) = audit {
            a.with(|r| r.reject(code, message));
        }
        refuse(status, code, message, &path)
    };
    if let Err((status, code, msg)) =
        super::browser::check(req.headers(), req.method(), peer, &sec.config.allowed_hosts)
    {
        return Err(reject(status, code, &msg));
    }
    let public = match class {
        Route::Health => sec.config.public_health,
        Route::Metrics => sec.config.public_metrics,
        _ => false,
    };
    // The per-address bucket comes before authentication, so guessing keys is throttled too.
    let now = Instant::now();
    let mut decision: Option<Decision> = None;
    if !public {
        if let Some(rate) = sec.config.rate.per_address {
            decision = Some(sec.addresses.take(&peer.address_key(), rate, now));
        }
    }
    if let Some(d) = decision.filter(|d| !d.allowed) {
        return Err(throttled(sec, &reject, d));
    }
    let principal = match sec.config.auth.authenticate(peer, req.headers()) {
        Ok(p) => p,
        Err(_) if public => Principal::anonymous(),
        Err(why) => {
            sec.counters.unauthenticated.fetch_add(1, Ordering::Relaxed);
            let id = audit
                .map(|a| a.with(|r| r.request_id.clone()))
                .unwrap_or_default();
            tracing::info!(request_id = %id, client = %peer.client(), reason = %why, "authentication failed");
            if let Some(a) = audit {
                a.with(|r| r.reject("unauthorized", &why.to_string()));
            }
            let mut r = refuse(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "authentication required",
                &path,
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"stockade\""),
            );
            return Err(r);
        }
    };
    if let Some(a) = audit {
        a.with(|r| {
            r.principal = Some(principal.name.clone());
            r.auth = Some(principal.method.as_str());
            r.key_id.clone_from(&principal.key_id);
        });
    }
    let grant = sec.config.grants.get(&principal.name);
    let mut guard = None;
    if matches!(class, Route::Execute | Route::Check) {
        if let Some(rate) = grant.rate.or(sec.config.rate.per_principal) {
            let d = sec.principals.take(&principal.name, rate, now);
            decision = Some(decision.map_or(d, |a| a.tighter(d)));
        }
    }
    if class == Route::Execute && decision.is_none_or(|d| d.allowed) {
        if let Some(max) = grant.max_concurrent.or(sec.config.rate.max_concurrent) {
            guard = Some(
                sec.concurrency
                    .try_acquire(&principal.name, max)
                    .ok_or_else(|| {
                        sec.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                        let msg = format!(
                            "principal `{}` already runs {max} sandboxes; retry when one finishes",
                            principal.name
                        );
                        let mut r = reject(StatusCode::TOO_MANY_REQUESTS, "too_many_runs", &msg);
                        r.headers_mut()
                            .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
                        r
                    })?,
            );
        }
    }
    if let Some(d) = decision.filter(|d| !d.allowed) {
        return Err(throttled(sec, &reject, d));
    }
    read_body(sec, req, &reject).await?;
    let ctx = Arc::new(Ctx {
        cache_pref: cache_pref(req.headers()),
        principal,
        grant,
        audit: audit.cloned(),
        security: Arc::clone(sec),
    });
    Ok((ctx, decision, guard))
}

/// The 429 of an empty bucket, with `Retry-After` and the `RateLimit-*` headers.
fn throttled(
    sec: &Security,
    reject: &impl Fn(StatusCode, &str, &str) -> Response,
    d: Decision,
) -> Response {
    sec.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
    let msg = "rate limit exceeded; retry later";
    let mut r = reject(StatusCode::TOO_MANY_REQUESTS, "rate_limited", msg);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(d.retry_after_secs));
    rate_headers(&mut r, Some(d));
    r
}

/// Buffer the body within the size limit and the slow-client timeout.
async fn read_body(
    sec: &Security,
    req: &mut Request,
    reject: &impl Fn(StatusCode, &str, &str) -> Response,
) -> Result<(), Response> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let body = std::mem::replace(req.body_mut(), Body::empty());
    let limit = sec.max_body;
    match tokio::time::timeout(sec.config.body_timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => {
            *req.body_mut() = Body::from(bytes);
            Ok(())
        }
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            Err(if too_large {
                let msg = format!("request body larger than {limit} bytes");
                reject(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", &msg)
            } else {
                reject(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    "the request body could not be read",
                )
            })
        }
        Err(_) => {
            sec.counters.slow_clients.fetch_add(1, Ordering::Relaxed);
            let mut r = reject(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request body did not arrive in time",
            );
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err(r)
        }
    }
}

fn cache_pref(h: &HeaderMap) -> Option<bool> {
    match h.get(CACHE_HEADER)?.to_str().ok()?.trim() {
        v if v.eq_ignore_ascii_case("use") => Some(true),
        v if v.eq_ignore_ascii_case("bypass") => Some(false),
        _ => None,
    }
}

fn rate_headers(r: &mut Response, d: Option<Decision>) {
    let Some(d) = d else { return };
    let h = r.headers_mut();
    h.insert("ratelimit-limit", HeaderValue::from(d.limit));
    h.insert("ratelimit-remaining", HeaderValue::from(d.remaining));
    h.insert("ratelimit-reset", HeaderValue::from(d.reset_secs));
}

/// Record the stable `code` of an error answer in the audit record (Piston answers have none:
/// `http_<status>`). Only the code: handler messages may quote the request (a parser error
/// echoes the offending value), and the audit log never holds request content.
async fn note_error(r: Response, audit: &Arc<Pending>) -> Response {
    let (parts, body) = r.into_parts();
    let fallback = format!("http_{}", parts.status.as_u16());
    let small = body.size_hint().upper().is_some_and(|n| n <= 8192);
    if !small {
        audit.with(|rec| rec.reject(&fallback, ""));
        return Response::from_parts(parts, body);
    }
    let bytes = axum::body::to_bytes(body, 8192).await.unwrap_or_default();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let code = v
        .get("code")
        .and_then(|c| c.as_str())
        .filter(|c| c.len() <= 40 && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .map_or(fallback, String::from);
    audit.with(|rec| rec.reject(&code, ""));
    Response::from_parts(parts, Body::from(bytes))
}

/// Keep the audit record and the concurrency place until the response body is finished
/// (streamed runs end long after the handler returned).
fn hold(r: Response, audit: Option<Arc<Pending>>, guard: Option<ConcurrencyGuard>) -> Response {
    if audit.is_none() && guard.is_none() {
        return r;
    }
    let (parts, body) = r.into_parts();
    Response::from_parts(
        parts,
        Body::new(Held {
            body,
            _held: (audit, guard),
        }),
    )
}

struct Held<T> {
    body: Body,
    _held: T,
}

impl<T: Unpin + Send + 'static> HttpBody for Held<T> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
