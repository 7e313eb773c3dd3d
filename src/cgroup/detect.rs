//! Backend detection from `/proc/self/cgroup` and `/proc/self/mountinfo` (cgroups(7), proc(5)).
//!
//! The result is a `Layout`: the directories under which this process may create its groups, one
//! per hierarchy it uses. Groups are only ever created below the process's own cgroup (or below
//! an explicit `--cgroup-root`), never elsewhere in the host's tree.

use std::path::{Path, PathBuf};

use super::error::CgroupError;
use super::fsops;
use super::{BackendKind, CgroupOptions, Host};

/// A set of the controllers the manager uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Ctl {
    pub memory: bool,
    pub pids: bool,
    pub cpu: bool,
    pub cpuacct: bool,
}

impl Ctl {
    /// Controllers named in a space- or comma-separated list (`cgroup.controllers`, mount options).
    pub fn parse(list: &str) -> Ctl {
        let mut c = Ctl::default();
        for name in list.split([' ', ',', '\n']) {
            match name {
                "memory" => c.memory = true,
                "pids" => c.pids = true,
                "cpu" => c.cpu = true,
                "cpuacct" => c.cpuacct = true,
                _ => {}
            }
        }
        c
    }

    /// The controllers in both sets.
    pub fn and(self, other: Ctl) -> Ctl {
        Ctl {
            memory: self.memory && other.memory,
            pids: self.pids && other.pids,
            cpu: self.cpu && other.cpu,
            cpuacct: self.cpuacct && other.cpuacct,
        }
    }

    pub fn any(self) -> bool {
        self.memory || self.pids || self.cpu || self.cpuacct
    }

    /// The cgroup2 controller names in `self` and not in `other`, in a stable order.
    pub fn missing_from(self, other: Ctl) -> Vec<&'static str> {
        [
            (self.memory && !other.memory, "memory"),
            (self.pids && !other.pids, "pids"),
            (self.cpu && !other.cpu, "cpu"),
        ]
        .into_iter()
        .filter_map(|(m, n)| m.then_some(n))
        .collect()
    }
}

/// The cgroup2 hierarchy as the manager uses it (the whole backend on v2, tracking on hybrid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unified {
    /// Parent directory of the `sandbox-<id>` groups.
    pub base: PathBuf,
    /// Controllers enabled in `base/cgroup.subtree_control` (what every group gets).
    pub enabled: Ctl,
}

/// One cgroup v1 hierarchy the manager creates groups in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct V1Hier {
    /// The process's own cgroup in this hierarchy: the parent of the groups.
    pub base: PathBuf,
    /// The controllers of this hierarchy that the manager uses (co-mounted ones share a dir).
    pub ctl: Ctl,
}

/// Where groups go, decided once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub backend: BackendKind,
    pub unified: Option<Unified>,
    pub v1: Vec<V1Hier>,
    /// Every cgroup mount point; owner records may only name directories below these.
    pub mounts: Vec<PathBuf>,
    /// Whether v1 memory has swap accounting (`memory.memsw.*`, kernel `swapaccount=1`).
    pub v1_memsw: bool,
}

impl Layout {
    pub fn none() -> Layout {
        Layout {
            backend: BackendKind::None,
            unified: None,
            v1: Vec::new(),
            mounts: Vec::new(),
            v1_memsw: false,
        }
    }

    /// The union of the controllers the groups get, in any hierarchy.
    pub fn controllers(&self) -> Ctl {
        let mut c = self.unified.as_ref().map(|u| u.enabled).unwrap_or_default();
        for h in &self.v1 {
            c.memory |= h.ctl.memory;
            c.pids |= h.ctl.pids;
            c.cpu |= h.ctl.cpu;
            c.cpuacct |= h.ctl.cpuacct;
        }
        c
    }
}

/// One cgroup or cgroup2 mount from mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// The path inside the hierarchy that is mounted (field 4; `/` unless bind-mounted).
    pub root: String,
    pub point: PathBuf,
    pub v2: bool,
    /// Super options: for v1 the controllers (`rw,cpu,cpuacct`).
    pub options: String,
}

/// One line of `/proc/self/cgroup`: `hierarchy-id:controllers:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Membership {
    pub id: u32,
    pub controllers: String,
    pub path: String,
}

/// The cgroup mounts in a mountinfo text.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<Mount> {
    crate::mountinfo::parse(text)
        .into_iter()
        .filter_map(|m| {
            let v2 = match m.fstype.as_str() {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            Some(Mount {
                root: m.root,
                point: PathBuf::from(m.point),
                v2,
                options: m.options,
            })
        })
        .collect()
}

/// The lines of `/proc/self/cgroup`; malformed lines are an error naming the line.
pub(crate) fn parse_proc_cgroup(path: &Path, text: &str) -> Result<Vec<Membership>, CgroupError> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let bad = || CgroupError::Parse {
                path: path.to_path_buf(),
                reason: format!("malformed line {line:?} (expected id:controllers:path)"),
            };
            let (id, rest) = line.split_once(':').ok_or_else(bad)?;
            let (controllers, cg) = rest.split_once(':').ok_or_else(bad)?;
            Ok(Membership {
                id: id.parse().map_err(|_| bad())?,
                controllers: controllers.to_string(),
                path: cg.to_string(),
            })
        })
        .collect()
}

/// The directory of cgroup `path` under `mount`, when the mount shows it.
fn dir_under(mount: &Mount, path: &str) -> Option<PathBuf> {
    let rel = if mount.root == "/" {
        path
    } else {
        let rest = path.strip_prefix(mount.root.as_str())?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        rest
    };
    let rel = rel.trim_start_matches('/');
    Some(if rel.is_empty() {
        mount.point.clone()
    } else {
        mount.point.join(rel)
    })
}

/// Decide the backend and the base directories; no writes happen here.
pub(crate) fn layout(host: &Host, opts: &CgroupOptions) -> Result<Layout, CgroupError> {
    if opts.force == Some(BackendKind::None) {
        return Ok(Layout::none());
    }
    let info_path = host.proc_dir.join("self/mountinfo");
    let mounts = parse_mountinfo(&fsops::read(&*host.fs, &info_path)?);
    let mut mount_points: Vec<PathBuf> = mounts.iter().map(|m| m.point.clone()).collect();
    mount_points.extend(opts.root.iter().cloned());
    if let Some(root) = &opts.root {
        return explicit_root(host, opts, root, mount_points);
    }
    let cg_path = host.proc_dir.join("self/cgroup");
    let members = parse_proc_cgroup(&cg_path, &fsops::read(&*host.fs, &cg_path)?)?;
    let unified = members.iter().find(|m| m.id == 0).and_then(|m| {
        mounts
            .iter()
            .filter(|mt| mt.v2)
            .find_map(|mt| dir_under(mt, &m.path))
    });
    let v1 = v1_hierarchies(&mounts, &members);
    let has_v1_memory = v1.iter().any(|h| h.ctl.memory);
    let v1_useful = v1.iter().any(|h| h.ctl.memory || h.ctl.pids || h.ctl.cpu);
    let backend = match opts.force {
        Some(BackendKind::V1) if !v1_useful => {
            return Err(CgroupError::ForcedUnavailable {
                wanted: "v1",
                reason: "no cgroup v1 hierarchy with the memory, pids or cpu controller is mounted"
                    .into(),
            });
        }
        Some(BackendKind::V2) if unified.is_none() => {
            return Err(CgroupError::ForcedUnavailable {
                wanted: "v2",
                reason: "no cgroup2 file system is mounted".into(),
            });
        }
        Some(kind) => kind,
        None if has_v1_memory || (unified.is_none() && v1_useful) => BackendKind::V1,
        None if unified.is_some() => BackendKind::V2,
        None => {
            return Err(CgroupError::NoCgroups {
                mountinfo: info_path,
            });
        }
    };
    let mut layout = Layout {
        backend,
        unified: unified.map(|base| Unified {
            base,
            enabled: Ctl::default(),
        }),
        v1: if backend == BackendKind::V1 {
            v1
        } else {
            Vec::new()
        },
        mounts: mount_points,
        v1_memsw: false,
    };
    check_writable(host, &mut layout)?;
    if layout.unified.is_some() {
        // cgroup2's cpu.stat has the CPU times of every group; cpuacct is then redundant.
        layout.v1.retain_mut(|h| {
            h.ctl.cpuacct = false;
            h.ctl.any()
        });
    }
    // Probed on our own memory cgroup: its children have the same interface files.
    layout.v1_memsw = layout
        .v1
        .iter()
        .filter(|h| h.ctl.memory)
        .any(|h| host.fs.exists(&h.base.join("memory.memsw.limit_in_bytes")));
    Ok(layout)
}

/// `--cgroup-root`: a cgroup2 directory the caller vouches for.
fn explicit_root(
    host: &Host,
    opts: &CgroupOptions,
    root: &Path,
    mounts: Vec<PathBuf>,
) -> Result<Layout, CgroupError> {
    if opts.force == Some(BackendKind::V1) {
        return Err(CgroupError::ForcedUnavailable {
            wanted: "v1",
            reason: format!("--cgroup-root {} names a cgroup2 directory", root.display()),
        });
    }
    if host.fs.read(&root.join("cgroup.controllers")).is_err() {
        return Err(CgroupError::RootNotCgroup2 {
            path: root.to_path_buf(),
        });
    }
    let mut layout = Layout {
        backend: BackendKind::V2,
        unified: Some(Unified {
            base: root.to_path_buf(),
            enabled: Ctl::default(),
        }),
        v1: Vec::new(),
        mounts,
        v1_memsw: false,
    };
    check_writable(host, &mut layout)?;
    Ok(layout)
}

/// The v1 hierarchies holding memory, pids, cpu or cpuacct, deduplicated when controllers are
/// co-mounted.
fn v1_hierarchies(mounts: &[Mount], members: &[Membership]) -> Vec<V1Hier> {
    let mut out: Vec<V1Hier> = Vec::new();
    for m in members.iter().filter(|m| m.id != 0) {
        let ctl = Ctl::parse(&m.controllers);
        if !ctl.any() {
            continue;
        }
        let wanted: Vec<&str> = m.controllers.split(',').collect();
        let dir = mounts
            .iter()
            .filter(|mt| {
                !mt.v2
                    && wanted
                        .iter()
                        .all(|w| mt.options.split(',').any(|o| o == *w))
            })
            .find_map(|mt| dir_under(mt, &m.path));
        if let Some(base) = dir
            && !out.iter().any(|h| h.base == base)
        {
            out.push(V1Hier { base, ctl });
        }
    }
    out
}

/// Every base the backend needs must be writable; the hybrid cgroup2 tracker is optional.
fn check_writable(host: &Host, layout: &mut Layout) -> Result<(), CgroupError> {
    let not_delegated = |path: &Path| CgroupError::NotDelegated {
        path: path.to_path_buf(),
        uid: host.uid,
    };
    match (layout.backend, &layout.unified) {
        (BackendKind::V2, Some(u)) if !host.fs.writable(&u.base) => {
            return Err(not_delegated(&u.base));
        }
        (BackendKind::V2, _) => {}
        (BackendKind::V1, _) => {
            if let Some(h) = layout.v1.iter().find(|h| !host.fs.writable(&h.base)) {
                return Err(not_delegated(&h.base));
            }
            if layout
                .unified
                .as_ref()
                .is_some_and(|u| !host.fs.writable(&u.base))
            {
                layout.unified = None;
            }
        }
        (BackendKind::None, _) => {}
    }
    Ok(())
}
