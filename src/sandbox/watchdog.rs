//! The wall-time deadline on its own thread: whatever the supervisor loop is doing (a callback
//! blocked on a slow reader, a stuck terminal), the sandbox dies at its deadline (isolate, nsjail
//! and Sandbox2 time runs the same way).

use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Instant;

use crate::sys;

/// Shared between the supervisor and its timer thread.
#[derive(Default)]
pub(super) struct Deadline {
    stopped: Mutex<bool>,
    wake: Condvar,
    fired: AtomicBool,
}

impl Deadline {
    /// Start the timer: at `at`, SIGKILL the init (its exit tears down the PID namespace) unless
    /// `stop` came first.
    pub(super) fn start<'scope, 'env>(
        &'env self,
        scope: &'scope Scope<'scope, 'env>,
        at: Instant,
        init: BorrowedFd<'env>,
    ) -> ScopedJoinHandle<'scope, ()> {
        scope.spawn(move || {
            let mut stopped = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
            while !*stopped {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    self.fired.store(true, Ordering::SeqCst);
                    let _ = sys::pidfd_send_signal(init, libc::SIGKILL);
                    return;
                }
                stopped = match self.wake.wait_timeout(stopped, left) {
                    Ok((guard, _)) => guard,
                    Err(p) => p.into_inner().0,
                };
            }
        })
    }

    /// End the timer (the run is over).
    pub(super) fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.wake.notify_all();
    }

    /// Whether the timer killed the sandbox.
    pub(super) fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}
