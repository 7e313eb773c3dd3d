//! Unit tests: policy → BPF, checked instruction by instruction with the interpreter in
//! `bpf.rs`; profile errors; the describe() table and docs/seccomp.md.

use super::bpf::{self, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT};
use super::*;

/// The attach-cost cliff sits between 517 and 567 instructions (PLATFORM.md §1).
const BUDGET: usize = 500;
const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
const NOTIFY: u32 = RET_NOTIFY;

const MODES: [SeccompDefault; 3] = [
    SeccompDefault::Kill,
    SeccompDefault::Errno,
    SeccompDefault::Log,
];
const NETWORKS: [NetworkMode; 2] = [NetworkMode::None, NetworkMode::Loopback];

fn policy(default_action: SeccompDefault) -> SeccompPolicy {
    SeccompPolicy {
        default_action,
        ..SeccompPolicy::default()
    }
}

fn nr(name: &str) -> u32 {
    u32::try_from(syscall_number(name).expect(name)).expect(name)
}

fn eval(f: &Filters, name: &str, args: [u64; 6]) -> u32 {
    bpf::run(f.program(), AUDIT_ARCH_X86_64, nr(name), args)
}

#[test]
fn every_mode_compiles_under_the_budget() {
    for mode in MODES {
        for net in NETWORKS {
            let f = compile(&policy(mode), net).unwrap();
            assert!(
                f.instructions() <= BUDGET,
                "{mode:?}/{net:?}: {}",
                f.instructions()
            );
        }
    }
    let all = SeccompPolicy {
        groups: GROUPS.iter().map(|g| g.name.to_string()).collect(),
        ..policy(SeccompDefault::Log)
    };
    let f = compile(&all, NetworkMode::Loopback).unwrap();
    assert!(
        f.instructions() <= BUDGET,
        "all groups: {}",
        f.instructions()
    );
    let init = compile_init().unwrap();
    assert!(init.instructions() < 64, "init: {}", init.instructions());
}

#[test]
fn every_syscall_number_gets_the_tabled_action() {
    for mode in MODES {
        for net in NETWORKS {
            let f = compile(&policy(mode), net).unwrap();
            let (default, unlisted_answer) = unlisted(mode);
            let r = f.responder();
            for n in 0..600u32 {
                let name = syscall_name(i64::from(n)).unwrap_or("");
                let listed = |t: &[(&str, &str)]| t.iter().any(|(x, _)| *x == name);
                let refused = rules::REFUSED.iter().find(|(x, _, _)| *x == name);
                let network = GROUPS.iter().find(|g| g.name == LOOPBACK_GROUP).unwrap();
                let loopback_group =
                    net == NetworkMode::Loopback && network.syscalls.contains(&name);
                let (want, answer) = match name {
                    // All-zero arguments: no CLONE_NEW*, request 0, PER_LINUX...
                    "clone" | "ioctl" | "personality" => (RET_ALLOW, Some(Answer::Kill)),
                    // ...and flags 0 carry no O_NOTIFICATION_PIPE.
                    "pipe2" => (RET_ALLOW, Some(Answer::Fail(libc::ENOPKG))),
                    // ...but domain 0 (AF_UNSPEC) is not an allowed family.
                    "socket" | "socketpair" => (NOTIFY, Some(Answer::Fail(libc::EAFNOSUPPORT))),
                    _ if listed(rules::BASE) || loopback_group => (RET_ALLOW, unlisted_answer),
                    _ if listed(rules::ENOSYS) => (ENOSYS, unlisted_answer),
                    _ if listed(rules::KILL) => (NOTIFY, Some(Answer::Kill)),
                    _ if refused.is_some() => (NOTIFY, refused.map(|e| Answer::Fail(e.1))),
                    _ => (default, unlisted_answer),
                };
                let got = bpf::run(f.program(), AUDIT_ARCH_X86_64, n, [0; 6]);
                assert_eq!(got, want, "{mode:?}/{net:?} nr {n} ({name})");
                if let Some(answer) = answer.filter(|_| want == NOTIFY) {
                    let nr = i32::try_from(n).unwrap();
                    assert_eq!(r.answer(AUDIT_ARCH_X86_64, nr), answer, "{name}");
                }
            }
            let x32 = nr("getpid") | X32_SYSCALL_BIT;
            assert_eq!(
                bpf::run(f.program(), AUDIT_ARCH_X86_64, x32, [0; 6]),
                NOTIFY
            );
            let x32 = i32::try_from(x32).unwrap();
            assert_eq!(r.answer(AUDIT_ARCH_X86_64, x32), Answer::Kill);
            let i386 = 0x4000_0003; // AUDIT_ARCH_I386
            assert_eq!(bpf::run(f.program(), i386, 20, [0; 6]), NOTIFY);
            assert_eq!(r.answer(i386, 20), Answer::Kill);
        }
    }
}

#[test]
fn unlisted_calls_fail_with_enosys_and_dangerous_ones_kill() {
    let f = compile(&policy(SeccompDefault::Errno), NetworkMode::None).unwrap();
    let r = f.responder();
    // A number no kernel has yet, and a real call outside the allowlist.
    assert_eq!(
        r.answer(AUDIT_ARCH_X86_64, 1000),
        Answer::Fail(libc::ENOSYS)
    );
    assert_eq!(
        r.answer(AUDIT_ARCH_X86_64, 162),
        Answer::Fail(libc::ENOSYS),
        "sync"
    );
    assert_eq!(r.answer(AUDIT_ARCH_X86_64, -1), Answer::Kill);
    for name in ["ptrace", "mount", "bpf", "unshare", "keyctl", "userfaultfd"] {
        let n = i32::try_from(nr(name)).unwrap();
        assert_eq!(r.answer(AUDIT_ARCH_X86_64, n), Answer::Kill, "{name}");
    }
    let clock = i32::try_from(nr("clock_settime")).unwrap();
    assert_eq!(
        r.answer(AUDIT_ARCH_X86_64, clock),
        Answer::Fail(libc::EPERM)
    );
    let k = compile(&policy(SeccompDefault::Kill), NetworkMode::None).unwrap();
    assert_eq!(k.responder().answer(AUDIT_ARCH_X86_64, 1000), Answer::Kill);
    let pipe2 = i32::try_from(nr("pipe2")).unwrap();
    assert_eq!(
        k.responder().answer(AUDIT_ARCH_X86_64, pipe2),
        Answer::Fail(libc::ENOPKG),
        "a notification pipe gets what a kernel without watch queues answers"
    );
    let socket = i32::try_from(nr("socket")).unwrap();
    assert_eq!(
        k.responder().answer(AUDIT_ARCH_X86_64, socket),
        Answer::Fail(libc::EAFNOSUPPORT),
        "refused families never kill, even in kill mode"
    );
}

#[test]
fn argument_checks() {
    let high = 1u64 << 32;
    for net in NETWORKS {
        let f = compile(&policy(SeccompDefault::Kill), net).unwrap();
        let kill = NOTIFY;
        let one = |a: u64| [a, 0, 0, 0, 0, 0];
        let two = |a: u64, b: u64| [a, b, 0, 0, 0, 0];
        // clone: threads and fork pass, any namespace flag kills.
        let thread_flags = 0x3d0f00; // glibc pthread_create's flags
        assert_eq!(eval(&f, "clone", one(thread_flags)), RET_ALLOW);
        assert_eq!(eval(&f, "clone", one(0x0100_0011)), RET_ALLOW, "fork");
        for ns in [
            0x20000u64,
            0x0200_0000,
            0x0400_0000,
            0x0800_0000,
            0x1000_0000,
            0x2000_0000,
            0x4000_0000,
        ] {
            assert_eq!(eval(&f, "clone", one(ns | 0x11)), kill, "{ns:#x}");
        }
        // socket: AF_UNIX and NETLINK_ROUTE always, AF_INET/AF_INET6 only for loopback.
        let inet = if net == NetworkMode::Loopback {
            RET_ALLOW
        } else {
            kill
        };
        assert_eq!(eval(&f, "socket", two(1, 1)), RET_ALLOW);
        assert_eq!(eval(&f, "socket", two(2, 1)), inet);
        assert_eq!(eval(&f, "socket", two(10, 1)), inet);
        assert_eq!(
            eval(&f, "socket", two(high | 2, 1)),
            inet,
            "high bits ignored like the kernel"
        );
        let three = |a: u64, b: u64, c: u64| [a, b, c, 0, 0, 0];
        // Loopback inet sockets: the default protocol, TCP, UDP and ICMP echo only; SCTP, DCCP
        // and UDP-Lite would autoload their modules.
        for (family, protocol) in [(2, 6), (2, 17), (2, 1), (10, 6), (10, 58)] {
            assert_eq!(eval(&f, "socket", three(family, 1, protocol)), inet);
        }
        for (family, protocol) in [(2, 132), (10, 132), (2, 33), (2, 136)] {
            assert_eq!(
                eval(&f, "socket", three(family, 1, protocol)),
                kill,
                "family {family} protocol {protocol}"
            );
        }
        // pipe2: every flag but O_NOTIFICATION_PIPE (watch queues).
        assert_eq!(
            eval(&f, "pipe2", two(0, 0o2_000_000)),
            RET_ALLOW,
            "O_CLOEXEC"
        );
        assert_eq!(eval(&f, "pipe2", two(0, 0o4000)), RET_ALLOW, "O_NONBLOCK");
        assert_eq!(eval(&f, "pipe2", two(0, 0x80)), kill, "O_NOTIFICATION_PIPE");
        assert_eq!(
            eval(&f, "socket", three(16, 3, 0)),
            RET_ALLOW,
            "NETLINK_ROUTE"
        );
        assert_eq!(eval(&f, "socket", three(16, 3, 9)), kill, "NETLINK_AUDIT");
        assert_eq!(
            eval(&f, "socket", three(16, 3, 15)),
            kill,
            "NETLINK_KOBJECT_UEVENT"
        );
        assert_eq!(eval(&f, "socket", two(17, 3)), kill, "AF_PACKET");
        assert_eq!(eval(&f, "socketpair", two(1, 1)), RET_ALLOW);
        assert_eq!(eval(&f, "socketpair", two(2, 1)), kill);
        // ioctl: TIOCSTI, TIOCLINUX and TIOCSETD by their low 32 bits.
        for req in [
            0x5412,
            0x541C,
            0x5423,
            high | 0x5412,
            (0xdead << 32) | 0x541C,
        ] {
            assert_eq!(eval(&f, "ioctl", two(0, req)), kill, "{req:#x}");
        }
        assert_eq!(eval(&f, "ioctl", two(0, 0x5401)), RET_ALLOW, "TCGETS");
        assert_eq!(eval(&f, "ioctl", two(0, 0x5421)), RET_ALLOW, "FIONBIO");
        // personality: query and PER_LINUX only.
        assert_eq!(eval(&f, "personality", one(0xffff_ffff)), RET_ALLOW);
        assert_eq!(eval(&f, "personality", one(0)), RET_ALLOW);
        for bad in [0x0040_0000u64, 0x0004_0000, 0x0010_0000, 0x0008] {
            assert_eq!(eval(&f, "personality", one(bad)), kill, "{bad:#x}");
        }
    }
}

#[test]
fn log_mode_logs_unlisted_calls_but_still_refuses_the_hard_rules() {
    let f = compile(&policy(SeccompDefault::Log), NetworkMode::None).unwrap();
    assert_eq!(eval(&f, "sync", [0; 6]), RET_LOG);
    assert_eq!(eval(&f, "mount", [0; 6]), NOTIFY);
    assert_eq!(eval(&f, "clone", [0x1000_0000, 0, 0, 0, 0, 0]), NOTIFY);
    assert_eq!(eval(&f, "socket", [2, 1, 0, 0, 0, 0]), NOTIFY);
    assert_eq!(eval(&f, "clone3", [0; 6]), ENOSYS);
    let r = f.responder();
    let mount = i32::try_from(nr("mount")).unwrap();
    assert_eq!(r.answer(AUDIT_ARCH_X86_64, mount), Answer::Kill);
}

#[test]
fn groups_and_extra_allow_add_calls() {
    let p = SeccompPolicy {
        groups: vec!["ipc".into(), "timers".into()],
        extra_allow: vec!["mlock".into(), "read".into()],
        ..policy(SeccompDefault::Errno)
    };
    let f = compile(&p, NetworkMode::None).unwrap();
    for name in ["shmget", "timer_create", "mlock", "read"] {
        assert_eq!(eval(&f, name, [0; 6]), RET_ALLOW, "{name}");
    }
    assert_eq!(
        eval(&f, "sendmmsg", [0; 6]),
        NOTIFY,
        "network group only with loopback"
    );
    let lo = compile(&policy(SeccompDefault::Errno), NetworkMode::Loopback).unwrap();
    assert_eq!(eval(&lo, "sendmmsg", [0; 6]), RET_ALLOW);
}

#[test]
fn profile_errors_name_the_culprit() {
    let err = |groups: &[&str], extra: &[&str]| {
        let p = SeccompPolicy {
            groups: groups.iter().map(|s| s.to_string()).collect(),
            extra_allow: extra.iter().map(|s| s.to_string()).collect(),
            ..SeccompPolicy::default()
        };
        compile(&p, NetworkMode::None).unwrap_err().to_string()
    };
    let e = err(&["netwrk"], &[]);
    assert!(
        e.contains("`netwrk`") && e.contains("network, process_control"),
        "{e}"
    );
    let e = err(&[], &["not_a_syscall"]);
    assert!(
        e.contains("`not_a_syscall`") && e.contains("unknown syscall"),
        "{e}"
    );
    let e = err(&[], &["mount"]);
    assert!(
        e.contains("`mount`") && e.contains("cannot be allowed"),
        "{e}"
    );
    let e = err(&[], &["io_uring_setup"]);
    assert!(
        e.contains("`io_uring_setup`") && e.contains("cannot be allowed"),
        "{e}"
    );
    let e = err(&[], &["clone"]);
    assert!(e.contains("`clone`") && e.contains("argument check"), "{e}");
}

#[test]
fn tables_are_consistent() {
    let mut all: Vec<&str> = Vec::new();
    all.extend(rules::BASE.iter().map(|e| e.0));
    all.extend(rules::CHECKED.iter().map(|e| e.0));
    all.extend(rules::ENOSYS.iter().map(|e| e.0));
    all.extend(rules::KILL.iter().map(|e| e.0));
    all.extend(rules::REFUSED.iter().map(|e| e.0));
    all.extend(GROUPS.iter().flat_map(|g| g.syscalls.iter().copied()));
    for name in all.iter().chain(rules::INIT.iter().map(|e| &e.0)) {
        assert!(
            syscall_number(name).is_some(),
            "{name} is not in the x86_64 table"
        );
    }
    let mut sorted = all.clone();
    sorted.sort_unstable();
    let dups: Vec<_> = sorted
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    assert!(dups.is_empty(), "listed twice: {dups:?}");
    // DESIGN.md §1: these are denied in every profile.
    for must in [
        "unshare",
        "setns",
        "mount",
        "pivot_root",
        "ptrace",
        "bpf",
        "perf_event_open",
        "keyctl",
        "add_key",
        "userfaultfd",
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "delete_module",
        "reboot",
        "swapon",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "open_by_handle_at",
        "fsopen",
        "fsmount",
        "move_mount",
        "open_tree",
    ] {
        assert!(check_allow(must).is_err(), "{must} must never be allowed");
    }
    // Issue 10: these defend the kernel and keep killing; the rest of the refusals are errnos.
    for must_kill in [
        "ptrace",
        "bpf",
        "keyctl",
        "add_key",
        "request_key",
        "mount",
        "umount2",
        "pivot_root",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "move_mount",
        "open_tree",
        "mount_setattr",
        "unshare",
        "setns",
        "userfaultfd",
        "perf_event_open",
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "delete_module",
        "reboot",
        "swapon",
        "swapoff",
        "open_by_handle_at",
    ] {
        assert!(
            rules::KILL.iter().any(|e| e.0 == must_kill),
            "{must_kill} must kill"
        );
    }
    let reasons = rules::BASE
        .iter()
        .map(|e| e.1)
        .chain(rules::KILL.iter().map(|e| e.1))
        .chain(rules::REFUSED.iter().map(|e| e.2));
    assert!(
        reasons
            .chain(GROUPS.iter().map(|g| g.reason))
            .all(|r| r.len() > 3)
    );
}

#[test]
fn describe_covers_every_rule_with_a_reason() {
    for mode in MODES {
        for net in NETWORKS {
            let p = SeccompPolicy {
                groups: vec!["ipc".into()],
                extra_allow: vec!["mlock".into()],
                ..policy(mode)
            };
            let f = compile(&p, net).unwrap();
            let rows = describe(&p, net);
            assert!(
                rows.iter()
                    .all(|r| !r.reason.is_empty() && !r.rule.is_empty())
            );
            let (default, _) = unlisted(mode);
            for n in 0..600u32 {
                // Arguments that fail every check, so checked calls differ from the default too.
                let args = [u64::MAX; 6];
                if bpf::run(f.program(), AUDIT_ARCH_X86_64, n, args) == default
                    && bpf::run(f.program(), AUDIT_ARCH_X86_64, n, [0; 6]) == default
                {
                    continue;
                }
                let name = syscall_name(i64::from(n)).expect("only known numbers have rules");
                assert!(rows.iter().any(|r| r.subject == name), "{name} has no row");
            }
            for subject in ["default", "arch", "x32"] {
                assert!(rows.iter().any(|r| r.subject == subject));
            }
        }
    }
    let bad = SeccompPolicy {
        groups: vec!["nope".into()],
        ..SeccompPolicy::default()
    };
    let rows = describe(&bad, NetworkMode::None);
    assert!(
        rows.iter()
            .any(|r| r.rule == "rejected" && r.reason.contains("`nope`"))
    );
}

/// docs/seccomp.md carries the generated tables between these markers. Regenerate with
/// `STOCKADE_BLESS=1 cargo test --lib seccomp::tests::docs_are_up_to_date`.
const BEGIN: &str = "<!-- BEGIN GENERATED: seccomp::tests::docs_are_up_to_date -->\n";
const END: &str = "<!-- END GENERATED -->\n";

fn generated_docs() -> String {
    let default = SeccompPolicy::default();
    let mut out = String::from(BEGIN);
    out.push_str("\n### Default profile (`network = none`, default action `errno`)\n\n");
    out.push_str(&markdown_table(&describe(&default, NetworkMode::None)));
    out.push_str("\n### What `network = loopback` changes\n\n");
    let none = describe(&default, NetworkMode::None);
    let changed: Vec<_> = describe(&default, NetworkMode::Loopback)
        .into_iter()
        .filter(|r| !none.contains(r))
        .collect();
    out.push_str(&markdown_table(&changed));
    out.push_str("\n### Groups a profile can add (`seccomp.groups`)\n\n");
    out.push_str("| group | syscalls | reason |\n|---|---|---|\n");
    for g in GROUPS {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            g.name,
            g.syscalls.join(", "),
            g.reason
        ));
    }
    out.push_str("\n### The init's filter (`compile_init`)\n\n");
    out.push_str(&markdown_table(&describe_init()));
    out.push('\n');
    out.push_str(END);
    out
}

#[test]
fn docs_are_up_to_date() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/seccomp.md");
    let doc = std::fs::read_to_string(&path).expect("docs/seccomp.md");
    let start = doc.find(BEGIN).expect("begin marker in docs/seccomp.md");
    let end = doc.find(END).expect("end marker in docs/seccomp.md") + END.len();
    let fresh = generated_docs();
    if doc[start..end] != fresh {
        if std::env::var_os("STOCKADE_BLESS").is_some() {
            let updated = format!("{}{}{}", &doc[..start], fresh, &doc[end..]);
            std::fs::write(&path, updated).expect("write docs/seccomp.md");
        } else {
            panic!("docs/seccomp.md is out of date with describe(); rerun with STOCKADE_BLESS=1");
        }
    }
}
