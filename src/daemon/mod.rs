//! `stockade serve`: the host service. A fork-server launcher (forked before the tokio runtime)
//! starts every sandbox; tokio + axum serve the native API (`/v1`), the Piston v2 compatible API,
//! health, readiness and metrics, with bounded concurrency and a bounded queue. docs/service.md
//! is the operator's reference.

mod admission;
mod app;
mod catalog;
pub mod config;
mod error;
mod exec;
pub mod launcher;
mod limits;
mod metrics;
mod native;
mod notify;
pub mod panic;
mod piston;
mod preflight;
pub mod security;
mod semver;
mod server;
mod stream;

use std::sync::Arc;

use anyhow::Context;

pub use config::{Config, Listen};

/// Run the service until SIGTERM/SIGINT. Must be called while the process is single-threaded:
/// the launcher is forked first, then the tokio runtime is built.
pub fn serve(config: Config) -> anyhow::Result<()> {
    config
        .security
        .check_listen(&config.listen)
        .map_err(anyhow::Error::msg)?;
    let security = security::layer::Security::new(config.security.clone(), config.max_body)
        .context("open the audit log")?;
    let launcher =
        launcher::Launcher::start(config.cgroup.clone()).context("start the sandbox launcher")?;
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("stockade-serve")
        .enable_all()
        .build()
        .context("build the tokio runtime")?;
    runtime.block_on(async move {
        let app = Arc::new(app::App::new(config, launcher, security));
        server::run(app).await
    })
}
