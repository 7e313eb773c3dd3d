//! The security layer of the router.
//!
//! `middleware` runs for every request, inside the service's request-id/metrics layer: CORS
//! preflight, audit record, authentication (401), per-address and per-principal rate limits and
//! the per-principal sandbox cap (429 with `Retry-After` and `RateLimit-*`), then the rest of the
//! stack (the HTTP layer reads the body once, with a size limit and a slow-client timeout) and
//! the handler; afterwards the rate-limit, CORS and security headers. Which routes start
//! sandboxes, and the error shape of a refusal, come from the route's own declaration
//! (`crate::daemon::route::RouteInfo`), never from its path. The request's `Ctx` carries the
//! caller to the handlers; the engine does authorization, the breaker and the cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::audit::{AuditError, AuditLog, AuditRecord, Pending};
use super::authz::Grant;
use super::config::SecurityConfig;
use super::keys::{self, KeyStore};
use super::ratelimit::{Buckets, Concurrency, ConcurrencyGuard, Decision};
use super::{Principal, authn::Peer};
use crate::daemon::route::{RequestId, RouteInfo, RouteKind, Shape};

/// The request header that opts a request into (`use`) or out of (`bypass`) the result cache.
pub const CACHE_HEADER: &str = "stockade-cache";

/// Counters for /metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub unauthenticated: AtomicU64,
    pub rate_limited: AtomicU64,
    pub slow_clients: AtomicU64,
}

/// The service's security state, shared by every request.
pub struct Security {
    pub config: SecurityConfig,
    pub audit: Arc<AuditLog>,
    addresses: Buckets,
    principals: Buckets,
    concurrency: Concurrency,
    pub counters: Counters,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security").finish_non_exhaustive()
    }
}

impl Security {
    pub fn new(config: SecurityConfig) -> Result<Arc<Self>, AuditError> {
        let audit = Arc::new(AuditLog::open(&config.audit)?);
        Ok(Arc::new(Security {
            addresses: Buckets::new(config.rate.max_tracked),
            principals: Buckets::new(config.rate.max_tracked),
            concurrency: Concurrency::default(),
            audit,
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

    /// Prometheus lines for the security counters (the engine renders its own: refusals by
    /// grant, the breaker, the cache).
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
                "stockade_rate_limited_total",
                "Requests refused with 429 by rate limits or per-principal caps.",
                &c.rate_limited,
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
    }
}

/// What the handlers know about the caller: who it is, what it may run, its audit record.
pub struct Ctx {
    pub principal: Principal,
    pub grant: Arc<Grant>,
    pub audit: Option<Arc<Pending>>,
    /// `Stockade-Cache: use` (true) or `bypass` (false).
    pub cache_pref: Option<bool>,
}

impl Ctx {
    pub fn note(&self, f: impl FnOnce(&mut AuditRecord)) {
        if let Some(a) = &self.audit {
            a.with(f);
        }
    }
}

/// An error answer in the shape of the route's API.
fn refuse(status: StatusCode, code: &str, message: &str, shape: Shape) -> Response {
    let body = match shape {
        Shape::Piston => serde_json::json!({"message": message}),
        Shape::Native => serde_json::json!({"code": code, "message": message}),
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
    let route = req
        .extensions()
        .get::<RouteInfo>()
        .copied()
        .unwrap_or_default();
    let audit = (sec.config.audit_health
        || !matches!(route.kind, RouteKind::Health | RouteKind::Metrics))
    .then(|| Pending::new(Arc::clone(&sec.audit), record(&req, &peer)));
    let mut response = match admit(&sec, &req, &peer, route, audit.as_ref()) {
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

/// Authentication and rate limits; an `Err` is the answer.
#[allow(
    clippy::result_large_err,
    reason = "the `Err` is the refusal itself, built at most once per request"
)]
fn admit(
    sec: &Arc<Security>,
    req: &Request,
    peer: &Peer,
    route: RouteInfo,
    audit: Option<&Arc<Pending>>,
) -> Result<Admitted, Response> {
    let reject = |status: StatusCode, code: &str, message: &str| {
        if let Some(a) = audit {
            a.with(|r| r.reject(code, message));
        }
        refuse(status, code, message, route.shape)
    };
    if let Err((status, code, msg)) =
        super::browser::check(req.headers(), req.method(), peer, &sec.config.allowed_hosts)
    {
        return Err(reject(status, code, &msg));
    }
    let public = match route.kind {
        RouteKind::Health => sec.config.public_health,
        RouteKind::Metrics => sec.config.public_metrics,
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
                route.shape,
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
    if matches!(route.kind, RouteKind::Execution | RouteKind::Analysis) {
        if let Some(rate) = grant.rate.or(sec.config.rate.per_principal) {
            let d = sec.principals.take(&principal.name, rate, now);
            decision = Some(decision.map_or(d, |a| a.tighter(d)));
        }
    }
    if route.kind == RouteKind::Execution && decision.is_none_or(|d| d.allowed) {
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
    let ctx = Arc::new(Ctx {
        cache_pref: cache_pref(req.headers()),
        principal,
        grant,
        audit: audit.cloned(),
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
