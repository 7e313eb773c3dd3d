//! From a request to a job: resolve the profile's policy with the request's limits (never above
//! the profile's) and environment, lay out the code, and run the pre-flight analysis. Pure: no
//! I/O, no clock, so every refusal is unit-tested.

use std::time::Duration;

use super::error::{EngineError, Kind};
use super::limits;
use crate::analysis::{Preflight, Scope};
use crate::daemon::launcher::Job;
use crate::policy::{AnalysisMode, Policy};
use crate::profile::{CodeInput, Profile, ProfileError};
use crate::verdict::{PolicyReport, Status, Verdict};

/// Limits a request asks for; each must stay within the profile's.
#[derive(Debug, Clone, Default)]
pub struct LimitAsk {
    pub wall: Option<Duration>,
    pub cpu: Option<Duration>,
    pub memory: Option<u64>,
    pub pids: Option<u64>,
    pub cpus: Option<f64>,
    pub output: Option<u64>,
}

/// What a request asks for, API-neutral.
#[derive(Debug, Clone)]
pub struct Ask {
    pub input: CodeInput,
    pub stdin: Option<Vec<u8>>,
    pub env: Vec<(String, String)>,
    pub limits: LimitAsk,
    /// Limits of the compile stage (wall, cpu, memory, pids, output); each must stay within the
    /// profile's compile stage, and a profile without one takes none.
    pub compile: LimitAsk,
    /// Pre-flight analysis mode; `None` keeps the profile's.
    pub check: Option<AnalysisMode>,
}

/// A job ready to run.
#[derive(Debug)]
pub struct Prepared {
    pub profile: String,
    pub job: Job,
    /// The pre-flight report (warn mode, or enforce mode and safe), merged into the verdict.
    pub report: Option<PolicyReport>,
    /// The request lowered the memory or task limit: a sandbox that dies during set-up may have
    /// run out of what the request left it, so the failure is not the host's.
    pub tightened: bool,
}

#[derive(Debug)]
pub enum Plan {
    Run(Box<Prepared>),
    /// Refused by the pre-flight analysis: the answer is this verdict.
    Refuse {
        profile: String,
        verdict: Box<Verdict>,
    },
}

/// Resolve `ask` under `profile` into a job, or a refusal.
pub fn plan(profile: &Profile, ask: Ask) -> Result<Plan, EngineError> {
    let mut policy = profile.policy.clone();
    apply_limits(&mut policy, &ask.limits)?;
    apply_compile_limits(&mut policy, &ask.compile)?;
    apply_env(&mut policy, &ask.env)?;
    if let Some(mode) = ask.check {
        if mode < policy.analysis.mode {
            let msg = format!(
                "profile `{}` runs the pre-flight analysis in `{}` mode; a request cannot lower it to `{}`",
                profile.name,
                policy.analysis.mode.as_str(),
                mode.as_str()
            );
            return Err(EngineError::new(Kind::CheckRequired, msg));
        }
        policy.analysis.mode = mode;
    }
    let invocation = crate::profile::invocation(&policy, ask.input).map_err(|e| match e {
        ProfileError::NoCommand(name) => EngineError::new(
            Kind::InvalidRequest,
            format!(
                "profile `{name}` is a preset without an interpreter: give a language with the preset on top (`\"profile\": \"python\", \"preset\": \"{name}\"`) or the command in `args`"
            ),
        ),
        other => EngineError::new(Kind::InvalidRequest, other.to_string()),
    })?;
    let (files, code_stdin) = invocation.apply(&mut policy);
    if code_stdin.is_some() && ask.stdin.is_some() {
        let msg = format!(
            "profile `{}` reads the code from standard input, so `stdin` cannot be given too",
            profile.name
        );
        return Err(EngineError::new(Kind::InvalidRequest, msg));
    }
    let stdin = code_stdin.or(ask.stdin).unwrap_or_default();
    let files: Vec<_> = files.into_iter().map(|f| (f.target, f.contents)).collect();
    // Everything the request decides about the sandbox's set-up is checked here, so set-up
    // failures left over are the host's, never the request's (see `Prepared::tightened`).
    limits::check_files(&files, &policy)?;
    limits::check_exec(&policy.argv, &policy.env)?;
    let tightened = ask.limits.memory.is_some() || ask.limits.pids.is_some();
    let stdin_code = Some(stdin.as_slice());
    let report = match crate::analysis::preflight(&policy, &files, stdin_code, Scope::AllFiles) {
        Ok(Preflight::Off | Preflight::NoCode { enforced: false }) => None,
        Ok(Preflight::NoCode { enforced: true }) => {
            let msg = format!(
                "profile `{}` enforces the pre-flight analysis: give the code as `code` or `files`",
                profile.name
            );
            return Err(EngineError::new(Kind::InvalidRequest, msg));
        }
        Ok(Preflight::Pass(report)) => Some(report),
        Ok(Preflight::Refuse(report)) => {
            let mut v = Verdict::not_started(
                Status::RejectedByPolicy,
                policy.limits.clone(),
                report.rejection_message(),
            );
            v.policy = Some(report);
            return Ok(Plan::Refuse {
                profile: profile.name.clone(),
                verdict: Box::new(v),
            });
        }
        Err(e) => {
            return Err(EngineError::internal(
                "-",
                &format_args!("pre-flight analysis of profile `{}`: {e}", profile.name),
            ));
        }
    };
    Ok(Plan::Run(Box::new(Prepared {
        profile: profile.name.clone(),
        job: Job {
            policy,
            files,
            stdin,
        },
        report,
        tightened,
    })))
}

fn apply_limits(policy: &mut Policy, ask: &LimitAsk) -> Result<(), EngineError> {
    let l = &mut policy.limits;
    within_maxima(
        "limits",
        ask,
        [&mut l.wall, &mut l.cpu],
        [&mut l.memory, &mut l.pids],
        &mut l.output,
    )?;
    if let Some(c) = ask.cpus {
        let over = l.cpus.is_some_and(|max| c > max);
        if !(c.is_finite() && c >= limits::MIN_CPUS) || over {
            let max = l.cpus.map_or("unlimited".to_string(), |m| m.to_string());
            let msg = format!(
                "`limits.cpus` must be a number of cores from {} up to the profile's maximum ({max})",
                limits::MIN_CPUS
            );
            return Err(EngineError::new(Kind::LimitExceedsProfile, msg));
        }
        l.cpus = Some(c);
    }
    Ok(())
}

/// The compile stage's limits a request asks for, within the profile's compile stage.
fn apply_compile_limits(policy: &mut Policy, ask: &LimitAsk) -> Result<(), EngineError> {
    let asked = ask.wall.is_some()
        || ask.cpu.is_some()
        || ask.memory.is_some()
        || ask.pids.is_some()
        || ask.output.is_some();
    let Some(stage) = policy.compile.as_mut() else {
        if asked {
            let msg = format!(
                "profile `{}` has no compile stage, so it takes no compile limits",
                policy.profile
            );
            return Err(EngineError::new(Kind::InvalidRequest, msg));
        }
        return Ok(());
    };
    let l = &mut stage.limits;
    within_maxima(
        "compile_limits",
        ask,
        [&mut l.wall, &mut l.cpu],
        [&mut l.memory, &mut l.pids],
        &mut l.output,
    )
}

/// Compile limits that are a client's defaults (`Request::lenient_compile`): wall time, CPU time
/// and memory lowered to `policy`'s compile stage; nothing for a profile without one.
pub(super) fn clamp_compile(policy: &Policy, asked: &LimitAsk) -> LimitAsk {
    let Some(stage) = &policy.compile else {
        return LimitAsk::default();
    };
    let l = &stage.limits;
    let min_d = |a: Option<Duration>, m: Option<Duration>| a.map(|a| m.map_or(a, |m| a.min(m)));
    LimitAsk {
        wall: min_d(asked.wall, l.wall),
        cpu: min_d(asked.cpu, l.cpu),
        memory: asked.memory.map(|a| l.memory.map_or(a, |m| a.min(m))),
        ..LimitAsk::default()
    }
}

/// Check the times, sizes and counts a request asks for against the profile's (`wall`, `cpu`;
/// `memory`, `pids`; `output`) or the service's ceilings, then put them in place.
fn within_maxima(
    prefix: &str,
    ask: &LimitAsk,
    [wall, cpu]: [&mut Option<Duration>; 2],
    [memory, pids]: [&mut Option<u64>; 2],
    output: &mut u64,
) -> Result<(), EngineError> {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let max_time = ms(limits::MAX_TIME);
    let field = |name: &str| format!("{prefix}.{name}");
    check_max(&field("wall_ms"), ask.wall.map(ms), wall.map(ms), max_time)?;
    check_max(&field("cpu_ms"), ask.cpu.map(ms), cpu.map(ms), max_time)?;
    check_max(
        &field("memory_bytes"),
        ask.memory,
        *memory,
        limits::MAX_MEMORY,
    )?;
    check_max(&field("pids"), ask.pids, *pids, limits::MAX_PIDS)?;
    check_max(&field("output_bytes"), ask.output, Some(*output), *output)?;
    *wall = ask.wall.or(*wall);
    *cpu = ask.cpu.or(*cpu);
    *memory = ask.memory.or(*memory);
    *pids = ask.pids.or(*pids);
    *output = ask.output.unwrap_or(*output);
    Ok(())
}

/// `asked` must be positive and at most the profile's `max`, or the service's `ceiling` where
/// the profile has no maximum.
fn check_max(
    field: &str,
    asked: Option<u64>,
    max: Option<u64>,
    ceiling: u64,
) -> Result<(), EngineError> {
    match (asked, max) {
        (Some(0), _) => Err(EngineError::new(
            Kind::InvalidRequest,
            format!("`{field}` must be positive (leave it out for the profile's value)"),
        )),
        (Some(a), Some(m)) if a > m => Err(EngineError::new(
            Kind::LimitExceedsProfile,
            format!("`{field}` {a} exceeds the profile's maximum of {m}"),
        )),
        (Some(a), None) if a > ceiling => Err(EngineError::new(
            Kind::LimitExceedsProfile,
            format!("`{field}` {a} exceeds the service's maximum of {ceiling}"),
        )),
        _ => Ok(()),
    }
}

fn apply_env(policy: &mut Policy, env: &[(String, String)]) -> Result<(), EngineError> {
    for (k, v) in env {
        if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
            let msg = format!(
                "`env`: invalid variable {k:?}: names are non-empty without `=` or NUL, values without NUL"
            );
            return Err(EngineError::new(Kind::InvalidRequest, msg));
        }
        policy.set_env(k, v);
    }
    Ok(())
}
