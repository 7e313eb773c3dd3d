//! stockade: run untrusted code in fresh Linux namespaces under Landlock, seccomp and cgroup
//! limits, and report one structured verdict.
//!
//! The security order lives in `sandbox::child`; every other module is one mechanism with a small
//! public surface, and only the orchestrator (`sandbox`) knows the order.

pub mod analysis;
pub mod caps;
pub mod cgroup;
pub mod cli;
pub mod daemon;
pub mod doctor;
pub mod fs;
pub mod guard;
pub mod landlock;
pub mod mountinfo;
pub mod ns;
pub mod policy;
pub mod profile;
pub mod rlimit;
pub mod rootfs;

pub mod sandbox;
pub mod seccomp;
pub mod sys;
pub mod units;
pub mod verdict;
