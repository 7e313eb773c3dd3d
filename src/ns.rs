//! Linux namespaces: the clone flags, the user-namespace id maps, and the per-namespace knobs.

use std::path::PathBuf;

use nix::errno::Errno;
use nix::unistd::{Gid, Uid};

pub mod lease;

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

/// Where the id leases' lock files live (root only).
const LEASE_DIR: &str = "/run/stockade/ids";

impl IdMap {
    /// Choose the outer ids for the current caller (DESIGN §1 step 3): the caller's own when
    /// unprivileged; as root, a slot of the `stockade` subuid/subgid range per concurrent
    /// sandbox ([`lease`]), or the shared fallback without such a range.
    pub fn for_caller() -> Result<lease::Lease, NsError> {
        let (uid, gid) = (Uid::current(), Gid::current());
        if !uid.is_root() {
            // An unprivileged parent may only map its own ids.
            return Ok(lease::Lease::fixed(IdMap {
                outer_uid: uid.as_raw(),
                outer_gid: gid.as_raw(),
            }));
        }
        let range = |path| {
            std::fs::read_to_string(path)
                .ok()
                .as_deref()
                .and_then(lease::parse_range)
        };
        match (range("/etc/subuid"), range("/etc/subgid")) {
            (Some(uids), Some(gids)) => lease::lease(std::path::Path::new(LEASE_DIR), uids, gids),
            _ => Ok(lease::Lease::fixed(IdMap {
                outer_uid: ROOT_FALLBACK_ID,
                outer_gid: ROOT_FALLBACK_ID,
            })),
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

/// Drop the caller's supplementary groups when we are root (the sandbox would otherwise keep
/// them: a user namespace with `setgroups=deny` cannot shed them from inside). An unprivileged
/// caller cannot drop its own groups (no `CAP_SETGID`); its groups are the ones it already has.
pub fn drop_supplementary_groups() -> Result<(), NsError> {
    if !Uid::effective().is_root() {
        return Ok(());
    }
    match nix::unistd::setgroups(&[]) {
        // Root of a user namespace whose setgroups is "deny" (`unshare --map-root-user`): nobody
        // in it can change groups, so the caller's are as fixed as an unprivileged caller's.
        Ok(()) | Err(Errno::EPERM) => Ok(()),
        Err(errno) => Err(NsError::Call {
            call: "setgroups(0, NULL)",
            errno,
        }),
    }
}

/// Whether the kernel has time namespaces (`CONFIG_TIME_NS`, Linux 5.6).
pub fn time_namespaces_available() -> bool {
    std::path::Path::new("/proc/self/ns/time").exists()
}

/// A new time namespace for our children (the init itself stays in the old one), with the
/// monotonic and boot-time clocks offset so the sandbox's uptime starts near zero: `/proc/uptime`
/// and `CLOCK_BOOTTIME` no longer tell the host's boot time. The offsets may only be written
/// before any process has entered the namespace (time_namespaces(7)), so this runs before the
/// payload is forked, and with the host's `/proc` still mounted.
pub fn enter_time_namespace() -> Result<(), NsError> {
    nix::sched::unshare(nix::sched::CloneFlags::from_bits_retain(
        libc::CLONE_NEWTIME,
    ))
    .map_err(|errno| NsError::Call {
        call: "unshare(CLONE_NEWTIME)",
        errno,
    })?;
    let now = |clock| {
        nix::time::clock_gettime(clock)
            .map(|t| t.tv_sec())
            .map_err(|errno| NsError::Call {
                call: "clock_gettime",
                errno,
            })
    };
    // Keep one second on each clock: the kernel refuses offsets that make a clock negative.
    let mono = now(nix::time::ClockId::CLOCK_MONOTONIC)? - 1;
    let boot = now(nix::time::ClockId::CLOCK_BOOTTIME)? - 1;
    write_proc(
        std::path::Path::new("/proc/self/timens_offsets"),
        &format!("monotonic -{mono} 0\nboottime -{boot} 0\n"),
    )
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
            let flag = u64::try_from(flag).unwrap();
            assert_ne!(CLONE_FLAGS & flag, 0, "flag {flag:#x} missing");
        }
    }

    #[test]
    fn root_is_never_mapped_to_outer_root() {
        let map = IdMap::for_caller().unwrap().ids;
        assert_ne!(map.outer_uid, 0);
        assert_ne!(map.outer_gid, 0);
    }
}
