//! Seccomp-BPF (`seccomp(2)`, `SECCOMP_SET_MODE_FILTER`): the payload's syscall allowlist, the
//! tiny filter of the sandbox's PID-1 init, and the supervisor's side of seccomp user
//! notification, which answers every refused call with an errno (and counts it) and kills the
//! caller of a dangerous one (and names it).
//!
//! Plan first, then apply: [`compile`] turns the policy into one BPF program in the parent (it
//! allocates); [`Filters::apply_notifying`] installs it in the payload as the last step before
//! `execve` and hands the listener to the supervisor (it does not allocate); a [`Notifier`] in
//! the supervisor serves the listener (`notify.rs`). The rule table with a reason per entry
//! lives in `rules.rs`; the emitter (a binary search over syscall numbers, so the program stays
//! far below the ~500 instruction attach-cost cliff) in `bpf.rs`; the policy table for the docs
//! (generated from [`describe`]) in `describe.rs`.

#[cfg(test)]
mod bench;
mod bpf;
#[cfg(test)]
mod child_tests;
mod describe;
mod kmsg;
mod notify;
mod rules;
mod table;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io;
use std::os::fd::BorrowedFd;

use seccompiler::sock_filter;

pub use self::describe::{RuleDescription, describe, describe_init, markdown_table};
pub use self::kmsg::KmsgWatch;
pub use self::notify::{Notifier, Served};
use self::rules::Check;
pub use self::rules::{GROUPS, Group};
pub use self::table::{syscall_name, syscall_number};
use crate::policy::{NetworkMode, SeccompDefault, SeccompPolicy};

const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const RET_KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const RET_LOG: u32 = libc::SECCOMP_RET_LOG;
/// Ask the supervisor (`SECCOMP_RET_USER_NOTIF`): it answers with an errno or kills the caller.
/// Without a supervisor (listener closed) the kernel fails the call with `ENOSYS`, so the call
/// never runs either way.
const RET_NOTIFY: u32 = libc::SECCOMP_RET_USER_NOTIF;

/// `SECCOMP_RET_ERRNO` with the errno in the low 16 bits (`SECCOMP_RET_DATA`).
const fn ret_errno(errno: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA)
}

/// The kernel refuses longer programs (`BPF_MAXINSNS`).
const BPF_MAXINSNS: usize = 4096;

/// The group every `NetworkMode::Loopback` policy gets, so local servers work.
const LOOPBACK_GROUP: &str = "network";

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("unknown seccomp group `{name}` (valid groups: {valid})")]
    UnknownGroup { name: String, valid: String },
    #[error("unknown syscall `{name}` in seccomp extra_allow (not an x86_64 system call)")]
    UnknownSyscall { name: String },
    #[error("syscall `{name}` cannot be allowed by a profile: {reason}")]
    AlwaysDenied { name: String, reason: &'static str },
    #[error(
        "syscall `{name}` is already allowed with an argument check a profile cannot lift: {reason}"
    )]
    ArgumentChecked { name: String, reason: &'static str },
    #[error("compiled seccomp filter has {len} instructions, over the kernel limit of 4096")]
    TooLong { len: usize },
    #[error("prctl(PR_SET_NO_NEW_PRIVS, 1) before installing the seccomp filter")]
    NoNewPrivs {
        #[source]
        source: io::Error,
    },
    #[error("seccomp(SECCOMP_SET_MODE_FILTER) of {len} instructions (needs CONFIG_SECCOMP_FILTER)")]
    Attach {
        len: usize,
        #[source]
        source: io::Error,
    },
    #[error(
        "seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER) of {len} instructions \
         (needs Linux >= 5.0; EBUSY: an outer sandbox already uses seccomp user notification)"
    )]
    AttachListener {
        len: usize,
        #[source]
        source: io::Error,
    },
    #[error("sendmsg(SCM_RIGHTS) of the seccomp listener to the supervisor")]
    Handover {
        #[source]
        source: io::Error,
    },
}

/// What the supervisor does with a call the filter sent to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Fail the call with this errno (the call never runs) and count it.
    Fail(i32),
    /// Kill the calling process and report a `seccomp_violation`.
    Kill,
}

/// The answer for every number the filter may notify, decided in the parent from the same table
/// the program was compiled from. Only `Fail` and `Kill` exist: the supervisor never lets a
/// notified call proceed, so nothing it reads from the caller's memory can race it (TOCTOU).
#[derive(Debug, Clone, Default)]
pub(crate) struct Responder {
    by_nr: BTreeMap<u32, Answer>,
    unlisted: Option<Answer>,
}

impl Responder {
    pub(crate) fn answer(&self, arch: u32, nr: i32) -> Answer {
        match u32::try_from(nr) {
            Ok(nr) if arch == bpf::AUDIT_ARCH_X86_64 && nr < bpf::X32_SYSCALL_BIT => self
                .by_nr
                .get(&nr)
                .copied()
                .or(self.unlisted)
                .unwrap_or(Answer::Kill),
            // i386, x32, negative numbers: the hard rule.
            _ => Answer::Kill,
        }
    }
}

/// A compiled filter, ready to install. One program carries every per-syscall action (allow,
/// argument checks, `ENOSYS` for `clone3`/`io_uring_*`, the default), so no separate overlay
/// filter is needed and a single `seccomp(2)` call installs it.
#[derive(Debug, Clone)]
pub struct Filters {
    program: Vec<sock_filter>,
    responder: Responder,
}

impl Filters {
    /// Length of the program in BPF instructions (reported in the verdict).
    pub fn instructions(&self) -> usize {
        self.program.len()
    }

    /// Install the payload's filter on the calling thread with a user-notification listener,
    /// send the listener to the supervisor over the Unix socket `handover`, and close it here: a
    /// payload holding its own listener could answer its own calls. Sets `PR_SET_NO_NEW_PRIVS`
    /// first. Does not allocate, so it is safe in a child of `clone`; call it last, right before
    /// `execve`.
    pub fn apply_notifying(&self, handover: BorrowedFd<'_>) -> Result<(), SeccompError> {
        let errno = |e: nix::errno::Errno| io::Error::from_raw_os_error(e as i32);
        crate::sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1)
            .map_err(|e| SeccompError::NoNewPrivs { source: errno(e) })?;
        let listener = crate::sys::seccomp_filter_with_listener(&self.program).map_err(|e| {
            SeccompError::AttachListener {
                len: self.program.len(),
                source: errno(e),
            }
        })?;
        let sent = crate::sys::send_fd(handover, std::os::fd::AsFd::as_fd(&listener));
        drop(listener);
        sent.map_err(|e| SeccompError::Handover { source: errno(e) })
    }

    /// Install the filter on the calling thread without a listener (the init's filter, which
    /// only allows or kills). Sets `PR_SET_NO_NEW_PRIVS` first. Does not allocate.
    pub fn apply(&self) -> Result<(), SeccompError> {
        let len = self.program.len();
        match seccompiler::apply_filter(&self.program) {
            Ok(()) => Ok(()),
            Err(seccompiler::Error::Prctl(source)) => Err(SeccompError::NoNewPrivs { source }),
            Err(seccompiler::Error::Seccomp(source)) => Err(SeccompError::Attach { len, source }),
            // EmptyFilter, ThreadSync and Backend cannot come from installing a non-empty
            // program on the calling thread only; report them as an invalid filter.
            Err(_) => Err(SeccompError::Attach {
                len,
                source: io::Error::from_raw_os_error(libc::EINVAL),
            }),
        }
    }

    #[cfg(test)]
    pub(crate) fn program(&self) -> &[sock_filter] {
        &self.program
    }

    pub(crate) fn responder(&self) -> &Responder {
        &self.responder
    }
}

/// Where an entry of the effective table comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    Base(&'static str),
    Checked(Check, &'static str),
    Group(&'static Group),
    Extra,
    Enosys(&'static str),
    Refused(i32, &'static str),
    Kill(&'static str),
}

/// The BPF action and the supervisor's answer for calls not listed anywhere. `errno` (the
/// default) fails them with `ENOSYS`, which is what glibc and the runtimes expect of a syscall
/// the kernel does not have; `kill` kills the caller; `log` (tuning only) lets them run.
fn unlisted(default: SeccompDefault) -> (u32, Option<Answer>) {
    match default {
        SeccompDefault::Kill => (RET_NOTIFY, Some(Answer::Kill)),
        SeccompDefault::Errno => (RET_NOTIFY, Some(Answer::Fail(libc::ENOSYS))),
        SeccompDefault::Log => (RET_LOG, None),
    }
}

/// The errno name (`ENOSYS`), for tables and the verdict.
pub fn errno_name(errno: i32) -> String {
    format!("{:?}", nix::errno::Errno::from_raw(errno))
}

/// The failed-check answer of an argument-checked call.
fn check_answer(check: Check) -> Answer {
    match check {
        Check::SocketFamily | Check::SocketpairUnix => Answer::Fail(libc::EAFNOSUPPORT),
        // What a kernel without CONFIG_WATCH_QUEUE answers.
        Check::Pipe2NoNotification => Answer::Fail(libc::ENOPKG),
        Check::CloneNoNamespace | Check::IoctlNoTiocsti | Check::PersonalityQueryOrLinux => {
            Answer::Kill
        }
    }
}

/// The effective entries of a policy in table order, plus the profile errors found on the way.
fn entries(
    policy: &SeccompPolicy,
    network: NetworkMode,
) -> (Vec<(&str, Source)>, Vec<SeccompError>) {
    let mut out: Vec<(&str, Source)> = Vec::new();
    let mut errors = Vec::new();
    out.extend(rules::BASE.iter().map(|&(n, r)| (n, Source::Base(r))));
    out.extend(
        rules::CHECKED
            .iter()
            .map(|&(n, c, r)| (n, Source::Checked(c, r))),
    );
    let mut groups: Vec<&str> = policy.groups.iter().map(String::as_str).collect();
    if network == NetworkMode::Loopback {
        groups.insert(0, LOOPBACK_GROUP);
    }
    let mut seen_groups = Vec::new();
    for name in groups {
        match GROUPS.iter().find(|g| g.name == name) {
            Some(g) if !seen_groups.contains(&name) => {
                seen_groups.push(name);
                out.extend(g.syscalls.iter().map(|&s| (s, Source::Group(g))));
            }
            Some(_) => {}
            None => errors.push(SeccompError::UnknownGroup {
                name: name.to_string(),
                valid: GROUPS.iter().map(|g| g.name).collect::<Vec<_>>().join(", "),
            }),
        }
    }
    for name in &policy.extra_allow {
        match check_allow(name) {
            Err(e) => errors.push(e),
            Ok(()) if out.iter().any(|(n, _)| n == name) => {}
            Ok(()) => out.push((name.as_str(), Source::Extra)),
        }
    }
    out.extend(rules::ENOSYS.iter().map(|&(n, r)| (n, Source::Enosys(r))));
    out.extend(
        rules::REFUSED
            .iter()
            .map(|&(n, e, r)| (n, Source::Refused(e, r))),
    );
    out.extend(rules::KILL.iter().map(|&(n, r)| (n, Source::Kill(r))));
    (out, errors)
}

/// May a profile add `name` through `extra_allow` (`seccomp.allow`)? The error names the call and
/// says why not (unknown, always denied, or already argument-checked), so profile validation can
/// attach its file and line.
pub fn check_allow(name: &str) -> Result<(), SeccompError> {
    let lookup = |table: &[(&'static str, &'static str)]| {
        table.iter().find(|(n, _)| *n == name).map(|&(_, r)| r)
    };
    let refused = rules::REFUSED
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(_, _, r)| r);
    if let Some(reason) = lookup(rules::KILL)
        .or_else(|| lookup(rules::ENOSYS))
        .or(refused)
    {
        return Err(SeccompError::AlwaysDenied {
            name: name.to_string(),
            reason,
        });
    }
    if let Some(&(_, _, reason)) = rules::CHECKED.iter().find(|(n, _, _)| *n == name) {
        return Err(SeccompError::ArgumentChecked {
            name: name.to_string(),
            reason,
        });
    }
    if syscall_number(name).is_none() {
        return Err(SeccompError::UnknownSyscall {
            name: name.to_string(),
        });
    }
    Ok(())
}

fn check_leaf(check: Check, network: NetworkMode) -> bpf::Leaf {
    let family = |f: i32| (0, u32::try_from(f).unwrap_or(u32::MAX));
    match check {
        Check::CloneNoNamespace => bpf::Leaf::ArgMaskClear {
            arg: 0,
            mask: rules::CLONE_NEW_MASK,
            clear: RET_ALLOW,
            set: RET_NOTIFY,
        },
        Check::SocketFamily => {
            let mut alts = vec![
                vec![family(libc::AF_UNIX)],
                vec![family(libc::AF_NETLINK), (2, rules::NETLINK_ROUTE)],
            ];
            if network == NetworkMode::Loopback {
                for af in [libc::AF_INET, libc::AF_INET6] {
                    for &protocol in rules::INET_PROTOCOLS {
                        alts.push(vec![family(af), (2, protocol)]);
                    }
                }
            }
            bpf::Leaf::AnyOf {
                alts,
                hit: RET_ALLOW,
                miss: RET_NOTIFY,
            }
        }
        Check::SocketpairUnix => bpf::Leaf::ArgIn {
            arg: 0,
            values: vec![libc::AF_UNIX as u32],
            hit: RET_ALLOW,
            miss: RET_NOTIFY,
        },
        Check::IoctlNoTiocsti => bpf::Leaf::ArgIn {
            arg: 1,
            values: vec![rules::TIOCSTI, rules::TIOCLINUX, rules::TIOCSETD],
            hit: RET_NOTIFY,
            miss: RET_ALLOW,
        },
        Check::PersonalityQueryOrLinux => bpf::Leaf::ArgIn {
            arg: 0,
            values: vec![rules::PERSONALITY_QUERY, rules::PER_LINUX],
            hit: RET_ALLOW,
            miss: RET_NOTIFY,
        },
        Check::Pipe2NoNotification => bpf::Leaf::ArgMaskClear {
            arg: 1,
            mask: rules::O_NOTIFICATION_PIPE,
            clear: RET_ALLOW,
            set: RET_NOTIFY,
        },
    }
}

/// Compile the payload's filter. Runs in the parent before `clone` (it allocates).
pub fn compile(policy: &SeccompPolicy, network: NetworkMode) -> Result<Filters, SeccompError> {
    let (entries, errors) = entries(policy, network);
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    let (default, unlisted) = unlisted(policy.default_action);
    let mut responder = Responder {
        by_nr: BTreeMap::new(),
        unlisted,
    };
    let mut map = BTreeMap::new();
    for (name, source) in entries {
        let (leaf, answer) = match source {
            Source::Base(_) | Source::Group(_) | Source::Extra => (bpf::Leaf::Ret(RET_ALLOW), None),
            Source::Checked(check, _) => (check_leaf(check, network), Some(check_answer(check))),
            // Answered in the filter itself: every thread start (clone3) would otherwise cost a
            // round trip to the supervisor, and the fallback is silent by design.
            Source::Enosys(_) => (bpf::Leaf::Ret(ret_errno(libc::ENOSYS)), None),
            Source::Refused(errno, _) => (bpf::Leaf::Ret(RET_NOTIFY), Some(Answer::Fail(errno))),
            Source::Kill(_) => (bpf::Leaf::Ret(RET_NOTIFY), Some(Answer::Kill)),
        };
        let nr = insert(&mut map, name, leaf)?;
        if let Some(answer) = answer {
            responder.by_nr.entry(nr).or_insert(answer);
        }
    }
    let program = finish(bpf::assemble(&map, default, RET_NOTIFY))?;
    Ok(Filters { program, responder })
}

/// The PID-1 init's filter: only what `rules::INIT` lists; anything else kills the init, which
/// tears down the whole PID namespace (fail closed).
pub fn compile_init() -> Result<Filters, SeccompError> {
    let mut map = BTreeMap::new();
    for &(name, _) in rules::INIT {
        insert(&mut map, name, bpf::Leaf::Ret(RET_ALLOW))?;
    }
    let program = finish(bpf::assemble(&map, RET_KILL_PROCESS, RET_KILL_PROCESS))?;
    Ok(Filters {
        program,
        responder: Responder::default(),
    })
}

fn insert(
    map: &mut BTreeMap<u32, bpf::Leaf>,
    name: &str,
    leaf: bpf::Leaf,
) -> Result<u32, SeccompError> {
    let nr = syscall_number(name)
        .and_then(|nr| u32::try_from(nr).ok())
        .ok_or_else(|| SeccompError::UnknownSyscall {
            name: name.to_string(),
        })?;
    map.entry(nr).or_insert(leaf);
    Ok(nr)
}

fn finish(program: Vec<sock_filter>) -> Result<Vec<sock_filter>, SeccompError> {
    if program.len() > BPF_MAXINSNS {
        return Err(SeccompError::TooLong { len: program.len() });
    }
    Ok(program)
}
