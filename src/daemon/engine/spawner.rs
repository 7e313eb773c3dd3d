//! Where the engine gets sandboxes from. The service's `Launcher` is one `Spawner`; unit tests use
//! a fake that answers with scripted events, so the engine's order (authorize, plan, breaker,
//! cache, admission) is tested without root or a fork server. A warm pool will be another.

use std::future::Future;
use std::pin::Pin;

use crate::daemon::launcher::{self, Event, Job, Launcher};

/// A boxed future (the traits are used as objects, so their async methods return these).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Starts sandboxes.
pub trait Spawner: Send + Sync + 'static {
    /// Start one job; resolves once the job is handed to whatever runs it.
    fn spawn(&self, job: Job) -> BoxFuture<'_, std::io::Result<Box<dyn Execution>>>;
    /// Whether sandboxes can be started at all (the launcher process is alive).
    fn alive(&self) -> bool;
}

/// One started job: its events in order, output chunks then exactly one `Finished`. Dropping it
/// before `Finished` kills the sandbox.
pub trait Execution: Send {
    /// The next event; `None` after `Finished`, or when the job ended without a verdict.
    fn next(&mut self) -> BoxFuture<'_, Option<Event>>;
}

impl Spawner for Launcher {
    fn spawn(&self, job: Job) -> BoxFuture<'_, std::io::Result<Box<dyn Execution>>> {
        Box::pin(async move {
            let run = Launcher::spawn(self, job).await?;
            Ok(Box::new(run) as Box<dyn Execution>)
        })
    }

    fn alive(&self) -> bool {
        Launcher::alive(self)
    }
}

impl Execution for launcher::Run {
    fn next(&mut self) -> BoxFuture<'_, Option<Event>> {
        Box::pin(launcher::Run::next(self))
    }
}
