//! The probes behind `stockade doctor`: sysctls, `/proc` and `/sys` files, one forked child that
//! calls `unshare(CLONE_NEWUSER)`, one test cgroup, and one sandbox run of the default policy.
//!
//! Nothing is left behind: the test cgroup is destroyed, and on cgroup v2 the delegation set-up
//! the limit manager performs (the `supervisor` leaf, controllers enabled in
//! `cgroup.subtree_control`, the owner-record directory) is undone by `restore` when doctor made
//! it.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::ForkResult;

use super::restore;
use super::{
    CgroupFacts, Enforced, Facts, LandlockFacts, ProbeOptions, ProfileNeeds, RunFacts,
    SeccompFacts, UsernsFacts,
};
use crate::cgroup::{CgroupError, CgroupOptions, LimitManager};
use crate::policy::{Limits, Policy, RootFs, SeccompDefault};
use crate::sandbox::{self, RunOptions};
use crate::{profile, rootfs, sys};

/// Probe the host. Takes a few milliseconds plus one sandbox run.
pub fn gather(opts: &ProbeOptions) -> Facts {
    let started = Instant::now();
    let mut timings = BTreeMap::new();
    let mut timed = |name: &str, t: Instant| {
        let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
        timings.insert(name.to_string(), us);
    };
    let mut f = Facts {
        kernel: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default(),
        uid: nix::unistd::getuid().as_raw(),
        ..Facts::default()
    };
    let t = Instant::now();
    f.userns = userns();
    timed("userns", t);
    let t = Instant::now();
    f.landlock = landlock();
    f.seccomp = seccomp();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    f.proc_overmounts = proc_overmounts(&mountinfo);
    timed("files", t);

    let t = Instant::now();
    let snapshot = restore::Snapshot::take(&mountinfo, f.uid, opts.cgroup_root.as_deref());
    let (cgroup, manager) = cgroup(&mountinfo, opts);
    f.cgroup = cgroup;
    timed("cgroup", t);
    let t = Instant::now();
    f.run = test_run(manager.as_ref());
    timed("run", t);
    drop(manager);
    f.cgroup.leftovers = snapshot.restore();

    let t = Instant::now();
    let path_var = path_of(&Policy::default());
    f.interpreters = rootfs::KNOWN_INTERPRETERS
        .iter()
        .map(|name| {
            let found = find_command(Path::new("/"), &path_var, name);
            (name.to_string(), found)
        })
        .collect();
    f.named_rootfs = rootfs::list(&rootfs::default_dirs())
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    f.profiles = profiles();
    timed("profiles", t);
    let t = Instant::now();
    f.etc = super::etc::probe(Path::new("/"), Path::new("/etc"));
    timed("etc", t);
    timed("total", started);
    f.timings_us = timings;
    f
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn read_u64(path: &str) -> Option<u64> {
    read_trimmed(path)?.parse().ok()
}

/// `unshare(CLONE_NEWUSER)` in a forked child (the new namespace dies with it), plus the sysctls
/// that explain a refusal.
fn userns() -> UsernsFacts {
    UsernsFacts {
        unshare_error: unshare_probe(),
        max_user_namespaces: read_u64("/proc/sys/user/max_user_namespaces"),
        unprivileged_userns_clone: read_u64("/proc/sys/kernel/unprivileged_userns_clone"),
        apparmor_restrict: read_u64("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
    }
}

fn unshare_probe() -> Option<String> {
    // The CLI is single-threaded here, and the child only makes two syscalls before `_exit`.
    match sys::fork() {
        Ok(ForkResult::Child) => {
            let code = match nix::sched::unshare(CloneFlags::CLONE_NEWUSER) {
                Ok(()) => 0,
                Err(errno) => errno as i32,
            };
            sys::exit_now(code)
        }
        Ok(ForkResult::Parent { child }) => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, 0)) => None,
            Ok(WaitStatus::Exited(_, code)) => Some(format!("{:?}", Errno::from_raw(code))),
            other => Some(format!("probe child ended unexpectedly: {other:?}")),
        },
        Err(errno) => Some(format!("fork: {errno:?}")),
    }
}

fn landlock() -> LandlockFacts {
    LandlockFacts {
        abi: crate::landlock::kernel_abi(),
        lsm: read_trimmed("/sys/kernel/security/lsm")
            .map(|s| s.split(',').map(str::to_string).collect()),
    }
}

fn seccomp() -> SeccompFacts {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    SeccompFacts {
        actions: read_trimmed("/proc/sys/kernel/seccomp/actions_avail")
            .map(|s| s.split_whitespace().map(str::to_string).collect()),
        own_mode: status
            .lines()
            .find_map(|l| l.strip_prefix("Seccomp:"))
            .and_then(|v| v.trim().parse().ok()),
        kmsg_readable: crate::seccomp::KmsgWatch::open().is_some(),
    }
}

pub(super) use crate::mountinfo::MountLine;

pub(super) fn mounts(mountinfo: &str) -> Vec<MountLine> {
    crate::mountinfo::parse(mountinfo)
}

/// `binfmt_misc` sits on a permanently empty sysctl directory, which the kernel's
/// `mnt_already_visible` check ignores; every other mount below `/proc` counts.
pub(super) fn proc_overmounts(mountinfo: &str) -> Vec<String> {
    mounts(mountinfo)
        .into_iter()
        .map(|m| m.point)
        .filter(|p| p.starts_with("/proc/") && p != "/proc/sys/fs/binfmt_misc")
        .collect()
}

/// What is mounted: `v2`, `hybrid`, `v1` or `none`, and the v1 controllers among ours.
pub(super) fn cgroup_mode(mountinfo: &str) -> (String, Vec<String>) {
    let all = mounts(mountinfo);
    let v2 = all.iter().any(|m| m.fstype == "cgroup2");
    let mut v1: Vec<String> = ["memory", "pids", "cpu"]
        .into_iter()
        .filter(|c| {
            all.iter()
                .any(|m| m.fstype == "cgroup" && m.options.split(',').any(|o| o == *c))
        })
        .map(str::to_string)
        .collect();
    v1.dedup();
    let mode = match (v1.is_empty(), v2) {
        (false, true) => "hybrid",
        (false, false) => "v1",
        (true, true) => "v2",
        (true, false) => "none",
    };
    (mode.to_string(), v1)
}

/// Detect the limit backend as `stockade run` does, then create a group with a memory, pids and
/// cpu limit, read what the kernel enforces, and destroy it. The manager is handed back so the
/// test run uses it, like `stockade run -- true` would.
fn cgroup(mountinfo: &str, opts: &ProbeOptions) -> (CgroupFacts, Option<LimitManager>) {
    let (mode, v1_controllers) = cgroup_mode(mountinfo);
    let mut f = CgroupFacts {
        mode,
        v1_controllers,
        root: opts.cgroup_root.clone(),
        ..CgroupFacts::default()
    };
    let copts = CgroupOptions {
        root: opts.cgroup_root.clone(),
        force: None,
    };
    let manager = match LimitManager::detect(&copts) {
        Ok(m) => m,
        Err(e) => {
            if let CgroupError::NotDelegated { path, .. } = &e {
                f.not_delegated = Some(path.clone());
            }
            f.error = Some(e.to_string());
            return (f, None);
        }
    };
    f.backend = Some(manager.backend_name().to_string());
    let all = Limits {
        memory: Some(64 << 20),
        pids: Some(64),
        cpus: Some(1.0),
        ..Limits::default()
    };
    // The manager's own explanation of a missing controller names the file and the fix.
    if let Err(e) = manager.require(&all) {
        f.group_errors.push(e.to_string());
    }
    let mut singles = Vec::new();
    match try_group(&manager, &all) {
        Ok((e, kill_all)) => {
            f.enforced = e;
            f.kill_all = kill_all;
        }
        Err(e) => {
            f.group_errors.push(e);
            // Find out which limit is the problem: one group per limit.
            for (i, one) in [
                Limits {
                    pids: None,
                    cpus: None,
                    ..all.clone()
                },
                Limits {
                    memory: None,
                    cpus: None,
                    ..all.clone()
                },
                Limits {
                    memory: None,
                    pids: None,
                    ..all.clone()
                },
            ]
            .iter()
            .enumerate()
            {
                match try_group(&manager, one) {
                    Ok((e, kill_all)) => {
                        singles.push((i, e));
                        f.kill_all |= kill_all;
                    }
                    Err(e) => f.group_errors.push(e),
                }
            }
        }
    }
    for (i, e) in singles {
        match i {
            0 => f.enforced.memory = e.memory,
            1 => f.enforced.pids = e.pids,
            _ => f.enforced.cpu = e.cpu,
        }
    }
    (f, Some(manager))
}

fn try_group(manager: &LimitManager, limits: &Limits) -> Result<(Enforced, bool), String> {
    let group = manager.create(limits).map_err(|e| e.to_string())?;
    let e = group.enforced();
    group
        .destroy()
        .map_err(|e| format!("remove the test group: {e}"))?;
    Ok((
        Enforced {
            memory: e.memory_limit_enforced,
            pids: e.pids_limit_enforced,
            cpu: e.cpu_limit_enforced,
        },
        e.kill_all,
    ))
}

/// `stockade run -- true` with the embedded default policy.
fn test_run(manager: Option<&LimitManager>) -> RunFacts {
    let mut policy = Policy::default();
    policy.argv = vec!["true".into()];
    // No stdin, no echo, no signal forwarding: only the limit manager differs from the default.
    let opts = RunOptions {
        limits: manager,
        ..RunOptions::default()
    };
    let v = sandbox::run(&policy, &opts);
    RunFacts {
        status: v.status.as_str().to_string(),
        exit_code: v.exit_code,
        message: v.message,
        wall_ms: v.wall_ms,
        cgroup_backend: v.enforced.cgroup.backend,
        landlock_status: v.enforced.landlock.status,
        seccomp_instructions: v.enforced.seccomp.instructions,
    }
}

/// The sandbox's PATH from the policy's environment.
fn path_of(policy: &Policy) -> String {
    policy
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// Where `command` is found as the sandbox would look it up in `root`: the sandbox path, or
/// `None` when it is missing or not executable.
fn find_command(root: &Path, path_var: &str, command: &str) -> Option<String> {
    let candidates: Vec<String> = if command.contains('/') {
        vec![command.to_string()]
    } else {
        path_var
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| format!("{}/{command}", d.trim_end_matches('/')))
            .collect()
    };
    candidates.into_iter().find(|inside| {
        rootfs::resolve_in_root(root, inside)
            .ok()
            .and_then(|host| std::fs::metadata(host).ok())
            .is_some_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The default policy first, then every profile `stockade profile list` shows.
fn profiles() -> Vec<ProfileNeeds> {
    let mut out = vec![needs("default", &Policy::default(), false)];
    for info in profile::list() {
        match profile::load(&info.name) {
            Ok(p) => out.push(needs(&info.name, &p.policy, true)),
            Err(e) => out.push(ProfileNeeds {
                name: info.name,
                load_error: Some(e.to_string()),
                ..ProfileNeeds::default()
            }),
        }
    }
    out
}

fn needs(name: &str, policy: &Policy, with_command: bool) -> ProfileNeeds {
    let root = match &policy.rootfs {
        RootFs::Host => PathBuf::from("/"),
        RootFs::Dir(dir) => dir.clone(),
    };
    let command = policy.argv.first().filter(|_| with_command).cloned();
    let command_found = command
        .as_deref()
        .is_some_and(|c| find_command(&root, &path_of(policy), c).is_some());
    let l = &policy.limits;
    ProfileNeeds {
        name: name.to_string(),
        command,
        command_found,
        rootfs: match &policy.rootfs {
            RootFs::Host => "host".into(),
            RootFs::Dir(dir) => dir.display().to_string(),
        },
        memory: l.memory.is_some(),
        pids: l.pids.is_some(),
        cpus: l.cpus.is_some(),
        best_effort_cgroup: policy.best_effort.cgroup,
        best_effort_landlock: policy.best_effort.landlock,
        seccomp_default: match policy.seccomp.default_action {
            SeccompDefault::Kill => "kill_process",
            SeccompDefault::Errno => "errno",
            SeccompDefault::Log => "log",
        }
        .to_string(),
        load_error: None,
    }
}
