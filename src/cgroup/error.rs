//! Errors of the cgroup limit manager: every variant names the step, the file and the value.

use std::io;
use std::path::PathBuf;

use nix::errno::Errno;

/// What went wrong while detecting, creating, using or removing cgroups.
///
/// Messages follow the project style: lowercase, the file and the value in the message, the errno
/// name at the end (`write "67108864" to /sys/fs/cgroup/memory/x/memory.limit_in_bytes: EBUSY`),
/// the OS error as the source, and a hint when the cause is fixable on the host.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("read {path}: {}", errno_name(source))]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("write \"{value}\" to {path}: {}{hint}", errno_name(source))]
    Write {
        path: PathBuf,
        value: String,
        /// Empty, or `"; "` followed by what to change.
        hint: String,
        #[source]
        source: io::Error,
    },
    #[error("open {path}: {}", errno_name(source))]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("create cgroup {path}: {}{hint}", errno_name(source))]
    Mkdir {
        path: PathBuf,
        hint: String,
        #[source]
        source: io::Error,
    },
    #[error("remove cgroup {path}: {}", errno_name(source))]
    Rmdir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("parse {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error(
        "no cgroup hierarchy is mounted ({mountinfo} lists no cgroup or cgroup2 file system); \
         mount cgroup2 on /sys/fs/cgroup, or mark the cgroup layer best-effort (`--best-effort \
         cgroup`, or `best_effort = [\"cgroup\"]` in a profile) to run with rlimits only"
    )]
    NoCgroups { mountinfo: PathBuf },
    #[error(
        "cgroup {path} is not writable by uid {uid}: stockade needs a delegated cgroup subtree; \
         run it as root, as a systemd service with Delegate=yes (dist/systemd/stockade.service), \
         or pass --cgroup-root with a writable cgroup2 directory; or mark the cgroup layer \
         best-effort (`--best-effort cgroup`, or `best_effort = [\"cgroup\"]` in a profile) to run \
         with rlimits only"
    )]
    NotDelegated { path: PathBuf, uid: u32 },
    #[error(
        "--cgroup-root {path} is not a cgroup2 directory (it has no cgroup.controllers); give a \
         directory inside the cgroup2 mount, e.g. /sys/fs/cgroup/stockade.slice/work"
    )]
    RootNotCgroup2 { path: PathBuf },
    #[error("the {wanted} cgroup backend was forced but is not available here: {reason}")]
    ForcedUnavailable {
        wanted: &'static str,
        reason: String,
    },
    #[error(
        "the {controller} controller is not available {place}, so the {limit} limit cannot be \
         kernel-enforced; {hint}"
    )]
    ControllerMissing {
        controller: &'static str,
        limit: &'static str,
        /// Where it was looked for (`in /sys/fs/cgroup/x/cgroup.controllers`).
        place: String,
        hint: String,
    },
    #[error(
        "no cgroups are in use (rlimit backend), so the {limit} limit is not kernel-enforced; \
         run with a cgroup backend or mark the cgroup layer best-effort (`--best-effort cgroup`)"
    )]
    NoBackend { limit: &'static str },
    #[error("cpu limit {cpus} cores is below the kernel minimum of 0.001 cores (1 ms per second)")]
    CpusTooSmall { cpus: f64 },
    #[error("cpu limit {cpus} cores is not a positive finite number")]
    CpusInvalid { cpus: f64 },
    #[error("{step} for {path}: {}", errno_name(source))]
    Notify {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "cgroup {path} still has members after {waited_ms} ms (pids {pids}); the owner record \
         {marker} is kept so the next start reaps it"
    )]
    Busy {
        path: PathBuf,
        pids: String,
        waited_ms: u64,
        marker: PathBuf,
    },
    #[error("owner record {path}: {}{hint}", errno_name(source))]
    Marker {
        path: PathBuf,
        hint: String,
        #[source]
        source: io::Error,
    },
}

/// The errno's symbolic name (`EBUSY`), or the error text when there is no errno.
pub(crate) fn errno_name(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => format!("{:?}", Errno::from_raw(code)),
        None => err.to_string(),
    }
}

/// The raw errno of an I/O error, for matching (`ENOENT`, `EBUSY`, …).
pub(crate) fn errno(err: &io::Error) -> Errno {
    Errno::from_raw(err.raw_os_error().unwrap_or(0))
}
