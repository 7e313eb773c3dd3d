//! `stockade rootfs`: check and list root filesystem directories.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::rootfs;

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
    /// Check a rootfs: mountpoints (proc, dev, tmp, sandbox), interpreters present and built for
    /// this machine, no setuid/setgid files, no world-writable directories without the sticky bit.
    /// Exit status 1 when a check fails.
    Verify {
        /// A directory, or the name of a built rootfs (see `stockade rootfs list`).
        rootfs: String,
        /// An interpreter that must be present (repeatable); `sh` is always required.
        #[arg(long, value_name = "PROGRAM")]
        require: Vec<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
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
        } => verify(&rootfs, require, json),
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

fn verify(spec: &str, mut require: Vec<String>, json: bool) -> anyhow::Result<ExitCode> {
    let dir = locate(spec)?;
    if !require.iter().any(|r| r == "sh") {
        require.insert(0, "sh".into());
    }
    let report = rootfs::verify(&dir, &require)
        .with_context(|| format!("verify rootfs {}", dir.display()))?;
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
