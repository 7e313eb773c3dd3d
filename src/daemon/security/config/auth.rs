//! Validation of `[auth]` (keys, JWT) and `[tls]`: key material is read here, so a bad file
//! stops `--check-config` with the field's position.

use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::wire::{AuthSection, JwtSection, TlsSection};
use super::{Credentials, SecurityConfig, V};
use crate::daemon::security::authn::{Authenticator, Methods};
use crate::daemon::security::jwt::{JwtSettings, JwtVerifier};
use crate::daemon::security::keys::{self, KeyStore};
use crate::daemon::security::tls::{self, ClientAuth, TlsSettings};
use crate::profile::ProfileError;

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

/// `[auth]`. `mtls`: `[tls]` verifies client certificates. A listener kind whose methods are not
/// given requires the credentials that are configured (keys, JWT, client certificates): whoever
/// configures them means them to be required (docs/security-service.md).
pub(super) fn auth(
    v: &V<'_, '_>,
    a: AuthSection,
    c: &mut SecurityConfig,
    mtls: bool,
) -> Result<(), ProfileError> {
    let have_keys = !a.keys.is_empty() || a.keys_file.is_some();
    c.credentials = Credentials {
        api_key: have_keys,
        jwt: a.jwt.is_some(),
        mtls,
    };
    let configured = |mtls: bool| Methods {
        api_key: have_keys,
        jwt: a.jwt.is_some(),
        mtls,
        peer: false,
    };
    let tcp = match &a.tcp {
        Some(_) => methods(v, &a.tcp, "auth.tcp", &["api_key", "jwt", "mtls"])?,
        None => configured(mtls),
    };
    let unix = match &a.unix {
        Some(_) => methods(v, &a.unix, "auth.unix", &["peer", "api_key", "jwt"])?,
        None => configured(false),
    };
    c.methods_given = (a.tcp.is_some(), a.unix.is_some());
    let mut entries = keys::entries(v.src, "auth.keys", a.keys)?;
    c.inline_keys.clone_from(&entries);
    if let Some(f) = &a.keys_file {
        let path = v.path(f, "auth.keys_file")?;
        c.keys_file = Some(path.clone());
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
    c.key_owners = entries
        .iter()
        .map(|e| (e.id.clone(), e.principal.clone(), e.revoked))
        .collect();
    c.auth = Arc::new(Authenticator::new(KeyStore::new(entries), jwt, tcp, unix));
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
        crate::daemon::security::redact::register_literal(&String::from_utf8_lossy(secret));
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

pub(super) fn tls_section(
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
