//! `stockade check`: pre-execution policy analysis of a file or standard input.
//!
//! Exit codes: 0 safe, 1 unsafe (a finding at or above the threshold), 2 error (unreadable
//! input, unknown preset or language, invalid rules file). The analysis is advisory defence in
//! depth; the sandbox is the security boundary.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;

use crate::analysis::{self, Language, Preset, Report, Severity};

#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 safe, 1 unsafe, 2 error. The analysis is advisory; \
                        the sandbox is the security boundary."
)]
pub struct CheckArgs {
    /// File to analyse, or `-` for standard input.
    #[arg(value_name = "FILE", default_value = "-")]
    pub file: PathBuf,
    /// Preset (minimal, development, production, educational, data_science, web_scraping,
    /// strict) or a TOML rules file [default: production].
    #[arg(long, short = 'p', value_name = "PRESET")]
    pub preset: Option<String>,
    /// TOML file with custom rules and overrides, applied on top of the preset.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Language: python, javascript or shell [default: from the file extension, then the
    /// content].
    #[arg(long, short = 'l', value_name = "LANGUAGE")]
    pub language: Option<String>,
    /// Override the preset's threshold: safe, low, medium or high.
    #[arg(long, value_name = "SEVERITY")]
    pub threshold: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// List the built-in presets and their rules, then exit.
    #[arg(long)]
    pub list_presets: bool,
    /// Analyse the input N times and print timings instead of findings.
    #[arg(long, value_name = "N")]
    pub bench: Option<u32>,
}

/// Exit status for an analysis that could not be done.
const EXIT_ERROR: u8 = 2;

pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    match check(&args) {
        Ok(code) => Ok(code),
        Err(e) => {
            if args.json {
                println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
            }
            eprintln!("stockade check: {e:#}");
            Ok(ExitCode::from(EXIT_ERROR))
        }
    }
}

fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    if args.list_presets {
        return list_presets(args.json);
    }
    let code = read_input(&args.file)?;
    let language = match &args.language {
        Some(name) => Language::from_name(name)
            .ok_or_else(|| analysis::AnalysisError::UnknownLanguage { name: name.clone() })?,
        None => Language::from_path(&args.file).unwrap_or_else(|| Language::guess(&code)),
    };
    let preset = build_preset(args)?;
    if let Some(n) = args.bench {
        return bench(&code, language, &preset, n, args.json);
    }
    let report = analysis::analyze(&code, language, &preset);
    if args.json {
        let out = JsonReport {
            file: display_name(&args.file),
            report: &report,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", render(&display_name(&args.file), &report));
    }
    Ok(ExitCode::from(u8::from(!report.safe)))
}

fn read_input(path: &Path) -> anyhow::Result<String> {
    let bytes = if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("read code from standard input")?;
        buf
    } else {
        std::fs::read(path).with_context(|| format!("read {}", path.display()))?
    };
    // Invalid UTF-8 is analysed as replacement characters: the parse error it causes is a
    // finding, never a refusal to analyse.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn build_preset(args: &CheckArgs) -> anyhow::Result<Preset> {
    let mut preset = match (&args.preset, &args.rules) {
        (Some(spec), Some(_)) if spec.ends_with(".toml") || spec.contains('/') => {
            bail!("--rules applies on top of a built-in preset; `{spec}` is a rules file")
        }
        (spec, Some(rules)) => analysis::load_rules(rules, spec.as_deref())?,
        (Some(spec), None) => analysis::load_preset(spec)?,
        (None, None) => analysis::preset(analysis::DEFAULT_PRESET)?,
    };
    if let Some(name) = &args.threshold {
        let threshold = Severity::from_name(name).with_context(|| {
            format!("unknown threshold `{name}` (expected safe, low, medium or high)")
        })?;
        preset = preset.with_threshold(threshold);
    }
    Ok(preset)
}

fn display_name(path: &Path) -> String {
    if path == Path::new("-") {
        "<stdin>".into()
    } else {
        path.display().to_string()
    }
}

#[derive(Serialize)]
struct JsonReport<'a> {
    file: String,
    #[serde(flatten)]
    report: &'a Report,
}

/// The human report: a verdict line, then one block per finding.
fn render(name: &str, report: &Report) -> String {
    let verdict = if report.safe { "safe" } else { "unsafe" };
    let blocking = report.blocking().count();
    let total = report.findings.len();
    let mut out = format!(
        "{name}: {verdict} ({} under preset {}, threshold {}): ",
        report.language, report.preset, report.threshold
    );
    out.push_str(&match (total, blocking) {
        (0, _) => "no findings\n".to_string(),
        (t, b) => format!("{t} finding{}, {b} at or above the threshold\n", plural(t)),
    });
    for f in &report.findings {
        let mark = if f.severity >= report.threshold {
            "!"
        } else {
            " "
        };
        out.push_str(&format!(
            "{mark} {}:{}:{}: {:<6} {}: {}\n      {}\n",
            name, f.line, f.column, f.severity, f.rule, f.message, f.excerpt
        ));
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn list_presets(json: bool) -> anyhow::Result<ExitCode> {
    let presets = analysis::preset_names()
        .into_iter()
        .map(analysis::preset)
        .collect::<Result<Vec<_>, _>>()?;
    if json {
        let list: Vec<_> = presets
            .iter()
            .map(|p| {
                let mut rules: Vec<(&str, Severity)> =
                    p.rules().iter().map(|r| (r.id.as_str(), r.severity)).collect();
                rules.dedup();
                serde_json::json!({
                    "name": p.name(),
                    "description": p.description(),
                    "threshold": p.threshold(),
                    "rules": rules.into_iter().map(|(id, s)| serde_json::json!({"id": id, "severity": s})).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    for p in &presets {
        println!(
            "{} (threshold {}): {}",
            p.name(),
            p.threshold(),
            p.description()
        );
        let mut rules: Vec<(&str, Severity)> = p
            .rules()
            .iter()
            .map(|r| (r.id.as_str(), r.severity))
            .collect();
        rules.dedup();
        for (id, severity) in rules {
            let mark = if severity >= p.threshold() {
                "blocks"
            } else {
                "warns"
            };
            println!("    {severity:<6} {id} ({mark})");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--bench N`: wall-clock timings of `analyze` on this input (and of parsing alone), so the
/// analysis budget (10 KB in at most 1 ms median) can be checked on the machine at hand.
fn bench(
    code: &str,
    language: Language,
    preset: &Preset,
    n: u32,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if n == 0 {
        bail!("--bench needs at least one iteration");
    }
    // Warm-up: the first call builds the parser and the preset's rule index.
    let findings = analysis::analyze(code, language, preset).findings.len();
    let mut total = Vec::with_capacity(n as usize);
    let mut parse = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let start = Instant::now();
        std::hint::black_box(analysis::parse_only(code, language));
        parse.push(start.elapsed());
        let start = Instant::now();
        std::hint::black_box(analysis::analyze(code, language, preset));
        total.push(start.elapsed());
    }
    let (t, p) = (Stats::of(&mut total), Stats::of(&mut parse));
    if json {
        let out = serde_json::json!({
            "bytes": code.len(), "language": language, "preset": preset.name(),
            "iterations": n, "findings": findings,
            "analyze_us": t.json(), "parse_us": p.json(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{} bytes of {language}, preset {}, {findings} findings, {n} runs\n  \
             analyze: median {} µs, p90 {} µs, min {} µs\n  \
             parse:   median {} µs, p90 {} µs, min {} µs",
            code.len(),
            preset.name(),
            t.median,
            t.p90,
            t.min,
            p.median,
            p.p90,
            p.min
        );
    }
    Ok(ExitCode::SUCCESS)
}

struct Stats {
    min: u128,
    median: u128,
    p90: u128,
}

impl Stats {
    fn of(samples: &mut [Duration]) -> Self {
        samples.sort_unstable();
        let at = |q: usize| samples[(samples.len() - 1) * q / 100].as_micros();
        Stats {
            min: at(0),
            median: at(50),
            p90: at(90),
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({ "min": self.min, "median": self.median, "p90": self.p90 })
    }
}
