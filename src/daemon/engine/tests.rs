//! The engine with a fake spawner: the order of its checks, the breaker, the cache, admission and
//! the refusals, without root, a launcher or HTTP.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::daemon::launcher::Event;
use crate::daemon::security::authz::Grant;
use crate::daemon::security::cache::CacheSettings;
use crate::daemon::security::config::CacheMode;
use crate::policy::AnalysisMode;
use crate::profile::CodeInput;
use crate::verdict::Status;

/// What one fake sandbox does.
#[derive(Clone)]
enum Script {
    /// Print `out`, then end with a verdict of `status`.
    Ends(&'static str, Status),
    /// Fail in set-up with this message (the runtime's own words, host paths and all).
    SetupFails(&'static str),
    /// Never finish (holds its slot until dropped).
    Hangs,
    /// End without a verdict (a worker that died).
    Dies,
}

#[derive(Default)]
struct Fake {
    scripts: Mutex<VecDeque<Script>>,
    /// The jobs handed over, in order.
    jobs: Mutex<Vec<Job>>,
    dead: AtomicBool,
}

impl Fake {
    fn spawned(&self) -> usize {
        self.jobs.lock().unwrap().len()
    }

    fn then(&self, s: Script) {
        self.scripts.lock().unwrap().push_back(s);
    }
}

struct FakeRun {
    events: VecDeque<Event>,
    hang: bool,
}

impl Execution for FakeRun {
    fn next(&mut self) -> BoxFuture<'_, Option<Event>> {
        Box::pin(async move {
            if self.hang {
                std::future::pending::<()>().await;
            }
            self.events.pop_front()
        })
    }
}

impl Spawner for Fake {
    fn spawn(&self, job: Job) -> BoxFuture<'_, std::io::Result<Box<dyn Execution>>> {
        let limits = job.policy.limits.clone();
        self.jobs.lock().unwrap().push(job);
        let script = self
            .scripts
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Script::Ends("", Status::Ok));
        let run = match script {
            Script::Ends(out, status) => {
                let v = Verdict::not_started(status, limits, String::new());
                FakeRun {
                    events: VecDeque::from([
                        Event::Stdout(out.as_bytes().to_vec()),
                        Event::Finished(Box::new(v)),
                    ]),
                    hang: false,
                }
            }
            Script::SetupFails(why) => {
                let v = Verdict::not_started(Status::SetupFailed, limits, why.to_string());
                FakeRun {
                    events: VecDeque::from([Event::Finished(Box::new(v))]),
                    hang: false,
                }
            }
            Script::Hangs => FakeRun {
                events: VecDeque::new(),
                hang: true,
            },
            Script::Dies => FakeRun {
                events: VecDeque::new(),
                hang: false,
            },
        };
        Box::pin(async move { Ok(Box::new(run) as Box<dyn Execution>) })
    }

    fn alive(&self) -> bool {
        !self.dead.load(Ordering::Relaxed)
    }
}

fn settings() -> Settings {
    Settings {
        max_concurrent: 2,
        queue_size: 0,
        queue_timeout: Duration::from_millis(50),
        breaker: BreakerSettings {
            failures: 2,
            recovery: Duration::from_secs(3600),
            probes: 1,
        },
        cache: None,
        max_detached: 2,
    }
}

fn engine_with(settings: Settings) -> (Engine, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let loader = Loader {
        profile_dirs: Vec::new(),
        builtins: true,
        rootfs_dirs: Vec::new(),
    };
    let spawner: Arc<dyn Spawner> = Arc::clone(&fake) as Arc<dyn Spawner>;
    let engine = Engine::new(settings, loader, spawner, Arc::new(Metrics::default()));
    (engine, fake)
}

fn engine() -> (Engine, Arc<Fake>) {
    engine_with(settings())
}

fn caller(grant: Grant) -> Caller {
    Caller {
        principal: Principal::anonymous(),
        grant: Arc::new(grant),
        audit: None,
        cache: None,
    }
}

fn request(profile: &str, code: &str) -> Request {
    Request {
        id: "test".into(),
        profile: profile.into(),
        preset: None,
        ask: Ask {
            input: CodeInput::Code {
                code: code.into(),
                args: Vec::new(),
            },
            stdin: None,
            env: Vec::new(),
            limits: LimitAsk::default(),
            compile: LimitAsk::default(),
            check: None,
        },
        queue_timeout: None,
        delivery: Delivery::Whole,
        output_cap: None,
        lenient_compile: false,
    }
}

async fn kind_of(engine: &Engine, caller: &Caller, req: Request) -> Kind {
    match engine.submit(caller, req).await {
        Err(e) => e.kind,
        Ok(_) => panic!("expected a refusal"),
    }
}

fn finished(s: Submitted) -> (Collected, Option<String>) {
    match s {
        Submitted::Finished {
            collected, cache, ..
        } => (*collected, cache),
        _ => panic!("expected a finished run"),
    }
}

#[tokio::test]
async fn a_run_goes_through_and_reports_its_output() {
    let (engine, fake) = engine();
    fake.then(Script::Ends("hi\n", Status::Ok));
    let s = engine
        .submit(&caller(Grant::default()), request("py", "print('hi')"))
        .await
        .unwrap();
    let (c, cache) = finished(s);
    assert_eq!(c.verdict.status, Status::Ok);
    assert_eq!(c.output, b"hi\n");
    assert_eq!(cache, None);
    let jobs = fake.jobs.lock().unwrap();
    assert_eq!(jobs.len(), 1);
    assert!(jobs[0].files.iter().any(|(_, data)| data == b"print('hi')"));
}

#[tokio::test]
async fn lookup_then_authorization_then_planning() {
    let (engine, fake) = engine();
    let only_bash = Grant {
        profiles: Some(vec!["bash".into()]),
        ..Grant::default()
    };
    // An unknown profile is reported as such, whatever else is wrong.
    let mut r = request("cobol", "x");
    r.ask.limits.wall = Some(Duration::ZERO);
    assert_eq!(
        kind_of(&engine, &caller(only_bash.clone()), r).await,
        Kind::UnknownProfile
    );
    // A profile the caller may not use is forbidden before its limits are even looked at, so a
    // request learns nothing about a profile it may not use.
    let mut r = request("python", "x");
    r.ask.limits.wall = Some(Duration::ZERO);
    assert_eq!(
        kind_of(&engine, &caller(only_bash), r).await,
        Kind::Forbidden
    );
    // A granted profile gets to planning, which refuses the zero limit.
    let mut r = request("python", "x");
    r.ask.limits.wall = Some(Duration::ZERO);
    assert_eq!(
        kind_of(&engine, &caller(Grant::default()), r).await,
        Kind::InvalidRequest
    );
    assert_eq!(engine.counters.forbidden.load(Ordering::Relaxed), 1);
    assert_eq!(fake.spawned(), 0, "nothing refused reaches the spawner");
}

#[tokio::test]
async fn grants_cap_the_profile_and_refuse_asks_above_them() {
    let (engine, fake) = engine();
    let grant = Grant {
        max_wall: Some(Duration::from_secs(1)),
        max_output: Some(1000),
        ..Grant::default()
    };
    let mut r = request("python", "print(1)");
    r.ask.limits.wall = Some(Duration::from_secs(2));
    assert_eq!(
        kind_of(&engine, &caller(grant.clone()), r).await,
        Kind::Forbidden
    );
    // Not asked: the profile's own limits are capped at the grant.
    engine
        .submit(&caller(grant), request("python", "print(1)"))
        .await
        .unwrap();
    let jobs = fake.jobs.lock().unwrap();
    assert_eq!(jobs[0].policy.limits.wall, Some(Duration::from_secs(1)));
    assert_eq!(jobs[0].policy.limits.output, 1000);
}

#[tokio::test]
async fn planning_refusals_name_their_reason() {
    let (engine, fake) = engine();
    let anyone = caller(Grant::default());
    let max = engine
        .profile("python", &Grant::default())
        .unwrap()
        .policy
        .limits
        .memory
        .unwrap();
    let mut r = request("python", "x");
    r.ask.limits.memory = Some(max + 1);
    assert_eq!(
        kind_of(&engine, &anyone, r).await,
        Kind::LimitExceedsProfile
    );
    let mut r = request("python", "x");
    r.ask.env = vec![("A=B".into(), "c".into())];
    assert_eq!(kind_of(&engine, &anyone, r).await, Kind::InvalidRequest);
    // A preset has no interpreter: the command must come in `args`.
    assert_eq!(
        kind_of(&engine, &anyone, request("strict", "x")).await,
        Kind::InvalidRequest
    );
    assert_eq!(fake.spawned(), 0);
}

#[tokio::test]
async fn the_pre_flight_analysis_refuses_and_cannot_be_lowered() {
    let (engine, fake) = engine();
    {
        let mut catalog = Catalog::load(&engine.loader);
        let p = catalog.profile_mut("python").unwrap();
        p.policy.analysis.mode = AnalysisMode::Enforce;
        *engine.catalog.write().unwrap() = Arc::new(catalog);
    }
    let anyone = caller(Grant::default());
    let mut lower = request("python", "print(1)");
    lower.ask.check = Some(AnalysisMode::Warn);
    assert_eq!(
        kind_of(&engine, &anyone, lower.clone()).await,
        Kind::CheckRequired
    );
    // A grant with `skip_check` may lower it.
    let skip = caller(Grant {
        skip_check: true,
        ..Grant::default()
    });
    assert!(engine.submit(&skip, lower).await.is_ok());
    assert_eq!(fake.spawned(), 1);
    let bad = request("python", "import os\nos.system('id')");
    match engine.submit(&anyone, bad).await.unwrap() {
        Submitted::Refused { profile, verdict } => {
            assert_eq!(profile, "python");
            assert_eq!(verdict.status, Status::RejectedByPolicy);
            assert!(verdict.policy.is_some_and(|p| !p.safe));
        }
        _ => panic!("expected a pre-flight refusal"),
    }
    assert_eq!(fake.spawned(), 1, "refused code never reaches the spawner");
}

#[tokio::test]
async fn the_breaker_opens_on_set_up_failures_only() {
    let (engine, fake) = engine();
    let anyone = caller(Grant::default());
    // The user's code failing says nothing about the host.
    for _ in 0..3 {
        fake.then(Script::Ends("", Status::ExitNonzero));
        engine
            .submit(&anyone, request("python", "x"))
            .await
            .unwrap();
    }
    assert_eq!(engine.ready(), Ok(()));
    fake.then(Script::Ends("", Status::SetupFailed));
    let (c, _) = finished(
        engine
            .submit(&anyone, request("python", "x"))
            .await
            .unwrap(),
    );
    assert_eq!(c.verdict.status, Status::SetupFailed);
    let msg = c.verdict.message.unwrap();
    assert!(
        msg.contains("request id test"),
        "details stay in the log: {msg}"
    );
    // A worker that dies without a verdict counts as a set-up failure too.
    fake.then(Script::Dies);
    assert_eq!(
        kind_of(&engine, &anyone, request("python", "x")).await,
        Kind::Internal
    );
    assert_eq!(engine.ready(), Err("sandbox_unavailable"));
    let before = fake.spawned();
    let e = engine
        .submit(&anyone, request("python", "x"))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind, Kind::SandboxUnavailable);
    assert!(e.retry_after.is_some());
    assert_eq!(fake.spawned(), before, "an open breaker starts nothing");
    assert_eq!(engine.counters.breaker_refused.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_dead_launcher_is_unavailable() {
    let (engine, fake) = engine();
    fake.dead.store(true, Ordering::Relaxed);
    let e = engine
        .submit(&caller(Grant::default()), request("python", "x"))
        .await
        .err()
        .unwrap();
    assert_eq!((e.kind, e.retry_after), (Kind::Unavailable, Some(5)));
    assert_eq!(engine.ready(), Err("launcher_down"));
}

#[tokio::test]
async fn the_cache_runs_identical_requests_once_per_scope() {
    let mut s = settings();
    s.cache = Some(CacheConfig {
        settings: CacheSettings {
            ttl: Duration::from_secs(60),
            max_bytes: 1 << 20,
            max_entry_bytes: 1 << 16,
        },
        profiles: vec!["python".into()],
        mode: CacheMode::Always,
        shared: false,
    });
    let (engine, fake) = engine_with(s);
    let anyone = caller(Grant::default());
    fake.then(Script::Ends("1\n", Status::Ok));
    let (first, status) = finished(
        engine
            .submit(&anyone, request("python", "print(1)"))
            .await
            .unwrap(),
    );
    assert!(status.unwrap().contains("miss"));
    let (again, status) = finished(
        engine
            .submit(&anyone, request("python", "print(1)"))
            .await
            .unwrap(),
    );
    assert!(status.unwrap().contains("hit"));
    assert_eq!(again.output, first.output);
    assert_eq!(fake.spawned(), 1);
    // Other code, a caller who bypasses the cache, or a profile not listed: a new run.
    engine
        .submit(&anyone, request("python", "print(2)"))
        .await
        .unwrap();
    let mut bypass = anyone.clone();
    bypass.cache = Some(false);
    let (_, status) = finished(
        engine
            .submit(&bypass, request("python", "print(1)"))
            .await
            .unwrap(),
    );
    assert_eq!(status, None);
    engine
        .submit(&anyone, request("bash", "echo 1"))
        .await
        .unwrap();
    assert_eq!(fake.spawned(), 4);
}

#[tokio::test]
async fn admission_refuses_beyond_capacity_and_when_draining() {
    let (engine, fake) = engine();
    let anyone = caller(Grant::default());
    let mut streams = Vec::new();
    for _ in 0..2 {
        fake.then(Script::Hangs);
        let mut r = request("python", "x");
        r.delivery = Delivery::Stream;
        match engine.submit(&anyone, r).await.unwrap() {
            Submitted::Running(run) => streams.push(run),
            _ => panic!("expected a running stream"),
        }
    }
    assert_eq!(engine.gauges().running, 2);
    assert_eq!(
        kind_of(&engine, &anyone, request("python", "x")).await,
        Kind::QueueFull
    );
    // Dropping a handle kills its sandbox and frees its slot.
    streams.pop();
    engine
        .submit(&anyone, request("python", "x"))
        .await
        .unwrap();
    engine.start_drain();
    assert_eq!(
        kind_of(&engine, &anyone, request("python", "x")).await,
        Kind::Draining
    );
    // The drain deadline kills what still runs.
    engine.kill_all();
    let e = streams[0].next().await.err().unwrap();
    assert_eq!(e.kind, Kind::Draining);
}

#[tokio::test]
async fn detached_runs_outlive_their_request_in_a_bounded_registry() {
    let (engine, fake) = engine();
    let anyone = caller(Grant::default());
    let detach = || {
        let mut r = request("python", "x");
        r.delivery = Delivery::Detach;
        r
    };
    fake.then(Script::Ends("done\n", Status::Ok));
    let Submitted::Detached { id, .. } = engine.submit(&anyone, detach()).await.unwrap() else {
        panic!("expected a detached run");
    };
    let state = loop {
        match engine.run_state(id) {
            Some(RunState::Running) => tokio::task::yield_now().await,
            other => break other,
        }
    };
    match state {
        Some(RunState::Finished(c)) => assert_eq!(c.output, b"done\n"),
        _ => panic!("expected the finished run"),
    }
    assert!(
        engine.run_state(id).is_none(),
        "a result is handed out once"
    );
    // Two places: two runs that never end fill the registry and a third is refused.
    fake.then(Script::Hangs);
    fake.then(Script::Hangs);
    engine.submit(&anyone, detach()).await.unwrap();
    engine.submit(&anyone, detach()).await.unwrap();
    assert_eq!(kind_of(&engine, &anyone, detach()).await, Kind::QueueFull);
    assert_eq!(
        fake.spawned(),
        3,
        "a full registry refuses before starting a sandbox"
    );
}

#[tokio::test]
async fn the_service_output_cap_applies_after_authorization() {
    let (engine, fake) = engine();
    let grant = Grant {
        max_output: Some(100),
        ..Grant::default()
    };
    let mut r = request("python", "x");
    r.output_cap = Some(5000);
    engine.submit(&caller(grant), r).await.unwrap();
    let jobs = fake.jobs.lock().unwrap();
    assert_eq!(jobs[0].policy.limits.output, 100, "never above the grant");
}

#[tokio::test]
async fn presets_compose_and_unknown_ones_are_refused() {
    let (engine, fake) = engine();
    let anyone = caller(Grant::default());
    let mut r = request("python", "print(1)");
    r.preset = Some("nope".into());
    assert_eq!(
        kind_of(&engine, &anyone, r.clone()).await,
        Kind::InvalidRequest
    );
    r.preset = Some("strict".into());
    engine.submit(&anyone, r).await.unwrap();
    let jobs = fake.jobs.lock().unwrap();
    assert!(
        jobs[0].policy.profile.contains("strict"),
        "{}",
        jobs[0].policy.profile
    );
}

#[tokio::test]
async fn lenient_compile_limits_are_lowered_or_dropped_after_authorization() {
    let (engine, fake) = engine();
    let anyone = caller(Grant::default());
    let max = engine
        .profile("c", &Grant::default())
        .unwrap()
        .policy
        .compile
        .unwrap()
        .limits
        .wall
        .unwrap();
    // A request's own compile limits: refused without a stage, and above the stage's maximum.
    let mut r = request("python", "print(1)");
    r.ask.compile.wall = Some(Duration::from_secs(1));
    assert_eq!(
        kind_of(&engine, &anyone, r.clone()).await,
        Kind::InvalidRequest
    );
    let mut c = request("c", "int main(void) { return 0; }");
    c.ask.compile.wall = Some(max + Duration::from_secs(1));
    assert_eq!(
        kind_of(&engine, &anyone, c.clone()).await,
        Kind::LimitExceedsProfile
    );
    // A client's defaults (Piston): dropped without a stage, lowered to the stage otherwise.
    r.lenient_compile = true;
    c.lenient_compile = true;
    engine.submit(&anyone, r).await.unwrap();
    engine.submit(&anyone, c).await.unwrap();
    let jobs = fake.jobs.lock().unwrap();
    assert!(jobs[0].policy.compile.is_none());
    let stage = jobs[1].policy.compile.as_ref().unwrap();
    assert_eq!(stage.limits.wall, Some(max));
}

#[tokio::test]
async fn set_up_failures_the_request_caused_do_not_open_the_breaker() {
    let (engine, fake) = engine();
    let anyone = caller(Grant::default());
    // The request's own file could not be written: its doing, not the host's.
    for _ in 0..3 {
        fake.then(Script::SetupFails(
            "work files: create /sandbox/main.py: No space left on device",
        ));
        let (c, _) = finished(
            engine
                .submit(&anyone, request("python", "x"))
                .await
                .unwrap(),
        );
        assert_eq!(c.verdict.status, Status::SetupFailed);
    }
    assert_eq!(engine.ready(), Ok(()), "the breaker stays closed");
    // The host cannot clone a sandbox: that counts.
    for _ in 0..2 {
        fake.then(Script::SetupFails("clone3: Operation not permitted"));
        engine
            .submit(&anyone, request("python", "x"))
            .await
            .unwrap();
    }
    assert_eq!(engine.ready(), Err("sandbox_unavailable"));
}
