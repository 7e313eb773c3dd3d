//! The command line: one file per subcommand, each an args struct plus `run(args)`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod check;
pub mod doctor;
pub mod key;
pub mod profile;
pub mod rootfs;
pub mod run;
pub mod serve;

/// stockade: run untrusted code in a fresh Linux sandbox and report a verdict.
#[derive(Debug, Parser)]
#[command(name = "stockade", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `debug` or `stockade=trace` [default: `info`
    /// for serve, `warn` otherwise].
    #[arg(long, global = true, env = "STOCKADE_LOG")]
    pub log: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Analyse code before running it: findings by rule and severity under a preset (advisory).
    Check(check::CheckArgs),
    /// Check what this host can enforce and which profiles can run (OK / DEGRADED / MISSING).
    Doctor(doctor::DoctorArgs),
    /// API keys for `stockade serve`: generate one, or hash one read from standard input.
    Key(key::KeyArgs),
    /// List, show and validate profiles.
    Profile(profile::ProfileArgs),
    /// Check and list root filesystems.
    Rootfs(rootfs::RootfsArgs),
    /// Run one command inside a fresh sandbox.
    Run(Box<run::RunArgs>),
    /// Serve sandboxed execution over HTTP (native API, Piston v2 compatible API, metrics).
    Serve(Box<serve::ServeArgs>),
}

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Key(args) => key::run(args),
        Command::Profile(args) => profile::run(args),
        Command::Rootfs(args) => rootfs::run(args),
        Command::Run(args) => run::run(*args),
        Command::Serve(args) => serve::run(*args),
    }
}
