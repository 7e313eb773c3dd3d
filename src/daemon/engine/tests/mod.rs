//! The engine with a fake spawner: the order of its checks, the breaker, the cache, admission and
//! the refusals, without root, a launcher or HTTP. `order`: lookup, authorization, planning;
//! `runs`: what happens once a job is planned.

mod order;
mod runs;

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
