//! Authorization per principal: which profiles it may use, the most it may ask for (wall and CPU
//! time, memory, tasks, output, network mode), whether it may lower a profile's pre-flight check,
//! and its own rate and concurrency limits. A request that asks for more is refused (403, with
//! the reason); limits it does not ask for are capped at the principal's maxima, so a generous
//! profile default never exceeds what the principal was granted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::ratelimit::Rate;
use crate::policy::{NetworkMode, Policy};

#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// Profiles (canonical names) this principal may use; `None`: all.
    pub profiles: Option<Vec<String>>,
    pub max_wall: Option<Duration>,
    pub max_cpu: Option<Duration>,
    pub max_memory: Option<u64>,
    pub max_pids: Option<u64>,
    pub max_output: Option<u64>,
    /// The most permissive network mode allowed.
    pub network: NetworkMode,
    /// May lower a profile's pre-flight analysis mode (e.g. `check: "off"`).
    pub skip_check: bool,
    /// Own request rate for code-running requests (else the service-wide one).
    pub rate: Option<Rate>,
    /// Own cap on concurrent sandboxes (else the service-wide one).
    pub max_concurrent: Option<usize>,
}

impl Default for Grant {
    /// Everything the profiles allow: the grant of a service without `[principals]`.
    fn default() -> Self {
        Grant {
            profiles: None,
            max_wall: None,
            max_cpu: None,
            max_memory: None,
            max_pids: None,
            max_output: None,
            network: NetworkMode::Loopback,
            skip_check: false,
            rate: None,
            max_concurrent: None,
        }
    }
}

/// What a request explicitly asked for (as opposed to the profile's defaults).
#[derive(Debug, Clone, Default)]
pub struct Asked {
    pub wall: Option<Duration>,
    pub cpu: Option<Duration>,
    pub memory: Option<u64>,
    pub pids: Option<u64>,
    pub output: Option<u64>,
}

/// A refusal with its reason (sent to the client: it names only what the client asked for and
/// what it may have).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn network_rank(n: NetworkMode) -> u8 {
    match n {
        NetworkMode::None => 0,
        NetworkMode::Loopback => 1,
    }
}

fn network_name(n: NetworkMode) -> &'static str {
    match n {
        NetworkMode::None => "none",
        NetworkMode::Loopback => "loopback",
    }
}

impl Grant {
    /// Whether the profile (canonical name) is granted: listings show only these.
    pub fn allows(&self, profile: &str) -> bool {
        self.profiles
            .as_ref()
            .is_none_or(|list| list.iter().any(|p| p == profile))
    }

    pub fn check_profile(&self, principal: &str, profile: &str) -> Result<(), Denied> {
        match &self.profiles {
            Some(list) if !list.iter().any(|p| p == profile) => Err(Denied(format!(
                "principal `{principal}` may not use profile `{profile}`"
            ))),
            _ => Ok(()),
        }
    }

    /// Check explicit asks against the maxima, then cap the resolved policy at them.
    pub fn apply(&self, principal: &str, asked: &Asked, policy: &mut Policy) -> Result<(), Denied> {
        let over = |field: &str, asked: u64, max: u64| {
            Denied(format!(
                "`{field}` {asked} exceeds the maximum of {max} for principal `{principal}`"
            ))
        };
        let checks = [
            ("limits.wall_ms", asked.wall.map(ms), self.max_wall.map(ms)),
            ("limits.cpu_ms", asked.cpu.map(ms), self.max_cpu.map(ms)),
            ("limits.memory_bytes", asked.memory, self.max_memory),
            ("limits.pids", asked.pids, self.max_pids),
            ("limits.output_bytes", asked.output, self.max_output),
        ];
        for (field, a, max) in checks {
            if let (Some(a), Some(max)) = (a, max) {
                if a > max {
                    return Err(over(field, a, max));
                }
            }
        }
        if network_rank(policy.network) > network_rank(self.network) {
            return Err(Denied(format!(
                "profile `{}` uses network mode `{}`; principal `{principal}` may use `{}` at most",
                policy.profile,
                network_name(policy.network),
                network_name(self.network)
            )));
        }
        let l = &mut policy.limits;
        let cap_d = |v: Option<Duration>, max: Option<Duration>| match (v, max) {
            (Some(v), Some(m)) => Some(v.min(m)),
            (v, m) => v.or(m),
        };
        let cap_n = |v: Option<u64>, max: Option<u64>| match (v, max) {
            (Some(v), Some(m)) => Some(v.min(m)),
            (v, m) => v.or(m),
        };
        l.wall = cap_d(l.wall, self.max_wall);
        l.cpu = cap_d(l.cpu, self.max_cpu);
        l.memory = cap_n(l.memory, self.max_memory);
        l.pids = cap_n(l.pids, self.max_pids);
        l.output = self.max_output.map_or(l.output, |m| l.output.min(m));
        // A compile stage is a sandbox of the same principal: the grant's maxima bound it too.
        if let Some(stage) = policy.compile.as_mut() {
            let c = &mut stage.limits;
            c.wall = cap_d(c.wall, self.max_wall);
            c.cpu = cap_d(c.cpu, self.max_cpu);
            c.memory = cap_n(c.memory, self.max_memory);
            c.pids = cap_n(c.pids, self.max_pids);
            c.output = self.max_output.map_or(c.output, |m| c.output.min(m));
        }
        Ok(())
    }
}

/// Grants by principal name, with a fallback for principals not listed.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    named: HashMap<String, Arc<Grant>>,
    fallback: Arc<Grant>,
}

impl Grants {
    pub fn new(named: HashMap<String, Grant>, fallback: Grant) -> Self {
        Grants {
            named: named.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
            fallback: Arc::new(fallback),
        }
    }

    pub fn get(&self, principal: &str) -> Arc<Grant> {
        Arc::clone(self.named.get(principal).unwrap_or(&self.fallback))
    }

    /// The named principals, sorted by name.
    pub fn named(&self) -> Vec<(&str, &Grant)> {
        let mut v: Vec<_> = self
            .named
            .iter()
            .map(|(k, g)| (k.as_str(), g.as_ref()))
            .collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    /// The grant of every principal not named (`[principals."*"]`, or everything).
    pub fn fallback(&self) -> &Grant {
        &self.fallback
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tight() -> Grant {
        Grant {
            profiles: Some(vec!["python".into(), "bash".into()]),
            max_wall: Some(Duration::from_secs(5)),
            max_cpu: None,
            max_memory: Some(256 << 20),
            max_pids: Some(32),
            max_output: Some(64 << 10),
            network: NetworkMode::None,
            ..Grant::default()
        }
    }

    #[test]
    fn profiles_outside_the_list_are_refused() {
        let g = tight();
        assert!(g.check_profile("ci", "python").is_ok());
        let e = g.check_profile("ci", "node").unwrap_err();
        assert_eq!(e.0, "principal `ci` may not use profile `node`");
        assert!(Grant::default().check_profile("x", "anything").is_ok());
    }

    #[test]
    fn asking_above_a_maximum_is_refused_with_the_reason() {
        let g = tight();
        let mut p = Policy::default();
        let asked = Asked {
            wall: Some(Duration::from_secs(6)),
            ..Asked::default()
        };
        let e = g.apply("ci", &asked, &mut p).unwrap_err();
        assert_eq!(
            e.0,
            "`limits.wall_ms` 6000 exceeds the maximum of 5000 for principal `ci`"
        );
        let asked = Asked {
            memory: Some(512 << 20),
            ..Asked::default()
        };
        assert!(
            g.apply("ci", &asked, &mut p)
                .unwrap_err()
                .0
                .contains("limits.memory_bytes")
        );
        let asked = Asked {
            pids: Some(33),
            ..Asked::default()
        };
        assert!(
            g.apply("ci", &asked, &mut p)
                .unwrap_err()
                .0
                .contains("limits.pids")
        );
        let asked = Asked {
            output: Some(1 << 20),
            ..Asked::default()
        };
        assert!(
            g.apply("ci", &asked, &mut p)
                .unwrap_err()
                .0
                .contains("limits.output_bytes")
        );
    }

    #[test]
    fn unasked_limits_are_capped_at_the_grant() {
        let g = tight();
        let mut p = Policy::default(); // wall 10 s, memory and pids unlimited, output 1 MiB
        g.apply("ci", &Asked::default(), &mut p).unwrap();
        assert_eq!(p.limits.wall, Some(Duration::from_secs(5)));
        assert_eq!(p.limits.memory, Some(256 << 20));
        assert_eq!(p.limits.pids, Some(32));
        assert_eq!(p.limits.output, 64 << 10);
        assert_eq!(p.limits.cpu, None, "no maximum: the profile's value stays");
        // Lower asks stay as asked.
        let mut p = Policy::default();
        p.limits.wall = Some(Duration::from_secs(2));
        let asked = Asked {
            wall: Some(Duration::from_secs(2)),
            ..Asked::default()
        };
        g.apply("ci", &asked, &mut p).unwrap();
        assert_eq!(p.limits.wall, Some(Duration::from_secs(2)));
    }

    #[test]
    fn a_compile_stage_is_capped_at_the_grant_too() {
        let mut p = Policy {
            compile: Some(crate::policy::CompileStage::default()), // wall 10 s, memory unlimited
            ..Policy::default()
        };
        tight().apply("ci", &Asked::default(), &mut p).unwrap();
        let c = p.compile.unwrap().limits;
        assert_eq!(c.wall, Some(Duration::from_secs(5)));
        assert_eq!(c.memory, Some(256 << 20));
        assert_eq!((c.pids, c.output), (Some(32), 64 << 10));
    }

    #[test]
    fn network_beyond_the_grant_is_refused() {
        let mut p = Policy::default();
        p.profile = "net".into();
        p.network = NetworkMode::Loopback;
        let e = tight().apply("ci", &Asked::default(), &mut p).unwrap_err();
        assert!(e.0.contains("network mode `loopback`"), "{e}");
        assert!(
            Grant::default()
                .apply("ci", &Asked::default(), &mut p)
                .is_ok()
        );
    }

    #[test]
    fn grants_fall_back_for_unlisted_principals() {
        let mut named = HashMap::new();
        named.insert("ci".to_string(), tight());
        let g = Grants::new(named, Grant::default());
        assert_eq!(g.get("ci").max_pids, Some(32));
        assert_eq!(g.get("someone").max_pids, None);
    }
}
