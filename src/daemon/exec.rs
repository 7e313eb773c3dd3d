//! From a request to a verdict, whatever API it came through: resolve the profile's policy with
//! the request's limits (never above the profile's), build the job, run the pre-flight analysis,
//! wait for a slot, hand the job to the launcher, and follow its events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::admission::{Refusal, Slot};
use super::app::App;
use super::error::{ApiError, Code};
use super::launcher::{Event, Job, Run};
use super::security::layer::RunHooks;
use super::{limits, preflight};
use crate::policy::{AnalysisMode, AnalysisPolicy, Policy};
use crate::profile::{CodeInput, Profile, ProfileError};
use crate::verdict::{PolicyReport, Status, Verdict};

/// Strength of a mode: off < warn < enforce.
fn rank(mode: AnalysisMode) -> u8 {
    match mode {
        AnalysisMode::Off => 0,
        AnalysisMode::Warn => 1,
        AnalysisMode::Enforce => 2,
    }
}

pub fn mode_name(mode: AnalysisMode) -> &'static str {
    match mode {
        AnalysisMode::Off => "off",
        AnalysisMode::Warn => "warn",
        AnalysisMode::Enforce => "enforce",
    }
}

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
pub fn plan(profile: &Profile, ask: Ask) -> Result<Plan, ApiError> {
    let mut policy = profile.policy.clone();
    apply_limits(&mut policy, &ask.limits)?;
    apply_compile_limits(&mut policy, &ask.compile)?;
    apply_env(&mut policy, &ask.env)?;
    if let Some(mode) = ask.check {
        if rank(mode) < rank(policy.analysis.mode) {
            let msg = format!(
                "profile `{}` runs the pre-flight analysis in `{}` mode; a request cannot lower it to `{}`",
                profile.name,
                mode_name(policy.analysis.mode),
                mode_name(mode)
            );
            return Err(ApiError::new(Code::CheckRequired, msg));
        }
        policy.analysis.mode = mode;
    }
    let invocation = crate::profile::invocation(&policy, ask.input).map_err(|e| match e {
        ProfileError::NoCommand(name) => ApiError::new(
            Code::InvalidRequest,
            format!(
                "profile `{name}` is a preset without an interpreter: give a language with the preset on top (`\"profile\": \"python\", \"preset\": \"{name}\"`) or the command in `args`"
            ),
        ),
        other => ApiError::new(Code::InvalidRequest, other.to_string()),
    })?;
    let (files, code_stdin) = invocation.apply(&mut policy);
    if code_stdin.is_some() && ask.stdin.is_some() {
        let msg = format!(
            "profile `{}` reads the code from standard input, so `stdin` cannot be given too",
            profile.name
        );
        return Err(ApiError::new(Code::InvalidRequest, msg));
    }
    let stdin = code_stdin.or(ask.stdin).unwrap_or_default();
    let files: Vec<_> = files.into_iter().map(|f| (f.target, f.contents)).collect();
    // Everything the request decides about the sandbox's set-up is checked here, so set-up
    // failures left over are the host's, never the request's (see `Prepared::tightened`).
    limits::check_files(&files, &policy)?;
    limits::check_exec(&policy.argv, &policy.env)?;
    let tightened = ask.limits.memory.is_some() || ask.limits.pids.is_some();
    let report = match preflight::analyze(&policy, &profile.name, &files, &stdin)? {
        preflight::Outcome::Run(report) => report,
        preflight::Outcome::Refuse(report) => {
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

fn apply_limits(policy: &mut Policy, ask: &LimitAsk) -> Result<(), ApiError> {
    let l = &mut policy.limits;
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let max_time = ms(limits::MAX_TIME);
    check_max("limits.wall_ms", ask.wall.map(ms), l.wall.map(ms), max_time)?;
    check_max("limits.cpu_ms", ask.cpu.map(ms), l.cpu.map(ms), max_time)?;
    check_max(
        "limits.memory_bytes",
        ask.memory,
        l.memory,
        limits::MAX_MEMORY,
    )?;
    check_max("limits.pids", ask.pids, l.pids, limits::MAX_PIDS)?;
    check_max("limits.output_bytes", ask.output, Some(l.output), l.output)?;
    if let Some(c) = ask.cpus {
        let over = l.cpus.is_some_and(|max| c > max);
        if !(c.is_finite() && c >= limits::MIN_CPUS) || over {
            let max = l.cpus.map_or("unlimited".to_string(), |m| m.to_string());
            let msg = format!(
                "`limits.cpus` must be a number of cores from {} up to the profile's maximum ({max})",
                limits::MIN_CPUS
            );
            return Err(ApiError::new(Code::LimitExceedsProfile, msg));
        }
        l.cpus = Some(c);
    }
    l.wall = ask.wall.or(l.wall);
    l.cpu = ask.cpu.or(l.cpu);
    l.memory = ask.memory.or(l.memory);
    l.pids = ask.pids.or(l.pids);
    l.output = ask.output.unwrap_or(l.output);
    Ok(())
}

/// The compile stage's limits a request asks for, within the profile's compile stage.
fn apply_compile_limits(policy: &mut Policy, ask: &LimitAsk) -> Result<(), ApiError> {
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
            return Err(ApiError::new(Code::InvalidRequest, msg));
        }
        return Ok(());
    };
    let l = &mut stage.limits;
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let max_time = ms(limits::MAX_TIME);
    check_max(
        "compile_limits.wall_ms",
        ask.wall.map(ms),
        l.wall.map(ms),
        max_time,
    )?;
    check_max(
        "compile_limits.cpu_ms",
        ask.cpu.map(ms),
        l.cpu.map(ms),
        max_time,
    )?;
    check_max(
        "compile_limits.memory_bytes",
        ask.memory,
        l.memory,
        limits::MAX_MEMORY,
    )?;
    check_max("compile_limits.pids", ask.pids, l.pids, limits::MAX_PIDS)?;
    check_max(
        "compile_limits.output_bytes",
        ask.output,
        Some(l.output),
        l.output,
    )?;
    l.wall = ask.wall.or(l.wall);
    l.cpu = ask.cpu.or(l.cpu);
    l.memory = ask.memory.or(l.memory);
    l.pids = ask.pids.or(l.pids);
    l.output = ask.output.unwrap_or(l.output);
    Ok(())
}

/// `asked` must be positive and at most the profile's `max`, or the service's `ceiling` where
/// the profile has no maximum.
fn check_max(
    field: &str,
    asked: Option<u64>,
    max: Option<u64>,
    ceiling: u64,
) -> Result<(), ApiError> {
    match (asked, max) {
        (Some(0), _) => Err(ApiError::new(
            Code::InvalidRequest,
            format!("`{field}` must be positive (leave it out for the profile's value)"),
        )),
        (Some(a), Some(m)) if a > m => Err(ApiError::new(
            Code::LimitExceedsProfile,
            format!("`{field}` {a} exceeds the profile's maximum of {m}"),
        )),
        (Some(a), None) if a > ceiling => Err(ApiError::new(
            Code::LimitExceedsProfile,
            format!("`{field}` {a} exceeds the service's maximum of {ceiling}"),
        )),
        _ => Ok(()),
    }
}

fn apply_env(policy: &mut Policy, env: &[(String, String)]) -> Result<(), ApiError> {
    for (k, v) in env {
        if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
            let msg = format!(
                "`env`: invalid variable {k:?}: names are non-empty without `=` or NUL, values without NUL"
            );
            return Err(ApiError::new(Code::InvalidRequest, msg));
        }
        policy.set_env(k, v);
    }
    Ok(())
}

/// A job that has a slot and a worker. Dropping it before the verdict kills the sandbox.
pub struct Running {
    run: Run,
    _slot: Slot,
    app: Arc<App>,
    kill: watch::Receiver<bool>,
    started: Instant,
    request_id: String,
    report: Option<PolicyReport>,
    /// The profile's module and function lists, for the run-time guards' findings.
    analysis: AnalysisPolicy,
    /// Both output caps together: the most `collect` keeps of the interleaved output.
    output_cap: usize,
    finished: bool,
    killed: bool,
    /// Reports the end of the run to the security layer (audit record, circuit breaker).
    hooks: Option<RunHooks>,
    /// Judges a set-up failure: the request's or the host's.
    blame: limits::Blame,
    /// Output arrived, so the sandbox was set up and ran.
    ran: bool,
}

/// Wait for a slot (at most `queue_timeout`) and start the job.
pub async fn start(
    app: &Arc<App>,
    prepared: Prepared,
    queue_timeout: Duration,
    request_id: &str,
) -> Result<Running, ApiError> {
    if app.draining() {
        return Err(refused(app, Refusal::Draining));
    }
    let (slot, waited) = app
        .admission
        .admit(queue_timeout)
        .await
        .map_err(|r| refused(app, r))?;
    app.metrics.queue_wait(waited);
    if !app.launcher.alive() {
        app.metrics.refused("unavailable");
        return Err(unavailable());
    }
    let output_cap =
        usize::try_from(prepared.job.policy.limits.output.saturating_mul(2)).unwrap_or(usize::MAX);
    let analysis = prepared.job.policy.analysis.clone();
    let blame = limits::Blame::new(&prepared.job.files, prepared.tightened);
    let run = app.launcher.spawn(prepared.job).await.map_err(|e| {
        tracing::error!(request_id, "launcher: {e}");
        app.metrics.refused("unavailable");
        unavailable()
    })?;
    Ok(Running {
        run,
        _slot: slot,
        app: Arc::clone(app),
        kill: app.kill_switch(),
        started: Instant::now(),
        request_id: request_id.to_string(),
        report: prepared.report,
        analysis,
        output_cap,
        finished: false,
        killed: false,
        hooks: None,
        blame,
        ran: false,
    })
}

fn unavailable() -> ApiError {
    ApiError::new(Code::Unavailable, "the sandbox launcher is not running").retry_after(5)
}

fn refused(app: &App, r: Refusal) -> ApiError {
    match r {
        Refusal::QueueFull { retry_after } => {
            app.metrics.refused("queue_full");
            let msg = "every sandbox slot is busy and the queue is full; retry later";
            ApiError::new(Code::QueueFull, msg).retry_after(retry_after)
        }
        Refusal::QueueTimeout { retry_after } => {
            app.metrics.refused("queue_timeout");
            let msg = "no sandbox slot became free within the queue timeout; retry later";
            ApiError::new(Code::QueueTimeout, msg).retry_after(retry_after)
        }
        Refusal::Draining => {
            app.metrics.refused("draining");
            ApiError::new(Code::Draining, "the service is shutting down").retry_after(5)
        }
    }
}

impl Running {
    /// Have the security layer told how the run ends.
    pub fn attach(&mut self, hooks: RunHooks) {
        self.hooks = Some(hooks);
    }

    /// The next event; `Ok(None)` after the verdict. Errors when the drain deadline kills the run
    /// or the worker dies without a verdict.
    pub async fn next(&mut self) -> Result<Option<Event>, ApiError> {
        if self.finished || self.killed {
            return Ok(None);
        }
        let event = tokio::select! {
            biased;
            _ = self.kill.wait_for(|k| *k) => {
                self.killed = true;
                let msg = "the sandbox was killed: the service is shutting down";
                return Err(ApiError::new(Code::Draining, msg).retry_after(5));
            }
            e = self.run.next() => e,
        };
        match event {
            Some(Event::Finished(mut v)) => {
                self.finished = true;
                self.app
                    .metrics
                    .verdict(v.status.as_str(), self.started.elapsed());
                let mut host_failure = false;
                if v.status == Status::SetupFailed {
                    let detail = v.message.take().unwrap_or_default();
                    host_failure = !self.blame.caused_by_request(&detail);
                    tracing::error!(request_id = %self.request_id, host_failure, "sandbox set-up failed: {detail}");
                    v.message = Some(format!(
                        "sandbox set-up failed; the service log has the details under request id {}",
                        self.request_id
                    ));
                }
                if v.policy.is_none() {
                    v.policy = self.report.take();
                }
                crate::guard::add_findings(&self.analysis, &mut v);
                if let Some(h) = self.hooks.take() {
                    h.finished(&v, host_failure);
                }
                Ok(Some(Event::Finished(v)))
            }
            Some(e) => {
                self.ran = true;
                Ok(Some(e))
            }
            None if !self.app.launcher.alive() => {
                self.finished = true;
                tracing::error!(request_id = %self.request_id, "the sandbox launcher died during the run");
                if let Some(h) = self.hooks.take() {
                    h.lost(true);
                }
                Err(unavailable())
            }
            None => {
                self.finished = true;
                // After output the sandbox had been set up: the verdict was lost on the way (a
                // worker that gave up on a reader too slow to take its output), which says
                // nothing about the host.
                if let Some(h) = self.hooks.take() {
                    h.lost(!self.ran);
                }
                Err(ApiError::internal(
                    &self.request_id,
                    &"the sandbox worker ended without a verdict",
                ))
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.finished && !self.killed {
            self.app.metrics.disconnect();
            tracing::info!(request_id = %self.request_id, "client went away; sandbox killed");
        }
    }
}

/// A finished run: the verdict, plus stdout and stderr interleaved in arrival order (bounded by
/// the two output caps), which Piston's `output` needs.
pub struct Collected {
    pub verdict: Verdict,
    pub output: Vec<u8>,
}

pub async fn collect(mut running: Running) -> Result<Collected, ApiError> {
    let cap = running.output_cap;
    let mut output = Vec::new();
    while let Some(event) = running.next().await? {
        match event {
            Event::Stdout(b) | Event::Stderr(b) => {
                let room = cap.saturating_sub(output.len());
                output.extend_from_slice(&b[..b.len().min(room)]);
            }
            Event::Finished(v) => {
                return Ok(Collected {
                    verdict: *v,
                    output,
                });
            }
        }
    }
    Err(ApiError::internal(
        &running.request_id,
        &"the run ended without a verdict",
    ))
}
