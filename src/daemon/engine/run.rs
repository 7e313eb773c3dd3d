//! A started run: the handle the engine gives back. Await it (`collect`), stream its events
//! (`next`), or leave it running in the registry (`Engine::detach`). Dropping it before the
//! verdict kills the sandbox.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use super::admission::Slot;
use super::error::{EngineError, Kind};
use super::guard::RunHooks;
use super::limits::Blame;
use super::spawner::{Execution, Spawner};
use crate::daemon::launcher::Event;
use crate::daemon::metrics::Metrics;
use crate::policy::AnalysisPolicy;
use crate::verdict::{PolicyReport, Status, Verdict};

/// A job that has a slot and a worker.
pub struct Run {
    exec: Box<dyn Execution>,
    _slot: Slot,
    spawner: Arc<dyn Spawner>,
    metrics: Arc<Metrics>,
    kill: watch::Receiver<bool>,
    started: Instant,
    request_id: String,
    profile: String,
    report: Option<PolicyReport>,
    /// The profile's module and function lists, for the run-time guards' findings.
    analysis: AnalysisPolicy,
    /// Both output caps together: the most `collect` keeps of the interleaved output.
    output_cap: usize,
    finished: bool,
    killed: bool,
    /// Reports the end of the run to the breaker and the audit record.
    hooks: Option<RunHooks>,
    /// Judges a set-up failure: the request's or the host's.
    blame: Blame,
    /// Output arrived, so the sandbox was set up and ran.
    ran: bool,
}

/// What `Run` needs besides the execution itself.
pub(super) struct RunParts {
    pub slot: Slot,
    pub spawner: Arc<dyn Spawner>,
    pub metrics: Arc<Metrics>,
    pub kill: watch::Receiver<bool>,
    pub request_id: String,
    pub profile: String,
    pub report: Option<PolicyReport>,
    pub analysis: AnalysisPolicy,
    pub output_cap: usize,
    pub hooks: RunHooks,
    pub blame: Blame,
}

/// A finished run: the verdict, plus stdout and stderr interleaved in arrival order (bounded by
/// the two output caps), which Piston's `output` needs.
#[derive(Debug, Clone)]
pub struct Collected {
    pub verdict: Verdict,
    pub output: Vec<u8>,
}

impl Run {
    pub(super) fn new(exec: Box<dyn Execution>, p: RunParts) -> Run {
        Run {
            exec,
            _slot: p.slot,
            spawner: p.spawner,
            metrics: p.metrics,
            kill: p.kill,
            started: Instant::now(),
            request_id: p.request_id,
            profile: p.profile,
            report: p.report,
            analysis: p.analysis,
            output_cap: p.output_cap,
            finished: false,
            killed: false,
            hooks: Some(p.hooks),
            blame: p.blame,
            ran: false,
        }
    }

    /// The profile the run uses (its canonical name).
    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// The next event; `Ok(None)` after the verdict. Errors when the drain deadline kills the run
    /// or the worker dies without a verdict.
    pub async fn next(&mut self) -> Result<Option<Event>, EngineError> {
        if self.finished || self.killed {
            return Ok(None);
        }
        let event = tokio::select! {
            biased;
            _ = self.kill.wait_for(|k| *k) => {
                self.killed = true;
                let msg = "the sandbox was killed: the service is shutting down";
                return Err(EngineError::new(Kind::Draining, msg).retry_after(5));
            }
            e = self.exec.next() => e,
        };
        match event {
            Some(Event::Finished(v)) => Ok(Some(Event::Finished(self.finish(v)))),
            Some(e) => {
                self.ran = true;
                Ok(Some(e))
            }
            None => Err(self.lost()),
        }
    }

    fn finish(&mut self, mut v: Box<Verdict>) -> Box<Verdict> {
        self.finished = true;
        self.metrics
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
        v
    }

    /// The worker ended without a verdict.
    fn lost(&mut self) -> EngineError {
        self.finished = true;
        if !self.spawner.alive() {
            tracing::error!(request_id = %self.request_id, "the sandbox launcher died during the run");
            if let Some(h) = self.hooks.take() {
                h.lost(true);
            }
            return super::unavailable();
        }
        // After output the sandbox had been set up: the verdict was lost on the way (a worker
        // that gave up on a reader too slow to take its output), which says nothing about the
        // host.
        if let Some(h) = self.hooks.take() {
            h.lost(!self.ran);
        }
        EngineError::internal(
            &self.request_id,
            &"the sandbox worker ended without a verdict",
        )
    }

    /// Run to the end: the verdict and the interleaved output.
    pub async fn collect(mut self) -> Result<Collected, EngineError> {
        let cap = self.output_cap;
        let mut output = Vec::new();
        while let Some(event) = self.next().await? {
            match event {
                Event::Stdout(b) | Event::Stderr(b) => {
                    let room = cap.saturating_sub(output.len());
                    output.extend_from_slice(b.get(..room).unwrap_or(&b));
                }
                Event::Finished(v) => {
                    return Ok(Collected {
                        verdict: *v,
                        output,
                    });
                }
            }
        }
        Err(EngineError::internal(
            &self.request_id,
            &"the run ended without a verdict",
        ))
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if !self.finished && !self.killed {
            self.metrics.disconnect();
            tracing::info!(request_id = %self.request_id, "client went away; sandbox killed");
        }
    }
}
