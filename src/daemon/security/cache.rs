//! Result cache with single-flight: identical requests (the caller's key: profile content, inputs,
//! limits and, unless sharing is configured, the principal) share one execution while it runs and
//! reuse its result for a TTL. Memory is bounded by `max_bytes` over stored results (least
//! recently used first out) and `max_entry_bytes` per result.
//!
//! A leader whose client goes away drops its run; the waiting followers then see the channel
//! close and one of them runs it instead, so nobody waits for an execution that no longer exists.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

pub type Key = [u8; 32];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    pub ttl: Duration,
    pub max_bytes: usize,
    pub max_entry_bytes: usize,
}

/// Where a result came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// This request ran it.
    Miss,
    /// Reused from an earlier request within the TTL.
    Hit,
    /// Shared with an identical request that was running at the same time.
    Joined,
}

impl Source {
    /// The `Cache-Status` header (RFC 9211) for a response.
    pub fn cache_status(self, stored: bool, ttl_left: Option<Duration>) -> String {
        match self {
            Source::Hit => format!("stockade; hit; ttl={}", ttl_left.map_or(0, |d| d.as_secs())),
            Source::Joined => "stockade; hit; detail=coalesced".into(),
            Source::Miss if stored => "stockade; fwd=miss; stored".into(),
            Source::Miss => "stockade; fwd=miss".into(),
        }
    }
}

/// The answer: the value, where it came from, whether it was stored, and its remaining TTL.
#[derive(Debug)]
pub struct Lookup<V> {
    pub value: Arc<V>,
    pub source: Source,
    pub stored: bool,
    pub ttl_left: Option<Duration>,
}

struct Ready<V> {
    value: Arc<V>,
    size: usize,
    expires: Instant,
    used: u64,
}

struct Inner<V> {
    ready: HashMap<Key, Ready<V>>,
    running: HashMap<Key, watch::Sender<Option<Arc<V>>>>,
    bytes: usize,
    tick: u64,
}

#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub joins: AtomicU64,
    pub misses: AtomicU64,
}

pub struct Cache<V> {
    settings: CacheSettings,
    inner: Mutex<Inner<V>>,
    pub stats: CacheStats,
}

/// Removes the in-flight entry however the leader ends (result, error, cancellation).
struct Leading<'a, V> {
    cache: &'a Cache<V>,
    key: Key,
}

impl<V> Drop for Leading<'_, V> {
    fn drop(&mut self) {
        self.cache.lock().running.remove(&self.key);
    }
}

enum Role<V> {
    Done(Arc<V>, Instant),
    Follow(watch::Receiver<Option<Arc<V>>>),
    Lead,
}

impl<V> Cache<V> {
    fn lock(&self) -> MutexGuard<'_, Inner<V>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<V: Send + Sync + 'static> Cache<V> {
    pub fn new(settings: CacheSettings) -> Self {
        Cache {
            settings,
            inner: Mutex::new(Inner {
                ready: HashMap::new(),
                running: HashMap::new(),
                bytes: 0,
                tick: 0,
            }),
            stats: CacheStats::default(),
        }
    }

    /// Stored results and their total size.
    pub fn usage(&self) -> (usize, usize) {
        let g = self.lock();
        (g.ready.len(), g.bytes)
    }

    /// The result for `key`: stored, shared with a running twin, or computed by `run`. `size`
    /// estimates a value's memory; `keep` says whether a value may be stored.
    pub async fn get_or_run<E, Fut>(
        &self,
        key: Key,
        size: impl Fn(&V) -> usize,
        keep: impl Fn(&V) -> bool,
        run: impl FnOnce() -> Fut,
    ) -> Result<Lookup<V>, E>
    where
        Fut: Future<Output = Result<V, E>>,
    {
        let mut run = Some(run);
        loop {
            match self.role(&key, Instant::now()) {
                Role::Done(value, expires) => {
                    self.stats.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(Lookup {
                        value,
                        source: Source::Hit,
                        stored: true,
                        ttl_left: Some(expires.saturating_duration_since(Instant::now())),
                    });
                }
                Role::Follow(mut rx) => {
                    if let Ok(v) = rx.wait_for(Option::is_some).await {
                        let value = Arc::clone(v.as_ref().expect("waited for Some"));
                        self.stats.joins.fetch_add(1, Ordering::Relaxed);
                        return Ok(Lookup {
                            value,
                            source: Source::Joined,
                            stored: false,
                            ttl_left: None,
                        });
                    }
                    // The leader went away without a result: look again (and maybe lead).
                }
                Role::Lead => {
                    let _leading = Leading { cache: self, key };
                    self.stats.misses.fetch_add(1, Ordering::Relaxed);
                    let f = run.take().expect("a request leads at most once");
                    let value = Arc::new(f().await?);
                    let stored = keep(&value) && self.store(key, &value, size(&value));
                    let mut g = self.lock();
                    if let Some(tx) = g.running.remove(&key) {
                        tx.send_replace(Some(Arc::clone(&value)));
                    }
                    return Ok(Lookup {
                        value,
                        source: Source::Miss,
                        stored,
                        ttl_left: stored.then_some(self.settings.ttl),
                    });
                }
            }
        }
    }

    fn role(&self, key: &Key, now: Instant) -> Role<V> {
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        match g.ready.get_mut(key) {
            Some(r) if r.expires > now => {
                r.used = tick;
                return Role::Done(Arc::clone(&r.value), r.expires);
            }
            Some(_) => {
                let old = g.ready.remove(key).expect("present");
                g.bytes -= old.size;
            }
            None => {}
        }
        if let Some(tx) = g.running.get(key) {
            return Role::Follow(tx.subscribe());
        }
        g.running.insert(*key, watch::Sender::new(None));
        Role::Lead
    }

    /// Store a value, evicting expired then least recently used entries to stay in budget.
    fn store(&self, key: Key, value: &Arc<V>, size: usize) -> bool {
        if size > self.settings.max_entry_bytes || size > self.settings.max_bytes {
            return false;
        }
        let now = Instant::now();
        let mut g = self.lock();
        if g.bytes + size > self.settings.max_bytes {
            let before = g.ready.len();
            g.ready.retain(|_, r| r.expires > now);
            if g.ready.len() != before {
                g.bytes = g.ready.values().map(|r| r.size).sum();
            }
        }
        while g.bytes + size > self.settings.max_bytes {
            let Some(oldest) = g.ready.iter().min_by_key(|(_, r)| r.used).map(|(k, _)| *k) else {
                break;
            };
            let r = g.ready.remove(&oldest).expect("present");
            g.bytes -= r.size;
        }
        g.tick += 1;
        let used = g.tick;
        if let Some(old) = g.ready.insert(
            key,
            Ready {
                value: Arc::clone(value),
                size,
                expires: now + self.settings.ttl,
                used,
            },
        ) {
            g.bytes -= old.size;
        }
        g.bytes += size;
        true
    }
}

/// A cache key from its parts: each part is length-prefixed, so no two different part lists
/// hash alike by shifting bytes between parts.
pub fn key(parts: &[&[u8]]) -> Key {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(&(p.len() as u64).to_le_bytes());
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn cache(ttl_ms: u64, max_bytes: usize) -> Arc<Cache<String>> {
        Arc::new(Cache::new(CacheSettings {
            ttl: Duration::from_millis(ttl_ms),
            max_bytes,
            max_entry_bytes: max_bytes,
        }))
    }

    async fn get(c: &Cache<String>, k: u8, runs: &AtomicUsize, v: &str) -> Lookup<String> {
        let value = v.to_string();
        c.get_or_run::<(), _>(
            [k; 32],
            String::len,
            |_| true,
            || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(value)
            },
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn hits_within_the_ttl_then_runs_again() {
        let c = cache(200, 1000);
        let runs = AtomicUsize::new(0);
        let a = get(&c, 1, &runs, "one").await;
        assert_eq!((a.source, a.stored), (Source::Miss, true));
        let b = get(&c, 1, &runs, "other").await;
        assert_eq!((b.source, b.value.as_str()), (Source::Hit, "one"));
        assert!(b.ttl_left.unwrap() <= Duration::from_millis(200));
        assert_eq!(get(&c, 2, &runs, "two").await.source, Source::Miss);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(get(&c, 1, &runs, "again").await.value.as_str(), "again");
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(c.stats.hits.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn identical_requests_in_flight_share_one_run() {
        let c = cache(10_000, 1000);
        let runs = Arc::new(AtomicUsize::new(0));
        let (go_tx, go_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let c = Arc::clone(&c);
            let runs = Arc::clone(&runs);
            let mut go = go_rx.clone();
            tasks.push(tokio::spawn(async move {
                c.get_or_run::<(), _>(
                    [7; 32],
                    String::len,
                    |_| true,
                    || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        let _ = go.wait_for(|g| *g).await;
                        Ok("shared".to_string())
                    },
                )
                .await
                .unwrap()
                .source
            }));
        }
        // The leader starts, then every other task reaches the cache before it finishes.
        while runs.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        go_tx.send_replace(true);
        let mut sources = Vec::new();
        for t in tasks {
            sources.push(t.await.unwrap());
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "{sources:?}");
        assert_eq!(sources.iter().filter(|s| **s == Source::Miss).count(), 1);
        assert_eq!(sources.iter().filter(|s| **s == Source::Joined).count(), 7);
    }

    #[tokio::test]
    async fn a_leader_that_goes_away_hands_over_to_a_follower() {
        let c = cache(10_000, 1000);
        let c2 = Arc::clone(&c);
        let leader = tokio::spawn(async move {
            c2.get_or_run::<(), _>(
                [3; 32],
                String::len,
                |_| true,
                || async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok("never".to_string())
                },
            )
            .await
        });
        while c.lock().running.is_empty() {
            tokio::task::yield_now().await;
        }
        let c3 = Arc::clone(&c);
        let follower = tokio::spawn(async move {
            let runs = AtomicUsize::new(0);
            get(&c3, 3, &runs, "mine").await
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        leader.abort();
        let got = tokio::time::timeout(Duration::from_secs(5), follower)
            .await
            .expect("the follower does not hang")
            .unwrap();
        assert_eq!((got.source, got.value.as_str()), (Source::Miss, "mine"));
    }

    #[tokio::test]
    async fn errors_and_unkept_values_are_not_stored() {
        let c = cache(10_000, 1000);
        let r: Result<_, &str> = c
            .get_or_run([9; 32], String::len, |_| true, || async { Err("boom") })
            .await;
        assert_eq!(r.unwrap_err(), "boom");
        let l = c
            .get_or_run::<(), _>(
                [9; 32],
                String::len,
                |v| v != "setup_failed",
                || async { Ok("setup_failed".to_string()) },
            )
            .await
            .unwrap();
        assert!(!l.stored);
        assert_eq!(c.usage(), (0, 0));
        assert!(c.lock().running.is_empty());
    }

    #[tokio::test]
    async fn memory_stays_within_budget() {
        let c = Arc::new(Cache::new(CacheSettings {
            ttl: Duration::from_secs(60),
            max_bytes: 10,
            max_entry_bytes: 6,
        }));
        let runs = AtomicUsize::new(0);
        get(&c, 1, &runs, "aaaa").await;
        get(&c, 2, &runs, "bbbb").await;
        get(&c, 1, &runs, "-").await; // touch 1: 2 is now the least recently used
        get(&c, 3, &runs, "cccc").await;
        assert_eq!(c.usage(), (2, 8));
        assert_eq!(get(&c, 1, &runs, "x").await.source, Source::Hit);
        assert_eq!(get(&c, 2, &runs, "bbbb").await.source, Source::Miss);
        let big = get(&c, 4, &runs, "too-large").await;
        assert!(!big.stored);
        assert!(c.usage().1 <= 10);
    }

    #[test]
    fn keys_separate_their_parts() {
        assert_ne!(key(&[b"ab", b"c"]), key(&[b"a", b"bc"]));
        assert_eq!(key(&[b"ab", b"c"]), key(&[b"ab", b"c"]));
        assert_ne!(key(&[b"x"]), key(&[b"x", b""]));
        assert_eq!(
            Source::Hit.cache_status(true, Some(Duration::from_secs(5))),
            "stockade; hit; ttl=5"
        );
        assert_eq!(
            Source::Miss.cache_status(true, None),
            "stockade; fwd=miss; stored"
        );
    }
}
