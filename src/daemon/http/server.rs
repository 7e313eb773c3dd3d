//! The HTTP server: the per-request middleware (request id, log line, metrics), TCP and Unix
//! listeners, signals (SIGTERM/SIGINT drain, SIGHUP reload) and systemd notifications.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use crate::daemon::app::App;
use crate::daemon::config::Listen;
use crate::daemon::notify::{self, Notifier};
use crate::daemon::route::RequestId;
use crate::daemon::security::layer::Security;
use crate::daemon::security::listener::{self, Bound};

/// Request id, one log line and the metrics for every request.
pub async fn track(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
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

/// Serve `router` until SIGTERM or SIGINT, then drain.
pub async fn run(app: Arc<App>, router: Router) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every address is bound before any is served, so a client that finds one answering (a
    // readiness probe) finds them all.
    let mut bound = Vec::new();
    for listen in &app.config.listen {
        bound.push((listen, bind(listen, &app.security).await?));
    }
    let mut servers: Vec<Server> = Vec::new();
    for (listen, b) in bound {
        let (router, limits, stop) = (router.clone(), app.security.config.http, stop_rx.clone());
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
        app.engine.gauges().max_concurrent,
        app.engine.gauges().queue_size
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
    let gauges = app.engine.gauges();
    let (running, queued) = (gauges.running, gauges.queued);
    let timeout_ms = u64::try_from(app.config.drain_timeout.as_millis()).unwrap_or(u64::MAX);
    tracing::info!(running, queued, timeout_ms, "draining");
    if let Some(n) = notifier {
        n.send(&format!(
            "STOPPING=1\nSTATUS=draining: {running} running, {queued} queued"
        ));
    }
    app.engine.start_drain();
    let deadline = Instant::now() + app.config.drain_timeout;
    let mut killed = 0;
    if !app.engine.wait_idle(deadline).await {
        killed = app.engine.gauges().running;
        tracing::warn!(
            killed,
            "drain deadline passed; killing the remaining sandboxes"
        );
        app.engine.kill_all();
        app.engine
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
        if app.engine.spawner().alive() {
            n.send("WATCHDOG=1");
        } else {
            tracing::error!("the sandbox launcher is gone; withholding the watchdog ping");
        }
    }
}
