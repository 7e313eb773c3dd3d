//! Path operations confined beneath the new root, through a directory fd and `openat2(2)` with
//! `RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS`.
//!
//! The tree is built before `pivot_root`, while the host root is still `/`. A symlink planted in a
//! writable bind by an earlier run (`w/x -> /home/user/.bashrc`) would send a plain `std::fs`
//! write through `root.join(path)` to the host file, as the outer uid. Here no component of a
//! sandbox path is ever followed as a symlink, `..` cannot leave the root, new files are created
//! with `O_EXCL | O_NOFOLLOW`, and mounts land on the fd we opened (`/proc/self/fd/N`), so the
//! checked object is the mounted one (runc's lesson from CVE-2021-30465).

use std::ffi::{CString, OsStr};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::Mode;

use super::FsError;
use crate::sys;

const RESOLVE: u64 = sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_NO_MAGICLINKS;

/// The new root, held open while the plan is applied.
pub(super) struct Root {
    fd: OwnedFd,
    /// The root's host path, for error messages only.
    host: PathBuf,
}

impl Root {
    /// Open the directory that is (now) the top of the new root.
    pub(super) fn open(host: &Path) -> Result<Root, FsError> {
        let c = super::cstring(host)?;
        let fd = sys::openat2(libc::AT_FDCWD, &c, libc::O_PATH | libc::O_DIRECTORY, 0, 0)
            .map_err(|errno| call("open", host, errno))?;
        Ok(Root {
            fd,
            host: host.to_path_buf(),
        })
    }

    /// Open an existing object at `path` (a sandbox path) as `O_PATH`, following no symlink.
    pub(super) fn object(&self, path: &Path) -> Result<OwnedFd, FsError> {
        let rel = relative(path)?;
        if rel.as_os_str().is_empty() {
            return nix::unistd::dup(&self.fd).map_err(|errno| call("dup", path, errno));
        }
        let fd = sys::openat2(
            self.fd.as_raw_fd(),
            &cstr(rel.as_os_str(), path)?,
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
            RESOLVE,
        )
        .map_err(|errno| call("open", path, errno))?;
        // O_PATH|O_NOFOLLOW opens a final symlink itself: never a mount target.
        let st = nix::sys::stat::fstat(&fd).map_err(|errno| call("fstat", path, errno))?;
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            return Err(call("open", path, Errno::ELOOP));
        }
        Ok(fd)
    }

    /// `mkdir -p` beneath the root: every component is created or opened as a real directory.
    pub(super) fn mkdir_all(&self, path: &Path) -> Result<OwnedFd, FsError> {
        let mut dir = nix::unistd::dup(&self.fd).map_err(|errno| call("dup", path, errno))?;
        for part in relative(path)?.components() {
            let Component::Normal(name) = part else {
                continue;
            };
            let name = cstr(name, path)?;
            match nix::sys::stat::mkdirat(&dir, name.as_c_str(), Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(errno) => return Err(call("mkdir", path, errno)),
            }
            dir = sys::openat2(
                dir.as_raw_fd(),
                &name,
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
                RESOLVE,
            )
            .map_err(|errno| call("mkdir", path, errno))?;
        }
        Ok(dir)
    }

    /// Create a new file with `contents` and `mode`; an existing entry (file, symlink, anything)
    /// at `path` is an error, never overwritten.
    pub(super) fn create_file(
        &self,
        path: &Path,
        contents: &[u8],
        mode: u32,
    ) -> Result<(), FsError> {
        let (dir, name) = self.parent(path)?;
        let fd = sys::openat2(
            dir.as_raw_fd(),
            &name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
            0o600,
            RESOLVE,
        )
        .map_err(|errno| call("create", path, errno))?;
        let mut file = std::fs::File::from(fd);
        file.write_all(contents).map_err(|source| FsError::Io {
            call: "write",
            path: path.to_path_buf(),
            source,
        })?;
        nix::sys::stat::fchmod(file.as_fd(), Mode::from_bits_truncate(mode))
            .map_err(|errno| call("chmod", path, errno))
    }

    /// An empty file to bind a host file onto (an existing regular file is kept as it is).
    pub(super) fn touch(&self, path: &Path) -> Result<(), FsError> {
        let (dir, name) = self.parent(path)?;
        sys::openat2(
            dir.as_raw_fd(),
            &name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_NONBLOCK,
            0o644,
            RESOLVE,
        )
        .map(drop)
        .map_err(|errno| call("create", path, errno))
    }

    /// A symlink at `path` (its target is not resolved here; inside it resolves in the new root).
    pub(super) fn symlink(&self, target: &Path, path: &Path) -> Result<(), FsError> {
        let (dir, name) = self.parent(path)?;
        nix::unistd::symlinkat(target, &dir, name.as_c_str())
            .map_err(|errno| call("symlink", path, errno))
    }

    /// The parent directory of `path` (created if missing) and the last component.
    fn parent(&self, path: &Path) -> Result<(OwnedFd, CString), FsError> {
        let rel = relative(path)?;
        let name = rel
            .file_name()
            .ok_or_else(|| call("resolve", path, Errno::EINVAL))?;
        let name = cstr(name, path)?;
        let dir = self.mkdir_all(rel.parent().unwrap_or(Path::new("")))?;
        Ok((dir, name))
    }

    /// The host path of the root (for messages).
    pub(super) fn host(&self) -> &Path {
        &self.host
    }
}

/// The magic-link path through which `mount(2)` reaches an fd we opened (the old `/proc` is
/// still mounted while the tree is built).
pub(super) fn proc_fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// A sandbox path as a path relative to the root; `..` is refused outright.
fn relative(path: &Path) -> Result<PathBuf, FsError> {
    let mut rel = PathBuf::new();
    for part in path.components() {
        match part {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => rel.push(name),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(call("resolve", path, Errno::EINVAL));
            }
        }
    }
    Ok(rel)
}

fn cstr(name: &OsStr, path: &Path) -> Result<CString, FsError> {
    CString::new(name.as_bytes()).map_err(|_| call("path with NUL byte", path, Errno::EINVAL))
}

fn call(call: &'static str, path: &Path, errno: Errno) -> FsError {
    FsError::Call {
        call,
        path: path.to_path_buf(),
        errno,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_never_follow_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "host data").unwrap();
        std::fs::create_dir(dir.path().join("w")).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("w/x")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("w/d")).unwrap();
        let root = Root::open(dir.path()).unwrap();

        let e = root.create_file(Path::new("/w/x"), b"payload", 0o644);
        assert!(
            e.is_err(),
            "an existing symlink must not be written through"
        );
        let e = root.create_file(Path::new("/w/d/new"), b"payload", 0o644);
        assert!(e.is_err(), "a symlinked directory must not be entered");
        assert!(root.touch(Path::new("/w/x")).is_err());
        assert!(root.mkdir_all(Path::new("/w/d/sub")).is_err());
        assert!(root.object(Path::new("/w/d")).is_err());
        assert!(
            root.create_file(Path::new("/../escape"), b"", 0o644)
                .is_err()
        );

        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "host data");
        assert!(!outside.path().join("new").exists());
        assert!(!outside.path().join("sub").exists());
    }

    #[test]
    fn creates_files_directories_and_links_beneath_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        root.create_file(Path::new("/a/b/c.txt"), b"hi", 0o640)
            .unwrap();
        root.symlink(Path::new("/proc/self/fd"), Path::new("/dev/fd"))
            .unwrap();
        root.touch(Path::new("/dev/null")).unwrap();
        let meta = std::fs::metadata(dir.path().join("a/b/c.txt")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o640
        );
        assert_eq!(std::fs::read(dir.path().join("a/b/c.txt")).unwrap(), b"hi");
        assert_eq!(
            std::fs::read_link(dir.path().join("dev/fd")).unwrap(),
            Path::new("/proc/self/fd")
        );
        // A second create of the same file is refused, never a silent overwrite.
        assert!(
            root.create_file(Path::new("/a/b/c.txt"), b"x", 0o644)
                .is_err()
        );
        assert_eq!(std::fs::read(dir.path().join("a/b/c.txt")).unwrap(), b"hi");
    }
}
