//! The HTTP server: routes, the per-request middleware (request id, log line, metrics),
//! TCP and Unix listeners, signals (SIGTERM/SIGINT drain, SIGHUP reload) and systemd
//! notifications.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use super::app::App;
use super::config::Listen;
use super::error::{ApiError, Code};
use super::notify::{self, Notifier};
use super::security::layer::Security;
use super::security::listener::{self, Bound};
use super::{native, piston, security};

/// The id of the request being handled (also sent back as `x-request-id`).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Read a whole body, refusing more than `limit` bytes with 413.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        match too_large {
            true => ApiError::new(
                Code::BodyTooLarge,
                format!("request body larger than {limit} bytes"),
            ),
            false => ApiError::new(Code::InvalidBody, "the request body could not be read"),
        }
    })
}

/// Every route of the service.
pub fn router(app: Arc<App>) -> Router {
    let mut r = Router::new()
        .route("/healthz", get(native::healthz))
        .route("/readyz", get(native::readyz))
        .route("/metrics", get(native::metrics))
        .route("/", get(root))
        .route("/v1/execute", post(native::execute))
        .route("/v1/check", post(native::check))
        .route("/v1/profiles", get(native::profiles))
        .route("/v1/profiles/{name}", get(native::profile))
        .route("/v1/runtimes", get(native::runtimes))
        .route("/v1/openapi.yaml", get(native::openapi));
    if app.config.piston.enabled {
        // Both prefixes (self-hosted and emkc.org's), with and without the trailing slash that
        // Express ignores and aiopyston sends.
        for prefix in ["/api/v2", "/api/v2/piston"] {
            for slash in ["", "/"] {
                r = r
                    .route(&format!("{prefix}/runtimes{slash}"), get(piston::runtimes))
                    .route(&format!("{prefix}/execute{slash}"), post(piston::execute))
                    .route(
                        &format!("{prefix}/packages{slash}"),
                        get(piston::packages)
                            .post(piston::install)
                            .delete(piston::uninstall),
                    );
            }
        }
    }
    r.fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        // Inside `track`, so refusals get a request id, a log line and metrics too.
        .layer(middleware::from_fn_with_state(
            Arc::clone(&app.security),
            security::layer::middleware,
        ))
        // Inside `track` too: a panicking request is logged and counted as its 500.
        .layer(middleware::from_fn(super::panic::catch))
        .layer(middleware::from_fn_with_state(Arc::clone(&app), track))
        .with_state(app)
}

async fn root() -> Response {
    let version = env!("CARGO_PKG_VERSION");
    axum::Json(serde_json::json!({
        "message": format!("stockade v{version} (Piston v2 compatible)"),
        "service": "stockade",
        "version": version,
    }))
    .into_response()
}

fn piston_path(uri: &Uri) -> bool {
    uri.path() == "/api/v2" || uri.path().starts_with("/api/v2/")
}

async fn fallback(uri: Uri) -> Response {
    if piston_path(&uri) {
        return piston::not_found().await;
    }
    ApiError::new(Code::NotFound, format!("no route for {}", uri.path())).into_response()
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    // Express has no 405: an unrouted method is a 404 there.
    if piston_path(&uri) {
        return piston::not_found().await;
    }
    let msg = format!("{method} is not allowed on {}", uri.path());
    ApiError::new(Code::MethodNotAllowed, msg).into_response()
}

/// Request id, one log line and the metrics for every request.
async fn track(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .filter(|v| !v.is_empty())
        .map_or_else(|| app.request_id(), str::to_string);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let method = req.method().clone();
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = next.run(req).instrument(span).await;
    let status = response.status();
    let elapsed = started.elapsed();
    app.metrics.request(&route, status.as_u16(), elapsed);
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    let ms = elapsed.as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::warn!(request_id = %id, %method, route, status = status.as_u16(), ms, "request");
    } else if route != "/metrics" && route != "/healthz" && route != "/readyz" {
        tracing::info!(request_id = %id, %method, route, status = status.as_u16(), ms, "request");
    }
    response
}

/// Serve until SIGTERM or SIGINT, then drain.
pub async fn run(app: Arc<App>) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every address is bound before any is served, so a client that finds one answering (a
    // readiness probe) finds them all.
    let mut bound = Vec::new();
    for listen in &app.config.listen {
        bound.push((listen, bind(listen, &app.security).await?));
    }
    let mut servers: Vec<Server> = Vec::new();
    for (listen, b) in bound {
        let (router, limits, stop) = (
            router(Arc::clone(&app)),
            app.security.config.http,
            stop_rx.clone(),
        );
        servers.push(tokio::spawn(async move {
            listener::serve(b, router, limits, stop).await;
            Ok(())
        }));
        tracing::info!(%listen, "listening");
    }
    let notifier = Notifier::from_env();
    let status = format!(
        "STATUS=serving on {}; {} sandboxes at once, queue {}",
        app.config
            .listen
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        app.admission.max_concurrent(),
        app.admission.queue_size()
    );
    if let Some(n) = &notifier {
        n.send(&format!("READY=1\n{status}"));
    }
    if let Some(every) = notify::watchdog_interval() {
        tokio::spawn(watchdog(Arc::clone(&app), every));
    }
    // Ask the interpreters for their versions now rather than on the first Piston request.
    let warm = Arc::clone(&app);
    tokio::spawn(async move { warm.versions().await });
    wait_for_stop(&app).await?;
    drain(&app, notifier.as_ref(), &stop_tx, servers).await;
    Ok(())
}

type Server = tokio::task::JoinHandle<std::io::Result<()>>;

/// Bind one address for the security listener (TLS on TCP when configured; the Unix socket
/// with its mode).
async fn bind(listen: &Listen, security: &Security) -> anyhow::Result<Bound> {
    match listen {
        Listen::Tcp(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listen on {listen}"))?;
            let tls = security
                .config
                .tls
                .as_ref()
                .map(|(_, c)| TlsAcceptor::from(Arc::clone(c)));
            Ok(Bound::Tcp { listener: l, tls })
        }
        Listen::Unix { path, mode } => {
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if !meta.file_type().is_socket() {
                    anyhow::bail!("listen on {listen}: the path exists and is not a socket");
                }
                std::fs::remove_file(path)
                    .with_context(|| format!("remove the stale socket {}", path.display()))?;
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("create {}", dir.display()))?;
            }
            let l = tokio::net::UnixListener::bind(path)
                .with_context(|| format!("listen on {listen}"))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode))
                .with_context(|| format!("chmod {mode:o} {}", path.display()))?;
            Ok(Bound::Unix(l))
        }
    }
}

/// Wait for SIGTERM or SIGINT; SIGHUP reloads the profiles and the API keys file meanwhile.
async fn wait_for_stop(app: &App) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("install the SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => {
                app.reload().await;
                app.security.reload_keys();
                tracing::info!(profiles = app.catalog().names().len(), "profiles reloaded (SIGHUP)");
            }
        }
    }
}

/// Stop taking work (new and queued requests get 503 `draining`, `/readyz` turns 503), let running
/// sandboxes finish until the deadline, kill the rest, then close the listeners and report.
/// The listeners stay open meanwhile so clients and load balancers get an answer, not a refused
/// connection.
async fn drain(
    app: &App,
    notifier: Option<&Notifier>,
    stop: &watch::Sender<bool>,
    servers: Vec<Server>,
) {
    let running = app.admission.running();
    let queued = app.admission.queued();
    let timeout_ms = u64::try_from(app.config.drain_timeout.as_millis()).unwrap_or(u64::MAX);
    tracing::info!(running, queued, timeout_ms, "draining");
    if let Some(n) = notifier {
        n.send(&format!(
            "STOPPING=1\nSTATUS=draining: {running} running, {queued} queued"
        ));
    }
    app.start_drain();
    let deadline = Instant::now() + app.config.drain_timeout;
    let mut killed = 0;
    if !app.admission.wait_idle(deadline).await {
        killed = app.admission.running();
        tracing::warn!(
            killed,
            "drain deadline passed; killing the remaining sandboxes"
        );
        app.kill_all();
        app.admission
            .wait_idle(Instant::now() + Duration::from_secs(5))
            .await;
    }
    stop.send_replace(true);
    // Connections finish their last response; a client that never reads does not hold us up.
    let grace = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(grace);
    for mut server in servers {
        tokio::select! {
            r = &mut server => {
                if let Ok(Err(e)) = r {
                    tracing::warn!("server error during drain: {e}");
                }
            }
            _ = &mut grace => { server.abort(); }
        }
    }
    let finished = running.saturating_sub(killed);
    tracing::info!(
        finished,
        killed,
        queued_refused = queued,
        "drained; exiting"
    );
}

async fn watchdog(app: Arc<App>, every: Duration) {
    let Some(n) = Notifier::from_env() else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        // A dead launcher means no sandbox can start: let systemd's watchdog restart us.
        if app.launcher.alive() {
            n.send("WATCHDOG=1");
        } else {
            tracing::error!("the sandbox launcher is gone; withholding the watchdog ping");
        }
    }
}
