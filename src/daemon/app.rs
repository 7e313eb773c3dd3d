//! The service's shared state: configuration, launcher, profiles, back-pressure, metrics and the
//! drain switches, behind one `Arc<App>` that every handler gets.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::{Mutex, watch};

use super::admission::Admission;
use super::catalog::{self, Catalog, Versions};
use super::config::Config;
use super::launcher::Launcher;
use super::metrics::{Gauges, Metrics};
use super::security::layer::Security;
use super::semver::Version;
use crate::profile::Loader;

pub struct App {
    pub config: Config,
    pub launcher: Launcher,
    pub loader: Loader,
    catalog: RwLock<Arc<Catalog>>,
    /// Interpreter versions, detected on first use (and after a reload).
    versions: Mutex<Option<Arc<Versions>>>,
    pub admission: Admission,
    pub metrics: Metrics,
    /// Authentication, grants, rate limits, audit, cache and circuit breaker.
    pub security: Arc<Security>,
    draining: AtomicBool,
    /// Set when the drain deadline passes: every running sandbox is killed.
    kill: watch::Sender<bool>,
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
        let catalog = Catalog::load(&loader);
        let admission = Admission::new(config.max_concurrent, config.queue_size);
        App {
            catalog: RwLock::new(Arc::new(catalog)),
            versions: Mutex::new(None),
            admission,
            metrics: Metrics::default(),
            security,
            draining: AtomicBool::new(false),
            kill: watch::Sender::new(false),
            id_prefix: id_prefix(),
            next_id: AtomicU64::new(1),
            config,
            launcher,
            loader,
        }
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.catalog.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Re-read the profile directories (SIGHUP); versions are detected again on next use.
    pub async fn reload(&self) {
        let fresh = Arc::new(Catalog::load(&self.loader));
        *self.catalog.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        *self.versions.lock().await = None;
    }

    /// Runtime versions; the first caller runs the detection, concurrent callers wait for it.
    pub async fn versions(&self) -> Arc<Versions> {
        let mut slot = self.versions.lock().await;
        if let Some(v) = slot.as_ref() {
            return Arc::clone(v);
        }
        let found = catalog::detect_versions(
            &self.launcher,
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

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Stop taking work: readiness turns false, queued and new requests are refused.
    pub fn start_drain(&self) {
        self.draining.store(true, Ordering::Release);
        self.admission.close();
    }

    /// Kill every running sandbox (the drain deadline passed).
    pub fn kill_all(&self) {
        self.kill.send_replace(true);
    }

    pub fn kill_switch(&self) -> watch::Receiver<bool> {
        self.kill.subscribe()
    }

    pub fn ready(&self) -> Result<(), &'static str> {
        if self.draining() {
            return Err("draining");
        }
        if !self.launcher.alive() {
            return Err("launcher_down");
        }
        if !self.security.breaker.ready() {
            return Err("sandbox_unavailable");
        }
        Ok(())
    }

    pub fn gauges(&self) -> Gauges {
        Gauges {
            queued: self.admission.queued(),
            running: self.admission.running(),
            max_concurrent: self.admission.max_concurrent(),
            queue_size: self.admission.queue_size(),
            launcher_up: self.launcher.alive(),
            draining: self.draining(),
        }
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
    let mixed = now.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32);
    // Fold to 32 bits with a multiplicative hash (Knuth), keeping the bits that vary.
    (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
}
