//! The engine: one entry point from an API-neutral request to a run, whatever door it came
//! through (the native API, Piston, later Judge0, MCP over stdio, a review approver).
//!
//! `Engine::submit(&Caller, Request)` does, in this order (the order is the security model):
//! profile lookup (`unknown_profile`) → authorization against the caller's grant (`forbidden`;
//! the grant caps the profile's limits) → planning: limits, environment, code layout, pre-flight
//! analysis (`invalid_request`, `limit_exceeds_profile`, `check_required`, or a
//! `rejected_by_policy` verdict) → result cache → circuit breaker (`sandbox_unavailable`) →
//! admission (`queue_full`, `queue_timeout`, `draining`) → a `Spawner` starts the sandbox. Metrics
//! and the caller's audit record are fed on the way.
//!
//! Others may use: `Engine`, `Caller`, `Request`, `Delivery`, `Submitted`, `Run`, `Collected`,
//! `RunId`, `RunState`, `Event`, `EngineError`/`Kind`, `Ask`/`LimitAsk`, `Spawner`/`Execution` and
//! the catalog's types. The engine imports `security` (grants, audit records, breaker, cache) and the
//! launcher's job types; it never imports `http` or an API adapter, and `EngineError` knows no
//! HTTP: each adapter maps it to its wire shape.

mod admission;
pub mod catalog;
mod error;
mod guard;
pub mod limits;
mod plan;
mod registry;
mod run;
mod spawner;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

pub use self::admission::Refusal;
use self::admission::{Admission, Slot};
use self::catalog::Catalog;
pub use self::error::{EngineError, Kind};
use self::plan::Plan;
pub use self::plan::{Ask, LimitAsk};
use self::registry::Registry;
pub use self::registry::{RunId, RunState};
pub use self::run::{Collected, Run};
#[cfg(test)]
use self::spawner::BoxFuture;
pub use self::spawner::{Execution, Spawner};
pub use super::launcher::Event;
use super::launcher::Job;
use super::metrics::{Gauges, Metrics};
use super::security::Principal;
use super::security::audit::{AuditRecord, Pending};
use super::security::authz::Grant;
use super::security::breaker::{Breaker, BreakerSettings};
use super::security::cache::Cache;
use super::security::config::CacheConfig;
use crate::profile::{Loader, Profile};
use crate::verdict::Verdict;

/// Who is asking: built by an adapter from whatever proves identity on its door (an HTTP
/// request's authentication, the MCP session's owner, a review approver).
#[derive(Clone)]
pub struct Caller {
    pub principal: Principal,
    /// What the principal may run, and within which limits.
    pub grant: Arc<Grant>,
    /// The audit record of this request, filled in as the engine decides.
    pub audit: Option<Arc<Pending>>,
    /// The caller's result-cache preference: `Some(true)` use, `Some(false)` bypass.
    pub cache: Option<bool>,
}

impl Caller {
    /// Change the caller's audit record, if it has one.
    pub fn note(&self, f: impl FnOnce(&mut AuditRecord)) {
        if let Some(a) = &self.audit {
            a.with(f);
        }
    }
}

/// How the caller wants the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The whole run at once (through the result cache when configured): `Submitted::Finished`.
    Whole,
    /// Events as they happen: `Submitted::Running`, a handle to follow.
    Stream,
    /// Left running in the engine's bounded registry: `Submitted::Detached`, polled by id.
    #[allow(
        dead_code,
        reason = "the door for runs that outlive their request (Judge0 `wait=false`, reviews); no API opens it yet, engine::tests exercise it"
    )]
    Detach,
}

/// One request, API-neutral.
#[derive(Debug, Clone)]
pub struct Request {
    /// The request id: in logs, the audit record and set-up failure messages.
    pub id: String,
    /// A profile name or alias.
    pub profile: String,
    /// A security preset composed on top of the profile (docs/profiles.md, "Language × preset").
    pub preset: Option<String>,
    pub ask: Ask,
    /// Longest wait for a sandbox slot; never above the service's queue timeout.
    pub queue_timeout: Option<Duration>,
    pub delivery: Delivery,
    /// An output cap the service imposes (not the caller's to ask for, so applied after
    /// authorization), lowered to the profile's: Piston's `output_max_size`.
    pub output_cap: Option<u64>,
    /// The compile limits are a client's defaults rather than a request (Piston's clients send
    /// theirs whatever the runtime): after authorization they are lowered to the compile stage as
    /// the grant left it, and dropped for a profile without one, instead of refused.
    pub lenient_compile: bool,
}

/// What became of a submitted request.
pub enum Submitted {
    /// The pre-flight analysis refused the code; nothing ran and this verdict is the answer.
    Refused {
        profile: String,
        verdict: Box<Verdict>,
    },
    /// `Delivery::Whole`: the run is over. `cache` is the `Cache-Status` value when the result
    /// cache was consulted.
    Finished {
        profile: String,
        collected: Box<Collected>,
        cache: Option<String>,
    },
    /// `Delivery::Stream`: the run is going; follow it with `Run::next`.
    Running(Box<Run>),
    /// `Delivery::Detach`: the run goes on without the caller; poll `Engine::run_state`.
    #[allow(
        dead_code,
        reason = "the door for runs that outlive their request (Judge0 `wait=false`, reviews); no API opens it yet, engine::tests exercise it"
    )]
    Detached { profile: String, id: RunId },
}

/// How the engine is set up (from `[capacity]`, `[cache]` and `[breaker]`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_concurrent: usize,
    pub queue_size: usize,
    pub queue_timeout: Duration,
    pub breaker: BreakerSettings,
    pub cache: Option<CacheConfig>,
    /// Most runs kept in the registry (running or finished and not yet collected).
    pub max_detached: usize,
}

/// Counters the engine keeps for /metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub forbidden: AtomicU64,
    pub breaker_refused: AtomicU64,
}

pub struct Engine {
    loader: Loader,
    catalog: RwLock<Arc<Catalog>>,
    spawner: Arc<dyn Spawner>,
    admission: Admission,
    metrics: Arc<Metrics>,
    breaker: Arc<Breaker>,
    cache: Option<(Cache<Collected>, CacheConfig)>,
    counters: Counters,
    draining: AtomicBool,
    /// Set when the drain deadline passes: every running sandbox is killed.
    kill: watch::Sender<bool>,
    runs: Arc<Registry>,
    queue_timeout: Duration,
}

impl Engine {
    pub fn new(
        settings: Settings,
        loader: Loader,
        spawner: Arc<dyn Spawner>,
        metrics: Arc<Metrics>,
    ) -> Engine {
        let catalog = Catalog::load(&loader);
        Engine {
            catalog: RwLock::new(Arc::new(catalog)),
            loader,
            spawner,
            admission: Admission::new(settings.max_concurrent, settings.queue_size),
            metrics,
            breaker: Breaker::new(settings.breaker),
            cache: settings.cache.map(|c| (Cache::new(c.settings), c)),
            counters: Counters::default(),
            draining: AtomicBool::new(false),
            kill: watch::Sender::new(false),
            runs: Arc::new(Registry::new(settings.max_detached)),
            queue_timeout: settings.queue_timeout,
        }
    }

    /// Run `req` for `caller` (see the module documentation for the order of the checks).
    pub async fn submit(&self, caller: &Caller, req: Request) -> Result<Submitted, EngineError> {
        let mut profile = self.resolve(&req.profile, req.preset.as_deref(), &caller.grant)?;
        let mut ask = req.ask;
        self.authorize(caller, &mut profile, &ask)?;
        if let Some(cap) = req.output_cap {
            ask.limits.output = Some(cap.min(profile.policy.limits.output));
        }
        if req.lenient_compile {
            ask.compile = plan::clamp_compile(&profile.policy, &ask.compile);
        }
        let prepared = match plan_off_thread(profile, ask, &req.id).await? {
            Plan::Refuse { profile, verdict } => {
                self.metrics
                    .verdict(verdict.status.as_str(), Duration::ZERO);
                caller.note(|r| r.verdict(&verdict));
                return Ok(Submitted::Refused { profile, verdict });
            }
            Plan::Run(p) => *p,
        };
        let queue_timeout = req
            .queue_timeout
            .map_or(self.queue_timeout, |t| t.min(self.queue_timeout));
        let profile = prepared.profile.clone();
        match req.delivery {
            Delivery::Whole => {
                let (collected, cache) = self
                    .run_cached(caller, prepared, queue_timeout, &req.id)
                    .await?;
                Ok(Submitted::Finished {
                    profile,
                    collected: Box::new(collected),
                    cache,
                })
            }
            Delivery::Stream => {
                let run = self.start(caller, prepared, queue_timeout, &req.id).await?;
                Ok(Submitted::Running(Box::new(run)))
            }
            Delivery::Detach => {
                let place = self.runs.reserve()?;
                let run = self.start(caller, prepared, queue_timeout, &req.id).await?;
                let id = Registry::detach(&self.runs, place, run);
                Ok(Submitted::Detached { profile, id })
            }
        }
    }

    /// Leave a started run going without its caller; its result is kept in the registry.
    #[allow(
        dead_code,
        reason = "the door for runs that outlive their request (Judge0 `wait=false`, reviews); no API opens it yet, engine::tests exercise it"
    )]
    pub fn detach(&self, run: Run) -> Result<RunId, EngineError> {
        let place = self.runs.reserve()?;
        Ok(Registry::detach(&self.runs, place, run))
    }

    /// The state of a detached run; a finished one is handed out once and then forgotten.
    #[allow(
        dead_code,
        reason = "the door for runs that outlive their request (Judge0 `wait=false`, reviews); no API opens it yet, engine::tests exercise it"
    )]
    pub fn run_state(&self, id: RunId) -> Option<RunState> {
        self.runs.state(id)
    }

    /// Wait for a slot (at most `queue_timeout`) and hand the job to the spawner.
    async fn admit_and_spawn(
        &self,
        job: Job,
        queue_timeout: Duration,
        request_id: &str,
    ) -> Result<(Box<dyn Execution>, Slot), EngineError> {
        if self.draining() {
            return Err(self.refused(Refusal::Draining));
        }
        let (slot, waited) = self
            .admission
            .admit(queue_timeout)
            .await
            .map_err(|r| self.refused(r))?;
        self.metrics.queue_wait(waited);
        if !self.spawner.alive() {
            self.metrics.refused("unavailable");
            return Err(unavailable());
        }
        let exec = self.spawner.spawn(job).await.map_err(|e| {
            tracing::error!(request_id, "launcher: {e}");
            self.metrics.refused("unavailable");
            unavailable()
        })?;
        Ok((exec, slot))
    }

    fn refused(&self, r: Refusal) -> EngineError {
        match r {
            Refusal::QueueFull { retry_after } => {
                self.metrics.refused("queue_full");
                let msg = "every sandbox slot is busy and the queue is full; retry later";
                EngineError::new(Kind::QueueFull, msg).retry_after(retry_after)
            }
            Refusal::QueueTimeout { retry_after } => {
                self.metrics.refused("queue_timeout");
                let msg = "no sandbox slot became free within the queue timeout; retry later";
                EngineError::new(Kind::QueueTimeout, msg).retry_after(retry_after)
            }
            Refusal::Draining => {
                self.metrics.refused("draining");
                EngineError::new(Kind::Draining, "the service is shutting down").retry_after(5)
            }
        }
    }

    /// A profile by name or alias, with a suggestion when there is none. The "did you mean" hint
    /// names only profiles `grant` allows, so what others may run does not leak through typos.
    pub fn profile(&self, name: &str, grant: &Grant) -> Result<Profile, EngineError> {
        let catalog = self.catalog();
        if let Some(p) = catalog.resolve(name) {
            return Ok(p.clone());
        }
        let names: Vec<String> = catalog
            .names()
            .into_iter()
            .filter(|n| catalog.resolve(n).is_some_and(|p| grant.allows(&p.name)))
            .collect();
        let hint = crate::profile::nearest(name, &names)
            .map(|n| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
        Err(EngineError::new(
            Kind::UnknownProfile,
            format!("no profile or language named `{name}`{hint}"),
        ))
    }

    /// A profile by name or alias, with `preset` composed on top when given; the composition's
    /// name (`language+preset`) is what grants list.
    pub fn resolve(
        &self,
        name: &str,
        preset: Option<&str>,
        grant: &Grant,
    ) -> Result<Profile, EngineError> {
        let language = self.profile(name, grant)?;
        let Some(preset) = preset else {
            return Ok(language);
        };
        let catalog = self.catalog();
        let Some(found) = catalog.resolve(preset) else {
            let presets: Vec<String> = catalog
                .names()
                .into_iter()
                .filter(|n| catalog.resolve(n).is_some_and(crate::profile::is_preset))
                .collect();
            let hint = crate::profile::nearest(preset, &presets)
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            let msg = format!(
                "no preset named `{preset}` (presets: {}){hint}",
                presets.join(", ")
            );
            return Err(EngineError::new(Kind::InvalidRequest, msg));
        };
        crate::profile::compose(&language, found)
            .map_err(|e| EngineError::new(Kind::InvalidRequest, e.to_string()))
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.catalog.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Re-read the profile directories (SIGHUP).
    pub fn reload(&self) {
        let fresh = Arc::new(Catalog::load(&self.loader));
        *self.catalog.write().unwrap_or_else(|e| e.into_inner()) = fresh;
    }

    /// What starts sandboxes (the service's version probes use it directly).
    pub fn spawner(&self) -> &dyn Spawner {
        self.spawner.as_ref()
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Stop taking work: queued and new requests are refused.
    pub fn start_drain(&self) {
        self.draining.store(true, Ordering::Release);
        self.admission.close();
    }

    /// Kill every running sandbox (the drain deadline passed).
    pub fn kill_all(&self) {
        self.kill.send_replace(true);
    }

    /// Wait until no sandbox runs, at most until `deadline`; whether it got there.
    pub async fn wait_idle(&self, deadline: std::time::Instant) -> bool {
        self.admission.wait_idle(deadline).await
    }

    /// Why the engine cannot take work, if it cannot.
    pub fn ready(&self) -> Result<(), &'static str> {
        if self.draining() {
            return Err("draining");
        }
        if !self.spawner.alive() {
            return Err("launcher_down");
        }
        if !self.breaker.ready() {
            return Err("sandbox_unavailable");
        }
        Ok(())
    }

    pub fn gauges(&self) -> Gauges {
        Gauges {
            queued: self.admission.queued(),
            running: self.admission.running(),
            max_concurrent: self.admission.max_concurrent(),
            queue_size: self.admission.queue_size(),
            launcher_up: self.spawner.alive(),
            draining: self.draining(),
        }
    }
}

fn unavailable() -> EngineError {
    EngineError::new(Kind::Unavailable, "the sandbox launcher is not running").retry_after(5)
}

/// The analysis parses the code; large inputs are parsed off the async threads.
async fn plan_off_thread(
    profile: Profile,
    ask: Ask,
    request_id: &str,
) -> Result<Plan, EngineError> {
    let size = ask_size(&ask);
    if size < 16 << 10 {
        return plan::plan(&profile, ask);
    }
    tokio::task::spawn_blocking(move || plan::plan(&profile, ask))
        .await
        .map_err(|e| EngineError::internal(request_id, &e))?
}

/// The bytes of code and input a request carries.
fn ask_size(ask: &Ask) -> usize {
    use crate::profile::CodeInput;
    let input = match &ask.input {
        CodeInput::Code { code, args } => code.len() + args.iter().map(String::len).sum::<usize>(),
        CodeInput::Files { files, args } => {
            files.iter().map(|f| f.contents.len()).sum::<usize>()
                + args.iter().map(String::len).sum::<usize>()
        }
        CodeInput::Args(args) => args.iter().map(String::len).sum(),
    };
    input + ask.stdin.as_ref().map_or(0, Vec::len)
}
