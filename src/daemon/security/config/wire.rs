//! The security sections of `stockade.toml` one to one: strict serde structs (unknown fields are
//! errors), every field optional. `super::validate` turns them into `SecurityConfig`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::daemon::security::keys::KeyWire;

/// An optional value with its position in the file (for errors).
pub type S<T> = Option<Spanned<T>>;

/// `[auth]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// Methods on TCP listeners: `api_key`, `jwt`, `mtls`. Default none (anonymous).
    pub tcp: Option<Spanned<Vec<String>>>,
    /// Methods on the Unix socket: `peer`, `api_key`, `jwt`. Default none (file permissions only).
    pub unix: Option<Spanned<Vec<String>>>,
    /// `/healthz` and `/readyz` without authentication. Default true.
    pub public_health: Option<bool>,
    /// `/metrics` without authentication. Default false.
    pub public_metrics: Option<bool>,
    /// Permit a non-loopback TCP address without authentication. Default false.
    pub allow_unauthenticated_remote: Option<bool>,
    /// A file of `[[key]]` entries (read at start).
    pub keys_file: S<String>,
    /// Keys inline.
    pub keys: Vec<KeyWire>,
    /// `[auth.jwt]`
    pub jwt: Option<JwtSection>,
}

/// `[auth.jwt]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtSection {
    /// Accepted algorithms, e.g. `["RS256"]`.
    pub algorithms: Option<Spanned<Vec<String>>>,
    /// HMAC secret inline (prefer `secret_file`).
    pub secret: S<String>,
    /// File holding the HMAC secret (trailing newline ignored).
    pub secret_file: S<String>,
    /// PEM public keys (RSA, EC, Ed25519).
    pub public_keys: Vec<Spanned<String>>,
    /// A local JWKS file.
    pub jwks_file: S<String>,
    /// Required `iss`.
    pub issuer: S<String>,
    /// Required `aud`.
    pub audience: S<String>,
    /// Clock skew allowed on `exp`/`nbf`, at most 5m. Default "30s".
    pub leeway: S<String>,
}

/// `[tls]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    pub cert: S<String>,
    pub key: S<String>,
    /// CA bundle for client certificates (enables mTLS).
    pub client_ca: S<String>,
    /// `required` (default with `client_ca`), `optional` or `none`.
    pub client_auth: S<String>,
    /// CRLs for client certificates.
    pub crls: Vec<Spanned<String>>,
}

/// `[principals.<name>]` (`"*"`: everyone not listed).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrincipalSection {
    pub profiles: Option<Vec<String>>,
    pub max_wall: S<String>,
    pub max_cpu: S<String>,
    pub max_memory: S<String>,
    pub max_pids: S<i64>,
    pub max_output: S<String>,
    /// `none` or `loopback`.
    pub network: S<String>,
    pub skip_check: Option<bool>,
    pub rate: S<String>,
    pub burst: S<i64>,
    pub max_concurrent: S<i64>,
}

/// `[rate_limit]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSection {
    /// Code-running requests per principal, e.g. "10/s". Default off.
    pub per_principal: S<String>,
    pub principal_burst: S<i64>,
    /// All requests per client address. Default off.
    pub per_address: S<String>,
    pub address_burst: S<i64>,
    /// Sandboxes at once per principal. Default off.
    pub max_concurrent_per_principal: S<i64>,
    /// Buckets kept in memory at most. Default 100000.
    pub max_tracked: S<i64>,
}

/// `[audit]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// `stdout` (default), `file`, `journald` or `off`.
    pub sink: S<String>,
    pub path: S<String>,
    pub max_size: S<String>,
    pub keep: S<i64>,
    pub identifier: Option<String>,
    /// Also record /healthz, /readyz and /metrics. Default false.
    pub health: Option<bool>,
}

/// `[cache]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    pub enabled: Option<bool>,
    /// Profiles whose results may be cached (opt-in per profile). Default none.
    pub profiles: Vec<String>,
    /// Requests use the cache only with `Stockade-Cache: use` (`request`, default) or unless
    /// they send `Stockade-Cache: bypass` (`always`).
    pub mode: S<String>,
    pub ttl: S<String>,
    pub max_memory: S<String>,
    pub max_entry: S<String>,
    /// Share results between principals. Default false.
    pub shared: Option<bool>,
}

/// `[breaker]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSection {
    pub failures: S<i64>,
    pub recovery: S<String>,
    pub probes: S<i64>,
}

/// `[http]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    pub header_timeout: S<String>,
    pub body_timeout: S<String>,
    pub max_header_size: S<String>,
    pub max_headers: S<i64>,
    pub handshake_timeout: S<String>,
    pub max_connections: S<i64>,
    pub max_connections_per_address: S<i64>,
    /// Names clients on loopback may use in `Host` besides IP literals and `localhost`.
    pub allowed_hosts: Vec<Spanned<String>>,
}

/// `[cors]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsSection {
    pub origins: Vec<String>,
    pub max_age: S<String>,
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
