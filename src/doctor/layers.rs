//! The layer checks of `stockade doctor`: Landlock, seccomp, cgroup limits and the root
//! filesystem. Each line says what the host offers and marks the profiles it blocks or weakens.

use super::classify::{Impact, check, mark, or_unknown};
use crate::doctor::{Check, Facts, ProfileNeeds, ProfileReport, Status};

/// Landlock features by the ABI that introduced them (Documentation/userspace-api/landlock.rst):
/// ABI, Linux version, what is missing below it, and what still covers the gap (may be empty).
const LANDLOCK_FEATURES: &[(u32, &str, &str, &str)] = &[
    (
        2,
        "5.19",
        "no control of renames and links across directories (REFER)",
        "",
    ),
    (3, "6.2", "no truncate control", ""),
    (
        4,
        "6.7",
        "no TCP bind/connect rules",
        "the empty network namespace and the seccomp socket filter still apply",
    ),
    (5, "6.10", "no ioctl control on device files", ""),
    (
        6,
        "6.12",
        "no signal or abstract UNIX socket scoping",
        "the PID and network namespaces still separate them",
    ),
];

/// The ABI from which Landlock is reported OK: the first with scopes.
const LANDLOCK_OK_ABI: u32 = 6;
/// The newest ABI whose features stockade asks for (crate::landlock's `ABI_WANTED`).
const LANDLOCK_USED_ABI: u32 = 7;

pub(super) fn landlock(f: &Facts, profiles: &mut [ProfileReport]) -> Check {
    let abi = f.landlock.abi;
    if abi >= LANDLOCK_OK_ABI {
        let mut detail = format!(
            "landlock_create_ruleset reports ABI {abi}; the test run was {}",
            or_unknown(&f.run.landlock_status)
        );
        if abi > LANDLOCK_USED_ABI {
            detail.push_str(&format!(
                "; stockade uses the features up to ABI {LANDLOCK_USED_ABI}"
            ));
        }
        return check(
            "landlock",
            Status::Ok,
            format!(
                "Landlock ABI {abi}: file system, TCP and ioctl rules, signal and abstract-socket scoping"
            ),
            detail,
            None,
            Vec::new(),
        );
    }
    if abi > 0 {
        let missing: Vec<String> = LANDLOCK_FEATURES
            .iter()
            .filter(|(since, ..)| abi < *since)
            .map(|(since, linux, what, cover)| match *cover {
                "" => format!("{what} (ABI {since}, Linux {linux})"),
                cover => format!("{what} (ABI {since}, Linux {linux}; {cover})"),
            })
            .collect();
        let short = format!("Landlock ABI {abi} lacks {} feature(s)", missing.len());
        let affects = mark(profiles, f, "landlock", |_| {
            Some(Impact::Weakens(format!("{short}: partially enforced")))
        });
        return check(
            "landlock",
            Status::Degraded,
            format!("Landlock ABI {abi}: enforced without the newer features"),
            format!(
                "{}; profiles run with Landlock partially enforced",
                missing.join("; ")
            ),
            Some("upgrade to Linux 6.12 or newer (Landlock ABI 6)".into()),
            affects,
        );
    }
    let (detail, fix) = landlock_cause(f.landlock.lsm.as_deref());
    let affects = mark(profiles, f, "landlock", |p| {
        Some(match p.best_effort_landlock {
            true => Impact::Weakens("runs without Landlock (marked best-effort)".into()),
            false => Impact::Blocks(
                "requires Landlock, which is unavailable (or run it with --best-effort landlock)"
                    .into(),
            ),
        })
    });
    check(
        "landlock",
        Status::Missing,
        "Landlock unavailable (ABI 0)".into(),
        detail,
        Some(fix),
        affects,
    )
}

fn landlock_cause(lsm: Option<&[String]>) -> (String, String) {
    match lsm {
        Some(list) if !list.iter().any(|l| l == "landlock") => (
            format!(
                "the active LSMs are {}; landlock is not among them",
                list.join(",")
            ),
            format!(
                "boot with landlock in the lsm= kernel parameter, e.g. lsm=landlock,{} (the \
                 kernel needs CONFIG_SECURITY_LANDLOCK=y, Linux 5.13 or newer)",
                list.join(",")
            ),
        ),
        _ => (
            "landlock_create_ruleset failed; /sys/kernel/security/lsm is not readable, so the \
             active LSM list is unknown"
                .into(),
            "use a kernel built with CONFIG_SECURITY_LANDLOCK=y (Linux 5.13 or newer) and landlock \
             in the lsm= kernel parameter"
                .into(),
        ),
    }
}

/// The seccomp return actions a profile's filter uses (`errno` also for the ENOSYS entries).
fn seccomp_needs(p: &ProfileNeeds) -> &'static [&'static str] {
    match p.seccomp_default.as_str() {
        "errno" => &["errno"],
        "log" => &["log", "errno"],
        _ => &["kill_process", "errno"],
    }
}

pub(super) fn seccomp(f: &Facts, profiles: &mut [ProfileReport]) -> Check {
    let s = &f.seccomp;
    let Some(actions) = &s.actions else {
        let affects = mark(profiles, f, "seccomp", |_| {
            Some(Impact::Blocks("no seccomp filter mode".into()))
        });
        return check(
            "seccomp",
            Status::Missing,
            "no seccomp filter mode".into(),
            "/proc/sys/kernel/seccomp/actions_avail is missing".into(),
            Some("use a kernel built with CONFIG_SECCOMP_FILTER=y".into()),
            affects,
        );
    };
    let has = |a: &str| actions.iter().any(|x| x == a);
    let affects = mark(profiles, f, "seccomp", |p| {
        let lacking: Vec<&str> = seccomp_needs(p)
            .iter()
            .copied()
            .filter(|a| !has(a))
            .collect();
        (!lacking.is_empty()).then(|| {
            Impact::Blocks(format!(
                "its filter needs the {} action(s)",
                lacking.join(", ")
            ))
        })
    });
    let mut notes = vec![format!("actions_avail: {}", actions.join(" "))];
    if s.own_mode == Some(2) {
        notes.push(
            "doctor itself runs under a seccomp filter (a container?); the sandbox's filter \
             stacks on top of it"
                .into(),
        );
    }
    if !s.kmsg_readable {
        notes.push(
            "/dev/kmsg is not readable (kernel.dmesg_restrict=1 needs CAP_SYSLOG), so a seccomp \
             kill is reported without the syscall's name"
                .into(),
        );
    }
    let wanted = ["kill_process", "errno", "log"];
    let present: Vec<&str> = wanted.iter().copied().filter(|a| has(a)).collect();
    let absent: Vec<&str> = wanted.iter().copied().filter(|a| !has(a)).collect();
    let (status, summary) = match (absent.is_empty(), has("errno")) {
        (true, _) => (
            Status::Ok,
            format!("filter mode with the {} actions", present.join(", ")),
        ),
        (false, true) => (
            Status::Degraded,
            format!("filter mode without the {} action(s)", absent.join(", ")),
        ),
        (false, false) => (
            Status::Missing,
            "filter mode without the errno action".into(),
        ),
    };
    check(
        "seccomp",
        status,
        summary,
        notes.join("; "),
        Some("use Linux 4.14 or newer (SECCOMP_RET_KILL_PROCESS and SECCOMP_RET_LOG)".into()),
        affects,
    )
}

pub(super) fn cgroup(f: &Facts, profiles: &mut [ProfileReport]) -> Check {
    let c = &f.cgroup;
    let e = c.enforced;
    let affects = mark(profiles, f, "cgroup", |p| {
        let missing: Vec<&str> = [
            (p.memory && !e.memory, "memory"),
            (p.pids && !e.pids, "pids"),
            (p.cpus && !e.cpu, "cpu"),
        ]
        .into_iter()
        .filter_map(|(m, n)| m.then_some(n))
        .collect();
        let list = missing.join(", ");
        match (missing.is_empty(), p.best_effort_cgroup) {
            (true, _) => None,
            (false, true) => Some(Impact::Weakens(format!(
                "{list} limit(s) not kernel-enforced (cgroup is best-effort: rlimits only)"
            ))),
            (false, false) => Some(Impact::Blocks(format!(
                "asks for {list} limit(s), which this host cannot kernel-enforce for uid {}",
                f.uid
            ))),
        }
    });
    let mode = c.mode.as_str();
    if mode == "none" {
        return check(
            "cgroup",
            Status::Missing,
            "no cgroup file system is mounted: no kernel-enforced memory, pids or cpu limits"
                .into(),
            "/proc/self/mountinfo lists no cgroup or cgroup2 mount; runs get rlimits only".into(),
            Some("mount cgroup2: mount -t cgroup2 none /sys/fs/cgroup".into()),
            affects,
        );
    }
    let Some(backend) = &c.backend else {
        let summary = match &c.not_delegated {
            Some(p) => format!(
                "{mode} cgroups, but no delegated subtree: {} is not writable by uid {}",
                p.display(),
                f.uid
            ),
            None => format!("{mode} cgroups, but the limit manager cannot use them"),
        };
        return check(
            "cgroup",
            Status::Missing,
            summary,
            c.error.clone().unwrap_or_default(),
            Some(delegation_fix(mode)),
            affects,
        );
    };
    let named = |want: bool| -> Vec<&str> {
        [(e.memory, "memory"), (e.pids, "pids"), (e.cpu, "cpu")]
            .into_iter()
            .filter_map(|(has, n)| (has == want).then_some(n))
            .collect()
    };
    let (on, off) = (named(true), named(false));
    let mut detail = vec![format!(
        "a test group with memory, pids and cpu limits was created and removed; cgroup.kill: {}",
        if c.kill_all { "yes" } else { "no" }
    )];
    detail.extend(c.group_errors.iter().cloned());
    if !c.leftovers.is_empty() {
        detail.push(format!("doctor could not undo: {}", c.leftovers.join("; ")));
    }
    let (status, summary) = match (on.is_empty(), off.is_empty()) {
        (false, true) => (
            Status::Ok,
            format!("{backend}: memory, pids and cpu limits are kernel-enforced"),
        ),
        (false, false) => (
            Status::Degraded,
            format!(
                "{backend}: {} enforced, {} not",
                on.join(", "),
                off.join(", ")
            ),
        ),
        (true, _) => (
            Status::Missing,
            format!("{backend}: no memory, pids or cpu limit can be kernel-enforced"),
        ),
    };
    check(
        "cgroup",
        status,
        summary,
        detail.join("; "),
        Some(controller_fix(backend)),
        affects,
    )
}

fn delegation_fix(mode: &str) -> String {
    let fallback = "; profiles that mark cgroup best-effort (or --best-effort cgroup) run with \
                    rlimits only";
    match mode {
        "v2" => format!(
            "run stockade as root, or as a systemd service with Delegate=yes \
             (dist/systemd/stockade.service; from a shell: systemd-run --user --scope -p \
             Delegate=yes stockade ...), or pass --cgroup-root DIR with a writable cgroup2 \
             directory whose parent delegates memory, pids and cpu{fallback}"
        ),
        _ => format!(
            "cgroup v1 controllers cannot be safely delegated to an unprivileged user: run \
             stockade as root, or boot with systemd.unified_cgroup_hierarchy=1 (cgroup v2) and \
             use Delegate=yes or --cgroup-root{fallback}"
        ),
    }
}

fn controller_fix(backend: &str) -> String {
    match backend {
        "v2" => "enable the controllers for stockade's subtree: echo '+memory +pids +cpu' > \
                 PARENT/cgroup.subtree_control (as a systemd service: Delegate=yes)"
            .into(),
        _ => "mount the missing cgroup v1 controllers (e.g. mount -t cgroup -o pids cgroup \
              /sys/fs/cgroup/pids), or boot with systemd.unified_cgroup_hierarchy=1 (cgroup v2)"
            .into(),
    }
}

/// The Debian package that provides an interpreter.
fn package_of(interpreter: &str) -> &str {
    match interpreter {
        "node" => "nodejs",
        "sh" => "dash",
        other => other,
    }
}

pub(super) fn rootfs(f: &Facts, profiles: &mut [ProfileReport]) -> Check {
    let affects = mark(profiles, f, "rootfs", |p| {
        let cmd = p.command.as_deref()?;
        (!p.command_found).then(|| {
            let root = match p.rootfs.as_str() {
                "host" => "the host root".to_string(),
                dir => format!("rootfs {dir}"),
            };
            Impact::Blocks(format!("`{cmd}` is not found on its PATH in {root}"))
        })
    });
    let found: Vec<String> = f
        .interpreters
        .iter()
        .filter_map(|(n, p)| p.as_ref().map(|p| format!("{n} ({p})")))
        .collect();
    let missing: Vec<&str> = f
        .interpreters
        .iter()
        .filter(|(_, p)| p.is_none())
        .map(|(n, _)| n.as_str())
        .collect();
    let named = match f.named_rootfs.is_empty() {
        true => "no named root filesystems (scripts/build-rootfs builds one)".to_string(),
        false => format!("named root filesystems: {}", f.named_rootfs.join(", ")),
    };
    let detail = format!("host root: {}; {named}", found.join(", "));
    let (status, summary) = match (missing.is_empty() && affects.is_empty(), found.is_empty()) {
        (true, _) => (
            Status::Ok,
            "the host root has every interpreter the shipped profiles use".to_string(),
        ),
        (false, false) => (
            Status::Degraded,
            match missing.is_empty() {
                true => "some profiles' commands are missing from their root".to_string(),
                false => format!("the host root lacks {}", missing.join(", ")),
            },
        ),
        (false, true) => (
            Status::Missing,
            "the host root has none of the interpreters the profiles use".to_string(),
        ),
    };
    let packages: Vec<&str> = missing.iter().map(|m| package_of(m)).collect();
    let fix = format!(
        "install them on the host (apt-get install {}), or build a root filesystem that has them \
         (scripts/build-rootfs debian-python) and set the profile's rootfs to it",
        packages.join(" ")
    );
    check("rootfs", status, summary, detail, Some(fix), affects)
}
