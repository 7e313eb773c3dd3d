//! Piston's compile stage: the `compile_*` limits of a request and the `compile` object of the
//! response, for runtimes whose profile has a compile stage (c, cpp, java).
//!
//! Piston checks `compile_timeout`, `compile_cpu_time` and `compile_memory_limit` against its
//! configured compile limits. Clients send their own defaults there whatever the runtime
//! (piston-client and pyston 10000, piston_rs 30000), so a value above the profile's compile limit
//! is lowered to it instead of refused; the limits are ignored for a runtime without a compile
//! stage, as Piston ignores them for a language without a compile script.

use std::time::Duration;

use super::StageOut;
use crate::daemon::exec::LimitAsk;
use crate::profile::Profile;
use crate::verdict::{Status, Verdict};

/// The compile limits of a request (`asked` in Piston's constraint order: compile memory, run
/// memory, compile timeout, run timeout, compile CPU, run CPU), at most the profile's (after the
/// caller's grant has capped it).
pub(super) fn compile_limits(profile: &Profile, asked: &[Option<f64>; 6]) -> LimitAsk {
    let mut ask = LimitAsk::default();
    let Some(stage) = &profile.policy.compile else {
        return ask;
    };
    let l = &stage.limits;
    let ms = |v: Option<f64>, max: Option<Duration>| {
        let asked = v.map(|ms| Duration::from_millis(whole(ms)))?;
        Some(max.map_or(asked, |m| asked.min(m)))
    };
    ask.wall = ms(asked[2], l.wall);
    ask.cpu = ms(asked[4], l.cpu);
    ask.memory = asked[0].map(|b| {
        let b = whole(b);
        l.memory.map_or(b, |m| b.min(m))
    });
    // Zero means "the default" to Piston; validation already turned 0 into `None`.
    ask.wall = ask.wall.filter(|d| !d.is_zero());
    ask.cpu = ask.cpu.filter(|d| !d.is_zero());
    ask.memory = ask.memory.filter(|&b| b > 0);
    ask
}

/// A validated, non-negative number as an integer (fractions dropped, huge values saturated).
fn whole(n: f64) -> u64 {
    if n.is_finite() && n > 0.0 {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = n.min(u64::MAX as f64) as u64;
        n
    } else {
        0
    }
}

/// The `compile` object, when the run had a compile stage. Its `output` is stdout then stderr:
/// the compiler's streams are captured apart, not interleaved.
pub(super) fn compile_stage(v: &Verdict) -> Option<StageOut> {
    let c = v.compile.as_deref()?;
    let output = format!("{}{}", super::text(&c.stdout), super::text(&c.stderr));
    Some(super::stage_of(c, output))
}

/// Piston's "backward compatibility": when compilation fails there is no run stage, and `run` is
/// the compile stage's object.
pub(super) fn compile_failed(v: &Verdict) -> bool {
    v.status == Status::CompileFailed
}
