//! cgroup v2 delegation set-up: the no-internal-process rule and `cgroup.subtree_control`.
//!
//! Documentation/admin-guide/cgroup-v2.rst, "No Internal Process Constraint": a non-root cgroup
//! can enable controllers for its children only while it has no processes of its own. When the
//! supervisor itself sits in the base (systemd puts a `Delegate=yes` service's processes in the
//! unit's cgroup), it first moves into the `supervisor` leaf. Controllers are enabled on the base
//! only, which the process owns; ancestors are never written (systemd's delegation contract,
//! systemd.io/CGROUP_DELEGATION).

use std::path::Path;

use super::Host;
use super::detect::{Ctl, Unified};
use super::error::{CgroupError, errno};
use super::fsops;

/// Name of the leaf the supervisor moves into.
pub(crate) const LEAF: &str = "supervisor";

/// The controllers the manager uses on cgroup v2.
const WANTED: Ctl = Ctl {
    memory: true,
    pids: true,
    cpu: true,
    cpuacct: false,
};

/// Make `u.base` ready for `sandbox-<id>` children and record what they will get.
///
/// `explicit` is true for `--cgroup-root`; otherwise `u.base` is the process's own cgroup, and if
/// that is the `supervisor` leaf this manager created on an earlier start, its parent is the base.
pub(crate) fn prepare(host: &Host, u: &mut Unified, explicit: bool) -> Result<(), CgroupError> {
    let fs = &*host.fs;
    if !explicit
        && u.base.file_name().is_some_and(|n| n == LEAF)
        && let Some(parent) = u.base.parent()
        && fs.writable(parent)
        && fs
            .read(&parent.join("cgroup.subtree_control"))
            .is_ok_and(|t| Ctl::parse(&t).any())
    {
        u.base = parent.to_path_buf();
    }
    let available = Ctl::parse(&fsops::read(fs, &u.base.join("cgroup.controllers"))?);
    let wanted = available.and(WANTED);
    let enabled = Ctl::parse(&fsops::read(fs, &u.base.join("cgroup.subtree_control"))?);
    let missing = wanted.missing_from(enabled);
    if !missing.is_empty() {
        leave_base(host, &u.base)?;
        enable(host, &u.base, &missing)?;
    }
    u.enabled = wanted;
    Ok(())
}

/// Move this process from `base` into `base/supervisor` when it lives in `base` and `base` is not
/// the root cgroup (the root, which has no `cgroup.type`, is exempt from the rule).
fn leave_base(host: &Host, base: &Path) -> Result<(), CgroupError> {
    let fs = &*host.fs;
    if fs.read(&base.join("cgroup.type")).is_err() {
        return Ok(());
    }
    let me = i32::try_from(host.pid).unwrap_or(i32::MAX);
    if !fsops::members(fs, base).contains(&me) {
        return Ok(());
    }
    let leaf = base.join(LEAF);
    match fs.mkdir(&leaf) {
        Ok(()) => {}
        Err(e) if errno(&e) == nix::errno::Errno::EEXIST => {}
        Err(source) => {
            return Err(CgroupError::Mkdir {
                path: leaf,
                hint: String::new(),
                source,
            });
        }
    }
    // Writing our pid moves the whole thread group (cgroup-v2.rst, "cgroup.procs").
    fsops::write(fs, &leaf.join("cgroup.procs"), &host.pid.to_string())
}

/// Enable `missing` controllers for the children of `base`, in one write.
fn enable(host: &Host, base: &Path, missing: &[&str]) -> Result<(), CgroupError> {
    let fs = &*host.fs;
    let file = base.join("cgroup.subtree_control");
    let value = missing
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    fs.write(&file, &value).map_err(|source| {
        let hint = if errno(&source) == nix::errno::Errno::EBUSY {
            let others: Vec<String> = fsops::members(fs, base)
                .iter()
                .map(|p| p.to_string())
                .collect();
            format!(
                "; other processes live in {} (pids {}): controllers can only be enabled on an \
                 empty cgroup, so give stockade a cgroup of its own (systemd Delegate=yes) or \
                 pass --cgroup-root with an empty delegated cgroup",
                base.display(),
                others.join(" ")
            )
        } else {
            String::new()
        };
        CgroupError::Write {
            path: file.clone(),
            value: value.clone(),
            hint,
            source,
        }
    })
}
