//! The security sections of `stockade.toml` — `[auth]` (with `[[auth.keys]]` and `[auth.jwt]`),
//! `[tls]`, `[principals.<name>]`, `[rate_limit]`, `[audit]`, `[cache]`, `[breaker]`, `[http]`,
//! `[cors]` — as strict wire structs, validated into one `SecurityConfig`. Files the sections
//! name (keys file, JWT secret and keys, TLS certificates) are read during validation, so
//! `stockade serve --check-config` catches a bad one and the error points at the field.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::audit::SinkConfig;
use super::authn::{Authenticator, Methods};
use super::authz::{Grant, Grants};
use super::breaker::BreakerSettings;
use super::cache::CacheSettings;
use super::cors::Cors;
use super::jwt::{JwtSettings, JwtVerifier};
use super::keys::{self, KeyStore, KeyWire};
use super::listener::HttpLimits;
use super::ratelimit::Rate;
use super::tls::{self, ClientAuth, TlsSettings};
use crate::policy::NetworkMode;
use crate::profile::{ProfileError, SourceFile};
use crate::units;

type S<T> = Option<Spanned<T>>;

/// `[auth]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// Methods on TCP listeners: `api_key`, `jwt`, `mtls`. Default none (anonymous).
    tcp: Option<Spanned<Vec<String>>>,
    /// Methods on the Unix socket: `peer`, `api_key`, `jwt`. Default none (file permissions only).
    unix: Option<Spanned<Vec<String>>>,
    /// `/healthz` and `/readyz` without authentication. Default true.
    public_health: Option<bool>,
    /// `/metrics` without authentication. Default false.
    public_metrics: Option<bool>,
    /// Permit a non-loopback TCP address without authentication. Default false.
    allow_unauthenticated_remote: Option<bool>,
    /// A file of `[[key]]` entries (read at start).
    keys_file: S<String>,
    /// Keys inline.
    keys: Vec<KeyWire>,
    /// `[auth.jwt]`
    jwt: Option<JwtSection>,
}

/// `[auth.jwt]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtSection {
    /// Accepted algorithms, e.g. `["RS256"]`.
    algorithms: Option<Spanned<Vec<String>>>,
    /// HMAC secret inline (prefer `secret_file`).
    secret: S<String>,
    /// File holding the HMAC secret (trailing newline ignored).
    secret_file: S<String>,
    /// PEM public keys (RSA, EC, Ed25519).
    public_keys: Vec<Spanned<String>>,
    /// A local JWKS file.
    jwks_file: S<String>,
    /// Required `iss`.
    issuer: S<String>,
    /// Required `aud`.
    audience: S<String>,
    /// Clock skew allowed on `exp`/`nbf`, at most 5m. Default "30s".
    leeway: S<String>,
}

/// `[tls]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    cert: S<String>,
    key: S<String>,
    /// CA bundle for client certificates (enables mTLS).
    client_ca: S<String>,
    /// `required` (default with `client_ca`), `optional` or `none`.
    client_auth: S<String>,
    /// CRLs for client certificates.
    crls: Vec<Spanned<String>>,
}

/// `[principals.<name>]` (`"*"`: everyone not listed).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrincipalSection {
    profiles: Option<Vec<String>>,
    max_wall: S<String>,
    max_cpu: S<String>,
    max_memory: S<String>,
    max_pids: S<i64>,
    max_output: S<String>,
    /// `none` or `loopback`.
    network: S<String>,
    skip_check: Option<bool>,
    rate: S<String>,
    burst: S<i64>,
    max_concurrent: S<i64>,
}

/// `[rate_limit]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSection {
    /// Code-running requests per principal, e.g. "10/s". Default off.
    per_principal: S<String>,
    principal_burst: S<i64>,
    /// All requests per client address. Default off.
    per_address: S<String>,
    address_burst: S<i64>,
    /// Sandboxes at once per principal. Default off.
    max_concurrent_per_principal: S<i64>,
    /// Buckets kept in memory at most. Default 100000.
    max_tracked: S<i64>,
}

/// `[audit]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// `stdout` (default), `file`, `journald` or `off`.
    sink: S<String>,
    path: S<String>,
    max_size: S<String>,
    keep: S<i64>,
    identifier: Option<String>,
    /// Also record /healthz, /readyz and /metrics. Default false.
    health: Option<bool>,
}

/// `[cache]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    enabled: Option<bool>,
    /// Profiles whose results may be cached (opt-in per profile). Default none.
    profiles: Vec<String>,
    /// Requests use the cache only with `Stockade-Cache: use` (`request`, default) or unless
    /// they send `Stockade-Cache: bypass` (`always`).
    mode: S<String>,
    ttl: S<String>,
    max_memory: S<String>,
    max_entry: S<String>,
    /// Share results between principals. Default false.
    shared: Option<bool>,
}

/// `[breaker]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSection {
    failures: S<i64>,
    recovery: S<String>,
    probes: S<i64>,
}

/// `[http]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    header_timeout: S<String>,
    body_timeout: S<String>,
    max_header_size: S<String>,
    max_headers: S<i64>,
    handshake_timeout: S<String>,
    max_connections: S<i64>,
    max_connections_per_address: S<i64>,
}

/// `[cors]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsSection {
    origins: Vec<String>,
    max_age: S<String>,
}

/// The sections as read, for `validate`.
#[derive(Debug, Default)]
pub struct Sections {
    pub auth: AuthSection,
    pub tls: Option<TlsSection>,
    pub principals: BTreeMap<String, PrincipalSection>,
    pub rate_limit: RateLimitSection,
    pub audit: AuditSection,
    pub cache: CacheSection,
    pub breaker: BreakerSection,
    pub http: HttpSection,
    pub cors: CorsSection,
}

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

/// The validated security configuration.
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    pub auth: Arc<Authenticator>,
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
    pub body_timeout: Duration,
    pub cors: Cors,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            auth: Arc::new(Authenticator::default()),
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
            body_timeout: Duration::from_secs(30),
            cors: Cors::default(),
        }
    }
}

impl SecurityConfig {
    /// `check_exposure` for the service's listen addresses.
    pub fn check_listen(&self, listen: &[crate::daemon::config::Listen]) -> Result<(), String> {
        let tcp: Vec<std::net::SocketAddr> = listen
            .iter()
            .filter_map(|l| match l {
                crate::daemon::config::Listen::Tcp(a) => Some(*a),
                crate::daemon::config::Listen::Unix { .. } => None,
            })
            .collect();
        self.check_exposure(&tcp)
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

struct V<'a, 'b> {
    src: &'a SourceFile<'b>,
}

impl V<'_, '_> {
    fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        field: &str,
        msg: String,
    ) -> Result<T, ProfileError> {
        Err(self
            .src
            .error(span, field, format!("`{field}`: {msg}"), None))
    }

    fn duration(&self, v: &S<String>, field: &str) -> Result<Option<Duration>, ProfileError> {
        v.as_ref()
            .map(|v| units::parse_duration(v.get_ref()).or_else(|m| self.err(v.span(), field, m)))
            .transpose()
    }

    fn size(&self, v: &S<String>, field: &str) -> Result<Option<u64>, ProfileError> {
        v.as_ref()
            .map(|v| units::parse_size(v.get_ref()).or_else(|m| self.err(v.span(), field, m)))
            .transpose()
    }

    fn count(
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

    fn path(&self, v: &Spanned<String>, field: &str) -> Result<PathBuf, ProfileError> {
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

    fn read(&self, v: &Spanned<String>, field: &str) -> Result<(PathBuf, Vec<u8>), ProfileError> {
        let p = self.path(v, field)?;
        match std::fs::read(&p) {
            Ok(b) => Ok((p, b)),
            Err(e) => self.err(v.span(), field, format!("cannot read {}: {e}", p.display())),
        }
    }

    fn rate(
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
    auth(&v, s.auth, &mut c)?;
    if let Some(t) = s.tls {
        c.tls = Some(tls_section(&v, t)?);
    }
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

fn methods(
    v: &V<'_, '_>,
    m: &Option<Spanned<Vec<String>>>,
    field: &str,
    allowed: &[&str],
) -> Result<Methods, ProfileError> {
    let Some(m) = m else {
        return Ok(Methods::default());
    };
    if let Some(bad) = m.get_ref().iter().find(|n| !allowed.contains(&n.as_str())) {
        return v.err(
            m.span(),
            field,
            format!(
                "`{bad}` is not a method here (expected {})",
                allowed.join(", ")
            ),
        );
    }
    Methods::parse(m.get_ref()).or_else(|e| v.err(m.span(), field, e))
}

fn auth(v: &V<'_, '_>, a: AuthSection, c: &mut SecurityConfig) -> Result<(), ProfileError> {
    let tcp = methods(v, &a.tcp, "auth.tcp", &["api_key", "jwt", "mtls"])?;
    let unix = methods(v, &a.unix, "auth.unix", &["peer", "api_key", "jwt"])?;
    let mut entries = keys::entries(v.src, "auth.keys", a.keys)?;
    if let Some(f) = &a.keys_file {
        let path = v.path(f, "auth.keys_file")?;
        let more = keys::load_file(&path)?;
        for e in more {
            if entries.iter().any(|x| x.id == e.id) {
                return v.err(
                    f.span(),
                    "auth.keys_file",
                    format!("key id `{}` is also in [[auth.keys]]", e.id),
                );
            }
            entries.push(e);
        }
    }
    let span = a
        .tcp
        .as_ref()
        .or(a.unix.as_ref())
        .map_or(0..0, Spanned::span);
    if (tcp.api_key || unix.api_key) && entries.is_empty() {
        return v.err(
            span,
            "auth",
            "`api_key` is enabled but no key is configured ([[auth.keys]] or keys_file)".into(),
        );
    }
    let jwt = match a.jwt {
        Some(j) => Some(jwt_section(v, j)?),
        None if tcp.jwt || unix.jwt => {
            return v.err(
                span,
                "auth",
                "`jwt` is enabled but [auth.jwt] is missing".into(),
            );
        }
        None => None,
    };
    c.public_health = a.public_health.unwrap_or(true);
    c.public_metrics = a.public_metrics.unwrap_or(false);
    c.allow_unauthenticated_remote = a.allow_unauthenticated_remote.unwrap_or(false);
    c.auth = Arc::new(Authenticator {
        keys: KeyStore::new(entries),
        jwt,
        tcp,
        unix,
    });
    Ok(())
}

fn jwt_section(v: &V<'_, '_>, j: JwtSection) -> Result<JwtVerifier, ProfileError> {
    let field = "auth.jwt";
    let mut s = JwtSettings {
        algorithms: j
            .algorithms
            .as_ref()
            .map(|a| a.get_ref().clone())
            .unwrap_or_default(),
        leeway: v
            .duration(&j.leeway, "auth.jwt.leeway")?
            .unwrap_or(Duration::from_secs(30)),
        ..JwtSettings::default()
    };
    let span = j.algorithms.as_ref().map_or(0..0, Spanned::span);
    if s.algorithms.is_empty() {
        return v.err(
            span,
            "auth.jwt.algorithms",
            "give at least one algorithm, e.g. [\"RS256\"]".into(),
        );
    }
    match (&j.secret, &j.secret_file) {
        (Some(_), Some(f)) => {
            return v.err(
                f.span(),
                "auth.jwt.secret_file",
                "give `secret` or `secret_file`, not both".into(),
            );
        }
        (Some(sec), None) => s.secret = Some(sec.get_ref().as_bytes().to_vec()),
        (None, Some(f)) => {
            let (_, mut bytes) = v.read(f, "auth.jwt.secret_file")?;
            while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                bytes.pop();
            }
            s.secret = Some(bytes);
        }
        (None, None) => {}
    }
    if let Some(secret) = &s.secret {
        // Never let the secret reach a log line.
        super::redact::register_literal(&String::from_utf8_lossy(secret));
    }
    for k in &j.public_keys {
        let (p, bytes) = v.read(k, "auth.jwt.public_keys")?;
        s.public_keys.push((p.display().to_string(), bytes));
    }
    if let Some(f) = &j.jwks_file {
        let (p, bytes) = v.read(f, "auth.jwt.jwks_file")?;
        s.jwks.push((
            p.display().to_string(),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    s.issuers = j.issuer.iter().map(|i| i.get_ref().clone()).collect();
    s.audiences = j.audience.iter().map(|a| a.get_ref().clone()).collect();
    JwtVerifier::new(&s).or_else(|e| v.err(span, field, e.to_string()))
}

fn tls_section(
    v: &V<'_, '_>,
    t: TlsSection,
) -> Result<(TlsSettings, Arc<rustls::ServerConfig>), ProfileError> {
    let (Some(cert), Some(key)) = (&t.cert, &t.key) else {
        return v.err(0..0, "tls", "both `cert` and `key` are required".into());
    };
    let client_auth = match (&t.client_auth, &t.client_ca) {
        (None, None) => ClientAuth::None,
        (None, Some(_)) => ClientAuth::Required,
        (Some(m), _) => match m.get_ref().as_str() {
            "required" => ClientAuth::Required,
            "optional" => ClientAuth::Optional,
            "none" => ClientAuth::None,
            other => {
                return v.err(
                    m.span(),
                    "tls.client_auth",
                    format!("`{other}`: expected required, optional or none"),
                );
            }
        },
    };
    let settings = TlsSettings {
        cert: v.path(cert, "tls.cert")?,
        key: v.path(key, "tls.key")?,
        client_ca: t
            .client_ca
            .as_ref()
            .map(|p| v.path(p, "tls.client_ca"))
            .transpose()?,
        client_auth,
        crls: t
            .crls
            .iter()
            .map(|p| v.path(p, "tls.crls"))
            .collect::<Result<_, _>>()?,
    };
    let config = tls::server_config(&settings).or_else(|e| {
        let chain = std::error::Error::source(&e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        v.err(cert.span(), "tls", format!("{e}{chain}"))
    })?;
    Ok((settings, config))
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parse a document holding only security sections (the service's parser does the same
    /// with its own sections beside them).
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Doc {
        auth: AuthSection,
        tls: Option<TlsSection>,
        principals: BTreeMap<String, PrincipalSection>,
        rate_limit: RateLimitSection,
        audit: AuditSection,
        cache: CacheSection,
        breaker: BreakerSection,
        http: HttpSection,
        cors: CorsSection,
    }

    fn parse(text: &str) -> Result<SecurityConfig, ProfileError> {
        let src = SourceFile {
            name: "stockade.toml".into(),
            text,
        };
        let d: Doc = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
        validate(
            &src,
            Sections {
                auth: d.auth,
                tls: d.tls,
                principals: d.principals,
                rate_limit: d.rate_limit,
                audit: d.audit,
                cache: d.cache,
                breaker: d.breaker,
                http: d.http,
                cors: d.cors,
            },
        )
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn nothing_configured_is_open_on_loopback_only() {
        let c = parse("").unwrap();
        assert!(!c.auth.required(&super::super::authn::Peer::default()));
        assert!(
            c.check_exposure(&["127.0.0.1:2000".parse().unwrap()])
                .is_ok()
        );
        let e = c
            .check_exposure(&["0.0.0.0:2000".parse().unwrap()])
            .unwrap_err();
        assert!(e.contains("without authentication"), "{e}");
        assert_eq!(c.audit, SinkConfig::Stdout);
        assert!(c.cache.is_none() && c.cors.origins.is_empty());
        assert_eq!(c.breaker, BreakerSettings::default());
    }

    #[test]
    fn a_full_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("jwt.secret");
        std::fs::write(&secret, "a-long-enough-hmac-secret-for-hs256-use\n").unwrap();
        let k = keys::generate().unwrap();
        let text = format!(
            r#"
[auth]
tcp = ["api_key", "jwt"]
unix = ["peer"]
public_metrics = true
[[auth.keys]]
id = "{id}"
sha256 = "{hash}"
principal = "ci"
[auth.jwt]
algorithms = ["HS256"]
secret_file = "{secret}"
issuer = "https://login.test"
audience = "stockade"
leeway = "10s"
[principals."*"]
profiles = ["python"]
max_wall = "5s"
[principals.ci]
max_memory = "256MiB"
network = "none"
rate = "2/s"
burst = 4
max_concurrent = 2
[rate_limit]
per_principal = "10/s"
per_address = "100/min"
address_burst = 20
max_concurrent_per_principal = 4
[audit]
sink = "file"
path = "/var/log/stockade/audit.log"
max_size = "10MiB"
keep = 3
[cache]
enabled = true
profiles = ["python"]
mode = "always"
ttl = "1m"
[breaker]
failures = 3
recovery = "5s"
[http]
header_timeout = "5s"
max_headers = 50
[cors]
origins = ["https://app.test"]
"#,
            id = k.id,
            hash = k.sha256,
            secret = secret.display()
        );
        let c = parse(&text).unwrap();
        assert!(c.auth.tcp.api_key && c.auth.tcp.jwt && c.auth.unix.peer);
        assert!(c.public_metrics);
        assert_eq!(c.grants.get("ci").max_memory, Some(256 << 20));
        assert_eq!(c.grants.get("ci").rate.unwrap().burst, 4);
        assert_eq!(c.grants.get("other").max_wall, Some(Duration::from_secs(5)));
        assert_eq!(c.rate.per_address.unwrap().burst, 20);
        assert_eq!(
            c.rate.per_principal.unwrap().burst,
            10,
            "default burst: one second's worth"
        );
        assert_eq!(c.rate.max_concurrent, Some(4));
        assert!(
            matches!(c.audit, SinkConfig::File { keep: 3, max_bytes, .. } if max_bytes == 10 << 20)
        );
        let cache = c.cache.unwrap();
        assert_eq!(
            (cache.mode, cache.settings.ttl),
            (CacheMode::Always, Duration::from_secs(60))
        );
        assert_eq!(c.breaker.failures, 3);
        assert_eq!(c.http.max_headers, 50);
        assert_eq!(c.cors.origins, ["https://app.test"]);
        assert!(
            super::super::redact::redact("x a-long-enough-hmac-secret-for-hs256-use y")
                .contains("[REDACTED]")
        );
    }

    #[test]
    fn mistakes_are_positioned() {
        let e = err("[auth]\ntcp = [\"password\"]\n");
        assert!(e.starts_with("stockade.toml:2:7:"), "{e}");
        assert!(e.contains("`password` is not a method here"), "{e}");
        let e = err("[auth]\ntcp = [\"peer\"]\n");
        assert!(e.contains("not a method here"), "{e}");
        let e = err("[auth]\ntcp = [\"api_key\"]\n");
        assert!(e.contains("no key is configured"), "{e}");
        let e = err("[auth]\ntcp = [\"jwt\"]\n");
        assert!(e.contains("[auth.jwt] is missing"), "{e}");
        let e = err(
            "[auth.jwt]\nalgorithms = [\"HS256\"]\nsecret = \"short\"\nissuer = \"i\"\naudience = \"a\"\n",
        );
        assert!(e.contains("at least 32 random bytes"), "{e}");
        let e = err(
            "[auth.jwt]\nalgorithms = [\"RS256\"]\npublic_keys = [\"/nonexistent/k.pem\"]\nissuer = \"i\"\naudience = \"a\"\n",
        );
        assert!(e.contains("cannot read /nonexistent/k.pem"), "{e}");
        let e = err("[rate_limit]\nper_address = \"10/day\"\n");
        assert!(
            e.contains("rate_limit.per_address") && e.contains("unknown unit"),
            "{e}"
        );
        let e = err("[audit]\nsink = \"file\"\n");
        assert!(e.contains("needs a `path`"), "{e}");
        let e = err("[principals.ci]\nnetwork = \"internet\"\n");
        assert!(e.contains("principals.ci.network"), "{e}");
        let e = err("[tls]\ncert = \"/x\"\n");
        assert!(e.contains("both `cert` and `key`"), "{e}");
        let e = err("[http]\nmax_header_size = \"100\"\n");
        assert!(e.contains("between 1KiB and 1MiB"), "{e}");
        let e = err("[breaker]\nfailurs = 3\n");
        assert!(e.contains("did you mean `failures`?"), "{e}");
        let e = err("[cache]\nenabled = true\nmode = \"sometimes\"\n");
        assert!(e.contains("cache.mode"), "{e}");
    }
}
