//! Mount namespace: the sandbox's root filesystem as a plan (pure data) and its executor.
//!
//! `plan()` turns a sandbox's `Shape` into `Vec<MountOp>` without touching the system, so the tree is unit
//! tested without root; `build()` applies it under a scratch directory in the child's private mount
//! namespace, and `enter()` pivots into it (DESIGN §1 steps 5-8).

use std::ffi::CString;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

use crate::policy::{RootFs, SANDBOX_DIR, Shape};

mod beneath;
pub mod host_etc;

/// One step of building the new root. Paths are absolute paths *inside* the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOp {
    /// A small tmpfs as the new root (the `host` root filesystem), `size` bytes.
    RootTmpfs {
        size: u64,
    },
    /// A recursive read-only bind of a prepared root filesystem directory.
    RootBind {
        source: PathBuf,
    },
    Mkdir {
        path: PathBuf,
    },
    /// An empty file to bind a host file onto.
    Touch {
        path: PathBuf,
    },
    Bind {
        source: PathBuf,
        target: PathBuf,
        writable: bool,
    },
    /// A host device node bound onto an empty file at the same path (`/dev/null` & co.): the
    /// only bind that keeps device semantics.
    BindDevice {
        path: PathBuf,
    },
    Symlink {
        target: PathBuf,
        path: PathBuf,
    },
    WriteFile {
        path: PathBuf,
        contents: Vec<u8>,
        mode: u32,
    },
    Tmpfs {
        target: PathBuf,
        size: u64,
        mode: u32,
        exec: bool,
    },
    /// A fresh procfs: must be mounted before the old root is detached (PLATFORM §2 step 7).
    Proc {
        target: PathBuf,
    },
    /// A private devpts instance (`newinstance`): the sandbox's own pseudo-terminals, none of the
    /// host's (`/dev/ptmx` links to its `ptmx`).
    Devpts {
        target: PathBuf,
    },
    /// Make a mount read-only once it is populated (used for `/dev`).
    RemountReadOnly {
        target: PathBuf,
    },
}

/// Facts about the host root the `host` plan depends on, discovered once by the parent.
#[derive(Debug, Clone, Default)]
pub struct HostLayout {
    /// Top-level entries that are symlinks (merged /usr: `bin -> usr/bin`), with their targets.
    pub top_symlinks: Vec<(String, PathBuf)>,
    /// Top-level directories that must be bound because they are real directories (split /usr).
    pub top_dirs: Vec<String>,
    /// `/etc` entries of the allowlist (`host_etc::ALLOWED`) present on the host, by path
    /// relative to `/etc`.
    pub etc: Vec<(String, EtcEntry)>,
}

/// How one host `/etc` entry appears in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcEntry {
    /// A directory, bound read-only.
    Dir,
    /// A small regular file, copied into the root tmpfs: a copy costs a read and a write, a
    /// read-only bind two mount calls (plus a statfs), and exposes no host inode.
    File {
        contents: Vec<u8>,
        mode: u32,
    },
    /// A larger regular file, bound read-only.
    BigFile,
    Symlink(PathBuf),
}

/// Top-level names that Debian's merged /usr makes symlinks (or, on older systems, directories).
const USR_ALIASES: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

impl HostLayout {
    /// Inspect the host root (a few `lstat` calls and one listing of `/etc`).
    pub fn discover() -> HostLayout {
        let mut layout = HostLayout::default();
        for name in USR_ALIASES {
            let path = Path::new("/").join(name);
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(target) = std::fs::read_link(&path) {
                        layout.top_symlinks.push((name.to_string(), target));
                    }
                }
                Ok(m) if m.is_dir() => layout.top_dirs.push(name.to_string()),
                _ => {}
            }
        }
        layout.etc = host_etc::discover(Path::new("/etc"));
        layout
    }
}

/// The sandbox's `/etc/passwd` and `/etc/group` on the `host` root: only the sandbox's own users.
const PASSWD: &str = "root:x:0:0:sandbox:/sandbox:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// The sandbox's `/etc/hosts`: loopback and its own name (the JVM's `getLocalHost` resolves it),
/// none of the host's entries.
fn hosts(hostname: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    )
}

/// Host device nodes bound into the minimal `/dev` (mknod is refused inside a user namespace).
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];

/// Build the mount plan of a sandbox. Files of an execution are not part of it: they are written
/// at exec time, from inside (`sandbox::agent`).
pub fn plan(shape: &Shape, host: &HostLayout) -> Vec<MountOp> {
    let p = PathBuf::from;
    let mut ops = Vec::new();
    match &shape.rootfs {
        RootFs::Host => {
            let copied: u64 = host
                .etc
                .iter()
                .map(|(_, e)| match e {
                    EtcEntry::File { contents, .. } => contents.len() as u64,
                    _ => 0,
                })
                .sum();
            ops.push(MountOp::RootTmpfs {
                size: (1 << 20) + copied,
            });
            ops.push(MountOp::Mkdir { path: p("/usr") });
            ops.push(MountOp::Bind {
                source: p("/usr"),
                target: p("/usr"),
                writable: false,
            });
            for (name, target) in &host.top_symlinks {
                ops.push(MountOp::Symlink {
                    target: target.clone(),
                    path: Path::new("/").join(name),
                });
            }
            for name in &host.top_dirs {
                let path = Path::new("/").join(name);
                ops.push(MountOp::Mkdir { path: path.clone() });
                ops.push(MountOp::Bind {
                    source: path.clone(),
                    target: path,
                    writable: false,
                });
            }
            ops.push(MountOp::Mkdir { path: p("/etc") });
            for (name, entry) in &host.etc {
                let path = Path::new("/etc").join(name);
                let bind = |path: PathBuf| MountOp::Bind {
                    source: path.clone(),
                    target: path,
                    writable: false,
                };
                match entry {
                    // `pki/tls/cert.pem`: a nested link needs its directory first.
                    EtcEntry::Symlink(target) if name.contains('/') => {
                        let parent = path.parent().map(Path::to_path_buf);
                        ops.extend(parent.map(|path| MountOp::Mkdir { path }));
                        ops.push(MountOp::Symlink {
                            target: target.clone(),
                            path,
                        });
                    }
                    EtcEntry::Symlink(target) => ops.push(MountOp::Symlink {
                        target: target.clone(),
                        path,
                    }),
                    EtcEntry::Dir => {
                        ops.push(MountOp::Mkdir { path: path.clone() });
                        ops.push(bind(path));
                    }
                    EtcEntry::File { contents, mode } => ops.push(MountOp::WriteFile {
                        path,
                        contents: contents.clone(),
                        mode: *mode,
                    }),
                    EtcEntry::BigFile => {
                        if name.contains('/') {
                            let parent = path.parent().map(Path::to_path_buf);
                            ops.extend(parent.map(|path| MountOp::Mkdir { path }));
                        }
                        ops.push(MountOp::Touch { path: path.clone() });
                        ops.push(bind(path));
                    }
                }
            }
            let file = |path: &str, text: &str| MountOp::WriteFile {
                path: PathBuf::from(path),
                contents: text.as_bytes().to_vec(),
                mode: 0o644,
            };
            ops.push(file("/etc/passwd", PASSWD));
            ops.push(file("/etc/group", GROUP));
            ops.push(file("/etc/hostname", &format!("{}\n", shape.hostname)));
            ops.push(file("/etc/hosts", &hosts(&shape.hostname)));
            for dir in ["/proc", "/dev", "/tmp", SANDBOX_DIR] {
                ops.push(MountOp::Mkdir { path: p(dir) });
            }
        }
        RootFs::Dir(dir) => ops.push(MountOp::RootBind {
            source: dir.clone(),
        }),
    }
    ops.push(MountOp::Proc { target: p("/proc") });
    dev_ops(&mut ops, shape.limits.tmp_size);
    ops.push(MountOp::Tmpfs {
        target: p("/tmp"),
        size: shape.limits.tmp_size,
        mode: 0o1777,
        exec: true,
    });
    ops.push(MountOp::Tmpfs {
        target: p(SANDBOX_DIR),
        size: shape.limits.sandbox_size,
        mode: 0o755,
        exec: true,
    });
    for m in &shape.mounts {
        if shape.rootfs == RootFs::Host {
            ops.push(MountOp::Mkdir {
                path: m.target.clone(),
            });
        }
        ops.push(MountOp::Bind {
            source: m.source.clone(),
            target: m.target.clone(),
            writable: m.writable,
        });
    }
    for f in &shape.files {
        ops.push(MountOp::WriteFile {
            path: f.path.clone(),
            contents: f.contents.clone(),
            mode: f.mode & 0o777,
        });
    }
    ops
}

/// The minimal `/dev`: a small tmpfs with host device nodes bound in, `/proc/self/fd` links, a
/// private `/dev/shm`, no tty; read-only once populated.
fn dev_ops(ops: &mut Vec<MountOp>, shm_size: u64) {
    let p = PathBuf::from;
    ops.push(MountOp::Tmpfs {
        target: p("/dev"),
        size: 64 << 10,
        mode: 0o755,
        exec: false,
    });
    for dev in DEVICES {
        let path = Path::new("/dev").join(dev);
        ops.push(MountOp::Touch { path: path.clone() });
        ops.push(MountOp::BindDevice { path });
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        ops.push(MountOp::Symlink {
            target: p(target),
            path: Path::new("/dev").join(name),
        });
    }
    // openpty(3), python's pty module and `script` need a pty pair; the instance is private.
    ops.push(MountOp::Mkdir {
        path: p("/dev/pts"),
    });
    ops.push(MountOp::Devpts {
        target: p("/dev/pts"),
    });
    ops.push(MountOp::Symlink {
        target: p("pts/ptmx"),
        path: p("/dev/ptmx"),
    });
    ops.push(MountOp::Mkdir {
        path: p("/dev/shm"),
    });
    ops.push(MountOp::Tmpfs {
        target: p("/dev/shm"),
        size: shm_size,
        mode: 0o1777,
        exec: false,
    });
    ops.push(MountOp::RemountReadOnly { target: p("/dev") });
}

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("mount {source_desc} on {target:?} ({flags}): {errno}{hint}")]
    Mount {
        source_desc: String,
        target: PathBuf,
        flags: String,
        errno: Errno,
        hint: &'static str,
    },
    #[error("{call} {path:?}: {source}")]
    Io {
        call: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{call} {path:?}: {errno}")]
    Call {
        call: &'static str,
        path: PathBuf,
        errno: Errno,
    },
    #[error(
        "rootfs mountpoint {path:?} is missing or not a directory; rebuild the rootfs with scripts/build-rootfs or create it"
    )]
    MissingMountpoint { path: PathBuf },
}

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

/// The directory each sandbox's root is built on. It is only ever mounted over inside the child's
/// private mount namespace, so every run can share it; it is created once and owned by the caller.
/// The child already runs as the outer sandbox id when it mounts there, so the path must be
/// searchable (0711) and the directory itself readable (0755) by that id.
pub fn scratch_dir() -> Result<PathBuf, FsError> {
    use std::os::unix::fs::MetadataExt;
    let uid = nix::unistd::Uid::current();
    let base = if uid.is_root() {
        PathBuf::from("/run/stockade")
    } else if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| Path::new(d).is_dir())
    {
        PathBuf::from(dir).join("stockade")
    } else {
        PathBuf::from(format!("/tmp/stockade-{uid}"))
    };
    let root = base.join("root");
    for (dir, mode) in [(&base, 0o711), (&root, 0o755)] {
        let err = |source| FsError::Io {
            call: "prepare scratch directory",
            path: dir.clone(),
            source,
        };
        match std::fs::symlink_metadata(dir) {
            // A pre-created symlink or someone else's directory in a shared /tmp is refused.
            Ok(m) if !m.is_dir() || m.file_type().is_symlink() || m.uid() != uid.as_raw() => {
                return Err(err(std::io::Error::other(
                    "exists but is not a directory owned by us",
                )));
            }
            Ok(m) if m.mode() & 0o7777 != mode => {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
                    .map_err(err)?;
            }
            Ok(_) => {}
            Err(_) => {
                std::fs::DirBuilder::new()
                    .mode(mode)
                    .create(dir)
                    .map_err(err)?;
                // The umask may have taken bits away.
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
                    .map_err(err)?;
            }
        }
    }
    Ok(root)
}

/// Convert a path to a C string (for execve and friends).
pub fn cstring(path: &Path) -> Result<CString, FsError> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).map_err(|_| FsError::Call {
        call: "path with NUL byte",
        path: path.into(),
        errno: Errno::EINVAL,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{BindMount, Policy};

    fn layout() -> HostLayout {
        HostLayout {
            top_symlinks: vec![
                ("bin".into(), "usr/bin".into()),
                ("lib64".into(), "usr/lib64".into()),
            ],
            top_dirs: vec![],
            etc: vec![
                (
                    "ld.so.cache".into(),
                    EtcEntry::File {
                        contents: b"cache".to_vec(),
                        mode: 0o644,
                    },
                ),
                ("mime.types".into(), EtcEntry::BigFile),
                ("ssl".into(), EtcEntry::Dir),
                (
                    "localtime".into(),
                    EtcEntry::Symlink("/usr/share/zoneinfo/UTC".into()),
                ),
            ],
        }
    }

    fn pos(ops: &[MountOp], pred: impl Fn(&MountOp) -> bool) -> usize {
        ops.iter().position(pred).expect("op missing from plan")
    }

    #[test]
    fn host_plan_binds_usr_read_only_and_only_listed_etc_files() {
        let ops = plan(&Policy::default().shape(), &layout());
        assert_eq!(
            ops[0],
            MountOp::RootTmpfs {
                size: (1 << 20) + 5
            }
        );
        // Small files are copies, large ones and directories read-only binds.
        assert!(ops.contains(&MountOp::WriteFile {
            path: "/etc/ld.so.cache".into(),
            contents: b"cache".to_vec(),
            mode: 0o644
        }));
        assert!(!ops.iter().any(|op| matches!(op, MountOp::Bind { source, .. } if source == Path::new("/etc/ld.so.cache"))));
        assert!(ops.contains(&MountOp::Bind {
            source: "/etc/mime.types".into(),
            target: "/etc/mime.types".into(),
            writable: false
        }));
        assert!(ops.contains(&MountOp::Bind {
            source: "/usr".into(),
            target: "/usr".into(),
            writable: false
        }));
        assert!(ops.contains(&MountOp::Symlink {
            target: "usr/bin".into(),
            path: "/bin".into()
        }));
        assert!(ops.contains(&MountOp::Bind {
            source: "/etc/ssl".into(),
            target: "/etc/ssl".into(),
            writable: false
        }));
        assert!(ops.contains(&MountOp::Symlink {
            target: "/usr/share/zoneinfo/UTC".into(),
            path: "/etc/localtime".into()
        }));
        // Nothing else of the host is bound, and nothing is writable but the device nodes.
        for op in &ops {
            if let MountOp::Bind {
                source, writable, ..
            } = op
            {
                let ok = source == Path::new("/usr")
                    || source.starts_with("/etc/")
                    || source.starts_with("/dev/");
                assert!(ok, "unexpected bind of {source:?}");
                assert_eq!(*writable, source.starts_with("/dev/"), "{source:?}");
            }
        }
        assert!(!ops.iter().any(
            |op| matches!(op, MountOp::Bind { source, .. } if source == Path::new("/etc/shadow"))
        ));
    }

    #[test]
    fn nested_etc_entries_get_their_directories_and_hosts_is_the_sandboxs_own() {
        let mut host = layout();
        host.etc = vec![
            ("ssl/certs".into(), EtcEntry::Dir),
            (
                "pki/tls/cert.pem".into(),
                EtcEntry::Symlink("/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem".into()),
            ),
            ("pki/java/cacerts".into(), EtcEntry::BigFile),
        ];
        let ops = plan(&Policy::default().shape(), &host);
        let mkdir = |dir: &str| {
            pos(
                &ops,
                |op| matches!(op, MountOp::Mkdir { path } if path == Path::new(dir)),
            )
        };
        let link = pos(
            &ops,
            |op| matches!(op, MountOp::Symlink { path, .. } if path == Path::new("/etc/pki/tls/cert.pem")),
        );
        assert!(mkdir("/etc/pki/tls") < link);
        let touch = pos(
            &ops,
            |op| matches!(op, MountOp::Touch { path } if path == Path::new("/etc/pki/java/cacerts")),
        );
        assert!(mkdir("/etc/pki/java") < touch);
        let bind = pos(
            &ops,
            |op| matches!(op, MountOp::Bind { source, .. } if source == Path::new("/etc/ssl/certs")),
        );
        assert!(mkdir("/etc/ssl/certs") < bind);
        // Nothing of /etc/ssl but certs: no bind of the parent (and so of ssl/private).
        assert!(!ops.iter().any(
            |op| matches!(op, MountOp::Bind { source, .. } if source == Path::new("/etc/ssl"))
        ));
        let hosts = ops.iter().find_map(|op| match op {
            MountOp::WriteFile { path, contents, .. } if path == Path::new("/etc/hosts") => {
                Some(String::from_utf8_lossy(contents).into_owned())
            }
            _ => None,
        });
        assert_eq!(
            hosts.as_deref(),
            Some(
                "127.0.0.1\tlocalhost\n127.0.1.1\tstockade\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            )
        );
    }

    #[test]
    fn proc_comes_before_dev_and_tmpfs_are_size_capped() {
        let mut policy = Policy::default();
        policy.limits.tmp_size = 5 << 20;
        policy.limits.sandbox_size = 7 << 20;
        let ops = plan(&policy.shape(), &layout());
        let proc_at = pos(&ops, |op| matches!(op, MountOp::Proc { .. }));
        let dev_at = pos(
            &ops,
            |op| matches!(op, MountOp::Tmpfs { target, .. } if target == Path::new("/dev")),
        );
        assert!(proc_at < dev_at);
        assert!(ops.contains(&MountOp::Tmpfs {
            target: "/tmp".into(),
            size: 5 << 20,
            mode: 0o1777,
            exec: true
        }));
        assert!(ops.contains(&MountOp::Tmpfs {
            target: "/sandbox".into(),
            size: 7 << 20,
            mode: 0o755,
            exec: true
        }));
        let ro_dev = pos(
            &ops,
            |op| matches!(op, MountOp::RemountReadOnly { target } if target == Path::new("/dev")),
        );
        let shm = pos(
            &ops,
            |op| matches!(op, MountOp::Tmpfs { target, .. } if target == Path::new("/dev/shm")),
        );
        assert!(shm < ro_dev, "/dev is made read-only after it is populated");
    }

    #[test]
    fn rootfs_dir_plan_binds_the_directory_and_writes_nothing_into_it() {
        let mut policy = Policy::default();
        policy.rootfs = RootFs::Dir("/srv/rootfs".into());
        let ops = plan(&policy.shape(), &layout());
        assert_eq!(
            ops[0],
            MountOp::RootBind {
                source: "/srv/rootfs".into()
            }
        );
        assert!(
            !ops.iter()
                .any(|op| matches!(op, MountOp::Mkdir { path } if !path.starts_with("/dev")))
        );
        assert!(!ops.iter().any(|op| matches!(op, MountOp::WriteFile { .. })));
    }

    #[test]
    fn extra_binds_come_after_the_work_dir() {
        let mut policy = Policy::default();
        policy.mounts.push(BindMount {
            source: "/data".into(),
            target: "/data".into(),
            writable: false,
        });
        let ops = plan(&policy.shape(), &layout());
        let work = pos(
            &ops,
            |op| matches!(op, MountOp::Tmpfs { target, .. } if target == Path::new("/sandbox")),
        );
        let bind = pos(
            &ops,
            |op| matches!(op, MountOp::Bind { source, .. } if source == Path::new("/data")),
        );
        assert!(work < bind);
    }

    #[test]
    fn files_of_the_shape_are_written_last_without_set_id_bits() {
        let mut shape = Policy::default().shape();
        shape.files.push(crate::policy::File {
            path: "/.stockade/python/sitecustomize.py".into(),
            contents: b"x".to_vec(),
            mode: 0o4755,
        });
        let ops = plan(&shape, &layout());
        assert!(matches!(
            ops.last(),
            Some(MountOp::WriteFile { path, mode: 0o755, .. })
                if path == Path::new("/.stockade/python/sitecustomize.py")
        ));
    }
}
