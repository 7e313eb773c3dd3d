//! `stockade serve`: the host service. A fork-server launcher (forked before the tokio runtime)
//! starts every sandbox; tokio + axum serve the native API (`/v1`), the Piston v2 compatible API,
//! health, readiness and metrics, with bounded concurrency and a bounded queue. docs/service.md
//! is the operator's reference; docs/architecture.md ("The service") maps the modules.
//!
//! Folders, each with one door: `engine` (from a request to a run), `http` (server, layers,
//! rendering), `security` (who may call, how fast, what is recorded), `launcher` (the fork
//! server and its wire); the adapters `native` and `piston` translate their wire formats to
//! engine requests and back.

mod app;
pub mod config;
mod engine;
mod http;
pub mod launcher;
mod metrics;
mod native;
mod notify;
mod piston;
mod route;
pub mod security;
mod semver;

use std::sync::Arc;

use anyhow::Context;

pub use config::{Config, Listen};
pub use http::panic;

/// Run the service until SIGTERM/SIGINT with a launcher forked (`launcher::Launcher::fork`)
/// before the configuration was read. Must be called while the process is single-threaded: the
/// launcher is configured first, then the tokio runtime is built.
pub fn serve(config: Config, launcher: launcher::Pending) -> anyhow::Result<()> {
    config
        .security
        .check_listen(&config.listen)
        .map_err(anyhow::Error::msg)?;
    let security =
        security::layer::Security::new(config.security.clone()).context("open the audit log")?;
    let launcher = launcher
        .configure(config.cgroup.clone())
        .context("start the sandbox launcher")?;
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("stockade-serve")
        .enable_all()
        .build()
        .context("build the tokio runtime")?;
    runtime.block_on(async move {
        let app = Arc::new(app::App::new(config, launcher, security));
        let mut apis = vec![native::api()];
        if app.config.piston.enabled {
            apis.push(piston::api());
        }
        let router = http::router(Arc::clone(&app), apis);
        http::server::run(app, router).await
    })
}
