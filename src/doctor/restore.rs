//! Undoing what `stockade doctor` changed in the cgroup tree (cgroup v2 delegation set-up and the
//! owner-record directory), so that probing leaves nothing behind.

use std::path::{Path, PathBuf};

use super::probe::mounts;

/// The cgroup state doctor may change through `LimitManager::detect`, to put it back.
pub(super) struct Snapshot {
    /// Our cgroup2 directory and the `--cgroup-root`: each with its `cgroup.subtree_control` and
    /// whether its `supervisor` leaf existed.
    v2: Vec<(PathBuf, String, bool)>,
    /// Owner-record directories and whether each existed (deepest first).
    state_dirs: Vec<(PathBuf, bool)>,
}

impl Snapshot {
    pub(super) fn take(mountinfo: &str, uid: u32, cgroup_root: Option<&Path>) -> Snapshot {
        let mut dirs: Vec<PathBuf> = own_v2_dir(mountinfo).into_iter().collect();
        dirs.extend(cgroup_root.map(Path::to_path_buf));
        dirs.dedup();
        let v2 = dirs
            .into_iter()
            .map(|dir| {
                let control = std::fs::read_to_string(dir.join("cgroup.subtree_control"));
                let leaf = dir.join("supervisor").exists();
                (dir, control.unwrap_or_default(), leaf)
            })
            .collect();
        // The limit manager's state directory (crate::cgroup `Host::real`).
        let base = if uid == 0 {
            PathBuf::from("/run/stockade")
        } else {
            std::env::var_os("XDG_RUNTIME_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(format!("/run/user/{uid}")))
                .join("stockade")
        };
        let state_dirs = [base.join("cgroups"), base]
            .into_iter()
            .map(|d| {
                let existed = d.exists();
                (d, existed)
            })
            .collect();
        Snapshot { v2, state_dirs }
    }

    /// Undo what detection changed; returns what could not be undone.
    pub(super) fn restore(self) -> Vec<String> {
        let mut left = Vec::new();
        for (dir, before, leaf_existed) in self.v2 {
            restore_v2(&dir, &before, leaf_existed, &mut left);
        }
        for (dir, existed) in self.state_dirs {
            if !existed {
                // Fails harmlessly when another stockade process has records in it.
                let _ = std::fs::remove_dir(&dir);
            }
        }
        left
    }
}

/// Disable the controllers doctor enabled, move back out of the `supervisor` leaf, remove the
/// leaf. Controllers go first: a non-root cgroup with controllers enabled may hold no process
/// (cgroup-v2.rst, "No Internal Process Constraint").
fn restore_v2(dir: &Path, before: &str, leaf_existed: bool, left: &mut Vec<String>) {
    let control = dir.join("cgroup.subtree_control");
    let now = std::fs::read_to_string(&control).unwrap_or_default();
    let added: Vec<String> = now
        .split_whitespace()
        .filter(|c| !before.split_whitespace().any(|b| b == *c))
        .map(|c| format!("-{c}"))
        .collect();
    if !added.is_empty()
        && let Err(e) = std::fs::write(&control, added.join(" "))
    {
        left.push(format!(
            "controllers enabled in {} ({e})",
            control.display()
        ));
    }
    let leaf = dir.join("supervisor");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if own_v2_dir(&mountinfo).as_deref() == Some(leaf.as_path()) {
        let pid = std::process::id().to_string();
        if let Err(e) = std::fs::write(dir.join("cgroup.procs"), pid) {
            left.push(format!("doctor stays in {} ({e})", leaf.display()));
            return;
        }
    }
    if !leaf_existed
        && leaf.exists()
        && let Err(e) = std::fs::remove_dir(&leaf)
    {
        left.push(format!("cgroup {} ({e})", leaf.display()));
    }
}

/// Our own cgroup2 directory: the `0::` line of `/proc/self/cgroup` under a cgroup2 mount.
fn own_v2_dir(mountinfo: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    mounts(mountinfo)
        .into_iter()
        .filter(|m| m.fstype == "cgroup2")
        .find_map(|m| {
            let rel = if m.root == "/" {
                path
            } else {
                path.strip_prefix(m.root.as_str())?
            };
            let rel = rel.trim_start_matches('/');
            Some(match rel {
                "" => PathBuf::from(&m.point),
                r => Path::new(&m.point).join(r),
            })
        })
}
