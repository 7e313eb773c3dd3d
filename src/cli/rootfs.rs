//! `stockade rootfs`: check and list root filesystem directories.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::policy::{Policy, RootFs};
use crate::rootfs::{self, CheckStatus, Report};
use crate::sandbox::{self, RunOptions};
use crate::verdict::Status;

/// Check and list root filesystems built by scripts/build-rootfs.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  scripts/build-rootfs debian-python\n  stockade rootfs verify rootfs/out/debian-python --require python3 --require node\n  stockade rootfs list\n\nReference: docs/rootfs.md"
)]
pub struct RootfsArgs {
    #[command(subcommand)]
    pub command: RootfsCommand,
}

#[derive(Debug, Subcommand)]
pub enum RootfsCommand {
    /// Check a rootfs: mountpoints (proc, dev, tmp, sandbox), interpreters present, built for this
    /// machine and running in a sandbox on the tree, no setuid/setgid files, no world-writable
    /// directories without the sticky bit. Exit status 1 when a check fails.
    Verify {
        /// A directory, or the name of a built rootfs (see `stockade rootfs list`).
        rootfs: String,
        /// An interpreter that must be present (repeatable); `sh` is always required.
        #[arg(long, value_name = "PROGRAM")]
        require: Vec<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Do not run the interpreters found (in a sandbox on the rootfs); check files only.
        #[arg(long)]
        no_run: bool,
    },
    /// List named root filesystems (/var/lib/stockade/rootfs, then rootfs/out of the source tree).
    List,
}

pub fn run(args: RootfsArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        RootfsCommand::Verify {
            rootfs,
            require,
            json,
            no_run,
        } => verify(&rootfs, require, json, !no_run),
        RootfsCommand::List => {
            let dirs = rootfs::default_dirs();
            let found = rootfs::list(&dirs);
            if found.is_empty() {
                let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                println!(
                    "no rootfs found in {}; build one with scripts/build-rootfs NAME",
                    searched.join(", ")
                );
            }
            for (name, path) in found {
                println!("{name:<20} {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn verify(spec: &str, mut require: Vec<String>, json: bool, run: bool) -> anyhow::Result<ExitCode> {
    let dir = locate(spec)?;
    if !require.iter().any(|r| r == "sh") {
        require.insert(0, "sh".into());
    }
    let mut report = rootfs::verify(&dir, &require)
        .with_context(|| format!("verify rootfs {}", dir.display()))?;
    if run {
        run_interpreters(&dir, &mut report)?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A path if it exists (or looks like one), else a rootfs name.
fn locate(spec: &str) -> anyhow::Result<PathBuf> {
    if spec.contains('/') || Path::new(spec).exists() {
        return Ok(PathBuf::from(spec));
    }
    let dirs = rootfs::default_dirs();
    match rootfs::find(spec, &dirs) {
        Some(dir) => Ok(dir),
        None => {
            let searched: Vec<String> = dirs
                .iter()
                .map(|d| d.join(spec).display().to_string())
                .collect();
            bail!(
                "rootfs `{spec}` not found (looked in {}); build it with scripts/build-rootfs {spec}",
                searched.join(", ")
            )
        }
    }
}

/// Run every interpreter the file checks found, in a sandbox whose root is `dir`: proves the tree
/// works read-only with the sandbox's mounts, not just that the files are there.
fn run_interpreters(dir: &Path, report: &mut Report) -> anyhow::Result<()> {
    let root =
        std::fs::canonicalize(dir).with_context(|| format!("canonicalize {}", dir.display()))?;
    let found: Vec<String> = report
        .checks
        .iter()
        .filter(|c| c.status == CheckStatus::Ok)
        .filter_map(|c| c.name.strip_prefix("interpreter ").map(str::to_string))
        .collect();
    for name in found {
        let mut policy = Policy {
            profile: "rootfs-verify".into(),
            argv: rootfs::version_probe(&name),
            rootfs: RootFs::Dir(root.clone()),
            ..Policy::default()
        };
        policy.limits.wall = Some(Duration::from_secs(20));
        let opts = RunOptions::default();
        let v = sandbox::run(&policy, &opts);
        let first = |data: &str| data.lines().next().unwrap_or_default().to_string();
        let label = format!("runs {name}");
        match v.status {
            Status::Ok => report.push(CheckStatus::Ok, label, first(&v.stdout.data)),
            // The host cannot start a sandbox: that says nothing about the tree.
            Status::SetupFailed => {
                let why = v.message.unwrap_or_default();
                let msg = format!("not run: the sandbox could not start on this host: {why}");
                report.push(CheckStatus::Warn, label, msg);
            }
            other => {
                let detail = v.message.unwrap_or_else(|| first(&v.stderr.data));
                report.push(
                    CheckStatus::Fail,
                    label,
                    format!("{}: {detail}", other.as_str()),
                );
            }
        }
    }
    Ok(())
}
