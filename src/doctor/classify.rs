//! From probe facts to report lines: a pure function of [`Facts`], so every status and fix it can
//! produce is unit-tested with injected facts.
//!
//! The runtime lines (sandbox, userns, proc, clone3) live here, the layer lines in `layers`.
//! Each check also decides what it means for every profile (blocks it, or makes it weaker); a
//! line's `affects` is exactly the profiles it marked.

use super::layers::{cgroup, landlock, rootfs, seccomp};
use super::{Check, Facts, ProfileNeeds, ProfileReport, Reason, Report, Status};

/// What one check means for one profile.
pub(super) enum Impact {
    Blocks(String),
    Weakens(String),
}

/// The report for `f`.
pub fn classify(f: &Facts) -> Report {
    let mut profiles: Vec<ProfileReport> = f.profiles.iter().map(start).collect();
    let mut checks = vec![
        userns(f, &mut profiles),
        landlock(f, &mut profiles),
        seccomp(f, &mut profiles),
        cgroup(f, &mut profiles),
        proc_mount(f, &mut profiles),
        clone3(f, &mut profiles),
        rootfs(f, &mut profiles),
        super::etc::check(f, &mut profiles),
    ];
    // Last, so a failed run is only blamed on itself when no other line explains it; shown first.
    let run = sandbox(f, &mut profiles, &checks);
    checks.insert(0, run);
    for p in &mut profiles {
        p.runs = p.blocked_by.is_empty();
    }
    let default_profile_runs = f.run.ok()
        && profiles
            .iter()
            .find(|p| p.name == "default")
            .is_some_and(|p| p.runs);
    Report {
        kernel: f.kernel.clone(),
        uid: f.uid,
        default_profile_runs,
        checks,
        profiles,
        facts: f.clone(),
    }
}

fn start(n: &ProfileNeeds) -> ProfileReport {
    ProfileReport {
        name: n.name.clone(),
        command: n.command.clone(),
        runs: false,
        blocked_by: n
            .load_error
            .iter()
            .map(|e| Reason {
                check: "profile",
                reason: format!("does not load: {e}"),
            })
            .collect(),
        weaker: Vec::new(),
    }
}

/// Record `judge`'s impact on every loadable profile; returns the names it affected.
pub(super) fn mark(
    profiles: &mut [ProfileReport],
    f: &Facts,
    check: &'static str,
    judge: impl Fn(&ProfileNeeds) -> Option<Impact>,
) -> Vec<String> {
    let mut affected = Vec::new();
    for (p, n) in profiles.iter_mut().zip(&f.profiles) {
        if n.load_error.is_some() {
            continue;
        }
        match judge(n) {
            Some(Impact::Blocks(reason)) => p.blocked_by.push(Reason { check, reason }),
            Some(Impact::Weakens(reason)) => p.weaker.push(Reason { check, reason }),
            None => continue,
        }
        affected.push(n.name.clone());
    }
    affected
}

pub(super) fn check(
    id: &'static str,
    status: Status,
    summary: String,
    detail: String,
    fix: Option<String>,
    affects: Vec<String>,
) -> Check {
    Check {
        id,
        status,
        summary,
        detail,
        fix: if status == Status::Ok { None } else { fix },
        affects,
    }
}

/// `(major, minor)` of a kernel release such as `6.18.44` or `6.1.0-56-amd64`.
pub(super) fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

pub(super) fn or_unknown(s: &str) -> &str {
    if s.is_empty() { "not run" } else { s }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "absent".into(), |v| v.to_string())
}

fn userns(f: &Facts, profiles: &mut [ProfileReport]) -> Check {
    let u = &f.userns;
    let sysctls = format!(
        "user.max_user_namespaces={}, kernel.unprivileged_userns_clone={}, \
         kernel.apparmor_restrict_unprivileged_userns={}",
        opt(u.max_user_namespaces),
        opt(u.unprivileged_userns_clone),
        opt(u.apparmor_restrict)
    );
    // With the AppArmor restriction, unshare succeeds but the namespace gets no capabilities,
    // so only the sandbox run shows the failure.
    let apparmor = f.uid != 0 && u.apparmor_restrict == Some(1) && !f.run.ok();
    if u.unshare_error.is_none() && !apparmor {
        let run = if f.run.ok() {
            "; the test run created its sandbox in one"
        } else {
            ""
        };
        return check(
            "userns",
            Status::Ok,
            format!("user namespaces work (unshare(CLONE_NEWUSER) succeeded{run})"),
            sysctls,
            None,
            Vec::new(),
        );
    }
    let (why, fix) = userns_cause(f);
    let affects = mark(profiles, f, "userns", |_| {
        Some(Impact::Blocks(format!("no user namespaces: {why}")))
    });
    let probe = match &u.unshare_error {
        Some(e) => format!("unshare(CLONE_NEWUSER) in a child: {e}"),
        None => format!(
            "unshare(CLONE_NEWUSER) succeeds, but the test run failed: {}",
            f.run.message.as_deref().unwrap_or("no message")
        ),
    };
    check(
        "userns",
        Status::Missing,
        format!("user namespaces unavailable: {why}"),
        format!("{probe}; {sysctls}"),
        Some(fix),
        affects,
    )
}

/// Why user namespaces fail and what to change, from the sysctls and the errno.
fn userns_cause(f: &Facts) -> (String, String) {
    let u = &f.userns;
    let root = f.uid == 0;
    let err = u.unshare_error.as_deref().unwrap_or("");
    let (why, fix) = if u.max_user_namespaces == Some(0) {
        (
            "user.max_user_namespaces is 0",
            "sysctl -w user.max_user_namespaces=15000 (persist it in /etc/sysctl.d/)",
        )
    } else if !root && u.unprivileged_userns_clone == Some(0) {
        (
            "kernel.unprivileged_userns_clone is 0, so only root may create user namespaces",
            "sysctl -w kernel.unprivileged_userns_clone=1 (persist it in /etc/sysctl.d/), or run stockade as root",
        )
    } else if !root && u.apparmor_restrict == Some(1) {
        (
            "AppArmor restricts unprivileged user namespaces \
             (kernel.apparmor_restrict_unprivileged_userns=1)",
            "give the stockade binary an AppArmor profile with the `userns,` rule, or sysctl -w \
             kernel.apparmor_restrict_unprivileged_userns=0, or run stockade as root",
        )
    } else if err == "ENOSPC" {
        (
            "the limit on user namespaces is reached (ENOSPC)",
            "raise user.max_user_namespaces (sysctl -w user.max_user_namespaces=15000)",
        )
    } else if err == "EINVAL" {
        (
            "the kernel rejects CLONE_NEWUSER (EINVAL: built without CONFIG_USER_NS)",
            "use a kernel built with CONFIG_USER_NS=y",
        )
    } else if f.seccomp.own_mode == Some(2) {
        (
            "a seccomp filter around stockade (a container runtime's) refuses CLONE_NEWUSER",
            "run stockade on the host or in a VM, or give its container a seccomp profile that \
             allows unshare and clone3 (docker: --security-opt seccomp=unconfined)",
        )
    } else {
        (
            "the kernel refuses CLONE_NEWUSER",
            "check that the kernel has CONFIG_USER_NS=y and that no LSM policy or container \
             runtime blocks user namespaces",
        )
    };
    (why.to_string(), fix.to_string())
}

/// Whether the run's message is the fresh-proc mount failing.
fn proc_failed(f: &Facts) -> bool {
    let m = f.run.message.as_deref().unwrap_or("");
    !f.run.ok() && (m.contains("fresh /proc") || m.contains("/proc\" ("))
}

fn proc_mount(f: &Facts, profiles: &mut [ProfileReport]) -> Check {
    let over = &f.proc_overmounts;
    let listed = if over.is_empty() {
        "no over-mounts below /proc".to_string()
    } else {
        format!("over-mounts below /proc: {}", over.join(", "))
    };
    let fix = "run stockade where /proc is not partly masked: not in a systemd unit with \
               ProtectKernelTunables=, ProtectProc= or ProcSubset=, not in a container with masked \
               /proc paths (docker: --security-opt systempaths=unconfined), or in a VM";
    if f.run.ok() {
        let note = if over.is_empty() {
            ""
        } else {
            "; they did not stop it"
        };
        return check(
            "proc",
            Status::Ok,
            "a fresh /proc mounts in the sandbox (the test run mounted one)".into(),
            format!("{listed}{note}"),
            None,
            Vec::new(),
        );
    }
    let failed = proc_failed(f);
    if !failed && over.is_empty() {
        return check(
            "proc",
            Status::Ok,
            "no over-mounts below /proc (not confirmed: the test run failed before mounting it)"
                .into(),
            listed,
            None,
            Vec::new(),
        );
    }
    let summary = match failed {
        true => format!(
            "a fresh /proc cannot be mounted: {}",
            f.run.message.as_deref().unwrap_or("")
        ),
        false => "over-mounts below /proc make the kernel refuse a fresh /proc".into(),
    };
    let affects = mark(profiles, f, "proc", |_| {
        Some(Impact::Blocks("a fresh /proc cannot be mounted".into()))
    });
    check(
        "proc",
        Status::Missing,
        summary,
        format!(
            "{listed}; in a user namespace the kernel mounts proc only where an existing proc \
             is fully visible (fs/namespace.c mnt_already_visible)"
        ),
        Some(fix.into()),
        affects,
    )
}

fn clone3(f: &Facts, profiles: &mut [ProfileReport]) -> Check {
    let kernel = &f.kernel;
    let version = kernel_version(kernel).unwrap_or((0, 0));
    let message = f.run.message.as_deref().unwrap_or("");
    let clone_failed = !f.run.ok() && message.contains("clone3");
    if version < (5, 3) {
        let affects = mark(profiles, f, "clone3", |_| {
            Some(Impact::Blocks(format!("Linux {kernel} has no clone3")))
        });
        return check(
            "clone3",
            Status::Missing,
            format!("Linux {kernel} has no clone3 with CLONE_PIDFD (Linux 5.3)"),
            "the sandbox is started with clone3(CLONE_PIDFD|CLONE_NEW*)".into(),
            Some("upgrade to Linux 5.7 or newer".into()),
            affects,
        );
    }
    if clone_failed && f.userns.unshare_error.is_none() {
        let hidden = message.contains("ENOSYS");
        let affects = mark(profiles, f, "clone3", |_| {
            Some(Impact::Blocks("clone3 into new namespaces fails".into()))
        });
        return check(
            "clone3",
            Status::Missing,
            format!("clone3 into new namespaces fails: {message}"),
            match hidden {
                true => "ENOSYS although the kernel has clone3: a seccomp filter around stockade \
                         (container runtimes' default profiles) hides it"
                    .into(),
                false => format!("Linux {kernel}"),
            },
            Some(match hidden {
                true => "run stockade outside the container, or with a seccomp profile that \
                         allows clone3"
                    .into(),
                false => {
                    "see the userns and cgroup lines; the message names the refused call".into()
                }
            }),
            affects,
        );
    }
    let kill = if version >= (5, 14) {
        "yes"
    } else {
        "no (Linux 5.14)"
    };
    if version < (5, 7) {
        let affects = mark(profiles, f, "clone3", |p| {
            (p.memory || p.pids || p.cpus).then(|| {
                Impact::Weakens(
                    "no CLONE_INTO_CGROUP: cannot start inside its cgroup2 group".into(),
                )
            })
        });
        return check(
            "clone3",
            Status::Degraded,
            format!("Linux {kernel}: clone3 and pidfd, but no CLONE_INTO_CGROUP (Linux 5.7)"),
            format!("cgroup.kill: {kill}"),
            Some("upgrade to Linux 5.7 or newer".into()),
            affects,
        );
    }
    let proven = match (f.run.ok(), f.run.cgroup_backend.as_str()) {
        (true, "v2" | "hybrid") => {
            "; the test run used clone3 with CLONE_PIDFD and CLONE_INTO_CGROUP"
        }
        (true, _) => "; the test run used clone3 with CLONE_PIDFD (no cgroup2 group to clone into)",
        _ => "",
    };
    check(
        "clone3",
        Status::Ok,
        format!("Linux {kernel}: clone3, pidfd and CLONE_INTO_CGROUP"),
        format!("cgroup.kill (Linux 5.14): {kill}{proven}"),
        None,
        Vec::new(),
    )
}

/// The test run of the default policy. When no other line explains its failure (none blocks the
/// default profile), every profile is assumed to fail the same way.
fn sandbox(f: &Facts, profiles: &mut [ProfileReport], others: &[Check]) -> Check {
    let r = &f.run;
    if r.ok() {
        return check(
            "sandbox",
            Status::Ok,
            format!(
                "the default policy runs: `stockade run -- true` exited 0 in {} ms",
                r.wall_ms
            ),
            format!(
                "limit backend {}, Landlock {}, seccomp filter of {} instructions",
                or_unknown(&r.cgroup_backend),
                or_unknown(&r.landlock_status),
                r.seccomp_instructions
            ),
            None,
            Vec::new(),
        );
    }
    let message = r.message.as_deref().unwrap_or("no message");
    let default_blockers: Vec<&'static str> = profiles
        .iter()
        .find(|p| p.name == "default")
        .map(|p| p.blocked_by.iter().map(|b| b.check).collect())
        .unwrap_or_default();
    let explained = others
        .iter()
        .find(|c| default_blockers.contains(&c.id) && c.status != Status::Ok);
    let (fix, affects) = match explained {
        Some(c) => (
            format!("see the {} line: {}", c.id, c.fix.as_deref().unwrap_or("")),
            vec!["default".to_string()],
        ),
        None => {
            let reason = format!("the sandbox cannot be set up: {message}");
            let affects = mark(profiles, f, "sandbox", |_| {
                Some(Impact::Blocks(reason.clone()))
            });
            (
                "run `stockade --log debug run -- true` for the full error".to_string(),
                affects,
            )
        }
    };
    let exit = r
        .exit_code
        .map(|c| format!(", exit code {c}"))
        .unwrap_or_default();
    check(
        "sandbox",
        Status::Missing,
        format!(
            "the default policy does not run: `stockade run -- true` ended {}",
            r.status
        ),
        format!("{message}{exit}"),
        Some(fix),
        affects,
    )
}
