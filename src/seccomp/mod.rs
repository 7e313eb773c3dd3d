//! Seccomp-BPF (`seccomp(2)`, `SECCOMP_SET_MODE_FILTER`): the payload's syscall allowlist, the
//! tiny filter of the sandbox's PID-1 init, and the kernel-log reader that names the syscall
//! behind a seccomp kill.
//!
//! Plan first, then apply: [`compile`] turns the policy into one BPF program in the parent (it
//! allocates); [`Filters::apply`] installs it in the payload as the last step before `execve`
//! (it does not allocate). The rule table with a reason per entry lives in `rules.rs`; the
//! emitter (a binary search over syscall numbers, so the program stays far below the ~500
//! instruction attach-cost cliff) in `bpf.rs`. docs/seccomp.md is generated from [`describe`].

#[cfg(test)]
mod bench;
mod bpf;
#[cfg(test)]
mod child_tests;
mod kmsg;
mod rules;
mod table;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io;

use seccompiler::sock_filter;
use serde::Serialize;

pub use self::kmsg::KmsgWatch;
use self::rules::Check;
pub use self::rules::{GROUPS, Group};
pub use self::table::{syscall_name, syscall_number};
use crate::policy::{NetworkMode, SeccompDefault, SeccompPolicy};

const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const RET_KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const RET_LOG: u32 = libc::SECCOMP_RET_LOG;

/// `SECCOMP_RET_ERRNO` with the errno in the low 16 bits (`SECCOMP_RET_DATA`).
#[allow(
    clippy::cast_sign_loss,
    reason = "errno values are small positive numbers, and the mask keeps only the low 16 bits"
)]
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
}

/// A compiled filter, ready to install. One program carries every per-syscall action (allow,
/// argument checks, `ENOSYS` for `clone3`/`io_uring_*`, the default), so no separate overlay
/// filter is needed and a single `seccomp(2)` call installs it.
#[derive(Debug, Clone)]
pub struct Filters {
    program: Vec<sock_filter>,
}

impl Filters {
    /// Length of the program in BPF instructions (reported in the verdict).
    pub fn instructions(&self) -> usize {
        self.program.len()
    }

    /// Install the filter on the calling thread (sets `PR_SET_NO_NEW_PRIVS` first). Does not
    /// allocate, so it is safe in a child of `clone`; call it last, right before `execve`.
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
}

/// One row of the policy table (`--print-policy`, docs/seccomp.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleDescription {
    /// A syscall name, or `default`, `arch`, `x32`, `group <name>`.
    pub subject: String,
    /// What the filter does, e.g. `allow`, `ENOSYS`, `kill process`.
    pub rule: String,
    pub reason: String,
}

/// Where an entry of the effective table comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    Base(&'static str),
    Checked(Check, &'static str),
    Group(&'static Group),
    Extra,
    Enosys(&'static str),
    Denied(&'static str),
}

/// The actions for "not listed" and for the hard rules (arch, x32, denied list, failed argument
/// checks). Log mode is for tuning: unlisted calls are logged and allowed, hard rules still fail.
fn actions(default: SeccompDefault) -> (u32, u32) {
    match default {
        SeccompDefault::Kill => (RET_KILL_PROCESS, RET_KILL_PROCESS),
        SeccompDefault::Errno => (ret_errno(libc::EPERM), ret_errno(libc::EPERM)),
        SeccompDefault::Log => (RET_LOG, ret_errno(libc::EPERM)),
    }
}

fn action_label(action: u32) -> &'static str {
    match action {
        RET_KILL_PROCESS => "kill process",
        RET_LOG => "log and allow",
        a if a == ret_errno(libc::EPERM) => "EPERM",
        _ => "deny",
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
    out.extend(rules::DENIED.iter().map(|&(n, r)| (n, Source::Denied(r))));
    (out, errors)
}

/// May a profile add `name` through `extra_allow` (`seccomp.allow`)? The error names the call and
/// says why not (unknown, always denied, or already argument-checked), so profile validation can
/// attach its file and line.
pub fn check_allow(name: &str) -> Result<(), SeccompError> {
    let lookup = |table: &[(&'static str, &'static str)]| {
        table.iter().find(|(n, _)| *n == name).map(|&(_, r)| r)
    };
    if let Some(reason) = lookup(rules::DENIED).or_else(|| lookup(rules::ENOSYS)) {
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

fn check_leaf(check: Check, network: NetworkMode, hard: u32) -> bpf::Leaf {
    let (af_unix, af_inet, af_inet6) = (
        libc::AF_UNIX as u32,
        libc::AF_INET as u32,
        libc::AF_INET6 as u32,
    );
    let allow_if = |arg: u32, values: Vec<u32>| bpf::Leaf::ArgIn {
        arg,
        values,
        hit: RET_ALLOW,
        miss: hard,
    };
    match check {
        Check::CloneNoNamespace => bpf::Leaf::ArgMaskClear {
            arg: 0,
            mask: rules::CLONE_NEW_MASK,
            clear: RET_ALLOW,
            set: hard,
        },
        Check::SocketFamily if network == NetworkMode::Loopback => {
            allow_if(0, vec![af_unix, af_inet, af_inet6])
        }
        Check::SocketFamily | Check::SocketpairUnix => allow_if(0, vec![af_unix]),
        Check::IoctlNoTiocsti => bpf::Leaf::ArgIn {
            arg: 1,
            values: vec![rules::TIOCSTI, rules::TIOCLINUX],
            hit: hard,
            miss: RET_ALLOW,
        },
        Check::PersonalityQueryOrLinux => {
            allow_if(0, vec![rules::PERSONALITY_QUERY, rules::PER_LINUX])
        }
    }
}

fn check_label(check: Check, network: NetworkMode, hard: &str) -> String {
    match check {
        Check::CloneNoNamespace => format!("allow if flags & CLONE_NEW* == 0, else {hard}"),
        Check::SocketFamily if network == NetworkMode::Loopback => {
            format!("allow if domain is AF_UNIX, AF_INET or AF_INET6, else {hard}")
        }
        Check::SocketFamily | Check::SocketpairUnix => {
            format!("allow if domain is AF_UNIX, else {hard}")
        }
        Check::IoctlNoTiocsti => {
            format!("{hard} if request (low 32 bits) is TIOCSTI or TIOCLINUX, else allow")
        }
        Check::PersonalityQueryOrLinux => {
            format!("allow if persona is 0xffffffff (query) or 0 (PER_LINUX), else {hard}")
        }
    }
}

/// Compile the payload's filter. Runs in the parent before `clone` (it allocates).
pub fn compile(policy: &SeccompPolicy, network: NetworkMode) -> Result<Filters, SeccompError> {
    let (entries, errors) = entries(policy, network);
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    let (default, hard) = actions(policy.default_action);
    let mut map = BTreeMap::new();
    for (name, source) in entries {
        let leaf = match source {
            Source::Base(_) | Source::Group(_) | Source::Extra => bpf::Leaf::Ret(RET_ALLOW),
            Source::Checked(check, _) => check_leaf(check, network, hard),
            Source::Enosys(_) => bpf::Leaf::Ret(ret_errno(libc::ENOSYS)),
            Source::Denied(_) => bpf::Leaf::Ret(hard),
        };
        insert(&mut map, name, leaf)?;
    }
    finish(bpf::assemble(&map, default, hard))
}

/// The PID-1 init's filter: only what `rules::INIT` lists; anything else kills the init, which
/// tears down the whole PID namespace (fail closed).
pub fn compile_init() -> Result<Filters, SeccompError> {
    let mut map = BTreeMap::new();
    for &(name, _) in rules::INIT {
        insert(&mut map, name, bpf::Leaf::Ret(RET_ALLOW))?;
    }
    finish(bpf::assemble(&map, RET_KILL_PROCESS, RET_KILL_PROCESS))
}

fn insert(
    map: &mut BTreeMap<u32, bpf::Leaf>,
    name: &str,
    leaf: bpf::Leaf,
) -> Result<(), SeccompError> {
    let nr = syscall_number(name)
        .and_then(|nr| u32::try_from(nr).ok())
        .ok_or_else(|| SeccompError::UnknownSyscall {
            name: name.to_string(),
        })?;
    map.entry(nr).or_insert(leaf);
    Ok(())
}

fn finish(program: Vec<sock_filter>) -> Result<Filters, SeccompError> {
    if program.len() > BPF_MAXINSNS {
        return Err(SeccompError::TooLong { len: program.len() });
    }
    Ok(Filters { program })
}

/// The effective policy as a table: default action, arch and x32 rules, then one row per
/// syscall with its rule and reason. Profile errors appear as `rejected` rows.
pub fn describe(policy: &SeccompPolicy, network: NetworkMode) -> Vec<RuleDescription> {
    let (default, hard) = actions(policy.default_action);
    let hard_label = action_label(hard);
    let row = |subject: &str, rule: String, reason: &str| RuleDescription {
        subject: subject.to_string(),
        rule,
        reason: reason.to_string(),
    };
    let mut rows = vec![
        row(
            "default",
            action_label(default).to_string(),
            "every syscall not listed below",
        ),
        row(
            "arch",
            format!("{hard_label} unless x86_64"),
            "i386 (int 0x80) and other ABIs number syscalls differently",
        ),
        row(
            "x32",
            format!("{hard_label} if nr & 0x40000000"),
            "x32 calls reuse x86_64 numbers with a bit set",
        ),
    ];
    let (entries, errors) = entries(policy, network);
    for (name, source) in entries {
        rows.push(match source {
            Source::Base(r) => row(name, "allow".into(), r),
            Source::Checked(c, r) => row(name, check_label(c, network, hard_label), r),
            Source::Group(g) => row(name, format!("allow (group {})", g.name), g.reason),
            Source::Extra => row(name, "allow (extra_allow)".into(), "added by the profile"),
            Source::Enosys(r) => row(name, "ENOSYS".into(), r),
            Source::Denied(r) => row(name, hard_label.to_string(), r),
        });
    }
    rows.extend(
        errors
            .iter()
            .map(|e| row("profile", "rejected".into(), &e.to_string())),
    );
    rows
}

/// The init filter's table, for `--print-policy` and the docs.
pub fn describe_init() -> Vec<RuleDescription> {
    let mut rows = vec![RuleDescription {
        subject: "default".into(),
        rule: action_label(RET_KILL_PROCESS).into(),
        reason: "the init only waits, reaps, forwards signals and reports".into(),
    }];
    rows.extend(rules::INIT.iter().map(|&(n, r)| RuleDescription {
        subject: n.into(),
        rule: "allow".into(),
        reason: r.into(),
    }));
    rows
}

/// Render rows as a Markdown table (docs/seccomp.md, `--print-policy`).
pub fn markdown_table(rows: &[RuleDescription]) -> String {
    let mut out = String::from("| syscall | rule | reason |\n|---|---|---|\n");
    for r in rows {
        let cell = |s: &str| s.replace('|', "\\|");
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            cell(&r.subject),
            cell(&r.rule),
            cell(&r.reason)
        ));
    }
    out
}
