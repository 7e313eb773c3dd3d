//! The security sections of `stockade.toml` — `[auth]` (with `[[auth.keys]]` and `[auth.jwt]`),
//! `[tls]`, `[principals.<name>]`, `[rate_limit]`, `[audit]`, `[cache]`, `[breaker]`, `[http]`,
//! `[cors]` — as strict wire structs, validated into one `SecurityConfig`. Files the sections
//! name (keys file, JWT secret and keys, TLS certificates) are read during validation, so
//! `stockade serve --check-config` catches a bad one and the error points at the field.

mod auth;
#[cfg(test)]
mod tests;
mod wire;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

pub use self::wire::*;
use super::audit::SinkConfig;
use super::authn::Authenticator;
use super::authz::{Grant, Grants};
use super::breaker::BreakerSettings;
use super::cache::CacheSettings;
use super::cors::Cors;
use super::keys;
use super::listener::HttpLimits;
use super::ratelimit::Rate;
use super::tls::TlsSettings;
use crate::policy::NetworkMode;
use crate::profile::{ProfileError, SourceFile};
use crate::units;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    Request,
    Always,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    pub settings: CacheSettings,
    pub profiles: Vec<String>,
    pub mode: CacheMode,
    pub shared: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateLimits {
    pub per_principal: Option<Rate>,
    pub per_address: Option<Rate>,
    pub max_concurrent: Option<usize>,
    pub max_tracked: usize,
}

/// Which kinds of credentials the configuration holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `[[auth.keys]]` or `keys_file`.
    pub api_key: bool,
    /// `[auth.jwt]`.
    pub jwt: bool,
    /// `[tls] client_ca` with client certificates not turned off.
    pub mtls: bool,
}

/// The validated security configuration.
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    pub auth: Arc<Authenticator>,
    /// The credentials configured (they decide the default methods and what must be required).
    pub credentials: Credentials,
    /// Whether `[auth] tcp` and `[auth] unix` were written (else they default to `credentials`).
    pub methods_given: (bool, bool),
    /// Key id, principal and revocation of every key known at start-up (for `--check-config`).
    pub key_owners: Vec<(String, String, bool)>,
    /// `[auth] keys_file`, re-read on SIGHUP.
    pub keys_file: Option<PathBuf>,
    /// `[[auth.keys]]`, kept beside the file's keys on a reload.
    pub inline_keys: Vec<keys::KeyEntry>,
    pub public_health: bool,
    pub public_metrics: bool,
    pub allow_unauthenticated_remote: bool,
    pub tls: Option<(TlsSettings, Arc<rustls::ServerConfig>)>,
    pub grants: Grants,
    pub rate: RateLimits,
    pub audit: SinkConfig,
    pub audit_health: bool,
    pub cache: Option<CacheConfig>,
    pub breaker: BreakerSettings,
    pub http: HttpLimits,
    /// `[http] allowed_hosts`, lowercased (src/daemon/security/browser.rs).
    pub allowed_hosts: Vec<String>,
    pub body_timeout: Duration,
    pub cors: Cors,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            auth: Arc::new(Authenticator::default()),
            credentials: Credentials::default(),
            methods_given: (false, false),
            key_owners: Vec::new(),
            keys_file: None,
            inline_keys: Vec::new(),
            public_health: true,
            public_metrics: false,
            allow_unauthenticated_remote: false,
            tls: None,
            grants: Grants::default(),
            rate: RateLimits {
                max_tracked: 100_000,
                ..RateLimits::default()
            },
            audit: SinkConfig::Stdout,
            audit_health: false,
            cache: None,
            breaker: BreakerSettings::default(),
            http: HttpLimits::default(),
            allowed_hosts: Vec::new(),
            body_timeout: Duration::from_secs(30),
            cors: Cors::default(),
        }
    }
}

impl SecurityConfig {
    /// `check_exposure` and `check_required` for the service's listen addresses.
    pub fn check_listen(&self, listen: &[crate::daemon::config::Listen]) -> Result<(), String> {
        let tcp: Vec<std::net::SocketAddr> = listen
            .iter()
            .filter_map(|l| match l {
                crate::daemon::config::Listen::Tcp(a) => Some(*a),
                crate::daemon::config::Listen::Unix { .. } => None,
            })
            .collect();
        self.check_exposure(&tcp)?;
        let unix = tcp.len() < listen.len();
        self.check_required(!tcp.is_empty(), unix)
    }

    /// Refuse to expose the service on a non-loopback TCP address without authentication.
    pub fn check_exposure(&self, tcp: &[std::net::SocketAddr]) -> Result<(), String> {
        let open = self.auth.tcp.anonymous() && !self.allow_unauthenticated_remote;
        match tcp.iter().find(|a| !a.ip().is_loopback()) {
            Some(a) if open => Err(format!(
                "listening on {a} (beyond loopback) without authentication: set `[auth] tcp` (api_key, jwt, mtls), or `allow_unauthenticated_remote = true` to accept that"
            )),
            _ => Ok(()),
        }
    }
}

mod describe;

pub(super) struct V<'a, 'b> {
    pub(super) src: &'a SourceFile<'b>,
}

impl V<'_, '_> {
    pub(super) fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        field: &str,
        msg: String,
    ) -> Result<T, ProfileError> {
        Err(self
            .src
            .error(span, field, format!("`{field}`: {msg}"), None))
    }

    pub(super) fn duration(
        &self,
        v: &S<String>,
        field: &str,
    ) -> Result<Option<Duration>, ProfileError> {
        v.as_ref()
            .map(|v| units::parse_duration(v.get_ref()).or_else(|m| self.err(v.span(), field, m)))
            .transpose()
    }

    pub(super) fn size(&self, v: &S<String>, field: &str) -> Result<Option<u64>, ProfileError> {
        v.as_ref()
            .map(|v| units::parse_size(v.get_ref()).or_else(|m| self.err(v.span(), field, m)))
            .transpose()
    }

    pub(super) fn count(
        &self,
        v: &S<i64>,
        field: &str,
        min: i64,
        max: i64,
    ) -> Result<Option<u64>, ProfileError> {
        v.as_ref()
            .map(|v| match *v.get_ref() {
                n if (min..=max).contains(&n) => Ok(n.unsigned_abs()),
                n => self.err(
                    v.span(),
                    field,
                    format!("{n} is out of range ({min} to {max})"),
                ),
            })
            .transpose()
    }

    pub(super) fn path(&self, v: &Spanned<String>, field: &str) -> Result<PathBuf, ProfileError> {
        let p = PathBuf::from(v.get_ref());
        if !p.is_absolute() {
            return self.err(
                v.span(),
                field,
                format!("`{}` must be an absolute path", v.get_ref()),
            );
        }
        Ok(p)
    }

    pub(super) fn read(
        &self,
        v: &Spanned<String>,
        field: &str,
    ) -> Result<(PathBuf, Vec<u8>), ProfileError> {
        let p = self.path(v, field)?;
        match std::fs::read(&p) {
            Ok(b) => Ok((p, b)),
            Err(e) => self.err(v.span(), field, format!("cannot read {}: {e}", p.display())),
        }
    }

    pub(super) fn rate(
        &self,
        r: &S<String>,
        burst: &S<i64>,
        field: &str,
    ) -> Result<Option<Rate>, ProfileError> {
        let Some(r) = r else { return Ok(None) };
        let b = self.count(burst, &format!("{field}_burst"), 1, 1_000_000)?;
        let b = u32::try_from(b.unwrap_or(0)).unwrap_or(u32::MAX);
        // Default burst: one second's worth, at least 1.
        let default = Rate::parse(r.get_ref(), 1).map_err(|m| {
            self.src
                .error(r.span(), field, format!("`{field}`: {m}"), None)
        })?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let burst = if b > 0 {
            b
        } else {
            default.per_sec.ceil().max(1.0) as u32
        };
        Ok(Some(Rate { burst, ..default }))
    }
}

/// Validate the sections.
pub fn validate(src: &SourceFile<'_>, s: Sections) -> Result<SecurityConfig, ProfileError> {
    let v = V { src };
    let mut c = SecurityConfig::default();
    if let Some(t) = s.tls {
        c.tls = Some(auth::tls_section(&v, t)?);
    }
    let mtls = c.tls.as_ref().is_some_and(|(t, _)| {
        t.client_ca.is_some() && t.client_auth != super::tls::ClientAuth::None
    });
    auth::auth(&v, s.auth, &mut c, mtls)?;
    c.grants = grants(&v, s.principals)?;
    rate_limit(&v, &s.rate_limit, &mut c)?;
    audit(&v, s.audit, &mut c)?;
    c.cache = cache(&v, s.cache)?;
    let b = &s.breaker;
    c.breaker = BreakerSettings {
        failures: u32::try_from(
            v.count(&b.failures, "breaker.failures", 1, 1000)?
                .unwrap_or(5),
        )
        .unwrap_or(5),
        recovery: v
            .duration(&b.recovery, "breaker.recovery")?
            .unwrap_or(Duration::from_secs(30)),
        probes: u32::try_from(v.count(&b.probes, "breaker.probes", 1, 100)?.unwrap_or(1))
            .unwrap_or(1),
    };
    http(&v, &s.http, &mut c)?;
    c.cors = Cors {
        origins: s.cors.origins,
        max_age_secs: v
            .duration(&s.cors.max_age, "cors.max_age")?
            .map_or(600, |d| d.as_secs()),
    };
    Ok(c)
}

fn grants(v: &V<'_, '_>, p: BTreeMap<String, PrincipalSection>) -> Result<Grants, ProfileError> {
    let mut named = HashMap::new();
    let mut fallback = Grant::default();
    for (name, sec) in p {
        let field = format!("principals.{name}");
        if name != "*" && !keys::valid_principal(&name) {
            return v.err(
                0..0,
                &field,
                "principal names are printable ASCII without quotes or backslashes".into(),
            );
        }
        let network = match &sec.network {
            None => NetworkMode::Loopback,
            Some(n) => match n.get_ref().as_str() {
                "none" => NetworkMode::None,
                "loopback" => NetworkMode::Loopback,
                other => {
                    return v.err(
                        n.span(),
                        &format!("{field}.network"),
                        format!("`{other}`: expected none or loopback"),
                    );
                }
            },
        };
        let g = Grant {
            profiles: sec.profiles,
            max_wall: v.duration(&sec.max_wall, &format!("{field}.max_wall"))?,
            max_cpu: v.duration(&sec.max_cpu, &format!("{field}.max_cpu"))?,
            max_memory: v.size(&sec.max_memory, &format!("{field}.max_memory"))?,
            max_pids: v.count(&sec.max_pids, &format!("{field}.max_pids"), 1, 1_000_000)?,
            max_output: v.size(&sec.max_output, &format!("{field}.max_output"))?,
            network,
            skip_check: sec.skip_check.unwrap_or(false),
            rate: v.rate(&sec.rate, &sec.burst, &format!("{field}.rate"))?,
            max_concurrent: v
                .count(
                    &sec.max_concurrent,
                    &format!("{field}.max_concurrent"),
                    1,
                    100_000,
                )?
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        };
        if name == "*" {
            fallback = g;
        } else {
            named.insert(name, g);
        }
    }
    Ok(Grants::new(named, fallback))
}

fn rate_limit(
    v: &V<'_, '_>,
    r: &RateLimitSection,
    c: &mut SecurityConfig,
) -> Result<(), ProfileError> {
    c.rate.per_principal = v.rate(
        &r.per_principal,
        &r.principal_burst,
        "rate_limit.per_principal",
    )?;
    c.rate.per_address = v.rate(&r.per_address, &r.address_burst, "rate_limit.per_address")?;
    c.rate.max_concurrent = v
        .count(
            &r.max_concurrent_per_principal,
            "rate_limit.max_concurrent_per_principal",
            1,
            100_000,
        )?
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    if let Some(n) = v.count(&r.max_tracked, "rate_limit.max_tracked", 16, 10_000_000)? {
        c.rate.max_tracked = usize::try_from(n).unwrap_or(usize::MAX);
    }
    Ok(())
}

fn audit(v: &V<'_, '_>, a: AuditSection, c: &mut SecurityConfig) -> Result<(), ProfileError> {
    let sink = a.sink.as_ref().map_or("stdout", |s| s.get_ref().as_str());
    c.audit = match sink {
        "stdout" => SinkConfig::Stdout,
        "off" => SinkConfig::Off,
        "journald" => SinkConfig::Journald {
            socket: PathBuf::from(super::audit::JOURNAL_SOCKET),
            identifier: a.identifier.unwrap_or_else(|| "stockade-audit".into()),
        },
        "file" => {
            let Some(p) = &a.path else {
                let span = a.sink.as_ref().map_or(0..0, Spanned::span);
                return v.err(span, "audit.path", "the `file` sink needs a `path`".into());
            };
            SinkConfig::File {
                path: v.path(p, "audit.path")?,
                max_bytes: v
                    .size(&a.max_size, "audit.max_size")?
                    .unwrap_or(100 << 20)
                    .max(4096),
                keep: usize::try_from(v.count(&a.keep, "audit.keep", 0, 1000)?.unwrap_or(5))
                    .unwrap_or(5),
            }
        }
        other => {
            let span = a.sink.as_ref().map_or(0..0, Spanned::span);
            return v.err(
                span,
                "audit.sink",
                format!("`{other}`: expected stdout, file, journald or off"),
            );
        }
    };
    c.audit_health = a.health.unwrap_or(false);
    Ok(())
}

fn cache(v: &V<'_, '_>, k: CacheSection) -> Result<Option<CacheConfig>, ProfileError> {
    if !k.enabled.unwrap_or(false) {
        return Ok(None);
    }
    let mode = match k.mode.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
        None | Some(("request", _)) => CacheMode::Request,
        Some(("always", _)) => CacheMode::Always,
        Some((other, span)) => {
            return v.err(
                span,
                "cache.mode",
                format!("`{other}`: expected request or always"),
            );
        }
    };
    let max_bytes = v
        .size(&k.max_memory, "cache.max_memory")?
        .unwrap_or(64 << 20);
    let max_entry = v.size(&k.max_entry, "cache.max_entry")?.unwrap_or(1 << 20);
    Ok(Some(CacheConfig {
        settings: CacheSettings {
            ttl: v
                .duration(&k.ttl, "cache.ttl")?
                .unwrap_or(Duration::from_secs(300)),
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
            max_entry_bytes: usize::try_from(max_entry).unwrap_or(usize::MAX),
        },
        profiles: k.profiles,
        mode,
        shared: k.shared.unwrap_or(false),
    }))
}

fn http(v: &V<'_, '_>, h: &HttpSection, c: &mut SecurityConfig) -> Result<(), ProfileError> {
    let d = HttpLimits::default();
    let usize_of =
        |n: Option<u64>, def: usize| n.map_or(def, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let header_bytes = v.size(&h.max_header_size, "http.max_header_size")?;
    if let (Some(b), Some(s)) = (header_bytes, &h.max_header_size) {
        if !(1024..=(1 << 20)).contains(&b) {
            return v.err(
                s.span(),
                "http.max_header_size",
                "must be between 1KiB and 1MiB".into(),
            );
        }
    }
    c.http = HttpLimits {
        header_timeout: v
            .duration(&h.header_timeout, "http.header_timeout")?
            .unwrap_or(d.header_timeout),
        max_header_bytes: usize_of(header_bytes, d.max_header_bytes),
        max_headers: usize_of(
            v.count(&h.max_headers, "http.max_headers", 8, 1000)?,
            d.max_headers,
        ),
        handshake_timeout: v
            .duration(&h.handshake_timeout, "http.handshake_timeout")?
            .unwrap_or(d.handshake_timeout),
        max_connections: usize_of(
            v.count(&h.max_connections, "http.max_connections", 1, 1_000_000)?,
            d.max_connections,
        ),
        max_connections_per_address: usize_of(
            v.count(
                &h.max_connections_per_address,
                "http.max_connections_per_address",
                1,
                1_000_000,
            )?,
            d.max_connections_per_address,
        ),
    };
    c.body_timeout = v
        .duration(&h.body_timeout, "http.body_timeout")?
        .unwrap_or(c.body_timeout);
    for name in &h.allowed_hosts {
        let n = name.get_ref().trim_end_matches('.').to_ascii_lowercase();
        let plain = !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !plain {
            return v.err(
                name.span(),
                "http.allowed_hosts",
                format!(
                    "`{}` is not a host name (no scheme, port or path)",
                    name.get_ref()
                ),
            );
        }
        c.allowed_hosts.push(n);
    }
    Ok(())
}
