//! Rate limits and quotas: token buckets (burst + sustained rate) keyed by principal or client
//! address, and a cap on concurrent sandboxes per principal. Answers carry the
//! `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` headers of
//! draft-ietf-httpapi-ratelimit-headers (the three-field form), plus `Retry-After` (RFC 9110
//! §10.2.3) on 429.
//!
//! Memory is bounded: a bucket that has refilled completely is indistinguishable from a new one
//! and is dropped when the table is full; beyond that the least recently used bucket goes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Sustained rate and burst of one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_sec: f64,
    /// Bucket size: requests allowed at once after a quiet period.
    pub burst: u32,
}

impl Rate {
    /// Parse `N/s`, `N/min` or `N/h` (N may be fractional, e.g. `0.5/s`).
    pub fn parse(text: &str, burst: u32) -> Result<Rate, String> {
        let (n, unit) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("invalid rate `{text}`: expected N/s, N/min or N/h"))?;
        let n: f64 = n
            .trim()
            .parse()
            .map_err(|_| format!("invalid rate `{text}`: `{n}` is not a number"))?;
        let secs = match unit.trim() {
            "s" | "sec" | "second" => 1.0,
            "m" | "min" | "minute" => 60.0,
            "h" | "hour" => 3600.0,
            u => {
                return Err(format!(
                    "invalid rate `{text}`: unknown unit `{u}` (s, min or h)"
                ));
            }
        };
        if !(n.is_finite() && n > 0.0 && n <= 1e6) {
            return Err(format!(
                "invalid rate `{text}`: must be above 0 and at most 1000000"
            ));
        }
        if burst == 0 {
            return Err("burst must be at least 1".into());
        }
        Ok(Rate {
            per_sec: n / secs,
            burst,
        })
    }

    /// The window the burst covers at the sustained rate, in whole seconds (`RateLimit-Policy`).
    pub fn window_secs(&self) -> u64 {
        secs_ceil(f64::from(self.burst) / self.per_sec)
    }
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn secs_ceil(s: f64) -> u64 {
    if s.is_finite() && s > 0.0 {
        s.ceil().min(86_400.0) as u64
    } else {
        0
    }
}

/// The outcome of taking one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// `RateLimit-Limit`: the burst.
    pub limit: u32,
    /// `RateLimit-Remaining`: whole tokens left after this request.
    pub remaining: u32,
    /// `RateLimit-Reset`: seconds until the bucket is full again.
    pub reset_secs: u64,
    /// `Retry-After` when refused: seconds until one token is back (at least 1).
    pub retry_after_secs: u64,
}

impl Decision {
    /// The tighter of two decisions (for the headers when both address and principal apply).
    pub fn tighter(self, other: Decision) -> Decision {
        match (self.allowed, other.allowed) {
            (false, true) => self,
            (true, false) => other,
            _ if other.remaining < self.remaining => other,
            _ => self,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    rate: Rate,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate.per_sec).min(f64::from(self.rate.burst));
        self.last = now;
    }

    fn full(&self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + dt * self.rate.per_sec >= f64::from(self.rate.burst)
    }
}

/// Token buckets by key, at most `capacity` of them.
#[derive(Debug)]
pub struct Buckets {
    map: Mutex<HashMap<String, Bucket>>,
    capacity: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Buckets {
    pub fn new(capacity: usize) -> Self {
        Buckets {
            map: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    pub fn len(&self) -> usize {
        lock(&self.map).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Take one token from `key`'s bucket (created full at `rate`).
    pub fn take(&self, key: &str, rate: Rate, now: Instant) -> Decision {
        let mut map = lock(&self.map);
        if !map.contains_key(key) && map.len() >= self.capacity {
            evict(&mut map, now, self.capacity);
        }
        let b = map.entry(key.to_string()).or_insert(Bucket {
            tokens: f64::from(rate.burst),
            last: now,
            rate,
        });
        b.rate = rate;
        b.refill(now);
        let allowed = b.tokens >= 1.0;
        if allowed {
            b.tokens -= 1.0;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let remaining = b.tokens.floor().max(0.0) as u32;
        Decision {
            allowed,
            limit: rate.burst,
            remaining,
            reset_secs: secs_ceil((f64::from(rate.burst) - b.tokens) / rate.per_sec),
            retry_after_secs: secs_ceil((1.0 - b.tokens) / rate.per_sec).max(1),
        }
    }
}

/// Make room in a full table: drop every full bucket (it is the same as a new one), then the
/// least recently used ones until an eighth of the table is free. Freeing many places at once
/// keeps the scan rare: a client that brings a new address with every request (a walk through
/// its IPv6 prefixes) costs one scan per `capacity / 8` requests, not one each under the lock.
fn evict(map: &mut HashMap<String, Bucket>, now: Instant, capacity: usize) {
    map.retain(|_, b| !b.full(now));
    let target = capacity - (capacity / 8).max(1);
    if map.len() <= target {
        return;
    }
    let excess = map.len() - target;
    let mut lasts: Vec<Instant> = map.values().map(|b| b.last).collect();
    let (_, cut, _) = lasts.select_nth_unstable(excess - 1);
    let cut = *cut;
    let mut removed = 0;
    map.retain(|_, b| {
        let drop = removed < excess && b.last <= cut;
        removed += usize::from(drop);
        !drop
    });
}

/// Concurrent sandboxes per principal.
#[derive(Debug, Default)]
pub struct Concurrency {
    running: Arc<Mutex<HashMap<String, usize>>>,
}

/// One running sandbox of a principal; dropping it frees the place.
#[derive(Debug)]
pub struct ConcurrencyGuard {
    running: Arc<Mutex<HashMap<String, usize>>>,
    key: String,
}

impl Drop for ConcurrencyGuard {
    fn drop(&mut self) {
        let mut map = lock(&self.running);
        if let Some(n) = map.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

impl Concurrency {
    /// A place for `key` if it runs fewer than `max` now.
    pub fn try_acquire(&self, key: &str, max: usize) -> Option<ConcurrencyGuard> {
        let mut map = lock(&self.running);
        let n = map.entry(key.to_string()).or_insert(0);
        if *n >= max {
            if *n == 0 {
                map.remove(key);
            }
            return None;
        }
        *n += 1;
        Some(ConcurrencyGuard {
            running: Arc::clone(&self.running),
            key: key.to_string(),
        })
    }

    pub fn running(&self, key: &str) -> usize {
        lock(&self.running).get(key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rates_parse_with_units_and_refuse_nonsense() {
        let r = Rate::parse("10/s", 20).unwrap();
        assert_eq!((r.per_sec, r.burst), (10.0, 20));
        assert_eq!(r.window_secs(), 2);
        assert_eq!(Rate::parse("120/min", 5).unwrap().per_sec, 2.0);
        assert_eq!(Rate::parse(" 0.5 / s ", 1).unwrap().per_sec, 0.5);
        assert_eq!(Rate::parse("3600/h", 1).unwrap().per_sec, 1.0);
        for bad in ["10", "x/s", "10/day", "0/s", "-1/s", "inf/s", "NaN/s"] {
            assert!(Rate::parse(bad, 1).is_err(), "{bad}");
        }
        assert!(Rate::parse("1/s", 0).is_err());
    }

    #[test]
    fn burst_then_refusal_then_recovery() {
        let b = Buckets::new(16);
        let rate = Rate::parse("2/s", 3).unwrap();
        let t0 = Instant::now();
        let d: Vec<Decision> = (0..4).map(|_| b.take("alice", rate, t0)).collect();
        assert!(d[..3].iter().all(|d| d.allowed));
        assert_eq!(
            d.iter().map(|d| d.remaining).collect::<Vec<_>>(),
            [2, 1, 0, 0]
        );
        assert!(!d[3].allowed);
        assert_eq!(d[3].limit, 3);
        assert_eq!(
            d[3].retry_after_secs, 1,
            "one token takes 0.5 s: rounded up to 1"
        );
        assert_eq!(d[3].reset_secs, 2, "3 tokens at 2/s");
        // Another key is not affected.
        assert!(b.take("bob", rate, t0).allowed);
        // Half a second later one token is back; after 1.5 s the bucket is full again.
        assert!(
            b.take("alice", rate, t0 + Duration::from_millis(500))
                .allowed
        );
        assert!(
            !b.take("alice", rate, t0 + Duration::from_millis(600))
                .allowed
        );
        let later = b.take("alice", rate, t0 + Duration::from_secs(3));
        assert!(later.allowed);
        assert_eq!(later.remaining, 2);
    }

    #[test]
    fn the_table_stays_bounded() {
        let b = Buckets::new(4);
        let rate = Rate::parse("1/s", 1).unwrap();
        let t0 = Instant::now();
        for i in 0..4 {
            assert!(b.take(&format!("k{i}"), rate, t0).allowed);
        }
        // All four are empty: the least recently used goes.
        b.take("k0", rate, t0 + Duration::from_millis(10));
        b.take("new", rate, t0 + Duration::from_millis(20));
        assert_eq!(b.len(), 4);
        // Once they refilled, they are all dropped to make room.
        b.take("newer", rate, t0 + Duration::from_secs(5));
        assert_eq!(b.len(), 1);
        // An evicted key starts full again (no worse than before for the client).
        assert!(b.take("k1", rate, t0 + Duration::from_secs(5)).allowed);
    }

    #[test]
    fn a_full_table_frees_an_eighth_at_once() {
        let b = Buckets::new(800);
        let rate = Rate::parse("1/min", 1).unwrap();
        let t0 = Instant::now();
        let at = |i: u64| t0 + Duration::from_millis(i);
        for i in 0..800 {
            assert!(b.take(&format!("k{i}"), rate, at(i)).allowed);
        }
        // Every bucket is empty: the 100 least recently used go in one pass.
        assert!(b.take("new0", rate, at(800)).allowed);
        assert_eq!(b.len(), 701);
        for i in 1..100 {
            b.take(&format!("new{i}"), rate, at(800 + i));
        }
        assert_eq!(b.len(), 800, "no eviction until the table is full again");
        // The dropped ones were the oldest: k100 is still there and empty, k0 starts afresh.
        assert!(!b.take("k100", rate, at(900)).allowed);
        assert!(b.take("k0", rate, at(901)).allowed);
    }

    #[test]
    fn concurrency_caps_per_principal() {
        let c = Concurrency::default();
        let a1 = c.try_acquire("a", 2).unwrap();
        let a2 = c.try_acquire("a", 2).unwrap();
        assert!(c.try_acquire("a", 2).is_none());
        assert!(c.try_acquire("b", 2).is_some());
        assert!(c.try_acquire("z", 0).is_none());
        assert_eq!(c.running("z"), 0);
        drop(a1);
        assert_eq!(c.running("a"), 1);
        let _a3 = c.try_acquire("a", 2).unwrap();
        drop(a2);
        assert_eq!(c.running("a"), 1);
    }

    #[test]
    fn the_tighter_decision_wins() {
        let ok = |remaining| Decision {
            allowed: true,
            limit: 10,
            remaining,
            reset_secs: 1,
            retry_after_secs: 1,
        };
        let no = Decision {
            allowed: false,
            ..ok(0)
        };
        assert_eq!(ok(5).tighter(ok(2)).remaining, 2);
        assert!(!ok(5).tighter(no).allowed);
        assert!(!no.tighter(ok(5)).allowed);
    }
}
