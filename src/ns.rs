//! Linux namespaces: the clone flags, the user-namespace id maps, and the per-namespace knobs.

use std::path::PathBuf;

use nix::errno::Errno;
use nix::unistd::{Gid, Uid};

/// Every namespace a sandbox gets. The network namespace is always new: even the loopback mode
/// only brings up `lo` inside it.
pub const CLONE_FLAGS: u64 = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP) as u64;

#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error("write {value:?} to {path}: {source}{hint}")]
    Write {
        path: PathBuf,
        value: String,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("{call}: {errno}")]
    Call { call: &'static str, errno: Errno },
}

/// The outer ids the sandbox's root is mapped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    pub outer_uid: u32,
    pub outer_gid: u32,
}

/// The id used for the sandbox's root when stockade itself runs as root: never outer 0.
/// `nobody`/`nogroup` unless `/etc/subuid` and `/etc/subgid` give a range to a user `stockade`.
pub const ROOT_FALLBACK_ID: u32 = 65534;

impl IdMap {
    /// Choose the outer ids for the current caller (DESIGN §1 step 3).
    pub fn for_caller() -> IdMap {
        let (uid, gid) = (Uid::current(), Gid::current());
        if !uid.is_root() {
            // An unprivileged parent may only map its own ids.
            return IdMap {
                outer_uid: uid.as_raw(),
                outer_gid: gid.as_raw(),
            };
        }
        IdMap {
            outer_uid: subid("/etc/subuid").unwrap_or(ROOT_FALLBACK_ID),
            outer_gid: subid("/etc/subgid").unwrap_or(ROOT_FALLBACK_ID),
        }
    }

    /// Write `setgroups=deny`, `uid_map` and `gid_map` of the child (from the parent).
    pub fn write(&self, pid: i32) -> Result<(), NsError> {
        let base = PathBuf::from(format!("/proc/{pid}"));
        write_proc(&base.join("setgroups"), "deny")?;
        write_proc(&base.join("uid_map"), &format!("0 {} 1\n", self.outer_uid))?;
        write_proc(&base.join("gid_map"), &format!("0 {} 1\n", self.outer_gid))
    }
}

/// First id of the range `/etc/sub[ug]id` grants to the user `stockade`.
fn subid(path: &str) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.split(':');
        (parts.next()? == "stockade")
            .then(|| parts.next()?.parse().ok())
            .flatten()
            .filter(|&id| id != 0)
    })
}

fn write_proc(path: &std::path::Path, value: &str) -> Result<(), NsError> {
    std::fs::write(path, value).map_err(|source| NsError::Write {
        path: path.to_path_buf(),
        value: value.trim_end().to_string(),
        source,
        hint: "",
    })
}

/// Become root inside the user namespace (child, DESIGN §1 step 4). Writing the map does not
/// change the child's credentials; without this the first file created on the new tmpfs fails
/// with EOVERFLOW when the outer id is not our own.
pub fn become_root() -> Result<(), NsError> {
    let call = |call, r: nix::Result<()>| r.map_err(|errno| NsError::Call { call, errno });
    call(
        "setresgid(0, 0, 0)",
        nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0)),
    )?;
    call(
        "setresuid(0, 0, 0)",
        nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)),
    )
}

/// Set the host name of the new UTS namespace.
pub fn set_hostname(name: &str) -> Result<(), NsError> {
    nix::unistd::sethostname(name).map_err(|errno| NsError::Call {
        call: "sethostname",
        errno,
    })
}

/// Forbid nested user namespaces (DESIGN §1 step 9): the sysctl is per user namespace, and 0 makes
/// `unshare(CLONE_NEWUSER)` fail with ENOSPC even if seccomp were bypassed.
pub fn forbid_nested_userns() -> Result<(), NsError> {
    write_proc(
        std::path::Path::new("/proc/sys/user/max_user_namespaces"),
        "0",
    )
}

/// Make `last` the PID namespace's most recently allocated pid, so the next process gets the next
/// free pid after it (`/proc/sys/kernel/ns_last_pid`; needs CAP_SYS_ADMIN over the namespace).
pub fn set_last_pid(last: u32) -> Result<(), NsError> {
    write_proc(
        std::path::Path::new("/proc/sys/kernel/ns_last_pid"),
        &last.to_string(),
    )
}

/// Why user namespaces might be unavailable on this host, for error hints and `doctor`.
pub fn userns_hint() -> String {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return "user.max_user_namespaces is 0; fix: sysctl -w user.max_user_namespaces=15000"
            .into();
    }
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0")
        && !Uid::current().is_root()
    {
        return "kernel.unprivileged_userns_clone is 0; fix: sysctl -w kernel.unprivileged_userns_clone=1 or run as root".into();
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1")
        && !Uid::current().is_root()
    {
        return "AppArmor restricts unprivileged user namespaces; fix: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 or add an AppArmor profile with `userns,` for stockade".into();
    }
    "check that the kernel has CONFIG_USER_NS and that no seccomp filter or container runtime blocks clone3 with CLONE_NEWUSER".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_flags_cover_every_namespace() {
        for flag in [
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWNS,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWCGROUP,
        ] {
            assert_ne!(CLONE_FLAGS & flag as u64, 0, "flag {flag:#x} missing");
        }
    }

    #[test]
    fn root_is_never_mapped_to_outer_root() {
        let map = IdMap::for_caller();
        assert_ne!(map.outer_uid, 0);
        assert_ne!(map.outer_gid, 0);
    }
}
