//! The service's shared state: configuration, the engine, the security layer's state, metrics,
//! the interpreter versions Piston reports, and request ids, behind one `Arc<App>` that every
//! handler gets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;

use super::config::Config;
use super::engine::catalog::{self, Catalog, Versions};
use super::engine::{self, Engine};
use super::launcher::Launcher;
use super::metrics::Metrics;
use super::security::layer::Security;
use super::semver::Version;
use crate::profile::Loader;

pub struct App {
    pub config: Config,
    pub engine: Arc<Engine>,
    pub metrics: Arc<Metrics>,
    /// Authentication, grants, rate limits and audit.
    pub security: Arc<Security>,
    /// Interpreter versions, detected on first use (and after a reload).
    versions: Mutex<Option<Arc<Versions>>>,
    id_prefix: u32,
    next_id: AtomicU64,
}

impl App {
    pub fn new(config: Config, launcher: Launcher, security: Arc<Security>) -> App {
        let loader = Loader {
            profile_dirs: config.profile_dirs.clone(),
            builtins: config.builtin_profiles,
            rootfs_dirs: crate::rootfs::default_dirs(),
        };
        let metrics = Arc::new(Metrics::default());
        let settings = engine::Settings {
            max_concurrent: config.max_concurrent,
            queue_size: config.queue_size,
            queue_timeout: config.queue_timeout,
            breaker: security.config.breaker,
            cache: security.config.cache.clone(),
            // Detached runs hold a result each until fetched: a few per sandbox slot.
            max_detached: (config.max_concurrent + config.queue_size).saturating_mul(4),
        };
        let engine = Engine::new(settings, loader, Arc::new(launcher), Arc::clone(&metrics));
        App {
            engine: Arc::new(engine),
            metrics,
            security,
            versions: Mutex::new(None),
            id_prefix: id_prefix(),
            next_id: AtomicU64::new(1),
            config,
        }
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.engine.catalog()
    }

    /// Re-read the profile directories (SIGHUP); versions are detected again on next use.
    pub async fn reload(&self) {
        self.engine.reload();
        *self.versions.lock().await = None;
    }

    /// Runtime versions; the first caller runs the detection, concurrent callers wait for it.
    pub async fn versions(&self) -> Arc<Versions> {
        let mut slot = self.versions.lock().await;
        if let Some(v) = slot.as_ref() {
            return Arc::clone(v);
        }
        let found = catalog::detect_versions(
            self.engine.spawner(),
            &self.catalog(),
            &self.config.piston.versions,
        )
        .await;
        let found = Arc::new(found);
        *slot = Some(Arc::clone(&found));
        found
    }

    /// The version of one runtime, if it is installed.
    pub fn version_of(versions: &BTreeMap<String, Option<Version>>, name: &str) -> Option<Version> {
        versions.get(name).copied().flatten()
    }

    /// A fresh request id: 16 hex digits, unique within this process and unlikely to repeat
    /// across restarts.
    pub fn request_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}{:08x}", self.id_prefix, n & 0xffff_ffff)
    }
}

/// Start time and pid mixed, so ids from two service lifetimes differ.
fn id_prefix() -> u32 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // The low 64 bits of the nanoseconds are the ones that vary.
    let nanos = u64::try_from(now.as_nanos() & u128::from(u64::MAX)).unwrap_or_default();
    let mixed = nanos ^ (u64::from(std::process::id()) << 32);
    // Fold to 32 bits with a multiplicative hash (Knuth), keeping the bits that vary.
    u32::try_from(mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32).unwrap_or_default()
}
