//! One outer uid/gid per concurrent sandbox, leased from the range `/etc/subuid` and
//! `/etc/subgid` grant to a user `stockade` (isolate gives each box its own uid the same way).
//!
//! With distinct outer ids, sandboxes share no per-user kernel accounting (inotify instances,
//! user namespaces, message queues) and neither another sandbox nor the host's `nobody` may signal
//! or ptrace them. A slot is held by an exclusive `flock` on `/run/stockade/ids/<slot>`; the kernel
//! drops the lock when the supervisor exits however it exits, so a crash leaks nothing. The lowest
//! free slot is taken, so one run after another keeps the same ids (files a run leaves in a
//! writable bind stay its successor's).

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::{IdMap, NsError};

/// At most this many slots are tried (a `/etc/subuid` range is often 65536 ids long).
const MAX_SLOTS: u32 = 4096;

/// A range `start..start+count` of outer ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u32,
    pub count: u32,
}

/// Outer ids held for one sandbox; released on drop.
#[derive(Debug)]
pub struct Lease {
    pub ids: IdMap,
    _lock: Option<Flock<File>>,
}

impl Lease {
    /// Ids that need no lock (the caller's own, or the shared fallback).
    pub fn fixed(ids: IdMap) -> Lease {
        Lease { ids, _lock: None }
    }
}

/// The range the line for user `stockade` in a `/etc/sub[ug]id`-format text grants; a range
/// starting at 0 is refused (it would map the sandbox's root to the host's).
pub fn parse_range(text: &str) -> Option<Range> {
    text.lines().find_map(|line| {
        let mut parts = line.trim().split(':');
        if parts.next()? != "stockade" {
            return None;
        }
        let start: u32 = parts.next()?.parse().ok()?;
        let count: u32 = parts.next()?.parse().ok()?;
        (start != 0 && count != 0 && start.checked_add(count).is_some())
            .then_some(Range { start, count })
    })
}

/// Lease the lowest free slot of the two ranges under `dir` (created 0700 if missing).
pub fn lease(dir: &Path, uids: Range, gids: Range) -> Result<Lease, NsError> {
    let err = |path: PathBuf, source| NsError::Write {
        path,
        value: "lock".into(),
        source,
        hint: "",
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| err(dir.to_path_buf(), e))?;
    let slots = uids.count.min(gids.count).min(MAX_SLOTS);
    for slot in 0..slots {
        let path = dir.join(slot.to_string());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| err(path.clone(), e))?;
        if let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            return Ok(Lease {
                ids: IdMap {
                    outer_uid: uids.start + slot,
                    outer_gid: gids.start + slot,
                },
                _lock: Some(lock),
            });
        }
    }
    Err(err(
        dir.to_path_buf(),
        std::io::Error::other(format!(
            "all {slots} outer id slots of the stockade subuid range are in use; widen the range in /etc/subuid and /etc/subgid"
        )),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stockade_line_gives_the_range_and_zero_is_refused() {
        let text = "alice:100000:65536\nstockade:200000:1000\n";
        assert_eq!(
            parse_range(text),
            Some(Range {
                start: 200000,
                count: 1000
            })
        );
        assert_eq!(parse_range("stockade:0:1000\n"), None);
        assert_eq!(parse_range("stockade:4294967295:2\n"), None);
        assert_eq!(parse_range("alice:100000:65536\n"), None);
    }

    #[test]
    fn concurrent_leases_get_distinct_ids_and_a_released_slot_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let uids = Range {
            start: 200000,
            count: 3,
        };
        let gids = Range {
            start: 300000,
            count: 3,
        };
        let a = lease(dir.path(), uids, gids).unwrap();
        let b = lease(dir.path(), uids, gids).unwrap();
        let c = lease(dir.path(), uids, gids).unwrap();
        let got: Vec<u32> = [&a, &b, &c].iter().map(|l| l.ids.outer_uid).collect();
        assert_eq!(got, vec![200000, 200001, 200002]);
        assert_eq!(b.ids.outer_gid, 300001);
        assert!(
            lease(dir.path(), uids, gids).is_err(),
            "the range is exhausted"
        );
        drop(b);
        assert_eq!(lease(dir.path(), uids, gids).unwrap().ids.outer_uid, 200001);
    }
}
