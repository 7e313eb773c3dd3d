//! Mount namespace: the sandbox's root filesystem as a plan (pure data) and its executor.
//!
//! `plan()` turns a sandbox's `Shape` into `Vec<MountOp>` without touching the system, so the tree is unit
//! tested without root; `build()` applies it under a scratch directory in the child's private mount
//! namespace, and `enter()` pivots into it (DESIGN §1 steps 5-8).

use std::ffi::CString;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

mod apply;
mod beneath;
mod host;
pub mod host_etc;
mod plan;
#[cfg(test)]
mod tests;

pub use self::apply::{build, enter, make_private};
pub use self::host::{EtcEntry, HostLayout};
pub use self::plan::{DEVICES, plan};

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
