//! `stockade key`: API keys for `stockade serve`. `new` prints a fresh random key (once) with
//! the id and SHA-256 hash that go into the configuration; `hash` prints the hash of a key read
//! from standard input (never from the command line, where `ps` and shell history would see it).

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::daemon::security::keys;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  stockade key new --principal ci\n  stockade key new --json\n  printf %s \"$KEY\" | stockade key hash\n\nOnly the hash is stored (in [[auth.keys]] of stockade.toml or a keys file); see docs/security-service.md."
)]
pub struct KeyArgs {
    #[command(subcommand)]
    pub command: KeyCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a random API key and print it with its id and hash.
    New {
        /// Principal the key authenticates as [default: key:<id>].
        #[arg(long, value_name = "NAME")]
        principal: Option<String>,
        /// Print JSON instead of text and a TOML snippet.
        #[arg(long)]
        json: bool,
    },
    /// Print the SHA-256 hash of a key read from standard input (surrounding whitespace ignored).
    Hash,
}

pub fn run(args: KeyArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        KeyCommand::New { principal, json } => new(principal, json),
        KeyCommand::Hash => hash(),
    }
}

fn new(principal: Option<String>, json: bool) -> anyhow::Result<ExitCode> {
    if let Some(p) = &principal {
        if !keys::valid_principal(p) {
            bail!(
                "--principal {p:?}: use 1-128 printable ASCII characters without quotes or backslashes"
            );
        }
    }
    let k = keys::generate().context("generate an API key")?;
    let principal = principal.unwrap_or_else(|| format!("key:{}", k.id));
    if json {
        let out = serde_json::json!({
            "key": k.key, "id": k.id, "sha256": k.sha256, "principal": principal,
        });
        println!("{out}");
    } else {
        println!("key:       {}", k.key);
        println!("id:        {}", k.id);
        println!("sha256:    {}", k.sha256);
        println!("principal: {principal}");
        println!();
        println!("# The key is shown only now; give it to the client. Add this to stockade.toml:");
        println!("[[auth.keys]]");
        println!("id = \"{}\"", k.id);
        println!("sha256 = \"{}\"", k.sha256);
        println!("principal = \"{principal}\"");
    }
    Ok(ExitCode::SUCCESS)
}

fn hash() -> anyhow::Result<ExitCode> {
    let mut text = String::new();
    std::io::stdin()
        .take(u64::try_from(keys::MAX_KEY_LEN).unwrap_or(512) + 2)
        .read_to_string(&mut text)
        .context("read the key from standard input")?;
    let key = text.trim();
    if key.is_empty() {
        bail!("no key on standard input");
    }
    if key.len() > keys::MAX_KEY_LEN {
        bail!("the key is longer than {} bytes", keys::MAX_KEY_LEN);
    }
    println!("{}", keys::hash(key));
    Ok(ExitCode::SUCCESS)
}
