//! cgroup limit manager: kernel-enforced memory, pids and CPU limits through cgroupfs (cgroup v2,
//! cgroup v1/hybrid), or no groups at all (the sandbox then relies on rlimits).
//!
//! The backend is chosen once, at start-up (`LimitManager::detect`), and reported in every
//! verdict. Each run gets one `sandbox-<pid>-<n>` group per hierarchy, below the process's own
//! cgroup (or `--cgroup-root`); see `docs/limits.md` for the layout, what each backend enforces,
//! and the systemd unit that delegates a subtree. Our own thin layer over cgroupfs files, with
//! every path injectable so unit tests run against a fake tree (DESIGN.md §2 says why not
//! cgroups-rs).

mod cleanup;
mod delegate;
mod detect;
mod error;
mod fsops;
mod group;
mod plan;
mod stats;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::policy::Limits;
use crate::verdict::CgroupEnforced;

pub use error::CgroupError;
pub use group::RunGroup;
pub use stats::GroupStats;

use cleanup::Owner;
use detect::Layout;
use fsops::CgFs;
use plan::Target;
use stats::Sources;

/// The limit backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// cgroup v2 in a delegated subtree.
    V2,
    /// cgroup v1 controllers (reported as `hybrid` when a cgroup2 mount is used alongside).
    V1,
    /// No groups: rlimits only.
    None,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::V2 => "v2",
            BackendKind::V1 => "v1",
            BackendKind::None => "none",
        }
    }
}

impl FromStr for BackendKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "v2" => Ok(BackendKind::V2),
            "v1" => Ok(BackendKind::V1),
            "none" => Ok(BackendKind::None),
            _ => Err(format!(
                "unknown cgroup backend {s:?} (expected v2, v1 or none)"
            )),
        }
    }
}

/// How the manager is set up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupOptions {
    /// A delegated cgroup2 directory to create the groups in (`--cgroup-root`), instead of the
    /// process's own cgroup.
    pub root: Option<PathBuf>,
    /// Use this backend instead of detecting one (`Some(BackendKind::None)`: rlimits only).
    pub force: Option<BackendKind>,
}

/// How long `destroy` and the reaper wait for killed members to leave a group.
const DESTROY_TIMEOUT: Duration = Duration::from_secs(2);

/// Group names are `sandbox-<pid>-<n>`, with `n` unique within the process.
static NEXT_GROUP: AtomicU64 = AtomicU64::new(0);

/// Where the manager looks and writes; the real host, or a fake tree in unit tests.
#[derive(Debug, Clone)]
pub(crate) struct Host {
    pub fs: Arc<dyn CgFs>,
    /// `/proc`: `self/cgroup`, `self/mountinfo`, `self/stat` and `<pid>/stat` are read below it.
    pub proc_dir: PathBuf,
    /// Owner records of the groups (`/run/stockade/cgroups` for root).
    pub state_dir: PathBuf,
    pub uid: u32,
    pub pid: u32,
}

impl Host {
    fn real() -> Host {
        let uid = nix::unistd::getuid().as_raw();
        let state_dir = if uid == 0 {
            PathBuf::from("/run/stockade/cgroups")
        } else {
            let runtime = std::env::var_os("XDG_RUNTIME_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(format!("/run/user/{uid}")));
            runtime.join("stockade/cgroups")
        };
        Host {
            fs: Arc::new(fsops::RealFs),
            proc_dir: PathBuf::from("/proc"),
            state_dir,
            uid,
            pid: std::process::id(),
        }
    }
}

/// A group name with its directories (by target) and its owner record, before any `mkdir`.
type Reserved = (String, Vec<(Target, PathBuf)>, PathBuf);

/// The backend chosen at start-up, and the factory of one group per run.
#[derive(Debug)]
pub struct LimitManager {
    host: Host,
    layout: Layout,
    owner: Option<Owner>,
    /// Whether cgroup2 groups have `cgroup.kill` (Linux 5.14), probed on the first group.
    kill_file: OnceLock<bool>,
    timeout: Duration,
}

impl LimitManager {
    /// Detect the backend (or honour `force`), validate the root, reap stale groups.
    ///
    /// Errors instead of silently degrading: when cgroups exist but cannot be used (not root
    /// and not delegated) this is `NotDelegated`, and with no cgroup mount at all `NoCgroups`;
    /// a caller that accepts rlimits only then detects again with `force: Some(BackendKind::None)`.
    pub fn detect(opts: &CgroupOptions) -> Result<LimitManager, CgroupError> {
        Self::detect_on(Host::real(), opts)
    }

    pub(crate) fn detect_on(host: Host, opts: &CgroupOptions) -> Result<LimitManager, CgroupError> {
        let mut layout = detect::layout(&host, opts)?;
        let mut owner = None;
        if layout.backend != BackendKind::None {
            cleanup::ensure_state_dir(&host.state_dir)?;
            owner = Some(cleanup::own(&host)?);
            let (reaped, problems) = cleanup::reap(&host, &layout, DESTROY_TIMEOUT);
            if reaped > 0 {
                tracing::info!(reaped, "removed cgroups left by dead supervisors");
            }
            for e in problems {
                tracing::warn!(error = %e, "stale cgroup not reaped; retried on next start");
            }
        }
        if let (BackendKind::V2, Some(u)) = (layout.backend, layout.unified.as_mut()) {
            delegate::prepare(&host, u, opts.root.is_some())?;
        }
        Ok(LimitManager {
            host,
            layout,
            owner,
            kill_file: OnceLock::new(),
            timeout: DESTROY_TIMEOUT,
        })
    }

    pub fn backend(&self) -> BackendKind {
        self.layout.backend
    }

    /// The name reported in the verdict: `v2`, `v1`, `hybrid` (v1 limits plus a cgroup2 group
    /// for `CLONE_INTO_CGROUP`, `cgroup.kill` and `populated`) or `none`.
    pub fn backend_name(&self) -> &'static str {
        match (self.layout.backend, &self.layout.unified) {
            (BackendKind::V1, Some(_)) => "hybrid",
            (kind, _) => kind.as_str(),
        }
    }

    /// Fails when a limit that is `Some` in `limits` cannot be kernel-enforced here, naming the
    /// controller and the fix. The orchestrator calls this unless the cgroup layer is best-effort.
    pub fn require(&self, limits: &Limits) -> Result<(), CgroupError> {
        if let Some(cpus) = limits.cpus {
            plan::cpu_quota(cpus)?;
        }
        let ctl = self.layout.controllers();
        let wanted = [
            (limits.memory.is_some(), ctl.memory, "memory", "memory"),
            (limits.pids.is_some(), ctl.pids, "pids", "pids"),
            (limits.cpus.is_some(), ctl.cpu, "cpu", "cpus"),
        ];
        for (asked, have, controller, limit) in wanted {
            if !asked || have {
                continue;
            }
            return Err(self.missing(controller, limit));
        }
        Ok(())
    }

    fn missing(&self, controller: &'static str, limit: &'static str) -> CgroupError {
        match (self.layout.backend, &self.layout.unified) {
            (BackendKind::None, _) => CgroupError::NoBackend { limit },
            (BackendKind::V2, Some(u)) => {
                let parent = u.base.parent().unwrap_or(&u.base);
                CgroupError::ControllerMissing {
                    controller,
                    limit,
                    place: format!("in {}/cgroup.controllers", u.base.display()),
                    hint: format!(
                        "enable it on the parent: echo +{controller} > {}/cgroup.subtree_control \
                         (as a systemd service: Delegate=yes)",
                        parent.display()
                    ),
                }
            }
            _ => CgroupError::ControllerMissing {
                controller,
                limit,
                place: "in any cgroup v1 hierarchy of this process (/proc/self/cgroup)".into(),
                hint: format!(
                    "mount it (mount -t cgroup -o {controller} cgroup /sys/fs/cgroup/{controller}) \
                     or boot with systemd.unified_cgroup_hierarchy=1 to use cgroup v2"
                ),
            },
        }
    }

    /// Create one group for one run with the limits that are `Some` in `limits` (memory bytes,
    /// pids, cpus cores; CPU time is only polled, see `RunGroup::cpu_usage_us`).
    pub fn create(&self, limits: &Limits) -> Result<RunGroup, CgroupError> {
        let writes = plan::plan(&self.layout, limits)?;
        let ctl = self.layout.controllers();
        let enforced = CgroupEnforced {
            backend: self.backend_name().to_string(),
            memory_limit_enforced: limits.memory.is_some() && ctl.memory,
            pids_limit_enforced: limits.pids.is_some() && ctl.pids,
            cpu_limit_enforced: limits.cpus.is_some() && ctl.cpu,
            kill_all: false,
        };
        let Some(owner) = self.owner else {
            return RunGroup::build(self.spec(String::new(), None, Vec::new(), &writes, enforced));
        };
        let (name, dirs, record) = self.reserve(owner, limits)?;
        let mut g = RunGroup::build(self.spec(name, Some(record), dirs, &writes, enforced))?;
        g.set_kill_all(&self.kill_file);
        Ok(g)
    }

    /// Pick a free name and write its owner record before any directory exists.
    fn reserve(&self, owner: Owner, limits: &Limits) -> Result<Reserved, CgroupError> {
        let mut last = None;
        for _ in 0..16 {
            let n = NEXT_GROUP.fetch_add(1, Ordering::Relaxed);
            let name = format!("sandbox-{}-{n}", self.host.pid);
            let dirs = self.dirs(&name, limits);
            let paths: Vec<PathBuf> = dirs.iter().map(|(_, d)| d.clone()).collect();
            match cleanup::write_record(&self.host.state_dir, &name, owner, &paths) {
                Ok(record) => return Ok((name, dirs, record)),
                Err(e) if error::errno(&e) == nix::errno::Errno::EEXIST => last = Some(e),
                // Someone removed the state dir since start-up (e.g. a tmpfiles clean-up).
                Err(e) if error::errno(&e) == nix::errno::Errno::ENOENT && last.is_none() => {
                    cleanup::ensure_state_dir(&self.host.state_dir)?;
                    last = Some(e);
                }
                Err(source) => {
                    return Err(CgroupError::Marker {
                        path: self.host.state_dir.join(&name),
                        hint: String::new(),
                        source,
                    });
                }
            }
        }
        Err(CgroupError::Marker {
            path: self.host.state_dir.clone(),
            hint: "; 16 group names in a row were taken".into(),
            source: last.unwrap_or_else(|| std::io::Error::from_raw_os_error(libc::EEXIST)),
        })
    }

    /// The directories of group `name`, cgroup2 first.
    ///
    /// With a cgroup2 mount (tracking, kill-all, CPU time), a v1 hierarchy is joined only when one
    /// of its controllers enforces a limit this run asks for: each v1 migration after `clone3`
    /// waits for an RCU grace period (measured ~10 ms here), which the default path should not pay.
    fn dirs(&self, name: &str, limits: &Limits) -> Vec<(Target, PathBuf)> {
        let unified = self
            .layout
            .unified
            .iter()
            .map(|u| (Target::Unified, u.base.join(name)));
        let tracked = self.layout.unified.is_some();
        let needed = |c: &detect::Ctl| {
            !tracked
                || (c.memory && limits.memory.is_some())
                || (c.pids && limits.pids.is_some())
                || (c.cpu && limits.cpus.is_some())
        };
        let v1 = self
            .layout
            .v1
            .iter()
            .enumerate()
            .filter(|(_, h)| needed(&h.ctl))
            .map(|(i, h)| (Target::V1(i), h.base.join(name)));
        unified.chain(v1).collect()
    }

    fn spec<'a>(
        &self,
        name: String,
        record: Option<PathBuf>,
        dirs: Vec<(Target, PathBuf)>,
        writes: &'a [plan::Write],
        enforced: CgroupEnforced,
    ) -> group::Spec<'a> {
        let mut sources = Sources::default();
        for (target, dir) in &dirs {
            match target {
                Target::Unified => {
                    let ctl = self
                        .layout
                        .unified
                        .as_ref()
                        .map(|u| u.enabled)
                        .unwrap_or_default();
                    sources.v2 = Some((dir.clone(), ctl));
                }
                Target::V1(i) => {
                    let ctl = self.layout.v1[*i].ctl;
                    let pick = |yes: bool| yes.then(|| dir.clone());
                    sources.memory = sources.memory.take().or(pick(ctl.memory));
                    sources.pids = sources.pids.take().or(pick(ctl.pids));
                    sources.cpu = sources.cpu.take().or(pick(ctl.cpu));
                    sources.cpuacct = sources.cpuacct.take().or(pick(ctl.cpuacct));
                }
            }
        }
        group::Spec {
            fs: Arc::clone(&self.host.fs),
            name,
            record,
            dirs,
            writes,
            sources,
            enforced,
            timeout: self.timeout,
        }
    }
}
