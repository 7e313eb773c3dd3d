//! `stockade doctor`: what this host can enforce and which profiles can run, as a table or JSON.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::doctor::{self, Check, ProbeOptions, ProfileReport, Report, Status};

/// Check what this host can enforce: user namespaces, Landlock, seccomp, cgroup limits and their
/// delegation, a fresh /proc, clone3/pidfd, and the interpreters in the host root; then which
/// profiles can run. Each line is OK, DEGRADED or MISSING, with the fix.
///
/// Runs one sandbox (`true` under the embedded default policy) and creates one test cgroup; leaves
/// nothing behind. Exit status 1 when the default policy (`stockade run -- CMD`) cannot run, else
/// 0.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  stockade doctor\n  stockade doctor --json | jq '.checks[] | select(.status != \"OK\")'\n  stockade doctor --cgroup-root /sys/fs/cgroup/stockade.slice/work\n\nReference: docs/doctor.md"
)]
pub struct DoctorArgs {
    /// Print one JSON object: checks (id, status, summary, detail, fix, affects), profiles and
    /// the raw facts.
    #[arg(long)]
    pub json: bool,
    /// Also show the detail of lines that are OK.
    #[arg(long, short)]
    pub verbose: bool,
    /// Check this delegated cgroup v2 directory, as `stockade run --cgroup-root` would use it.
    #[arg(long, value_name = "PATH")]
    pub cgroup_root: Option<PathBuf>,
}

pub fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let opts = ProbeOptions {
        cgroup_root: args.cgroup_root.clone(),
    };
    let report = doctor::classify(&doctor::gather(&opts));
    if args.json {
        let json = serde_json::to_string_pretty(&report).context("serialize the report")?;
        println!("{json}");
    } else {
        let stdout = std::io::stdout();
        let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
        print!("{}", render(&report, args.verbose, color));
    }
    Ok(ExitCode::from(report.exit_code()))
}

/// Text wider than this is wrapped (with a hanging indent).
const WIDTH: usize = 100;
/// Width of the CHECK column.
const ID_WIDTH: usize = 9;
/// Width of the STATUS column.
const STATUS_WIDTH: usize = 9;

/// The human-readable report: the checks table, then the profiles table.
pub fn render(report: &Report, verbose: bool, color: bool) -> String {
    let mut out = String::new();
    let total = report.facts.timings_us.get("total").copied().unwrap_or(0) / 1000;
    let _ = writeln!(
        out,
        "stockade doctor: Linux {}, uid {}, {total} ms\n",
        report.kernel, report.uid
    );
    let _ = writeln!(
        out,
        "{:ID_WIDTH$} {:STATUS_WIDTH$} SUMMARY",
        "CHECK", "STATUS"
    );
    for c in &report.checks {
        render_check(&mut out, c, verbose, color);
    }
    out.push('\n');
    render_profiles(&mut out, &report.profiles);
    out.push('\n');
    let _ = writeln!(
        out,
        "{}",
        match report.default_profile_runs {
            true => "The default policy runs on this host (exit 0).",
            false => "The default policy cannot run on this host (exit 1); see the MISSING lines.",
        }
    );
    out
}

fn paint(status: Status, color: bool) -> String {
    let text = format!("{:STATUS_WIDTH$}", status.as_str());
    if !color {
        return text;
    }
    let code = match status {
        Status::Ok => "32",
        Status::Degraded => "33",
        Status::Missing => "31",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

fn render_check(out: &mut String, c: &Check, verbose: bool, color: bool) {
    let indent = ID_WIDTH + STATUS_WIDTH + 2;
    let summary = wrap(&c.summary, indent, WIDTH);
    let _ = writeln!(
        out,
        "{:ID_WIDTH$} {} {}",
        c.id,
        paint(c.status, color),
        summary
    );
    if c.status == Status::Ok && !verbose {
        return;
    }
    let mut field = |label: &str, text: &str| {
        if !text.is_empty() {
            let head = format!("{:indent$}{label:<9}", "");
            let body = wrap(text, head.len(), WIDTH);
            let _ = writeln!(out, "{head}{body}");
        }
    };
    field("detail:", &c.detail);
    field("fix:", c.fix.as_deref().unwrap_or(""));
    field("affects:", &c.affects.join(", "));
}

fn render_profiles(out: &mut String, profiles: &[ProfileReport]) {
    let name_w = profiles
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let cmd_w = profiles
        .iter()
        .map(|p| p.command.as_deref().map_or(1, str::len))
        .max()
        .unwrap_or(7)
        .max(7);
    let _ = writeln!(out, "{:name_w$} RUNS {:cmd_w$} NOTES", "PROFILE", "COMMAND");
    let indent = name_w + cmd_w + 7;
    for p in profiles {
        let notes: Vec<String> = match p.runs {
            true => p
                .weaker
                .iter()
                .map(|r| format!("weaker ({}): {}", r.check, r.reason))
                .collect(),
            false => p
                .blocked_by
                .iter()
                .map(|r| format!("{}: {}", r.check, r.reason))
                .collect(),
        };
        let row = format!(
            "{:name_w$} {:4} {:cmd_w$} {}",
            p.name,
            if p.runs { "yes" } else { "no" },
            p.command.as_deref().unwrap_or("-"),
            wrap(&notes.join("; "), indent, WIDTH)
        );
        let _ = writeln!(out, "{}", row.trim_end());
    }
}

/// Word-wrap `text` to `width` columns, assuming it starts at column `indent`; continuation
/// lines are indented by `indent`.
pub fn wrap(text: &str, indent: usize, width: usize) -> String {
    let room = width.saturating_sub(indent).max(20);
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > room {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines.join(&format!("\n{:indent$}", ""))
}
