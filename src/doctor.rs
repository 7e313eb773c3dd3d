//! `stockade doctor`: what this host's kernel can enforce (user namespaces, Landlock, seccomp
//! filters, cgroup limits, a fresh procfs, clone3/pidfd, the host root's interpreters and `/etc`)
//! and which profiles can therefore run.
//!
//! Plan first, then judge: [`gather`] probes the host into plain [`Facts`] (it forks one child
//! that calls `unshare(CLONE_NEWUSER)`, creates and removes one test cgroup, and runs the embedded
//! default policy once with `true`, exactly as `stockade run -- true` would); [`classify`] is a
//! pure function from facts to report lines, so every verdict it can reach is unit-tested with
//! injected facts. docs/doctor.md describes each check, its statuses and its fixes.

mod classify;
mod etc;
mod layers;
mod probe;
mod restore;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

pub use self::classify::classify;
pub use self::etc::{EtcFacts, EtcMissing};
pub use self::probe::gather;

/// How good one capability of the host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Everything stockade uses is there.
    Ok,
    /// Present but weaker than it could be; some profiles run with less protection or not at all.
    Degraded,
    /// Not available: profiles that require it cannot run.
    Missing,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Degraded => "DEGRADED",
            Status::Missing => "MISSING",
        }
    }
}

/// One line of the report. Field names are stable (docs/doctor.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `sandbox`, `userns`, `landlock`, `seccomp`, `cgroup`, `proc`, `clone3`, `rootfs` or `etc`.
    pub id: &'static str,
    pub status: Status,
    /// One line: what was found.
    pub summary: String,
    /// What was measured and what it means; may be empty.
    pub detail: String,
    /// What to change on the host; `None` when the status is OK.
    pub fix: Option<String>,
    /// Profiles that cannot run, or run weaker, because of this line.
    pub affects: Vec<String>,
}

/// Why a profile cannot run, or runs weaker than it asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// The [`Check::id`] responsible.
    pub check: &'static str,
    pub reason: String,
}

/// What this host means for one profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileReport {
    pub name: String,
    /// The interpreter the profile runs; `None` for the default policy and security presets,
    /// which run the caller's command.
    pub command: Option<String>,
    /// Whether `stockade run` with this profile would start.
    pub runs: bool,
    pub blocked_by: Vec<Reason>,
    /// Layers it gets weaker than asked (only ever for layers it marks best-effort, or Landlock
    /// features an older ABI lacks).
    pub weaker: Vec<Reason>,
}

/// Everything `stockade doctor` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `/proc/sys/kernel/osrelease`.
    pub kernel: String,
    pub uid: u32,
    /// The embedded default policy (`stockade run -- true`) runs; the CLI exits 1 otherwise.
    pub default_profile_runs: bool,
    pub checks: Vec<Check>,
    pub profiles: Vec<ProfileReport>,
    /// The raw probe results the lines were derived from.
    pub facts: Facts,
}

impl Report {
    /// 0 when the default profile runs, else 1.
    pub fn exit_code(&self) -> u8 {
        u8::from(!self.default_profile_runs)
    }
}

/// What `gather` was asked to look at.
#[derive(Debug, Clone, Default)]
pub struct ProbeOptions {
    /// A delegated cgroup2 directory, as `stockade run --cgroup-root` would get it.
    pub cgroup_root: Option<PathBuf>,
}

/// Probe results, with no judgement in them. Built by [`gather`], or by hand in tests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Facts {
    /// `/proc/sys/kernel/osrelease`, e.g. `6.18.44`.
    pub kernel: String,
    pub uid: u32,
    pub userns: UsernsFacts,
    pub landlock: LandlockFacts,
    pub seccomp: SeccompFacts,
    pub cgroup: CgroupFacts,
    /// Mount points below `/proc` in `/proc/self/mountinfo`, other than the permanently empty
    /// `/proc/sys/fs/binfmt_misc`: each makes the kernel refuse a fresh proc mount in a user
    /// namespace (fs/namespace.c `mnt_already_visible`).
    pub proc_overmounts: Vec<String>,
    /// The test run of the embedded default policy.
    pub run: RunFacts,
    /// Interpreters the shipped language profiles use, looked up on the sandbox's PATH in the
    /// host root: `(name, path)` with `None` when absent.
    pub interpreters: Vec<(String, Option<String>)>,
    /// Named root filesystems found (`stockade rootfs list`).
    pub named_rootfs: Vec<String>,
    /// The host's `/etc` against the sandbox's allowlist (`fs::host_etc`).
    pub etc: EtcFacts,
    /// What each profile needs; the first entry is the embedded default policy.
    pub profiles: Vec<ProfileNeeds>,
    /// How long each probe took, in microseconds.
    pub timings_us: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct UsernsFacts {
    /// The errno name when `unshare(CLONE_NEWUSER)` failed in a forked child; `None` when it
    /// worked.
    pub unshare_error: Option<String>,
    /// `/proc/sys/user/max_user_namespaces`.
    pub max_user_namespaces: Option<u64>,
    /// `/proc/sys/kernel/unprivileged_userns_clone` (Debian's and older Ubuntu's switch).
    pub unprivileged_userns_clone: Option<u64>,
    /// `/proc/sys/kernel/apparmor_restrict_unprivileged_userns` (Ubuntu 23.10 and later).
    pub apparmor_restrict: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LandlockFacts {
    /// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`, 0 when unavailable.
    pub abi: u32,
    /// `/sys/kernel/security/lsm`, `None` when securityfs is not mounted.
    pub lsm: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SeccompFacts {
    /// `/proc/sys/kernel/seccomp/actions_avail`; `None` when the file is missing (no
    /// CONFIG_SECCOMP_FILTER).
    pub actions: Option<Vec<String>>,
    /// The `Seccomp:` field of `/proc/self/status` (2: doctor itself runs under a filter).
    pub own_mode: Option<u32>,
    /// Whether `/dev/kmsg` is readable, so a seccomp kill can name the syscall.
    pub kmsg_readable: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CgroupFacts {
    /// What is mounted: `v2` (cgroup2 only), `hybrid` (v1 controllers and cgroup2), `v1` or
    /// `none`.
    pub mode: String,
    /// Of memory, pids and cpu: the controllers with a mounted v1 hierarchy.
    pub v1_controllers: Vec<String>,
    /// The `--cgroup-root` doctor was given.
    pub root: Option<PathBuf>,
    /// The limit backend `stockade run` would use (`v2`, `v1`, `hybrid`), when detection worked.
    pub backend: Option<String>,
    /// Why detection failed: the error `stockade run` would report.
    pub error: Option<String>,
    /// The directory that is not writable, when that is why detection failed.
    pub not_delegated: Option<PathBuf>,
    /// Which limits the kernel enforced on a test group created with all three.
    pub enforced: Enforced,
    /// Errors from creating the test group (the combined one, then each limit alone).
    pub group_errors: Vec<String>,
    /// Whether the group can be killed at once through `cgroup.kill` (Linux 5.14).
    pub kill_all: bool,
    /// Anything doctor changed in the cgroup tree and could not put back.
    pub leftovers: Vec<String>,
}

/// Kernel-enforced limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Enforced {
    pub memory: bool,
    pub pids: bool,
    pub cpu: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RunFacts {
    /// The verdict status (`ok`, `setup_failed`, ...).
    pub status: String,
    pub exit_code: Option<i32>,
    /// The verdict's message for failures.
    pub message: Option<String>,
    pub wall_ms: u64,
    /// The limit backend the run used (`none` without a cgroup).
    pub cgroup_backend: String,
    /// `fully_enforced`, `partially_enforced` or `not_enforced`.
    pub landlock_status: String,
    pub seccomp_instructions: usize,
}

impl RunFacts {
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }
}

/// What one profile asks of the host.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProfileNeeds {
    pub name: String,
    /// `argv[0]`, `None` when the caller supplies the command.
    pub command: Option<String>,
    /// Whether `command` was found (and is executable) in the profile's root on its PATH.
    pub command_found: bool,
    /// `host` or the rootfs directory.
    pub rootfs: String,
    pub memory: bool,
    pub pids: bool,
    pub cpus: bool,
    pub best_effort_cgroup: bool,
    pub best_effort_landlock: bool,
    /// The seccomp action for unlisted syscalls: `kill_process`, `errno` or `log`.
    pub seccomp_default: String,
    /// Why the profile does not load.
    pub load_error: Option<String>,
}
