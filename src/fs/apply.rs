//! The executor: a plan applied in the child's private mount namespace (every path beneath the
//! new root's fd), then `pivot_root` into it (DESIGN §1 steps 5-8).

use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

use super::{FsError, MountOp, beneath};

const PROC_HINT: &str = "; hint: a fresh /proc cannot be mounted when the host's /proc is partly over-mounted (systemd ProtectKernelTunables=/ProcSubset=/ProtectProc=, or a container runtime's masked paths); run stockade on a host or unit without them (see docs/limits.md)";

/// Make every mount private so nothing we do propagates back to the host (step 5).
pub fn make_private() -> Result<(), FsError> {
    mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
        "",
    )
}

/// Apply the plan under `root` (an existing, empty directory in the private mount namespace).
/// Every path inside the new root is reached through [`beneath::Root`], never by a host path.
pub fn build(root: &Path, ops: &[MountOp]) -> Result<(), FsError> {
    let mut new_root: Option<beneath::Root> = None;
    for op in ops {
        // The root's own mount comes first; everything after it is created beneath its fd.
        let r = match op {
            MountOp::RootTmpfs { size } => {
                tmpfs(root, *size, 0o755, false)?;
                new_root = Some(beneath::Root::open(root)?);
                continue;
            }
            MountOp::RootBind { source } => {
                mount(
                    Some(source),
                    root,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                    "",
                )?;
                let r = beneath::Root::open(root)?;
                lock_bind(&r.object(Path::new("/"))?, root, true)?;
                new_root = Some(r);
                continue;
            }
            _ => match &new_root {
                Some(r) => r,
                None => {
                    new_root = Some(beneath::Root::open(root)?);
                    new_root.as_ref().ok_or(FsError::MissingMountpoint {
                        path: root.to_path_buf(),
                    })?
                }
            },
        };
        apply(r, op)?;
    }
    Ok(())
}

/// One plan step beneath the new root.
fn apply(root: &beneath::Root, op: &MountOp) -> Result<(), FsError> {
    match op {
        MountOp::RootTmpfs { .. } | MountOp::RootBind { .. } => Ok(()),
        MountOp::Mkdir { path } => root.mkdir_all(path).map(drop),
        MountOp::Touch { path } => root.touch(path),
        MountOp::Bind {
            source,
            target,
            writable,
        } => {
            let dst = mountpoint(root, target)?;
            mount(
                Some(source),
                &beneath::proc_fd_path(&dst),
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
                "",
            )?;
            // The fd still names the directory beneath the new mount: reopen to reach the mount.
            lock_bind(&mountpoint(root, target)?, target, !writable)
        }
        MountOp::BindDevice { path } => {
            let dst = mountpoint(root, path)?;
            mount(
                Some(path),
                &beneath::proc_fd_path(&dst),
                None,
                MsFlags::MS_BIND,
                None,
                "",
            )
        }
        MountOp::Symlink { target, path } => root.symlink(target, path),
        MountOp::WriteFile {
            path,
            contents,
            mode,
        } => root.create_file(path, contents, *mode),
        MountOp::Tmpfs {
            target,
            size,
            mode,
            exec,
        } => tmpfs(
            &beneath::proc_fd_path(&mountpoint(root, target)?),
            *size,
            *mode,
            *exec,
        ),
        MountOp::Proc { target } => proc(&beneath::proc_fd_path(&mountpoint(root, target)?)),
        MountOp::Devpts { target } => mount(
            Some(Path::new("devpts")),
            &beneath::proc_fd_path(&mountpoint(root, target)?),
            Some("devpts"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            // No gid=: the host's tty group is not mapped; ptys belong to the sandbox's root.
            Some("newinstance,ptmxmode=0666,mode=0620"),
            "",
        ),
        MountOp::RemountReadOnly { target } => {
            remount_read_only(&beneath::proc_fd_path(&mountpoint(root, target)?))
        }
    }
}

/// Open a mount target beneath the root; a missing one or a symlink on the way is refused.
fn mountpoint(root: &beneath::Root, path: &Path) -> Result<std::os::fd::OwnedFd, FsError> {
    root.object(path).map_err(|_| FsError::MissingMountpoint {
        path: root.host().join(path.strip_prefix("/").unwrap_or(path)),
    })
}

/// Make a bind and every mount beneath it `nosuid,nodev` (and read-only unless `writable`):
/// a host bind source or a rootfs may carry device nodes and set-user-ID files, and a plain
/// `MS_REMOUNT` would leave its submounts as the host has them (bubblewrap does the same).
fn lock_bind(fd: &std::os::fd::OwnedFd, shown: &Path, read_only: bool) -> Result<(), FsError> {
    use std::os::fd::AsFd;
    let mut set = crate::sys::MOUNT_ATTR_NOSUID | crate::sys::MOUNT_ATTR_NODEV;
    if read_only {
        set |= crate::sys::MOUNT_ATTR_RDONLY;
    }
    crate::sys::mount_setattr_recursive(fd.as_fd(), set).map_err(|errno| FsError::Call {
        call: "mount_setattr(AT_RECURSIVE, nosuid|nodev|rdonly)",
        path: shown.to_path_buf(),
        errno,
    })
}

/// `pivot_root(".", ".")` into `root`, detach the old root, and make `/` read-only (steps 8).
pub fn enter(root: &Path) -> Result<(), FsError> {
    nix::unistd::chdir(root).map_err(|errno| FsError::Call {
        call: "chdir",
        path: root.into(),
        errno,
    })?;
    // pivot_root(2): "new_root and put_old may be the same directory"; the old root is then
    // stacked on top and can be detached at ".", so the rootfs needs no put_old directory.
    nix::unistd::pivot_root(".", ".").map_err(|errno| FsError::Call {
        call: "pivot_root",
        path: root.into(),
        errno,
    })?;
    nix::mount::umount2(".", MntFlags::MNT_DETACH).map_err(|errno| FsError::Call {
        call: "umount2(MNT_DETACH)",
        path: "/".into(),
        errno,
    })?;
    nix::unistd::chdir("/").map_err(|errno| FsError::Call {
        call: "chdir",
        path: "/".into(),
        errno,
    })?;
    remount_read_only(Path::new("/"))
}

fn tmpfs(target: &Path, size: u64, mode: u32, exec: bool) -> Result<(), FsError> {
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if !exec {
        flags |= MsFlags::MS_NOEXEC;
    }
    // nr_inodes caps the inode count as size caps the bytes: one inode per 4 KiB is generous.
    let data = format!(
        "size={size},nr_inodes={},mode={mode:o}",
        (size / 4096).max(1024)
    );
    mount(
        Some(Path::new("tmpfs")),
        target,
        Some("tmpfs"),
        flags,
        Some(&data),
        "",
    )
}

fn proc(target: &Path) -> Result<(), FsError> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    // hidepid=invisible (Linux 5.8) hides processes we may not ptrace: the sandbox's init.
    match mount(
        Some(Path::new("proc")),
        target,
        Some("proc"),
        flags,
        Some("hidepid=invisible"),
        PROC_HINT,
    ) {
        Err(FsError::Mount {
            errno: Errno::EINVAL,
            ..
        }) => mount(
            Some(Path::new("proc")),
            target,
            Some("proc"),
            flags,
            None,
            PROC_HINT,
        ),
        other => other,
    }
}

/// Remount a bind read-only, keeping the flags the kernel locks in a user namespace
/// (nosuid/nodev/noexec/atime): dropping a locked flag fails with EPERM (PLATFORM §2 step 6).
fn remount_read_only(target: &Path) -> Result<(), FsError> {
    use nix::sys::statvfs::FsFlags;
    let st = nix::sys::statvfs::statvfs(target).map_err(|errno| FsError::Call {
        call: "statvfs",
        path: target.into(),
        errno,
    })?;
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if st.flags().contains(fs) {
            flags |= ms;
        }
    }
    mount(None, target, None, flags, None, "")
}

fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
    hint: &'static str,
) -> Result<(), FsError> {
    nix::mount::mount(source, target, fstype, flags, data).map_err(|errno| FsError::Mount {
        source_desc: match (source, fstype) {
            (Some(s), _) => format!("{s:?}"),
            (None, _) => "(remount)".into(),
        },
        target: target.to_path_buf(),
        flags: format!(
            "{flags:?}{}",
            data.map(|d| format!(", {d}")).unwrap_or_default()
        ),
        errno,
        hint,
    })
}
