//! What a failed set-up step reports beyond its message: the syscall, the path and the errno, read
//! from each mechanism's own error type (DESIGN §3: the child sends a typed error home).

use std::path::Path;

use nix::errno::Errno;

use super::protocol::SetupError;
use crate::caps::CapsError;
use crate::fs::FsError;
use crate::landlock::LandlockError;
use crate::ns::NsError;
use crate::rlimit::RlimitError;
use crate::seccomp::SeccompError;

/// An error a set-up step can end with.
pub(super) trait Cause: std::fmt::Display {
    /// The system call that failed, when the error knows it.
    fn syscall(&self) -> Option<&str> {
        None
    }
    fn path(&self) -> Option<&Path> {
        None
    }
    fn errno(&self) -> Option<Errno> {
        None
    }
}

/// The typed error of step `step`: for a bare `Errno` the step is named for its syscall.
pub(super) fn setup_error(step: &str, e: &dyn Cause) -> SetupError {
    SetupError::new(
        step,
        e.syscall().or(Some(step).filter(|_| e.errno().is_some())),
        e.path().map(|p| p.display().to_string()),
        e.errno(),
        e.to_string(),
    )
}

fn io_errno(e: &std::io::Error) -> Option<Errno> {
    e.raw_os_error().map(Errno::from_raw)
}

impl Cause for Errno {
    fn errno(&self) -> Option<Errno> {
        Some(*self)
    }
}

impl Cause for std::io::Error {
    fn errno(&self) -> Option<Errno> {
        io_errno(self)
    }
}

impl Cause for FsError {
    fn syscall(&self) -> Option<&str> {
        match self {
            FsError::Mount { .. } => Some("mount"),
            FsError::Io { call, .. } | FsError::Call { call, .. } => Some(call),
            FsError::MissingMountpoint { .. } => None,
        }
    }
    fn path(&self) -> Option<&Path> {
        match self {
            FsError::Mount { target, .. } => Some(target),
            FsError::Io { path, .. }
            | FsError::Call { path, .. }
            | FsError::MissingMountpoint { path } => Some(path),
        }
    }
    fn errno(&self) -> Option<Errno> {
        match self {
            FsError::Mount { errno, .. } | FsError::Call { errno, .. } => Some(*errno),
            FsError::Io { source, .. } => io_errno(source),
            FsError::MissingMountpoint { .. } => None,
        }
    }
}

impl Cause for NsError {
    fn syscall(&self) -> Option<&str> {
        match self {
            NsError::Write { .. } => Some("write"),
            NsError::Call { call, .. } => Some(call),
        }
    }
    fn path(&self) -> Option<&Path> {
        match self {
            NsError::Write { path, .. } => Some(path),
            NsError::Call { .. } => None,
        }
    }
    fn errno(&self) -> Option<Errno> {
        match self {
            NsError::Write { source, .. } => io_errno(source),
            NsError::Call { errno, .. } => Some(*errno),
        }
    }
}

impl Cause for CapsError {
    fn syscall(&self) -> Option<&str> {
        match self {
            CapsError::Call { call, .. } => Some(call),
            CapsError::Clear { .. } => Some("capset"),
            CapsError::Remaining(_) => None,
        }
    }
    fn errno(&self) -> Option<Errno> {
        match self {
            CapsError::Call { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

impl Cause for RlimitError {
    fn syscall(&self) -> Option<&str> {
        Some("setrlimit")
    }
    fn errno(&self) -> Option<Errno> {
        Some(self.errno)
    }
}

impl Cause for LandlockError {
    fn syscall(&self) -> Option<&str> {
        match self {
            LandlockError::Ruleset(_) => Some("landlock_restrict_self"),
            LandlockError::NotEnforced { .. } => None,
        }
    }
}

impl Cause for SeccompError {
    fn syscall(&self) -> Option<&str> {
        match self {
            SeccompError::NoNewPrivs { .. } => Some("prctl"),
            SeccompError::Attach { .. } => Some("seccomp"),
            _ => None,
        }
    }
    fn errno(&self) -> Option<Errno> {
        match self {
            SeccompError::NoNewPrivs { source } | SeccompError::Attach { source, .. } => {
                io_errno(source)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn setup_errors_carry_syscall_path_and_errno() {
        let mount = FsError::Mount {
            source_desc: "\"/usr\"".into(),
            target: PathBuf::from("/tmp/.stockade-root/usr"),
            flags: "MS_BIND".into(),
            errno: Errno::EPERM,
            hint: "",
        };
        let e = setup_error("mount tree", &mount);
        assert_eq!(e.step, "mount tree");
        assert_eq!(e.syscall.as_deref(), Some("mount"));
        assert_eq!(e.path.as_deref(), Some("/tmp/.stockade-root/usr"));
        assert_eq!(e.errno, Some(libc::EPERM));
        assert_eq!(e.message, mount.to_string());
        // A bare errno is named for its step, which is the syscall.
        let e = setup_error("setsid", &Errno::EPERM);
        assert_eq!(
            (e.syscall.as_deref(), e.errno),
            (Some("setsid"), Some(libc::EPERM))
        );
        // A refusal that is no syscall has neither.
        let e = setup_error(
            "landlock",
            &LandlockError::NotEnforced {
                why: "off",
                fix: "on",
            },
        );
        assert_eq!((e.syscall, e.path, e.errno), (None, None, None));
    }
}
