//! `stockade serve`: run the HTTP service (native API, Piston v2 compatible API, health, metrics).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::cgroup::BackendKind;
use crate::daemon::config::{self, Config};
use crate::units::{parse_duration, parse_size};

/// Serve sandboxed execution over HTTP on TCP and/or a Unix socket.
///
/// Settings come from the config file (default /etc/stockade/stockade.toml when it exists), then
/// the flags. SIGTERM drains (stop accepting, let running sandboxes finish until the drain timeout,
/// kill the rest); SIGHUP reloads the profiles. Under systemd (Type=notify) it reports READY,
/// STOPPING and watchdog pings. See docs/service.md.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  stockade serve\n  stockade serve --listen 127.0.0.1:2000 --listen unix:/run/stockade/api.sock\n  stockade serve --config /etc/stockade/stockade.toml --check-config\n  curl -s localhost:2000/v1/execute -d '{\"profile\":\"python\",\"code\":\"print(1)\"}'"
)]
pub struct ServeArgs {
    /// Config file (TOML; see dist/config/stockade.toml).
    #[arg(long, short = 'c', value_name = "FILE", env = "STOCKADE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    pub check_config: bool,
    /// Listen address, repeatable: IP:PORT or unix:/PATH (replaces the config's addresses).
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<String>,
    /// Sandboxes running at once (default: from cores and memory).
    #[arg(long, value_name = "N")]
    pub max_concurrent: Option<usize>,
    /// Requests allowed to wait for a sandbox slot (default 64); beyond that: 429.
    #[arg(long, value_name = "N")]
    pub queue_size: Option<usize>,
    /// Longest wait for a slot, e.g. 10s; beyond that: 503.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub queue_timeout: Option<Duration>,
    /// Largest request body, e.g. 1MiB.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_body: Option<u64>,
    /// How long SIGTERM lets running sandboxes finish, e.g. 30s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub drain_timeout: Option<Duration>,
    /// Profile directory searched before the built-ins (repeatable; replaces the config's).
    #[arg(long, value_name = "DIR")]
    pub profile_dir: Vec<PathBuf>,
    /// Cgroup v2 subtree for the sandbox groups (must be writable, e.g. delegated).
    #[arg(long, value_name = "PATH")]
    pub cgroup_root: Option<PathBuf>,
    /// Limit backend: auto, v2, v1 or none (rlimits only).
    #[arg(long, value_name = "BACKEND")]
    pub cgroup_backend: Option<String>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = load(&args)?;
    if args.check_config {
        // What `serve` itself would refuse (an unauthenticated address beyond loopback, a
        // listener that ignores the configured credentials).
        config
            .security
            .check_listen(&config.listen)
            .map_err(anyhow::Error::msg)?;
        println!(
            "configuration ok: listen {}; {} sandboxes at once, queue {} ({} timeout)",
            config
                .listen
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            config.max_concurrent,
            config.queue_size,
            crate::units::format_duration(config.queue_timeout)
        );
        print!("{}", config.security.describe(&config.listen));
        return Ok(ExitCode::SUCCESS);
    }
    crate::daemon::serve(config)?;
    Ok(ExitCode::SUCCESS)
}

/// The config file (an explicit one must exist; the default one may not), then the flags.
fn load(args: &ServeArgs) -> anyhow::Result<Config> {
    let default = PathBuf::from(config::DEFAULT_PATH);
    let mut c = match &args.config {
        Some(path) => Config::from_file(path)?,
        None if default.exists() => Config::from_file(&default)?,
        None => Config::default(),
    };
    if !args.listen.is_empty() {
        c.listen = args
            .listen
            .iter()
            .map(|l| config::parse_listen(l).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?;
    }
    if let Some(n) = args.max_concurrent {
        anyhow::ensure!(n > 0, "--max-concurrent must be at least 1");
        c.max_concurrent = n;
    }
    c.queue_size = args.queue_size.unwrap_or(c.queue_size);
    c.queue_timeout = args.queue_timeout.unwrap_or(c.queue_timeout);
    if let Some(b) = args.max_body {
        c.max_body = usize::try_from(b).context("--max-body is too large")?;
    }
    c.drain_timeout = args.drain_timeout.unwrap_or(c.drain_timeout);
    if !args.profile_dir.is_empty() {
        c.profile_dirs.clone_from(&args.profile_dir);
    }
    if let Some(root) = &args.cgroup_root {
        c.cgroup.root = Some(root.clone());
    }
    match args.cgroup_backend.as_deref() {
        None => {}
        Some("auto") => c.cgroup.force = None,
        Some(b) => c.cgroup.force = Some(b.parse::<BackendKind>().map_err(anyhow::Error::msg)?),
    }
    Ok(c)
}
