//! Circuit breaker on sandbox set-up: when set-up keeps failing on the host (verdict
//! `setup_failed` in a step the request cannot influence, or the launcher failing to start a job;
//! never the user's code, nor a file set or limit the request chose), stop accepting runs, answer
//! 503 with the stable code `sandbox_unavailable`, report unready, and after a recovery timeout
//! let a few probe requests through (half-open); their outcome closes or re-opens the circuit.
//! Transitions are logged. (Nygard, "Release It!", ch. 5; the states as in Hystrix/resilience4j.)

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive set-up failures that open the circuit.
    pub failures: u32,
    /// How long the circuit stays open before probing.
    pub recovery: Duration,
    /// Successful probes in a row that close it again (also the probes allowed at once).
    pub probes: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            failures: 5,
            recovery: Duration::from_secs(30),
            probes: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { consecutive: u32 },
    Open { since: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
}

/// What a run's set-up came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The sandbox started (whatever the payload then did).
    Started,
    /// The sandbox could not be set up, or the launcher failed.
    SetupFailed,
    /// Set-up failed because of what the request asked for: says nothing about the host, so it
    /// neither adds to nor resets the count, and a probe gives its place back.
    Refused,
}

#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    state: Mutex<State>,
}

/// Permission to run; report the outcome with `record`. Dropped unrecorded (the client went
/// away before set-up finished), a probe gives its place back and counts as nothing.
#[derive(Debug)]
pub struct Ticket {
    breaker: Arc<Breaker>,
    probe: bool,
    recorded: bool,
}

impl Ticket {
    pub fn record(mut self, outcome: Outcome) {
        self.recorded = true;
        self.breaker.record_at(outcome, self.probe, Instant::now());
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.recorded && self.probe {
            let mut s = self.breaker.lock();
            if let State::HalfOpen { in_flight, .. } = &mut *s {
                *in_flight = in_flight.saturating_sub(1);
            }
        }
    }
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Arc<Self> {
        Arc::new(Breaker {
            settings,
            state: Mutex::new(State::Closed { consecutive: 0 }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A ticket to run, or the time until the next probe may go through.
    pub fn admit(self: &Arc<Self>) -> Result<Ticket, Duration> {
        self.admit_at(Instant::now())
    }

    pub fn admit_at(self: &Arc<Self>, now: Instant) -> Result<Ticket, Duration> {
        let mut s = self.lock();
        if let State::Open { since } = *s {
            let open_for = now.saturating_duration_since(since);
            if open_for < self.settings.recovery {
                return Err(self.settings.recovery - open_for);
            }
            tracing::warn!(
                recovery_ms = u64::try_from(self.settings.recovery.as_millis()).unwrap_or(u64::MAX),
                "circuit breaker half-open: probing sandbox set-up"
            );
            *s = State::HalfOpen {
                in_flight: 0,
                successes: 0,
            };
        }
        let probe = match &mut *s {
            State::HalfOpen {
                in_flight,
                successes,
            } => {
                if *in_flight + *successes >= self.settings.probes {
                    // Probes are out; wait for their verdicts.
                    return Err(Duration::from_secs(1));
                }
                *in_flight += 1;
                true
            }
            _ => false,
        };
        Ok(Ticket {
            breaker: Arc::clone(self),
            probe,
            recorded: false,
        })
    }

    fn record_at(&self, outcome: Outcome, probe: bool, now: Instant) {
        let mut s = self.lock();
        let next = match (*s, outcome) {
            (State::Closed { .. }, Outcome::Started) => State::Closed { consecutive: 0 },
            (State::Closed { consecutive }, Outcome::SetupFailed) => {
                let n = consecutive + 1;
                if n >= self.settings.failures {
                    tracing::error!(
                        failures = n,
                        "circuit breaker open: sandbox set-up failed {n} times in a row; refusing runs with 503 sandbox_unavailable"
                    );
                    State::Open { since: now }
                } else {
                    State::Closed { consecutive: n }
                }
            }
            (State::HalfOpen { .. }, Outcome::SetupFailed) if probe => {
                tracing::error!("circuit breaker open again: the probe's sandbox set-up failed");
                State::Open { since: now }
            }
            (
                State::HalfOpen {
                    in_flight,
                    successes,
                },
                Outcome::Started,
            ) if probe => {
                if successes + 1 >= self.settings.probes {
                    tracing::info!("circuit breaker closed: sandbox set-up works again");
                    State::Closed { consecutive: 0 }
                } else {
                    State::HalfOpen {
                        in_flight: in_flight.saturating_sub(1),
                        successes: successes + 1,
                    }
                }
            }
            (
                State::HalfOpen {
                    in_flight,
                    successes,
                },
                Outcome::Refused,
            ) if probe => State::HalfOpen {
                in_flight: in_flight.saturating_sub(1),
                successes,
            },
            // Runs admitted before the circuit opened finish meanwhile: they change nothing.
            (other, _) => other,
        };
        *s = next;
    }

    /// `closed`, `open` or `half_open` (for /readyz and /metrics).
    pub fn state(&self) -> &'static str {
        self.state_at(Instant::now())
    }

    pub fn state_at(&self, now: Instant) -> &'static str {
        match *self.lock() {
            State::Closed { .. } => "closed",
            State::Open { since }
                if now.saturating_duration_since(since) >= self.settings.recovery =>
            {
                "half_open"
            }
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half_open",
        }
    }

    /// Ready unless open: after the recovery timeout the service reports ready again so that
    /// traffic (and with it the probes) comes back.
    pub fn ready(&self) -> bool {
        self.state() != "open"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(failures: u32, probes: u32) -> Arc<Breaker> {
        Breaker::new(BreakerSettings {
            failures,
            recovery: Duration::from_secs(10),
            probes,
        })
    }

    fn run(b: &Arc<Breaker>, now: Instant, outcome: Outcome) -> Result<(), Duration> {
        let t = b.admit_at(now)?;
        b.record_at(outcome, t.probe, now);
        std::mem::forget(t);
        Ok(())
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = breaker(3, 1);
        let t0 = Instant::now();
        run(&b, t0, Outcome::SetupFailed).unwrap();
        run(&b, t0, Outcome::SetupFailed).unwrap();
        run(&b, t0, Outcome::Started).unwrap(); // a success resets the count
        run(&b, t0, Outcome::SetupFailed).unwrap();
        run(&b, t0, Outcome::SetupFailed).unwrap();
        assert_eq!(b.state_at(t0), "closed");
        run(&b, t0, Outcome::SetupFailed).unwrap();
        assert_eq!(b.state_at(t0), "open");
        let wait = run(&b, t0 + Duration::from_secs(4), Outcome::Started).unwrap_err();
        assert_eq!(wait, Duration::from_secs(6));
    }

    #[test]
    fn half_open_probe_closes_or_reopens() {
        let b = breaker(1, 1);
        let t0 = Instant::now();
        run(&b, t0, Outcome::SetupFailed).unwrap();
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.state_at(t1), "half_open");
        // One probe at a time; the others wait.
        let probe = b.admit_at(t1).unwrap();
        assert!(probe.probe);
        assert!(b.admit_at(t1).is_err());
        b.record_at(Outcome::SetupFailed, true, t1);
        std::mem::forget(probe);
        assert_eq!(b.state_at(t1), "open");
        let t2 = t1 + Duration::from_secs(10);
        run(&b, t2, Outcome::Started).unwrap();
        assert_eq!(b.state_at(t2), "closed");
        assert!(b.admit_at(t2).is_ok());
    }

    #[test]
    fn several_probes_and_abandoned_probes() {
        let b = breaker(1, 2);
        let t0 = Instant::now();
        run(&b, t0, Outcome::SetupFailed).unwrap();
        let t1 = t0 + Duration::from_secs(11);
        // A probe whose client went away gives its place back.
        let abandoned = b.admit_at(t1).unwrap();
        let other = b.admit_at(t1).unwrap();
        assert!(b.admit_at(t1).is_err());
        drop(abandoned);
        let third = b.admit_at(t1).unwrap();
        b.record_at(Outcome::Started, other.probe, t1);
        std::mem::forget(other);
        assert_eq!(b.state_at(t1), "half_open");
        b.record_at(Outcome::Started, third.probe, t1);
        std::mem::forget(third);
        assert_eq!(b.state_at(t1), "closed");
    }

    #[test]
    fn late_results_of_runs_admitted_before_opening_change_nothing() {
        let b = breaker(1, 1);
        let t0 = Instant::now();
        let early = b.admit_at(t0).unwrap();
        run(&b, t0, Outcome::SetupFailed).unwrap();
        b.record_at(Outcome::Started, early.probe, t0);
        std::mem::forget(early);
        assert_eq!(b.state_at(t0), "open");
        assert!(!b.ready());
    }

    #[test]
    fn request_caused_failures_neither_open_nor_hold_the_circuit() {
        let b = breaker(2, 1);
        let t0 = Instant::now();
        for _ in 0..10 {
            run(&b, t0, Outcome::Refused).unwrap();
        }
        assert_eq!(b.state_at(t0), "closed");
        run(&b, t0, Outcome::SetupFailed).unwrap();
        run(&b, t0, Outcome::Refused).unwrap();
        run(&b, t0, Outcome::SetupFailed).unwrap();
        assert_eq!(b.state_at(t0), "open");
        // Half-open: a refused request gives the probe's place back, the next probe closes it.
        let t1 = t0 + Duration::from_secs(10);
        run(&b, t1, Outcome::Refused).unwrap();
        assert_eq!(b.state_at(t1), "half_open");
        run(&b, t1, Outcome::Started).unwrap();
        assert_eq!(b.state_at(t1), "closed");
    }

    #[test]
    fn tickets_record_through_the_public_api() {
        let b = breaker(2, 1);
        b.admit().unwrap().record(Outcome::SetupFailed);
        b.admit().unwrap().record(Outcome::SetupFailed);
        assert_eq!(b.state(), "open");
        assert!(!b.ready());
    }
}
