//! `stockade profile`: list, show and validate profiles.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::policy::Policy;
use crate::profile::{self, Profile, ProfileInfo};

/// List, show and validate profiles (built in, /etc/stockade/profiles, or a path).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  stockade profile list\n  stockade profile show python\n  stockade profile show python --preset data_science\n  stockade profile validate ./my.toml\n\nReference: docs/profiles.md"
)]
pub struct ProfileArgs {
    #[command(subcommand)]
    pub command: ProfileCommand,
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List every profile by name, with where it comes from and what it is for.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a profile's description, inheritance chain and effective policy (as a profile).
    Show {
        /// Profile name or path (a path contains `/` or ends in `.toml`).
        profile: String,
        /// A security preset on top of the language profile, as `stockade run --preset` applies
        /// it: `stockade profile show python --preset data_science`.
        #[arg(long, value_name = "NAME|PATH")]
        preset: Option<String>,
        /// Print JSON (the policy as the runtime sees it) instead of TOML.
        #[arg(long)]
        json: bool,
    },
    /// Check profiles; prints one line per profile. Exit status 1 if any is invalid.
    Validate {
        /// Profile names or paths.
        #[arg(required = true)]
        profiles: Vec<String>,
    },
}

pub fn run(args: ProfileArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ProfileCommand::List { json } => list(json),
        ProfileCommand::Show {
            profile,
            preset,
            json,
        } => show(&profile, preset.as_deref(), json),
        ProfileCommand::Validate { profiles } => Ok(validate(&profiles)),
    }
}

fn list(json: bool) -> anyhow::Result<ExitCode> {
    let infos = profile::list();
    if json {
        println!("{}", serde_json::to_string_pretty(&infos)?);
        return Ok(ExitCode::SUCCESS);
    }
    let width = infos.iter().map(|i| i.name.len()).max().unwrap_or(4).max(4);
    println!("{:<width$}  {:<10}  DESCRIPTION", "NAME", "COMMAND");
    for info in &infos {
        println!(
            "{:<width$}  {:<10}  {}",
            info.name,
            command_label(info),
            summary(info)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn command_label(info: &ProfileInfo) -> String {
    match info.command.first() {
        Some(cmd) => cmd.clone(),
        None if info.error.is_some() => "(invalid)".into(),
        None => "(preset)".into(),
    }
}

/// The first sentence of the description (or the error), for one table row.
fn summary(info: &ProfileInfo) -> String {
    if let Some(err) = &info.error {
        return err.clone();
    }
    let first = info.description.split(". ").next().unwrap_or_default();
    let mut text = first.trim_end_matches('.').to_string();
    if info.source != "built-in" {
        text.push_str(&format!(" [{}]", info.source));
    }
    text
}

#[derive(Serialize)]
struct ShowJson<'a> {
    name: &'a str,
    description: &'a str,
    aliases: &'a [String],
    source: &'a str,
    chain: &'a [String],
    policy: &'a Policy,
}

fn show(name: &str, preset: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let p: Profile = profile::load_with_preset(name, preset).with_context(|| match preset {
        Some(preset) => format!("load profile `{name}` with preset `{preset}`"),
        None => format!("load profile `{name}`"),
    })?;
    if json {
        let out = ShowJson {
            name: &p.name,
            description: &p.description,
            aliases: &p.aliases,
            source: &p.source,
            chain: &p.chain,
            policy: &p.policy,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("# {} ({})", p.name, p.source);
    println!("# inherits: {}", p.chain.join(" -> "));
    if !p.aliases.is_empty() {
        println!("# aliases: {}", p.aliases.join(", "));
    }
    for line in wrap(&p.description, 96) {
        println!("# {line}");
    }
    println!();
    print!("{}", profile::render_policy(&p.policy));
    Ok(ExitCode::SUCCESS)
}

fn validate(names: &[String]) -> ExitCode {
    let mut ok = true;
    for name in names {
        match profile::load(name) {
            Ok(p) => println!(
                "ok: {name} ({}; inherits {})",
                p.source,
                p.chain.join(" -> ")
            ),
            Err(e) => {
                ok = false;
                eprintln!("invalid: {:#}", anyhow::Error::new(e));
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().filter(|l| l.len() + word.len() < width);
        match line {
            Some(l) if !l.is_empty() => {
                l.push(' ');
                l.push_str(word);
            }
            Some(l) => l.push_str(word),
            None => lines.push(word.to_string()),
        }
    }
    lines
}
