//! One run's cgroup: created with its limits, joined by the child, watched, killed, removed.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::signal::Signal;

use crate::verdict::CgroupEnforced;

use super::cleanup;
use super::error::{CgroupError, errno};
use super::fsops::{self, CgFs};
use super::plan::{self, Target};
use super::stats::{self, GroupStats, Sources};

/// How the OOM killer is watched.
#[derive(Debug)]
enum OomWatch {
    /// v1: an eventfd registered on `memory.oom_control` through `cgroup.event_control`
    /// (memory.rst §9); the file stays open to read its `oom_kill` counter.
    V1 { efd: EventFd, control: File },
    /// v2: inotify on `memory.events`, which the kernel modifies on every OOM event
    /// (cgroup-v2.rst: "a value change in this file generates a file modified event").
    V2 { inotify: Inotify, events: File },
}

/// The kernel-side state of one run. Dropping it without `destroy` still removes everything
/// (best effort, errors only logged).
#[derive(Debug)]
pub struct RunGroup {
    fs: Arc<dyn CgFs>,
    name: String,
    record: Option<PathBuf>,
    /// Created directories; the cgroup2 one first, so `cgroup.kill` empties all of them at once.
    dirs: Vec<PathBuf>,
    /// The cgroup2 group (v2 backend, or the hybrid tracker).
    unified: Option<PathBuf>,
    /// v1 groups the child joins by pid (`attach`).
    v1: Vec<PathBuf>,
    sources: Sources,
    clone_dir: Option<File>,
    /// The polled CPU file and whether it is cgroup2 `cpu.stat` (else v1 `cpuacct.usage`).
    cpu_file: Option<(File, bool)>,
    oom: Option<OomWatch>,
    enforced: CgroupEnforced,
    timeout: Duration,
    done: bool,
}

/// What `LimitManager::create` hands over to build a group.
pub(crate) struct Spec<'a> {
    pub fs: Arc<dyn CgFs>,
    pub name: String,
    pub record: Option<PathBuf>,
    /// `(target, dir)` for every directory to create, cgroup2 first.
    pub dirs: Vec<(Target, PathBuf)>,
    pub writes: &'a [plan::Write],
    pub sources: Sources,
    pub enforced: CgroupEnforced,
    pub timeout: Duration,
}

impl RunGroup {
    /// Create the directories, write the limits, open what is polled later. On any error the
    /// partly built group is dropped, which removes what was already created.
    pub(crate) fn build(spec: Spec<'_>) -> Result<RunGroup, CgroupError> {
        let mut g = RunGroup {
            fs: spec.fs,
            name: spec.name,
            record: spec.record,
            dirs: Vec::with_capacity(spec.dirs.len()),
            unified: None,
            v1: Vec::new(),
            sources: spec.sources,
            clone_dir: None,
            cpu_file: None,
            oom: None,
            enforced: spec.enforced,
            timeout: spec.timeout,
            done: false,
        };
        for (target, dir) in &spec.dirs {
            g.fs.mkdir(dir).map_err(|source| CgroupError::Mkdir {
                path: dir.clone(),
                hint: mkdir_hint(errno(&source)),
                source,
            })?;
            g.dirs.push(dir.clone());
            match target {
                Target::Unified => g.unified = Some(dir.clone()),
                Target::V1(_) => g.v1.push(dir.clone()),
            }
        }
        let dir_of = |t: Target| spec.dirs.iter().find(|(x, _)| *x == t).map(|(_, d)| d);
        for w in spec.writes {
            let Some(dir) = dir_of(w.target) else {
                continue;
            };
            let file = dir.join(w.file);
            match g.fs.write(&file, &w.value) {
                Ok(()) => {}
                Err(e) if w.optional && errno(&e) == Errno::ENOENT => {}
                Err(source) => {
                    return Err(CgroupError::Write {
                        hint: write_hint(w.file, errno(&source)),
                        path: file,
                        value: w.value.clone(),
                        source,
                    });
                }
            }
        }
        g.open_watchers()?;
        Ok(g)
    }

    /// Open the `CLONE_INTO_CGROUP` directory, the polled CPU file and the OOM watch.
    fn open_watchers(&mut self) -> Result<(), CgroupError> {
        let fs = &*self.fs;
        if let Some(u) = &self.unified {
            self.clone_dir = Some(fsops::open(fs, u)?);
            self.cpu_file = Some((fsops::open(fs, &u.join("cpu.stat"))?, true));
        } else if let Some(acct) = &self.sources.cpuacct {
            self.cpu_file = Some((fsops::open(fs, &acct.join("cpuacct.usage"))?, false));
        }
        self.oom = match (&self.sources.v2, &self.sources.memory) {
            (Some((dir, ctl)), _) if ctl.memory => Some(watch_v2(fs, dir)?),
            (_, Some(dir)) => Some(watch_v1(fs, dir)?),
            _ => None,
        };
        Ok(())
    }

    /// Record whether the whole group can be killed at once; `cgroup.kill` (Linux 5.14) is
    /// probed once per manager, on its first group.
    pub(crate) fn set_kill_all(&mut self, probe: &std::sync::OnceLock<bool>) {
        if let Some(u) = &self.unified {
            self.enforced.kill_all = *probe.get_or_init(|| self.fs.exists(&u.join("cgroup.kill")));
        }
    }

    /// The group's name (`sandbox-<pid>-<n>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every directory of this group, cgroup2 first (for diagnostics and tests).
    pub fn paths(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The cgroup2 directory to pass to `clone3` with `CLONE_INTO_CGROUP`, so the child is born
    /// inside the group. When this is `Some`, the caller must use it: `attach` then only writes
    /// the v1 hierarchies.
    pub fn clone_into_fd(&self) -> Option<BorrowedFd<'_>> {
        self.clone_dir.as_ref().map(|f| f.as_fd())
    }

    /// Put `pid` into every v1 group (between `clone3` and releasing the child, so no payload
    /// instruction runs outside its limits). A no-op where `CLONE_INTO_CGROUP` covers all.
    pub fn attach(&self, pid: i32) -> Result<(), CgroupError> {
        let value = pid.to_string();
        self.v1
            .iter()
            .try_for_each(|d| fsops::write(&*self.fs, &d.join("cgroup.procs"), &value))
    }

    /// Pollable (`POLLIN`) when an OOM kill may have happened; then call `oom_kills`.
    pub fn event_fd(&self) -> Option<BorrowedFd<'_>> {
        match self.oom.as_ref()? {
            OomWatch::V1 { efd, .. } => Some(efd.as_fd()),
            OomWatch::V2 { inotify, .. } => Some(inotify.as_fd()),
        }
    }

    /// Drain `event_fd` and read the OOM kill counter (one `read` and one `pread`).
    pub fn oom_kills(&self) -> Option<u64> {
        let counter = match self.oom.as_ref()? {
            OomWatch::V1 { efd, control } => {
                let _ = efd.read(); // EAGAIN when nothing is pending (EFD_NONBLOCK).
                (control, "oom_kill")
            }
            OomWatch::V2 { inotify, events } => {
                let _ = inotify.read_events();
                (events, "oom_kill")
            }
        };
        let mut buf = [0u8; 256];
        let n = counter.0.read_at(&mut buf, 0).ok()?;
        stats::keyed(std::str::from_utf8(&buf[..n]).ok()?, counter.1)
    }

    /// CPU time of the whole group in µs: one `pread` of an already open file, cheap enough to
    /// poll every few milliseconds for the CPU-time limit.
    pub fn cpu_usage_us(&self) -> Option<u64> {
        let (file, v2) = self.cpu_file.as_ref()?;
        let mut buf = [0u8; 512];
        let n = file.read_at(&mut buf, 0).ok()?;
        stats::cpu_usage_from(&buf[..n], *v2)
    }

    /// Whether any process is still in the group (cgroup2 `cgroup.events` `populated`, which
    /// counts descendants too; v1 `cgroup.procs`). `None` for the rlimit backend.
    pub fn populated(&self) -> Option<bool> {
        if let Some(u) = &self.unified {
            let text = self.fs.read(&u.join("cgroup.events")).ok()?;
            return stats::keyed(&text, "populated").map(|n| n != 0);
        }
        let d = self.v1.first()?;
        Some(!fsops::members(&*self.fs, d).is_empty())
    }

    /// Kill every member. `Ok(true)`: all at once through `cgroup.kill`. `Ok(false)`: no
    /// `cgroup.kill` here (v1 without a cgroup2 mount, kernels before 5.14, or the rlimit
    /// backend); the listed members were sent SIGKILL, but a racing fork can escape, so the
    /// caller must also kill the sandbox's init (which ends its PID namespace).
    pub fn kill(&self) -> Result<bool, CgroupError> {
        if let Some(u) = &self.unified {
            let file = u.join("cgroup.kill");
            match self.fs.write(&file, "1") {
                Ok(()) => return Ok(true),
                Err(e) if errno(&e) == Errno::ENOENT => {}
                Err(source) => {
                    return Err(CgroupError::Write {
                        path: file,
                        value: "1".into(),
                        hint: String::new(),
                        source,
                    });
                }
            }
        }
        for d in self.v1.iter().chain(self.unified.as_ref()) {
            for pid in fsops::members(&*self.fs, d) {
                let _ = self.fs.signal(pid, Signal::SIGKILL);
            }
        }
        Ok(false)
    }

    /// Usage statistics for the verdict (read once, after the run).
    pub fn stats(&self) -> GroupStats {
        stats::collect(&*self.fs, &self.sources)
    }

    /// Which limits the kernel enforces for this group.
    pub fn enforced(&self) -> CgroupEnforced {
        self.enforced.clone()
    }

    /// Kill what is left, wait until the group is empty (bounded), remove every directory and
    /// then the owner record. On failure the record stays, so the next start reaps the rest.
    pub fn destroy(mut self) -> Result<(), CgroupError> {
        self.done = true;
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), CgroupError> {
        // Close the watchers first: a registered v1 eventfd holds nothing back, but there is no
        // reason to keep fds into directories that are about to go.
        self.oom = None;
        self.cpu_file = None;
        self.clone_dir = None;
        let record = self.record.clone().unwrap_or_default();
        cleanup::remove_all(&*self.fs, &self.dirs, self.timeout, &record)?;
        if let Some(r) = self.record.take() {
            cleanup::remove_record(&r)?;
        }
        Ok(())
    }
}

impl Drop for RunGroup {
    fn drop(&mut self) {
        if !self.done
            && let Err(e) = self.teardown()
        {
            tracing::warn!(group = %self.name, error = %e, "cgroup clean-up failed");
        }
    }
}

fn watch_v1(fs: &dyn CgFs, dir: &Path) -> Result<OomWatch, CgroupError> {
    let control_path = dir.join("memory.oom_control");
    let control = fsops::open(fs, &control_path)?;
    let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).map_err(|e| {
        CgroupError::Notify {
            step: "eventfd",
            path: control_path.clone(),
            source: e.into(),
        }
    })?;
    let value = format!("{} {}", efd.as_raw_fd(), control.as_raw_fd());
    fsops::write(fs, &dir.join("cgroup.event_control"), &value)?;
    Ok(OomWatch::V1 { efd, control })
}

fn watch_v2(fs: &dyn CgFs, dir: &Path) -> Result<OomWatch, CgroupError> {
    let path = dir.join("memory.events");
    let events = fsops::open(fs, &path)?;
    let notify_err = |step| {
        let path = path.clone();
        move |e: Errno| CgroupError::Notify {
            step,
            path,
            source: e.into(),
        }
    };
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .map_err(notify_err("inotify_init1"))?;
    inotify
        .add_watch(&path, AddWatchFlags::IN_MODIFY)
        .map_err(notify_err("inotify_add_watch"))?;
    Ok(OomWatch::V2 { inotify, events })
}

/// What to change when `mkdir` of a group fails.
fn mkdir_hint(e: Errno) -> String {
    match e {
        Errno::ENOSPC | Errno::EAGAIN => "; an ancestor's cgroup.max.descendants or \
            cgroup.max.depth is reached (raise it, or reap leftover groups)"
            .into(),
        Errno::EACCES | Errno::EPERM | Errno::EROFS => "; the cgroup is not delegated to this \
            user: use systemd Delegate=yes or --cgroup-root"
            .into(),
        _ => String::new(),
    }
}

/// What to change when a limit write fails.
fn write_hint(file: &str, e: Errno) -> String {
    match (file, e) {
        ("cpu.cfs_quota_us" | "cpu.max", Errno::EINVAL) => {
            "; an ancestor's cpu quota is lower than this limit".into()
        }
        ("cgroup.procs", Errno::ENOSPC) => {
            "; the group has no CPUs or memory nodes to run on (check the parent's cpuset)".into()
        }
        ("memory.limit_in_bytes" | "memory.max", Errno::EBUSY) => {
            "; the group already uses more memory than this limit".into()
        }
        _ => String::new(),
    }
}
