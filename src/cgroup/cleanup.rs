//! Group removal and owner records: nothing is left behind, even after a SIGKILLed supervisor.
//!
//! Before a run's directories are created, an owner record (`<state dir>/<group name>`: owner pid,
//! owner start time from `/proc/<pid>/stat` field 22, and every directory) is written. It is
//! removed only once every directory is gone. On the next start, a record whose owner is no
//! longer running (no such pid, or the pid was reused by a process with another start time) is
//! reaped: members killed, directories removed. Directories are found through records only,
//! never by matching names in the cgroup tree.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;

use super::error::{CgroupError, errno};
use super::fsops::{self, CgFs};
use super::{Host, detect::Layout};

/// First line of every owner record (format version 1).
const MAGIC: &str = "stockade-cgroup-owner 1";

/// The process that owns a group: pid plus start time, so a reused pid is not mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pub pid: u32,
    pub start: u64,
}

/// Field 22 (`starttime`) of a `/proc/<pid>/stat` line; the command name (field 2) may contain
/// spaces and parentheses, so fields are counted after the last `)` (proc(5)).
pub(crate) fn start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// This process as an owner.
pub(crate) fn own(host: &Host) -> Result<Owner, CgroupError> {
    let path = host.proc_dir.join("self/stat");
    let stat = fsops::read(&*host.fs, &path)?;
    let start = start_time(&stat).ok_or_else(|| CgroupError::Parse {
        path,
        reason: "no start time in field 22".into(),
    })?;
    Ok(Owner {
        pid: host.pid,
        start,
    })
}

fn alive(host: &Host, owner: Owner) -> bool {
    let stat = host
        .fs
        .read(&host.proc_dir.join(format!("{}/stat", owner.pid)));
    stat.ok().and_then(|s| start_time(&s)) == Some(owner.start)
}

/// Create the state directory (mode 0700: records name paths that root will kill and remove).
pub(crate) fn ensure_state_dir(dir: &Path) -> Result<(), CgroupError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| CgroupError::Marker {
            path: dir.to_path_buf(),
            hint: "; owner records of sandbox cgroups are kept there (as root in \
                   /run/stockade/cgroups, otherwise under $XDG_RUNTIME_DIR, which must be a \
                   private directory of this user)"
                .into(),
            source,
        })
}

/// Write the owner record for `name` with one `write(2)`; `EEXIST` means the name is taken.
pub(crate) fn write_record(
    state_dir: &Path,
    name: &str,
    owner: Owner,
    dirs: &[PathBuf],
) -> io::Result<PathBuf> {
    let path = state_dir.join(name);
    let mut text = format!("{MAGIC}\npid {}\nstart {}\n", owner.pid, owner.start);
    for d in dirs {
        text.push_str(&format!("dir {}\n", d.display()));
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(text.as_bytes())?;
    Ok(path)
}

/// The owner and directories of a record; `None` when it is not a complete record.
pub(crate) fn parse_record(text: &str) -> Option<(Owner, Vec<PathBuf>)> {
    let mut lines = text.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    let (mut pid, mut start, mut dirs) = (None, None, Vec::new());
    for line in lines {
        match line.split_once(' ')? {
            ("pid", v) => pid = v.parse().ok(),
            ("start", v) => start = v.parse().ok(),
            ("dir", v) => dirs.push(PathBuf::from(v)),
            _ => return None,
        }
    }
    Some((
        Owner {
            pid: pid?,
            start: start?,
        },
        dirs,
    ))
}

/// A directory from a record is only touched when it lies strictly below a cgroup mount point
/// of this host, so a corrupted record cannot make us kill or remove anything else.
fn plausible(dir: &Path, layout: &Layout) -> bool {
    dir.is_absolute()
        && !dir
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        && layout
            .mounts
            .iter()
            .any(|m| dir.starts_with(m) && dir != m.as_path())
}

/// Reap the groups of dead owners. Returns how many records were cleared, and the problems met
/// (the records concerned are kept for the next start).
pub(crate) fn reap(host: &Host, layout: &Layout, timeout: Duration) -> (usize, Vec<CgroupError>) {
    let Ok(entries) = std::fs::read_dir(&host.state_dir) else {
        return (0, Vec::new());
    };
    let (mut reaped, mut problems) = (0, Vec::new());
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Some((owner, dirs)) = parse_record(&text) else {
            // A record is written with one write(2) before any mkdir, so an empty file is a
            // supervisor killed between open and write: there is nothing to remove.
            if text.is_empty() {
                let _ = std::fs::remove_file(&path);
            } else {
                tracing::warn!(record = %path.display(), "unreadable cgroup owner record kept");
            }
            continue;
        };
        if alive(host, owner) {
            continue;
        }
        if let Some(bad) = dirs.iter().find(|d| !plausible(d, layout)) {
            problems.push(CgroupError::Parse {
                path: path.clone(),
                reason: format!("{} is not below a cgroup mount; record kept", bad.display()),
            });
            continue;
        }
        match remove_all(&*host.fs, &dirs, timeout, &path) {
            Ok(()) => match remove_record(&path) {
                Ok(()) => reaped += 1,
                Err(e) => problems.push(e),
            },
            Err(e) => problems.push(e),
        }
    }
    (reaped, problems)
}

pub(crate) fn remove_record(path: &Path) -> Result<(), CgroupError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Errno::ENOENT => Ok(()),
        Err(source) => Err(CgroupError::Marker {
            path: path.to_path_buf(),
            hint: String::new(),
            source,
        }),
    }
}

/// Remove every directory, killing members where needed; all are tried, the first error wins.
pub(crate) fn remove_all(
    fs: &dyn CgFs,
    dirs: &[PathBuf],
    timeout: Duration,
    record: &Path,
) -> Result<(), CgroupError> {
    let deadline = Instant::now() + timeout;
    let mut first = None;
    for dir in dirs {
        if let Err(e) = remove_one(fs, dir, deadline, timeout, record) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// `rmdir`, and while it says `EBUSY` (members left), kill them and retry until `deadline`.
/// The fast path is one `rmdir`; sleeps only happen when something is still alive.
fn remove_one(
    fs: &dyn CgFs,
    dir: &Path,
    deadline: Instant,
    timeout: Duration,
    record: &Path,
) -> Result<(), CgroupError> {
    let mut pause = Duration::from_micros(500);
    loop {
        match fs.rmdir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if errno(&e) == Errno::ENOENT => return Ok(()),
            Err(e) if errno(&e) == Errno::EBUSY => {}
            Err(source) => {
                return Err(CgroupError::Rmdir {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        }
        kill_members(fs, dir);
        if Instant::now() >= deadline {
            let pids: Vec<String> = fsops::members(fs, dir).iter().map(i32::to_string).collect();
            return Err(CgroupError::Busy {
                path: dir.to_path_buf(),
                pids: if pids.is_empty() {
                    "none listed".into()
                } else {
                    pids.join(" ")
                },
                waited_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                marker: record.to_path_buf(),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Kill every member of `dir`: `cgroup.kill` where it exists (atomic, also reaches stopped and
/// frozen tasks), else SIGKILL to each pid in `cgroup.procs` (racy against forks, so callers
/// repeat it). A frozen cgroup2 group is thawed first. Returns whether `cgroup.kill` was used.
pub(crate) fn kill_members(fs: &dyn CgFs, dir: &Path) -> bool {
    let freeze = dir.join("cgroup.freeze");
    if fs.read(&freeze).is_ok_and(|t| t.trim() == "1") {
        let _ = fs.write(&freeze, "0");
    }
    if fs.write(&dir.join("cgroup.kill"), "1").is_ok() {
        return true;
    }
    for pid in fsops::members(fs, dir) {
        // SIGKILL also ends SIGSTOPped tasks (signal(7)); ESRCH means it is already gone.
        let _ = fs.signal(pid, Signal::SIGKILL);
    }
    false
}
