//! cgroupfs file operations behind a small trait, so unit tests can run against a fake tree.
//!
//! cgroupfs is a kernfs: interface files appear by themselves on `mkdir`, `rmdir` succeeds on a
//! directory full of them, and every value must be written with one `write(2)` (a split write is
//! parsed as two values). A plain directory in a tempdir behaves differently on all three points,
//! so the handful of operations whose kernel semantics matter go through `CgFs`; the fake in
//! `fake.rs` implements them the way the kernel does (firecracker jailer's `MockCgroupFs` idea).

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use nix::sys::signal::{Signal, kill};
use nix::unistd::{AccessFlags, Pid, access};

use super::error::CgroupError;

/// The operations the limit manager performs on a cgroup file system.
pub(crate) trait CgFs: Send + Sync + Debug {
    fn mkdir(&self, dir: &Path) -> io::Result<()>;
    fn rmdir(&self, dir: &Path) -> io::Result<()>;
    /// Write `value` with a single `write(2)` to an existing file (no `O_CREAT`: a missing file is
    /// `ENOENT`, as on cgroupfs, where `O_CREAT` would turn it into a misleading `EACCES`).
    fn write(&self, file: &Path, value: &str) -> io::Result<()>;
    fn read(&self, file: &Path) -> io::Result<String>;
    /// Open read-only with `O_CLOEXEC` (a directory for `CLONE_INTO_CGROUP`, or a file that is
    /// polled with `pread` so each poll costs one syscall).
    fn open(&self, path: &Path) -> io::Result<File>;
    fn exists(&self, path: &Path) -> bool;
    /// Whether the calling user may create groups and move processes in `dir`.
    fn writable(&self, dir: &Path) -> bool;
    /// Send `sig` to `pid` (used where `cgroup.kill` does not exist).
    fn signal(&self, pid: i32, sig: Signal) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default)]
pub(crate) struct RealFs;

impl CgFs for RealFs {
    fn mkdir(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir(dir)
    }

    fn rmdir(&self, dir: &Path) -> io::Result<()> {
        std::fs::remove_dir(dir)
    }

    fn write(&self, file: &Path, value: &str) -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).open(file)?;
        // One write call: cgroupfs treats every write(2) as one complete value.
        let n = f.write(value.as_bytes())?;
        if n != value.len() {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(())
    }

    fn read(&self, file: &Path) -> io::Result<String> {
        std::fs::read_to_string(file)
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        File::open(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn writable(&self, dir: &Path) -> bool {
        access(dir, AccessFlags::W_OK | AccessFlags::X_OK).is_ok()
            && access(&dir.join("cgroup.procs"), AccessFlags::W_OK).is_ok()
    }

    fn signal(&self, pid: i32, sig: Signal) -> io::Result<()> {
        kill(Pid::from_raw(pid), sig).map_err(io::Error::from)
    }
}

/// `fs.write` with the error naming the file and the value.
pub(crate) fn write(fs: &dyn CgFs, file: &Path, value: &str) -> Result<(), CgroupError> {
    fs.write(file, value).map_err(|source| CgroupError::Write {
        path: file.to_path_buf(),
        value: value.to_string(),
        hint: String::new(),
        source,
    })
}

/// `fs.read` with the error naming the file.
pub(crate) fn read(fs: &dyn CgFs, file: &Path) -> Result<String, CgroupError> {
    fs.read(file).map_err(|source| CgroupError::Read {
        path: file.to_path_buf(),
        source,
    })
}

/// `fs.open` with the error naming the path.
pub(crate) fn open(fs: &dyn CgFs, path: &Path) -> Result<File, CgroupError> {
    fs.open(path).map_err(|source| CgroupError::Open {
        path: path.to_path_buf(),
        source,
    })
}

/// The pids listed in a `cgroup.procs` file (missing file: none).
pub(crate) fn members(fs: &dyn CgFs, dir: &Path) -> Vec<i32> {
    fs.read(&dir.join("cgroup.procs"))
        .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}
