//! Runs that outlive their request (Judge0's `wait=false`, reviews): a bounded table of detached
//! runs by id. A run is driven to its end by its own task; its result waits here until it is
//! fetched once. When the table is full, the oldest finished result makes room; a table full of
//! unfinished runs refuses new ones (`queue_full`), so memory stays bounded whatever callers do.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::error::{EngineError, Kind};
use super::run::{Collected, Run};

/// A detached run's id, unique within the service's lifetime.
pub type RunId = u64;

/// Where a detached run is.
#[derive(Debug, Clone)]
#[allow(
    dead_code,
    reason = "the door for runs that outlive their request (Judge0 `wait=false`, reviews); no API opens it yet, engine::tests exercise it"
)]
pub enum RunState {
    Running,
    Finished(Box<Collected>),
    /// It could not finish (drain, lost worker): the error an adapter would have answered.
    Failed(EngineError),
}

/// A place in the table, taken before the sandbox starts so a full table refuses early.
pub struct Place {
    registry: Arc<Registry>,
    id: RunId,
    used: bool,
}

impl Drop for Place {
    fn drop(&mut self) {
        if !self.used {
            self.registry.table().remove(&self.id);
        }
    }
}

pub struct Registry {
    capacity: usize,
    inner: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next: RunId,
    runs: BTreeMap<RunId, RunState>,
}

impl Table {
    fn remove(&mut self, id: &RunId) {
        self.runs.remove(id);
    }
}

impl Registry {
    pub fn new(capacity: usize) -> Registry {
        Registry {
            capacity,
            inner: Mutex::new(Table {
                next: 1,
                ..Table::default()
            }),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take a place for a run, evicting the oldest finished result if the table is full.
    pub fn reserve(self: &Arc<Self>) -> Result<Place, EngineError> {
        let mut t = self.table();
        if t.runs.len() >= self.capacity {
            let oldest_done = t
                .runs
                .iter()
                .find(|(_, s)| !matches!(s, RunState::Running))
                .map(|(id, _)| *id);
            match oldest_done {
                Some(id) => t.remove(&id),
                None => {
                    let msg = format!(
                        "{} runs are already left running; retry when one finishes",
                        self.capacity
                    );
                    return Err(EngineError::new(Kind::QueueFull, msg).retry_after(1));
                }
            }
        }
        let id = t.next;
        t.next += 1;
        t.runs.insert(id, RunState::Running);
        Ok(Place {
            registry: Arc::clone(self),
            id,
            used: false,
        })
    }

    /// Drive `run` to its end on its own task; the result lands in `place`.
    pub fn detach(this: &Arc<Self>, mut place: Place, run: Run) -> RunId {
        place.used = true;
        let id = place.id;
        let registry = Arc::clone(this);
        tokio::spawn(async move {
            let state = match run.collect().await {
                Ok(c) => RunState::Finished(Box::new(c)),
                Err(e) => RunState::Failed(e),
            };
            let mut t = registry.table();
            // Only if still listed: it may have been evicted meanwhile (never while running).
            if let Some(slot) = t.runs.get_mut(&id) {
                *slot = state;
            }
        });
        id
    }

    /// The state of `id`; a finished run is handed out once and forgotten.
    #[allow(
        dead_code,
        reason = "the door for runs that outlive their request (Judge0 `wait=false`, reviews); no API opens it yet, engine::tests exercise it"
    )]
    pub fn state(&self, id: RunId) -> Option<RunState> {
        let mut t = self.table();
        match t.runs.get(&id)? {
            RunState::Running => Some(RunState::Running),
            _ => t.runs.remove(&id),
        }
    }
}
