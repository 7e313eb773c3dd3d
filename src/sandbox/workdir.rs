//! The host directory a compile stage and its run stage share as `/sandbox`.
//!
//! When stockade runs as root the directory is a tmpfs of the work dir's size (`sandbox_size`),
//! owned by the outer id the sandbox's root maps to, so the payload can write to it and not past
//! its size, exactly as with the single-stage `/sandbox`. An unprivileged caller cannot mount: the
//! directory is then a plain 0700 directory of its own under `$TMPDIR`, limited per file by
//! RLIMIT_FSIZE only (docs/profiles.md says so). The host side only creates and removes it; files
//! are written by the compile stage's sandbox, inside its own mount namespace.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use crate::ns::IdMap;

/// Inodes of the work tmpfs: plenty for a build, and a bound on what a payload can create.
const INODES: u64 = 16384;

#[derive(Debug, thiserror::Error)]
pub enum WorkDirError {
    #[error("mkdtemp {path:?}: {source}")]
    Create {
        path: PathBuf,
        source: nix::errno::Errno,
    },
    #[error(
        "mount tmpfs on {path:?} (the compile stage's work dir): {source}; stockade needs CAP_SYS_ADMIN when run as root, or run it as an ordinary user"
    )]
    Mount {
        path: PathBuf,
        source: nix::errno::Errno,
    },
}

/// A work directory; removed (unmounted first when it is a tmpfs) when dropped.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
    mounted: bool,
}

impl WorkDir {
    /// Create the directory for a sandbox whose root maps to `ids`, at most `size` bytes large
    /// when a tmpfs can be mounted.
    pub fn create(size: u64, ids: &IdMap) -> Result<WorkDir, WorkDirError> {
        let template = std::env::temp_dir().join("stockade-work-XXXXXX");
        // mkdtemp creates the directory with mode 0700 under a name nobody else can predict.
        let path = nix::unistd::mkdtemp(&template).map_err(|source| WorkDirError::Create {
            path: template.clone(),
            source,
        })?;
        let mut dir = WorkDir {
            path,
            mounted: false,
        };
        if nix::unistd::Uid::current().is_root() {
            let options = format!(
                "size={size},nr_inodes={INODES},mode=0700,uid={},gid={}",
                ids.outer_uid, ids.outer_gid
            );
            nix::mount::mount(
                Some("stockade-work"),
                &dir.path,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(options.as_str()),
            )
            .map_err(|source| WorkDirError::Mount {
                path: dir.path.clone(),
                source,
            })?;
            dir.mounted = true;
        }
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.mounted {
            // The sandboxes are gone, so nothing holds the mount; NOFOLLOW because the mount point
            // itself must be what is unmounted. The tmpfs takes its contents with it.
            let flags = MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW;
            if let Err(e) = nix::mount::umount2(&self.path, flags) {
                tracing::warn!("umount {}: {e}", self.path.display());
                return;
            }
        }
        // std's remove_dir_all walks with openat/unlinkat and never follows a symlink the payload
        // left behind (the CVE-2022-21658 fix), so it removes only what is inside the directory.
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!("remove work dir {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_does_not_follow_symlinks_out_of_the_dir() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), "x").unwrap();
        let lease = IdMap::for_caller().unwrap();
        let dir = WorkDir::create(1 << 20, &lease.ids).unwrap();
        let path = dir.path().to_path_buf();
        let mode = std::fs::metadata(&path).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o700
        );
        std::fs::create_dir(path.join("sub")).unwrap();
        std::os::unix::fs::symlink(outside.path(), path.join("sub/link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("keep"), path.join("file")).unwrap();
        drop(dir);
        assert!(!path.exists(), "work dir left behind");
        assert!(outside.path().join("keep").exists(), "followed a symlink");
    }
}
