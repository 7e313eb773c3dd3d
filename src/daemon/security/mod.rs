//! Service security and operations for `stockade serve`: who is calling (API keys, JWT, mTLS,
//! Unix peer credentials), what they may run, how fast, a record of what ran, a result cache,
//! a circuit breaker on sandbox set-up, and hardened HTTP defaults.
//!
//! Each submodule is self-contained and unit-tested; `layer` wires them into the router and the
//! execute path. docs/security-service.md is the operator's reference.

pub mod audit;
pub mod authn;
pub mod authz;
pub mod breaker;
pub mod browser;
pub mod cache;
pub mod config;
pub mod cors;
pub mod hooks;
pub mod jwt;
pub mod keys;
pub mod layer;
pub mod listener;
pub mod ratelimit;
pub mod redact;
pub mod tls;
pub mod x509;

use std::fmt;

/// How a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    ApiKey,
    Jwt,
    Mtls,
    /// `SO_PEERCRED` on the Unix socket.
    Peer,
    /// No authentication is configured for the listener.
    Anonymous,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::ApiKey => "api_key",
            Method::Jwt => "jwt",
            Method::Mtls => "mtls",
            Method::Peer => "peer",
            Method::Anonymous => "anonymous",
        }
    }
}

/// An authenticated caller. `name` keys grants, rate limits, the cache and the audit log; it
/// never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// `<key's principal>` (default `key:<id>`), `jwt:<sub>`, `cert:<CN>`, `uid:<n>` or
    /// `anonymous`.
    pub name: String,
    pub method: Method,
    /// The API key id (public, printed by `stockade key new`), for the audit log.
    pub key_id: Option<String>,
}

impl Principal {
    pub fn anonymous() -> Self {
        Principal {
            name: "anonymous".into(),
            method: Method::Anonymous,
            key_id: None,
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Lowercase hex of bytes (digests in logs and config files).
pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// SHA-256 of `data` (ring's implementation, the one crypto provider of the service).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Parse 64 hex digits into a digest.
pub fn parse_digest(text: &str) -> Option<[u8; 32]> {
    let t = text.trim();
    if t.len() != 64 || !t.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_round_trip_through_hex() {
        // FIPS 180-2 test vector: SHA-256("abc").
        let d = sha256(b"abc");
        let h = hex(&d);
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(parse_digest(&h), Some(d));
        assert_eq!(parse_digest(&h.to_uppercase()), Some(d));
        assert_eq!(parse_digest(&h[1..]), None);
        assert_eq!(parse_digest(&format!("{}zz", &h[..62])), None);
        assert_eq!(parse_digest("é".repeat(32).as_str()), None);
    }
}
