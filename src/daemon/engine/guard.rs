//! The engine's guards around a run: authorization of a resolved request against the caller's
//! grant, the circuit breaker around starting a sandbox, the result cache around a whole run, and
//! the hooks through which a finished run reports its verdict (audit) and set-up outcome
//! (breaker).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::error::{EngineError, Kind};
use super::limits::Blame;
use super::plan::{Ask, Prepared};
use super::run::{Collected, Run, RunParts};
use super::{Caller, Engine};
use crate::daemon::security::audit::Pending;
use crate::daemon::security::authz::Asked;
use crate::daemon::security::breaker::{Outcome, Ticket};
use crate::daemon::security::cache::{self, Cache, Source};
use crate::daemon::security::config::CacheMode;
use crate::profile::{CodeInput, Profile};
use crate::verdict::{Status, Verdict};

impl Engine {
    fn forbidden(&self, caller: &Caller, message: String) -> EngineError {
        self.counters.forbidden.fetch_add(1, Ordering::Relaxed);
        caller.note(|r| r.reject("forbidden", &message));
        EngineError::new(Kind::Forbidden, message)
    }

    /// Refused with `forbidden` unless the caller was granted `profile` (for requests other than
    /// a run, e.g. the pre-flight check alone).
    pub fn check_granted(&self, caller: &Caller, profile: &str) -> Result<(), EngineError> {
        caller
            .grant
            .check_profile(&caller.principal.name, profile)
            .map_err(|d| self.forbidden(caller, d.0))
    }

    /// Authorize `ask` under `profile` for the caller: the profile must be granted, explicit
    /// limits within the grant (`forbidden` otherwise); the profile's limits are capped at the
    /// grant, and a granted `skip_check` lets the request lower the pre-flight mode. Records
    /// profile and code digest. Runs before planning, so a request learns nothing about a
    /// profile it may not use beyond its existence.
    pub(super) fn authorize(
        &self,
        caller: &Caller,
        profile: &mut Profile,
        ask: &Ask,
    ) -> Result<(), EngineError> {
        caller.note(|r| {
            r.profile = Some(profile.name.clone());
            match &ask.input {
                CodeInput::Code { code, .. } => r.code(&[code.as_bytes()]),
                CodeInput::Files { files, .. } => {
                    let parts: Vec<&[u8]> = files.iter().map(|f| f.contents.as_slice()).collect();
                    r.code(&parts);
                }
                CodeInput::Args(args) => r.code(&[args.join("\0").as_bytes()]),
            }
        });
        let who = &caller.principal.name;
        caller
            .grant
            .check_profile(who, &profile.name)
            .map_err(|d| self.forbidden(caller, d.0))?;
        let l = &ask.limits;
        let asked = Asked {
            wall: l.wall,
            cpu: l.cpu,
            memory: l.memory,
            pids: l.pids,
            output: l.output,
        };
        caller
            .grant
            .apply(who, &asked, &mut profile.policy)
            .map_err(|d| self.forbidden(caller, d.0))?;
        if let Some(mode) = ask.check {
            if caller.grant.skip_check && mode < profile.policy.analysis.mode {
                profile.policy.analysis.mode = mode;
            }
        }
        Ok(())
    }

    /// Admission and the spawner behind the circuit breaker: refused with `sandbox_unavailable`
    /// while it is open; a launcher failure counts as a set-up failure.
    pub(super) async fn start(
        &self,
        caller: &Caller,
        prepared: Prepared,
        queue_timeout: Duration,
        request_id: &str,
    ) -> Result<Run, EngineError> {
        let ticket = self.breaker.admit().map_err(|wait| {
            self.counters.breaker_refused.fetch_add(1, Ordering::Relaxed);
            let msg =
                "sandbox set-up is failing on this host; the service refuses runs until it recovers";
            caller.note(|r| r.reject("sandbox_unavailable", msg));
            EngineError::new(Kind::SandboxUnavailable, msg).retry_after(wait.as_secs().max(1))
        })?;
        let output_cap = usize::try_from(prepared.job.policy.limits.output.saturating_mul(2))
            .unwrap_or(usize::MAX);
        let analysis = prepared.job.policy.analysis.clone();
        let blame = Blame::new(&prepared.job.files, prepared.tightened);
        let Prepared {
            profile,
            job,
            report,
            ..
        } = prepared;
        match self.admit_and_spawn(job, queue_timeout, request_id).await {
            Ok((exec, slot)) => Ok(Run::new(
                exec,
                RunParts {
                    slot,
                    spawner: Arc::clone(&self.spawner),
                    metrics: Arc::clone(&self.metrics),
                    kill: self.kill.subscribe(),
                    request_id: request_id.to_string(),
                    profile,
                    report,
                    analysis,
                    output_cap,
                    hooks: RunHooks {
                        ticket: Some(ticket),
                        audit: caller.audit.clone(),
                    },
                    blame,
                },
            )),
            Err(e) => {
                if e.kind == Kind::Unavailable {
                    ticket.record(Outcome::SetupFailed);
                }
                Err(e)
            }
        }
    }

    /// Run to completion, through the result cache when the profile and the caller opt in. The
    /// second value is the `Cache-Status` value when the cache was consulted.
    pub(super) async fn run_cached(
        &self,
        caller: &Caller,
        prepared: Prepared,
        queue_timeout: Duration,
        request_id: &str,
    ) -> Result<(Collected, Option<String>), EngineError> {
        let Some((cache, shared)) = self.cache_for(caller, &prepared.profile) else {
            let run = self
                .start(caller, prepared, queue_timeout, request_id)
                .await?;
            return Ok((run.collect().await?, None));
        };
        let scope = if shared {
            "*"
        } else {
            caller.principal.name.as_str()
        };
        let key = job_key(scope, &prepared);
        let size = |c: &Collected| {
            c.output.len() + c.verdict.stdout.data.len() + c.verdict.stderr.data.len() + 2048
        };
        let keep =
            |c: &Collected| !matches!(c.verdict.status, Status::SetupFailed | Status::TimeoutWall);
        let lookup = cache
            .get_or_run(key, size, keep, || async move {
                let run = self
                    .start(caller, prepared, queue_timeout, request_id)
                    .await?;
                run.collect().await
            })
            .await?;
        let source = lookup.source;
        caller.note(|r| {
            r.cache = Some(match source {
                Source::Hit => "hit",
                Source::Joined => "joined",
                Source::Miss => "miss",
            });
            if source != Source::Miss {
                r.verdict(&lookup.value.verdict);
            }
        });
        let status = source.cache_status(lookup.stored, lookup.ttl_left);
        Ok((lookup.value.as_ref().clone(), Some(status)))
    }

    fn cache_for(&self, caller: &Caller, profile: &str) -> Option<(&Cache<Collected>, bool)> {
        let (cache, conf) = self.cache.as_ref()?;
        let wanted = match conf.mode {
            CacheMode::Request => caller.cache == Some(true),
            CacheMode::Always => caller.cache != Some(false),
        };
        (wanted && conf.profiles.iter().any(|p| p == profile)).then_some((cache, conf.shared))
    }

    /// Prometheus lines for the engine's guards: refusals, the breaker and the cache.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let c = &self.counters;
        let counters = [
            (
                "stockade_forbidden_total",
                "Requests refused with 403.",
                &c.forbidden,
            ),
            (
                "stockade_breaker_refused_total",
                "Runs refused with 503 while the circuit breaker was open.",
                &c.breaker_refused,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let state = self.breaker.state();
        let _ = writeln!(
            out,
            "# HELP stockade_breaker_state Circuit breaker state (1 for the current one).\n# TYPE stockade_breaker_state gauge"
        );
        for s in ["closed", "open", "half_open"] {
            let _ = writeln!(
                out,
                "stockade_breaker_state{{state=\"{s}\"}} {}",
                u8::from(s == state)
            );
        }
        if let Some((cache, _)) = &self.cache {
            let (entries, bytes) = cache.usage();
            let st = &cache.stats;
            let _ = writeln!(
                out,
                "# HELP stockade_cache_lookups_total Result cache lookups by outcome.\n# TYPE stockade_cache_lookups_total counter\nstockade_cache_lookups_total{{result=\"hit\"}} {}\nstockade_cache_lookups_total{{result=\"joined\"}} {}\nstockade_cache_lookups_total{{result=\"miss\"}} {}\n# HELP stockade_cache_entries Stored results.\n# TYPE stockade_cache_entries gauge\nstockade_cache_entries {entries}\n# HELP stockade_cache_bytes Memory held by stored results.\n# TYPE stockade_cache_bytes gauge\nstockade_cache_bytes {bytes}",
                st.hits.load(Ordering::Relaxed),
                st.joins.load(Ordering::Relaxed),
                st.misses.load(Ordering::Relaxed)
            );
        }
    }
}

/// What a `Run` reports back when it ends: the verdict to the audit record, the set-up outcome
/// to the circuit breaker.
pub struct RunHooks {
    ticket: Option<Ticket>,
    audit: Option<Arc<Pending>>,
}

impl RunHooks {
    /// The run ended with `v`; `host_failure` says a set-up failure was the host's (only those
    /// count towards the breaker: a request whose files cannot be laid out must not close the
    /// service for everyone).
    pub fn finished(mut self, v: &Verdict, host_failure: bool) {
        if let Some(t) = self.ticket.take() {
            t.record(match v.status {
                Status::SetupFailed if host_failure => Outcome::SetupFailed,
                Status::SetupFailed => Outcome::Refused,
                _ => Outcome::Started,
            });
        }
        if let Some(a) = &self.audit {
            a.with(|r| r.verdict(v));
        }
    }

    /// The worker ended without a verdict; `host_failure` when nothing shows the sandbox started
    /// (the launcher died, or a worker failed before any output).
    pub fn lost(mut self, host_failure: bool) {
        if let Some(t) = self.ticket.take() {
            t.record(if host_failure {
                Outcome::SetupFailed
            } else {
                Outcome::Started
            });
        }
    }
}

/// The cache key: the scope (principal or shared), the fully resolved policy (the profile's
/// content with the request's limits, environment and command), the files and stdin.
fn job_key(scope: &str, p: &Prepared) -> cache::Key {
    let policy = serde_json::to_vec(&p.job.policy).unwrap_or_default();
    let mut parts: Vec<&[u8]> = vec![scope.as_bytes(), &policy, &p.job.stdin];
    let names: Vec<String> = p
        .job
        .files
        .iter()
        .map(|(path, _)| path.display().to_string())
        .collect();
    for ((_, data), name) in p.job.files.iter().zip(&names) {
        parts.push(name.as_bytes());
        parts.push(data);
    }
    cache::key(&parts)
}
