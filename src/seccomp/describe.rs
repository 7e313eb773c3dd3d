//! The effective seccomp policy as a table (`--print-policy`, docs/seccomp.md): one row per rule
//! with what the filter does and why.

use serde::Serialize;

use super::rules::{self, Check};
use super::{Answer, Source, check_answer, entries, errno_name, unlisted};
use crate::policy::{NetworkMode, SeccompPolicy};

/// One row of the policy table (`--print-policy`, docs/seccomp.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleDescription {
    /// A syscall name, or `default`, `arch`, `x32`, `group <name>`.
    pub subject: String,
    /// What the filter does, e.g. `allow`, `ENOSYS`, `kill process`.
    pub rule: String,
    pub reason: String,
}

fn answer_label(answer: Answer) -> String {
    match answer {
        Answer::Fail(e) => errno_name(e),
        Answer::Kill => "kill process".into(),
    }
}

fn check_label(check: Check, network: NetworkMode) -> String {
    let no = answer_label(check_answer(check));
    match check {
        Check::CloneNoNamespace => format!("allow if flags & CLONE_NEW* == 0, else {no}"),
        Check::SocketFamily if network == NetworkMode::Loopback => format!(
            "allow if domain is AF_UNIX, AF_INET/AF_INET6 with protocol 0, TCP, UDP or ICMP, or AF_NETLINK with NETLINK_ROUTE, else {no}"
        ),
        Check::SocketFamily => {
            format!("allow if domain is AF_UNIX or AF_NETLINK with NETLINK_ROUTE, else {no}")
        }
        Check::SocketpairUnix => format!("allow if domain is AF_UNIX, else {no}"),
        Check::IoctlNoTiocsti => {
            format!("{no} if request (low 32 bits) is TIOCSTI, TIOCLINUX or TIOCSETD, else allow")
        }
        Check::PersonalityQueryOrLinux => {
            format!("allow if persona is 0xffffffff (query) or 0 (PER_LINUX), else {no}")
        }
        Check::Pipe2NoNotification => {
            format!("allow unless flags has O_NOTIFICATION_PIPE, else {no}")
        }
    }
}

/// The effective policy as a table: default action, arch and x32 rules, then one row per
/// syscall with its rule and reason. Profile errors appear as `rejected` rows.
pub fn describe(policy: &SeccompPolicy, network: NetworkMode) -> Vec<RuleDescription> {
    let default = match unlisted(policy.default_action).1 {
        Some(answer) => answer_label(answer),
        None => "log and allow".into(),
    };
    let row = |subject: &str, rule: String, reason: &str| RuleDescription {
        subject: subject.to_string(),
        rule,
        reason: reason.to_string(),
    };
    let mut rows = vec![
        row(
            "default",
            default,
            "every syscall not listed below (new or unknown calls: programs fall back on ENOSYS)",
        ),
        row(
            "arch",
            "kill process unless x86_64".into(),
            "i386 (int 0x80) and other ABIs number syscalls differently",
        ),
        row(
            "x32",
            "kill process if nr & 0x40000000".into(),
            "x32 calls reuse x86_64 numbers with a bit set",
        ),
    ];
    let (entries, errors) = entries(policy, network);
    for (name, source) in entries {
        rows.push(match source {
            Source::Base(r) => row(name, "allow".into(), r),
            Source::Checked(c, r) => row(name, check_label(c, network), r),
            Source::Group(g) => row(name, format!("allow (group {})", g.name), g.reason),
            Source::Extra => row(name, "allow (extra_allow)".into(), "added by the profile"),
            Source::Enosys(r) => row(name, "ENOSYS (in the filter, not counted)".into(), r),
            Source::Refused(e, r) => row(name, errno_name(e), r),
            Source::Kill(r) => row(name, "kill process".into(), r),
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
        rule: "kill process".into(),
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
