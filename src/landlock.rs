//! Landlock LSM: path-based access control for the payload, applied after every mount (Landlock
//! forbids `mount()` once applied) and before capabilities are dropped.

use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, LandlockStatus, RestrictionStatus,
    Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetError, RulesetStatus, Scope,
    path_beneath_rules,
};

use crate::policy::{LandlockPolicy, NetworkMode};

/// The newest ABI this build knows; the crate intersects it with what the kernel provides.
const ABI_WANTED: ABI = ABI::V7;

#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error("landlock ruleset: {0}")]
    Ruleset(#[from] RulesetError),
    #[error(
        "landlock is not enforced by this kernel ({why}); fix: {fix}, or allow it with --best-effort landlock"
    )]
    NotEnforced {
        why: &'static str,
        fix: &'static str,
    },
}

/// What Landlock achieved, for the verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `fully_enforced`, `partially_enforced` or `not_enforced`.
    pub status: &'static str,
    pub abi: u32,
}

/// Paths the payload may write (and execute) beyond the policy's extra write paths.
pub const WRITABLE: &[&str] = &["/tmp", crate::policy::SANDBOX_DIR, "/dev/shm"];
/// Device files the payload may read and write (`/dev/pts`: the sandbox's private devpts).
pub const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/pts",
];

/// Restrict the calling thread (and everything it executes): read+execute on `/`, full access to
/// the sandbox's tmpfs mounts, read+write on device files, abstract-socket and signal scoping, and
/// no TCP at all when the network mode is `none`.
pub fn apply(
    policy: &LandlockPolicy,
    network: NetworkMode,
    best_effort: bool,
) -> Result<Outcome, LandlockError> {
    let abi = ABI_WANTED;
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))?
        .scope(Scope::from_all(abi))?;
    if network == NetworkMode::None {
        ruleset = ruleset.handle_access(AccessNet::from_all(abi))?;
    }
    let read: Vec<PathBuf> = std::iter::once(PathBuf::from("/"))
        .chain(policy.read.iter().cloned())
        .collect();
    let write: Vec<PathBuf> = WRITABLE
        .iter()
        .map(PathBuf::from)
        .chain(policy.write.iter().cloned())
        .collect();
    let status = ruleset
        .create()?
        .add_rules(path_beneath_rules(&read, AccessFs::from_read(abi)))?
        .add_rules(path_beneath_rules(
            existing(&write),
            AccessFs::from_all(abi),
        ))?
        .add_rules(path_beneath_rules(
            existing(DEVICES),
            AccessFs::from_file(abi) & !AccessFs::Execute,
        ))?
        .restrict_self()?;
    outcome(&status, best_effort)
}

fn existing<P: AsRef<Path>>(paths: &[P]) -> Vec<&Path> {
    paths
        .iter()
        .map(AsRef::as_ref)
        .filter(|p| p.exists())
        .collect()
}

fn outcome(status: &RestrictionStatus, best_effort: bool) -> Result<Outcome, LandlockError> {
    let abi = match status.landlock {
        LandlockStatus::Available { effective_abi, .. } => effective_abi as u32,
        _ => 0,
    };
    let name = match status.ruleset {
        RulesetStatus::FullyEnforced => "fully_enforced",
        RulesetStatus::PartiallyEnforced => "partially_enforced",
        RulesetStatus::NotEnforced => "not_enforced",
    };
    if status.ruleset == RulesetStatus::NotEnforced && !best_effort {
        let (why, fix) = match status.landlock {
            LandlockStatus::NotEnabled => (
                "Landlock is built in but not enabled",
                "add `landlock` to the `lsm=` kernel parameter (or CONFIG_LSM)",
            ),
            _ => (
                "the kernel has no Landlock support",
                "use a kernel built with CONFIG_SECURITY_LANDLOCK=y (Linux 5.13 or newer)",
            ),
        };
        return Err(LandlockError::NotEnforced { why, fix });
    }
    Ok(Outcome { status: name, abi })
}

/// The Landlock ABI the running kernel offers (0 when unavailable), without restricting anything.
pub fn kernel_abi() -> u32 {
    crate::sys::landlock_abi()
}
