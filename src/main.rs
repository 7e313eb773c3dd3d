//! The `stockade` binary: parse the command line, set up logging, dispatch.

use std::process::ExitCode;

use clap::Parser;
use stockade::cli;

fn main() -> ExitCode {
    // Pipes created later must never take descriptor numbers 0-2.
    stockade::sys::ensure_stdio_open();
    // A panic in a forked child (launcher, worker, sandbox) ends that child; the service itself
    // unwinds and answers 500 (src/daemon/panic.rs).
    stockade::daemon::panic::guard_forks();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Help and version are successes; usage errors are "stockade itself failed" (125).
            return if e.use_stderr() {
                ExitCode::from(125)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // The service logs JSON lines when not on a terminal (journald, log shippers); one-shot
    // commands log plain text, since their stderr also carries the payload's.
    let serve = matches!(cli.command, cli::Command::Serve(_));
    let filter = cli
        .log
        .clone()
        .unwrap_or_else(|| if serve { "info" } else { "warn" }.into());
    init_tracing(&filter, serve);
    match cli::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stockade: error: {e:#}");
            ExitCode::from(125)
        }
    }
}

fn init_tracing(filter: &str, json: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Keys, tokens and registered secrets never reach a log line (docs/security-service.md).
        .with_writer(stockade::daemon::security::redact::Redacting(
            std::io::stderr,
        ));
    if json && !std::io::stderr().is_terminal() {
        builder.json().init();
    } else {
        let ansi = std::io::stderr().is_terminal();
        builder
            .without_time()
            .with_target(false)
            .with_ansi(ansi)
            .init();
    }
}
