//! Authentication of one request: the credential headers real clients send (`Authorization:
//! Bearer …`, a raw `Authorization: <key>` as Piston clients send it, `X-API-Key`, Judge0's
//! `X-Auth-Token`), the verified client certificate of an mTLS connection, and the peer uid of
//! the Unix socket (`SO_PEERCRED`, unix(7)). Which methods count is configured per listener kind.
//!
//! An explicit credential wins over the connection's identity, and a wrong one is an error (no
//! falling back to the connection's identity). Every failure is one undifferentiated 401 for the
//! client; the reason (never the credential) goes to the log and the audit record.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use axum::http::HeaderMap;

use super::jwt::{JwtError, JwtVerifier, looks_like_jwt};
use super::keys::{KeyCheck, KeyStore};
use super::{Method, Principal};

/// The network a client address stands for in per-address limits: an IPv4 address itself (also
/// when it arrives IPv4-mapped), and for IPv6 its /64, the smallest prefix a site is given
/// (RFC 6177): one host can take any of 2^64 addresses of its own, so counting single IPv6
/// addresses would let it walk around every per-address limit.
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

/// Who is on the other end of the connection (set by the listener, per connection).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    /// TCP client address.
    pub addr: Option<SocketAddr>,
    /// Unix socket peer uid (`SO_PEERCRED`).
    pub uid: Option<u32>,
    /// Principal from a client certificate that the TLS layer verified.
    pub cert_principal: Option<String>,
    pub tls: bool,
}

impl Peer {
    pub fn unix(&self) -> bool {
        self.addr.is_none()
    }

    /// The key for per-address rate limits: the IPv4 address or IPv6 /64 (not the port, see
    /// `client_network`), or the uid on the socket.
    pub fn address_key(&self) -> String {
        match (self.addr, self.uid) {
            (Some(a), _) => match client_network(a.ip()) {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("{v6}/64"),
            },
            (None, Some(uid)) => format!("unix:uid={uid}"),
            (None, None) => "unix".into(),
        }
    }

    /// For the audit record.
    pub fn client(&self) -> String {
        match self.addr {
            Some(a) => a.to_string(),
            None => "unix".into(),
        }
    }
}

/// Methods accepted on one kind of listener; none at all means anonymous access.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Methods {
    pub api_key: bool,
    pub jwt: bool,
    pub mtls: bool,
    pub peer: bool,
}

impl Methods {
    pub fn anonymous(&self) -> bool {
        !(self.api_key || self.jwt || self.mtls || self.peer)
    }

    pub fn parse(names: &[String]) -> Result<Methods, String> {
        let mut m = Methods::default();
        for n in names {
            match n.as_str() {
                "api_key" => m.api_key = true,
                "jwt" => m.jwt = true,
                "mtls" => m.mtls = true,
                "peer" => m.peer = true,
                other => {
                    return Err(format!(
                        "unknown authentication method `{other}` (expected api_key, jwt, mtls or peer)"
                    ));
                }
            }
        }
        Ok(m)
    }
}

/// Why authentication failed (log and audit only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("no credential")]
    Missing,
    #[error("malformed or ambiguous credential header")]
    Malformed,
    #[error("unknown api key")]
    UnknownKey,
    #[error("revoked api key {0}")]
    RevokedKey(String),
    #[error("{0}")]
    Jwt(JwtError),
    #[error("credential of a method this listener does not accept")]
    MethodNotAccepted,
}

/// A credential taken from the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential<'a> {
    Bearer(&'a str),
    Key(&'a str),
}

fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, AuthFailure> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthFailure::Malformed);
    }
    let v = first.to_str().map_err(|_| AuthFailure::Malformed)?.trim();
    if v.is_empty() {
        return Err(AuthFailure::Malformed);
    }
    Ok(Some(v))
}

/// The request's credential: `Authorization` first, then `X-API-Key`, then `X-Auth-Token`.
fn credential(headers: &HeaderMap) -> Result<Option<Credential<'_>>, AuthFailure> {
    if let Some(v) = single(headers, "authorization")? {
        return match v.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => {
                let t = rest.trim();
                if t.is_empty() || t.contains(' ') {
                    Err(AuthFailure::Malformed)
                } else {
                    Ok(Some(Credential::Bearer(t)))
                }
            }
            // Basic, Digest, ...: not ours.
            Some(_) => Err(AuthFailure::Malformed),
            None if v.eq_ignore_ascii_case("bearer") => Err(AuthFailure::Malformed),
            // Piston clients send the key raw.
            None => Ok(Some(Credential::Key(v))),
        };
    }
    for name in ["x-api-key", "x-auth-token"] {
        if let Some(v) = single(headers, name)? {
            return Ok(Some(Credential::Key(v)));
        }
    }
    Ok(None)
}

#[derive(Debug, Default)]
pub struct Authenticator {
    /// Replaced as a whole when the keys file is reloaded (SIGHUP).
    keys: RwLock<Arc<KeyStore>>,
    pub jwt: Option<JwtVerifier>,
    pub tcp: Methods,
    pub unix: Methods,
}

impl Authenticator {
    pub fn new(keys: KeyStore, jwt: Option<JwtVerifier>, tcp: Methods, unix: Methods) -> Self {
        Authenticator {
            keys: RwLock::new(Arc::new(keys)),
            jwt,
            tcp,
            unix,
        }
    }

    /// Swap in a new key set (requests already past authentication are not affected).
    pub fn replace_keys(&self, keys: KeyStore) {
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
    }

    fn key_store(&self) -> Arc<KeyStore> {
        Arc::clone(
            &self
                .keys
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn methods(&self, peer: &Peer) -> Methods {
        if peer.unix() { self.unix } else { self.tcp }
    }

    /// Whether this listener kind authenticates at all.
    pub fn required(&self, peer: &Peer) -> bool {
        !self.methods(peer).anonymous()
    }

    pub fn authenticate(&self, peer: &Peer, headers: &HeaderMap) -> Result<Principal, AuthFailure> {
        let m = self.methods(peer);
        if m.anonymous() {
            return Ok(Principal::anonymous());
        }
        match credential(headers)? {
            Some(Credential::Bearer(t)) if looks_like_jwt(t) && m.jwt => self.jwt(t),
            Some(Credential::Bearer(k) | Credential::Key(k)) if m.api_key => self.key(k),
            Some(_) => Err(AuthFailure::MethodNotAccepted),
            None => {
                if let (true, Some(p)) = (m.mtls, &peer.cert_principal) {
                    return Ok(Principal {
                        name: p.clone(),
                        method: Method::Mtls,
                        key_id: None,
                    });
                }
                if let (true, Some(uid)) = (m.peer, peer.uid) {
                    return Ok(Principal {
                        name: format!("uid:{uid}"),
                        method: Method::Peer,
                        key_id: None,
                    });
                }
                Err(AuthFailure::Missing)
            }
        }
    }

    fn key(&self, key: &str) -> Result<Principal, AuthFailure> {
        let store = self.key_store();
        match store.check(key) {
            KeyCheck::Valid(e) => Ok(Principal {
                name: e.principal.clone(),
                method: Method::ApiKey,
                key_id: Some(e.id.clone()),
            }),
            KeyCheck::Revoked(e) => Err(AuthFailure::RevokedKey(e.id.clone())),
            KeyCheck::Unknown => Err(AuthFailure::UnknownKey),
        }
    }

    fn jwt(&self, token: &str) -> Result<Principal, AuthFailure> {
        let v = self.jwt.as_ref().ok_or(AuthFailure::MethodNotAccepted)?;
        let sub = v.verify(token).map_err(AuthFailure::Jwt)?;
        Ok(Principal {
            name: format!("jwt:{sub}"),
            method: Method::Jwt,
            key_id: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::HeaderValue;

    use super::super::jwt::JwtSettings;
    use super::super::keys::{self, KeyEntry};
    use super::*;

    const SECRET: &[u8] = b"an-hmac-secret-of-at-least-32-bytes!!";

    #[test]
    fn per_address_limits_count_an_ipv6_64_as_one_client() {
        let key = |a: &str| {
            Peer {
                addr: Some(a.parse().unwrap()),
                ..Peer::default()
            }
            .address_key()
        };
        let a = key("[2001:db8:1:2:aaaa::1]:5000");
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(a, key("[2001:db8:1:2:ffff:ffff:ffff:ffff]:6000"));
        assert_ne!(a, key("[2001:db8:1:3::1]:5000"));
        assert_eq!(key("[::ffff:192.0.2.7]:1"), "192.0.2.7");
        assert_eq!(key("192.0.2.7:2"), "192.0.2.7");
    }

    fn auth() -> (Authenticator, keys::NewKey, keys::NewKey) {
        let good = keys::generate().unwrap();
        let revoked = keys::generate().unwrap();
        let entry = |k: &keys::NewKey, principal: &str, revoked: bool| KeyEntry {
            id: k.id.clone(),
            sha256: super::super::parse_digest(&k.sha256).unwrap(),
            principal: principal.into(),
            revoked,
        };
        let jwt = JwtVerifier::new(&JwtSettings {
            algorithms: vec!["HS256".into()],
            secret: Some(SECRET.to_vec()),
            issuers: vec!["iss".into()],
            audiences: vec!["aud".into()],
            leeway: Duration::from_secs(1),
            ..JwtSettings::default()
        })
        .unwrap();
        let a = Authenticator::new(
            KeyStore::new(vec![
                entry(&good, "ci", false),
                entry(&revoked, "old", true),
            ]),
            Some(jwt),
            Methods::parse(&["api_key".into(), "jwt".into(), "mtls".into()]).unwrap(),
            Methods::parse(&["peer".into(), "api_key".into()]).unwrap(),
        );
        (a, good, revoked)
    }

    fn tcp() -> Peer {
        Peer {
            addr: Some("127.0.0.1:5000".parse().unwrap()),
            ..Peer::default()
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn token(sub: &str) -> String {
        let claims = serde_json::json!({
            "sub": sub, "iss": "iss", "aud": "aud",
            "exp": jsonwebtoken::get_current_timestamp() + 60,
        });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    #[test]
    fn every_key_header_form_is_accepted() {
        let (a, good, _) = auth();
        let forms = [
            ("authorization", format!("Bearer {}", good.key)),
            ("authorization", format!("bearer  {}", good.key)),
            ("authorization", good.key.clone()),
            ("x-api-key", good.key.clone()),
            ("x-auth-token", good.key.clone()),
        ];
        for (name, value) in forms {
            let p = a.authenticate(&tcp(), &headers(&[(name, &value)])).unwrap();
            assert_eq!(
                (p.name.as_str(), p.method),
                ("ci", Method::ApiKey),
                "{name}"
            );
            assert_eq!(p.key_id.as_deref(), Some(good.id.as_str()));
        }
    }

    #[test]
    fn bad_revoked_missing_and_ambiguous_credentials_fail() {
        let (a, good, revoked) = auth();
        let fail = |h: &[(&str, &str)]| a.authenticate(&tcp(), &headers(h)).unwrap_err();
        assert_eq!(fail(&[]), AuthFailure::Missing);
        assert_eq!(
            fail(&[("x-api-key", "stk_00000000_nope")]),
            AuthFailure::UnknownKey
        );
        assert_eq!(
            fail(&[("authorization", &revoked.key)]),
            AuthFailure::RevokedKey(revoked.id.clone())
        );
        assert_eq!(
            fail(&[("authorization", "Basic dXNlcjpwdw==")]),
            AuthFailure::Malformed
        );
        assert_eq!(
            fail(&[("authorization", "Bearer ")]),
            AuthFailure::Malformed
        );
        assert_eq!(
            fail(&[("authorization", &good.key), ("authorization", &good.key)]),
            AuthFailure::Malformed
        );
        // A wrong header credential does not fall back to the certificate.
        let mut peer = tcp();
        peer.cert_principal = Some("cert:bot".into());
        let e = a
            .authenticate(&peer, &headers(&[("x-api-key", "wrong")]))
            .unwrap_err();
        assert_eq!(e, AuthFailure::UnknownKey);
        // The failure's text never carries the credential.
        assert!(!format!("{:?}", fail(&[("x-api-key", "s3cr3t-value")])).contains("s3cr3t"));
    }

    #[test]
    fn jwt_bearer_tokens() {
        let (a, _, _) = auth();
        let t = token("alice");
        let p = a
            .authenticate(
                &tcp(),
                &headers(&[("authorization", &format!("Bearer {t}"))]),
            )
            .unwrap();
        assert_eq!((p.name.as_str(), p.method), ("jwt:alice", Method::Jwt));
        let mut bad = t.clone();
        bad.pop();
        let e = a
            .authenticate(
                &tcp(),
                &headers(&[("authorization", &format!("Bearer {bad}"))]),
            )
            .unwrap_err();
        assert!(matches!(e, AuthFailure::Jwt(_)), "{e:?}");
        // A JWT on the Unix socket, which does not accept JWTs: checked as a key, unknown.
        let unix = Peer {
            uid: Some(1000),
            ..Peer::default()
        };
        let e = a
            .authenticate(
                &unix,
                &headers(&[("authorization", &format!("Bearer {t}"))]),
            )
            .unwrap_err();
        assert_eq!(e, AuthFailure::UnknownKey);
    }

    #[test]
    fn replaced_keys_take_effect_for_the_next_request() {
        let (a, good, _) = auth();
        let h = headers(&[("x-api-key", &good.key)]);
        assert!(a.authenticate(&tcp(), &h).is_ok());
        a.replace_keys(KeyStore::default());
        assert_eq!(
            a.authenticate(&tcp(), &h).unwrap_err(),
            AuthFailure::UnknownKey
        );
    }

    #[test]
    fn connection_identities() {
        let (a, _, _) = auth();
        let mut peer = tcp();
        peer.cert_principal = Some("cert:build bot".into());
        peer.tls = true;
        let p = a.authenticate(&peer, &HeaderMap::new()).unwrap();
        assert_eq!(
            (p.name.as_str(), p.method),
            ("cert:build bot", Method::Mtls)
        );
        let unix = Peer {
            uid: Some(1000),
            ..Peer::default()
        };
        let p = a.authenticate(&unix, &HeaderMap::new()).unwrap();
        assert_eq!((p.name.as_str(), p.method), ("uid:1000", Method::Peer));
        assert_eq!(unix.address_key(), "unix:uid=1000");
        assert_eq!(tcp().address_key(), "127.0.0.1");
        // No methods configured: anonymous.
        let open = Authenticator::default();
        assert!(!open.required(&tcp()));
        assert_eq!(
            open.authenticate(&tcp(), &HeaderMap::new()).unwrap(),
            Principal::anonymous()
        );
        assert!(Methods::parse(&["password".into()]).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Arbitrary credential headers (any bytes a header may hold) never panic and never
        /// authenticate.
        #[test]
        fn arbitrary_credential_headers_are_refused_without_panic(
            name in proptest::sample::select(vec!["authorization", "x-api-key", "x-auth-token"]),
            value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            bearer in proptest::prelude::any::<bool>(),
        ) {
            let (a, _, _) = auth();
            let mut bytes = if bearer { b"Bearer ".to_vec() } else { Vec::new() };
            bytes.extend_from_slice(&value);
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                let mut h = HeaderMap::new();
                h.insert(name, v);
                proptest::prop_assert!(a.authenticate(&tcp(), &h).is_err());
            }
        }
    }
}
