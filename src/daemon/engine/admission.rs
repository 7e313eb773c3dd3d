//! Back-pressure: at most `max_concurrent` sandboxes, at most `queue_size` requests waiting for
//! one, each for at most its queue timeout. Everything beyond is refused at once (429/503 with
//! `Retry-After`), so overload is answered rather than absorbed: memory stays bounded by
//! `max_concurrent + queue_size` requests in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// Why a request did not get a sandbox slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot is busy and the queue is full (429).
    QueueFull { retry_after: u64 },
    /// The request waited its whole queue timeout (503).
    QueueTimeout { retry_after: u64 },
    /// The service is shutting down (503).
    Draining,
}

#[derive(Debug)]
struct Shared {
    running: AtomicUsize,
    waiting: AtomicUsize,
    /// Moving average of sandbox lifetimes in ms, for `Retry-After`.
    avg_ms: AtomicU64,
    idle: Notify,
}

#[derive(Debug)]
pub struct Admission {
    sem: Arc<Semaphore>,
    max: usize,
    queue_size: usize,
    shared: Arc<Shared>,
}

/// A sandbox slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    shared: Arc<Shared>,
    since: Instant,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        // Exponential moving average with weight 1/8: smooth, yet follows a change in load.
        let old = self.shared.avg_ms.load(Ordering::Relaxed);
        let new = if old == 0 { ms } else { (old * 7 + ms) / 8 };
        self.shared.avg_ms.store(new, Ordering::Relaxed);
        if self.shared.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.idle.notify_waiters();
        }
    }
}

/// Decrements the waiting count however the wait ends (including the client going away).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    pub fn new(max_concurrent: usize, queue_size: usize) -> Self {
        let max = max_concurrent.max(1);
        Admission {
            sem: Arc::new(Semaphore::new(max)),
            max,
            queue_size,
            shared: Arc::new(Shared {
                running: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
                avg_ms: AtomicU64::new(0),
                idle: Notify::new(),
            }),
        }
    }

    /// Take a slot now, or wait in the queue for at most `timeout`. Returns the slot and how long
    /// the request waited.
    pub async fn admit(&self, timeout: Duration) -> Result<(Slot, Duration), Refusal> {
        let start = Instant::now();
        let permit = match Arc::clone(&self.sem).try_acquire_owned() {
            Ok(p) => p,
            Err(TryAcquireError::Closed) => return Err(Refusal::Draining),
            Err(TryAcquireError::NoPermits) => self.wait(timeout).await?,
        };
        self.shared.running.fetch_add(1, Ordering::AcqRel);
        let slot = Slot {
            _permit: permit,
            shared: Arc::clone(&self.shared),
            since: Instant::now(),
        };
        Ok((slot, start.elapsed()))
    }

    async fn wait(&self, timeout: Duration) -> Result<OwnedSemaphorePermit, Refusal> {
        if self.shared.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue_size {
            self.shared.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::QueueFull {
                retry_after: self.retry_after(),
            });
        }
        let _waiting = Waiting(&self.shared.waiting);
        match tokio::time::timeout(timeout, Arc::clone(&self.sem).acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_closed)) => Err(Refusal::Draining),
            Err(_elapsed) => Err(Refusal::QueueTimeout {
                retry_after: self.retry_after(),
            }),
        }
    }

    /// Seconds until a slot is likely free: the average run time times the queue ahead of a new
    /// request, spread over the slots; between 1 and 60.
    pub fn retry_after(&self) -> u64 {
        let avg = self.shared.avg_ms.load(Ordering::Relaxed).max(100);
        let ahead = self.queued() as u64 + 1;
        (avg * ahead).div_ceil(self.max as u64 * 1000).clamp(1, 60)
    }

    /// Refuse every waiting and future request (`Refusal::Draining`); running slots are kept.
    pub fn close(&self) {
        self.sem.close();
    }

    pub fn running(&self) -> usize {
        self.shared.running.load(Ordering::Acquire)
    }

    pub fn queued(&self) -> usize {
        self.shared.waiting.load(Ordering::Acquire)
    }

    pub fn max_concurrent(&self) -> usize {
        self.max
    }

    pub fn queue_size(&self) -> usize {
        self.queue_size
    }

    /// Wait until no slot is held or `deadline` passes; true when idle.
    pub async fn wait_idle(&self, deadline: Instant) -> bool {
        loop {
            let notified = self.shared.idle.notified();
            if self.running() == 0 {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            // The timeout also covers a notification raced between the check and the wait.
            let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), notified).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_then_queue_then_refusal() {
        let a = Admission::new(1, 1);
        let (first, waited) = a.admit(Duration::from_secs(1)).await.unwrap();
        assert!(waited < Duration::from_millis(500));
        assert_eq!(a.running(), 1);
        // The second request queues; the third finds the queue full.
        let a = Arc::new(a);
        let a2 = Arc::clone(&a);
        let queued =
            tokio::spawn(async move { a2.admit(Duration::from_secs(5)).await.map(|_| ()) });
        while a.queued() == 0 {
            tokio::task::yield_now().await;
        }
        let full = a.admit(Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(full, Refusal::QueueFull { retry_after } if retry_after >= 1));
        drop(first);
        queued.await.unwrap().unwrap();
        assert_eq!(a.queued(), 0);
    }

    #[tokio::test]
    async fn waiting_times_out_and_drain_refuses() {
        let a = Admission::new(1, 4);
        let slot = a.admit(Duration::from_secs(1)).await.unwrap();
        let r = a.admit(Duration::from_millis(20)).await.unwrap_err();
        assert!(matches!(r, Refusal::QueueTimeout { .. }));
        assert_eq!(a.queued(), 0, "a timed-out request leaves the queue");
        a.close();
        assert_eq!(
            a.admit(Duration::from_secs(1)).await.unwrap_err(),
            Refusal::Draining
        );
        assert!(
            !a.wait_idle(Instant::now() + Duration::from_millis(20))
                .await
        );
        drop(slot);
        assert!(a.wait_idle(Instant::now() + Duration::from_secs(1)).await);
    }
}
