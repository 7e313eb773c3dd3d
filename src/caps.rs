//! Capabilities: clear every set, lock root's special treatment away, and check the result.

use caps::CapSet;
use nix::errno::Errno;

use crate::sys;

#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    #[error("{call}: {errno}")]
    Call { call: String, errno: Errno },
    #[error("clear {set:?} capabilities: {source}")]
    Clear {
        set: CapSet,
        source: caps::errors::CapsError,
    },
    #[error("capabilities still present after dropping them: {0}")]
    Remaining(String),
}

// linux/securebits.h
const SECBIT_NOROOT: u64 = 1 << 0;
const SECBIT_NOROOT_LOCKED: u64 = 1 << 1;
const SECBIT_NO_SETUID_FIXUP: u64 = 1 << 2;
const SECBIT_NO_SETUID_FIXUP_LOCKED: u64 = 1 << 3;
const SECBIT_KEEP_CAPS_LOCKED: u64 = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: u64 = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: u64 = 1 << 7;

/// Drop every capability for good (DESIGN §1 step 14). `cap_last_cap` comes from
/// `/proc/sys/kernel/cap_last_cap`, read by the parent, so capabilities newer than the caps
/// crate's list are dropped too.
pub fn drop_all(cap_last_cap: u32) -> Result<(), CapsError> {
    // The payload is uid 0 in its user namespace: without SECBIT_NOROOT, execve would grant it the
    // full permitted set again (capabilities(7), "Capabilities and execution of programs by root").
    let bits = SECBIT_NOROOT
        | SECBIT_NOROOT_LOCKED
        | SECBIT_NO_SETUID_FIXUP
        | SECBIT_NO_SETUID_FIXUP_LOCKED
        | SECBIT_KEEP_CAPS_LOCKED
        | SECBIT_NO_CAP_AMBIENT_RAISE
        | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    sys::prctl(libc::PR_SET_SECUREBITS, bits).map_err(|errno| CapsError::Call {
        call: format!("prctl(PR_SET_SECUREBITS, {bits:#x})"),
        errno,
    })?;
    for cap in 0..=cap_last_cap {
        sys::prctl(libc::PR_CAPBSET_DROP, u64::from(cap)).map_err(|errno| CapsError::Call {
            call: format!("prctl(PR_CAPBSET_DROP, {cap})"),
            errno,
        })?;
    }
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Permitted,
        CapSet::Effective,
    ] {
        caps::clear(None, set).map_err(|source| CapsError::Clear { set, source })?;
    }
    verify(cap_last_cap)
}

/// Assert that all five capability sets are empty.
pub fn verify(cap_last_cap: u32) -> Result<(), CapsError> {
    let mut left = Vec::new();
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Permitted,
        CapSet::Effective,
    ] {
        match caps::read(None, set) {
            Ok(caps) if caps.is_empty() => {}
            Ok(caps) => left.push(format!("{set:?}={caps:?}")),
            Err(e) => left.push(format!("{set:?}: {e}")),
        }
    }
    for cap in 0..=cap_last_cap {
        if sys::prctl(libc::PR_CAPBSET_READ, u64::from(cap)) != Ok(0) {
            left.push(format!("Bounding has {cap}"));
        }
    }
    if left.is_empty() {
        Ok(())
    } else {
        Err(CapsError::Remaining(left.join(", ")))
    }
}

/// `/proc/sys/kernel/cap_last_cap`, or the caps crate's highest known capability.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}
