//! JWT bearer tokens (RFC 7519): HS256/384/512 with a shared secret, RS/PS/ES/EdDSA with public
//! keys (PEM) or a local JWKS file (RFC 7517). Signature, `exp` (required), `nbf`, `iss` and `aud`
//! (both required and checked) are validated by the `jsonwebtoken` crate with a bounded leeway;
//! the subject becomes the principal `jwt:<sub>`.
//!
//! Algorithm confusion (a public RSA key used as an HMAC secret, `alg: none`) is ruled out by
//! construction: the token's `alg` must be in the configured list, and a key is only ever tried
//! with algorithms of its own family (RFC 8725 §2.1, §3.1).

use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// Largest token accepted; larger input is refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 8192;
/// Upper bound of the configurable clock-skew leeway.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);
/// Shortest HMAC secret: RFC 7518 §3.2 asks for at least the hash size (256 bits for HS256).
pub const MIN_SECRET_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Hmac,
    Rsa,
    Ec,
    Ed,
}

fn family(alg: Algorithm) -> Family {
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Family::Hmac,
        Algorithm::ES256 | Algorithm::ES384 => Family::Ec,
        Algorithm::EdDSA => Family::Ed,
        _ => Family::Rsa,
    }
}

/// Why a token was refused (for the log and the audit record; the client only gets 401).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("jwt: malformed token")]
    Malformed,
    #[error("jwt: algorithm {0} is not accepted")]
    Algorithm(String),
    #[error("jwt: no configured key matches the token")]
    UnknownKey,
    #[error("jwt: bad signature")]
    Signature,
    #[error("jwt: expired")]
    Expired,
    #[error("jwt: not valid yet (nbf)")]
    NotYetValid,
    #[error("jwt: wrong issuer")]
    Issuer,
    #[error("jwt: wrong audience")]
    Audience,
    #[error("jwt: missing claim `{0}`")]
    MissingClaim(String),
    #[error("jwt: subject is not a valid principal name")]
    Subject,
}

/// A configuration mistake in the JWT settings.
#[derive(Debug, thiserror::Error)]
pub enum JwtConfigError {
    #[error(
        "unknown algorithm `{0}` (expected HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA)"
    )]
    UnknownAlgorithm(String),
    #[error("the HMAC secret is {0} bytes; use at least {MIN_SECRET_LEN} random bytes")]
    ShortSecret(usize),
    #[error("{0} algorithms are accepted but no key of that kind is configured")]
    NoKeyFor(&'static str),
    #[error("public key {name}: not an RSA, EC or Ed25519 public key in PEM form")]
    PublicKey { name: String },
    #[error("JWKS {name}: invalid JSON Web Key Set")]
    Jwks {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("JWKS {name}: key {index} is unusable (only RSA, EC and OKP public keys are accepted)")]
    JwksKey { name: String, index: usize },
    #[error("`issuer` and `audience` are both required")]
    MissingIssuerOrAudience,
    #[error("leeway above the maximum of {}s", MAX_LEEWAY.as_secs())]
    Leeway,
}

/// Key material and rules, as read from the configuration.
#[derive(Debug, Clone, Default)]
pub struct JwtSettings {
    /// Accepted algorithm names (`HS256`, `RS256`, `ES256`, `EdDSA`, ...).
    pub algorithms: Vec<String>,
    /// HMAC secret (HS*).
    pub secret: Option<Vec<u8>>,
    /// Public keys in PEM form: (a name for errors, the PEM bytes).
    pub public_keys: Vec<(String, Vec<u8>)>,
    /// JWKS documents: (a name for errors, the JSON text).
    pub jwks: Vec<(String, String)>,
    pub issuers: Vec<String>,
    pub audiences: Vec<String>,
    pub leeway: Duration,
}

struct Key {
    kid: Option<String>,
    family: Family,
    /// The JWK's own `alg`, when it names one: only that algorithm may use the key.
    only: Option<Algorithm>,
    key: DecodingKey,
}

pub struct JwtVerifier {
    algorithms: Vec<Algorithm>,
    keys: Vec<Key>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: u64,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.algorithms)
            .field("keys", &self.keys.len())
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .finish()
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
}

impl JwtVerifier {
    pub fn new(s: &JwtSettings) -> Result<Self, JwtConfigError> {
        let algorithms = s
            .algorithms
            .iter()
            .map(|a| {
                a.parse()
                    .map_err(|_| JwtConfigError::UnknownAlgorithm(a.clone()))
            })
            .collect::<Result<Vec<Algorithm>, _>>()?;
        if s.issuers.is_empty() || s.audiences.is_empty() {
            return Err(JwtConfigError::MissingIssuerOrAudience);
        }
        if s.leeway > MAX_LEEWAY {
            return Err(JwtConfigError::Leeway);
        }
        let mut keys = Vec::new();
        if let Some(secret) = &s.secret {
            if secret.len() < MIN_SECRET_LEN {
                return Err(JwtConfigError::ShortSecret(secret.len()));
            }
            keys.push(Key {
                kid: None,
                family: Family::Hmac,
                only: None,
                key: DecodingKey::from_secret(secret),
            });
        }
        for (name, pem) in &s.public_keys {
            keys.push(pem_key(name, pem)?);
        }
        for (name, json) in &s.jwks {
            keys.extend(jwks_keys(name, json)?);
        }
        for (fam, label) in [
            (Family::Hmac, "HMAC"),
            (Family::Rsa, "RSA"),
            (Family::Ec, "ECDSA"),
            (Family::Ed, "EdDSA"),
        ] {
            let wanted = algorithms.iter().any(|a| family(*a) == fam);
            if wanted && !keys.iter().any(|k| k.family == fam) {
                return Err(JwtConfigError::NoKeyFor(label));
            }
        }
        Ok(JwtVerifier {
            algorithms,
            keys,
            issuers: s.issuers.clone(),
            audiences: s.audiences.clone(),
            leeway: s.leeway.as_secs(),
        })
    }

    /// Verify a token and return its subject.
    pub fn verify(&self, token: &str) -> Result<String, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        let alg = header.alg;
        if !self.algorithms.contains(&alg) {
            return Err(JwtError::Algorithm(format!("{alg:?}")));
        }
        let candidates: Vec<&Key> = self
            .keys
            .iter()
            .filter(|k| k.family == family(alg) && k.only.is_none_or(|o| o == alg))
            .filter(|k| match (&header.kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                // A token without `kid` may use any key of its family; a key without `kid`
                // (the shared secret, a PEM key) serves any token.
                _ => true,
            })
            .collect();
        if candidates.is_empty() {
            return Err(JwtError::UnknownKey);
        }
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.leeway = self.leeway;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&self.issuers);
        validation.set_audience(&self.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let mut last = JwtError::Signature;
        for k in candidates {
            match jsonwebtoken::decode::<Claims>(token, &k.key, &validation) {
                Ok(data) => {
                    let sub = data
                        .claims
                        .sub
                        .ok_or(JwtError::MissingClaim("sub".into()))?;
                    if !super::keys::valid_principal(&sub) || sub.len() > 120 {
                        return Err(JwtError::Subject);
                    }
                    return Ok(sub);
                }
                Err(e) => {
                    last = map_error(e.kind());
                    // Only a bad signature means "try the next key"; any other failure is about
                    // the claims, which the next key would not change.
                    if last != JwtError::Signature {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }
}

fn map_error(kind: &jsonwebtoken::errors::ErrorKind) -> JwtError {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::InvalidSignature | K::InvalidEcdsaKey | K::InvalidRsaKey(_) | K::Crypto(_) => {
            JwtError::Signature
        }
        K::ExpiredSignature => JwtError::Expired,
        K::ImmatureSignature => JwtError::NotYetValid,
        K::InvalidIssuer => JwtError::Issuer,
        K::InvalidAudience => JwtError::Audience,
        K::MissingRequiredClaim(c) => JwtError::MissingClaim(c.clone()),
        K::InvalidAlgorithm | K::MissingAlgorithm => JwtError::Algorithm("mismatch".into()),
        _ => JwtError::Malformed,
    }
}

/// A PEM public-key parser of the `jsonwebtoken` crate.
type PemParser = fn(&[u8]) -> jsonwebtoken::errors::Result<DecodingKey>;

fn pem_key(name: &str, pem: &[u8]) -> Result<Key, JwtConfigError> {
    let tries: [(Family, PemParser); 3] = [
        (Family::Rsa, DecodingKey::from_rsa_pem),
        (Family::Ec, DecodingKey::from_ec_pem),
        (Family::Ed, DecodingKey::from_ed_pem),
    ];
    for (family, parse) in tries {
        if let Ok(key) = parse(pem) {
            return Ok(Key {
                kid: None,
                family,
                only: None,
                key,
            });
        }
    }
    Err(JwtConfigError::PublicKey {
        name: name.to_string(),
    })
}

fn jwks_keys(name: &str, json: &str) -> Result<Vec<Key>, JwtConfigError> {
    let set: JwkSet = serde_json::from_str(json).map_err(|source| JwtConfigError::Jwks {
        name: name.to_string(),
        source,
    })?;
    let mut out = Vec::new();
    for (index, jwk) in set.keys.iter().enumerate() {
        let bad = || JwtConfigError::JwksKey {
            name: name.to_string(),
            index,
        };
        let family = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Family::Rsa,
            AlgorithmParameters::EllipticCurve(_) => Family::Ec,
            AlgorithmParameters::OctetKeyPair(_) => Family::Ed,
            // A JWKS is public material; a symmetric key does not belong there.
            AlgorithmParameters::OctetKey(_) => return Err(bad()),
        };
        let only = match jwk.common.key_algorithm {
            Some(ka) => Some(
                ka.to_string()
                    .parse::<Algorithm>()
                    .ok()
                    .filter(|a| self::family(*a) == family)
                    .ok_or_else(bad)?,
            ),
            None => None,
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|_| bad())?;
        out.push(Key {
            kid: jwk.common.key_id.clone(),
            family,
            only,
            key,
        });
    }
    Ok(out)
}

/// Does this bearer credential look like a JWT (three base64url parts, a JSON header)?
pub fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    };
    token.starts_with("eyJ")
        && ok(parts.next())
        && ok(parts.next())
        && ok(parts.next())
        && parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn settings() -> JwtSettings {
        JwtSettings {
            algorithms: vec!["HS256".into(), "HS512".into()],
            secret: Some(SECRET.to_vec()),
            issuers: vec!["https://issuer.test".into()],
            audiences: vec!["stockade".into()],
            leeway: Duration::from_secs(5),
            ..JwtSettings::default()
        }
    }

    fn claims(over: serde_json::Value) -> serde_json::Value {
        let mut c = json!({
            "sub": "alice", "iss": "https://issuer.test", "aud": "stockade",
            "exp": now() + 300, "nbf": now() - 10,
        });
        for (k, v) in over.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    fn hs(alg: Algorithm, c: &serde_json::Value, secret: &[u8]) -> String {
        encode(&Header::new(alg), c, &EncodingKey::from_secret(secret)).unwrap()
    }

    #[test]
    fn hmac_tokens_are_accepted_and_claims_are_checked() {
        let v = JwtVerifier::new(&settings()).unwrap();
        let ok = hs(Algorithm::HS256, &claims(json!({})), SECRET);
        assert!(looks_like_jwt(&ok));
        assert_eq!(v.verify(&ok).unwrap(), "alice");
        assert_eq!(
            v.verify(&hs(Algorithm::HS512, &claims(json!({})), SECRET))
                .unwrap(),
            "alice"
        );
        let cases = [
            (json!({"exp": now() - 60}), JwtError::Expired),
            (json!({"nbf": now() + 60}), JwtError::NotYetValid),
            (json!({"iss": "https://evil.test"}), JwtError::Issuer),
            (json!({"aud": "someone-else"}), JwtError::Audience),
            (json!({"exp": null}), JwtError::MissingClaim("exp".into())),
            (json!({"aud": null}), JwtError::MissingClaim("aud".into())),
            (json!({"sub": null}), JwtError::MissingClaim("sub".into())),
            (json!({"sub": "new\nline"}), JwtError::Subject),
        ];
        for (over, want) in cases {
            let t = hs(Algorithm::HS256, &claims(over.clone()), SECRET);
            assert_eq!(v.verify(&t).unwrap_err(), want, "{over}");
        }
        // Within the leeway an expired token still passes; the leeway is bounded.
        let t = hs(Algorithm::HS256, &claims(json!({"exp": now() - 2})), SECRET);
        assert!(v.verify(&t).is_ok());
        let mut s = settings();
        s.leeway = Duration::from_secs(3600);
        assert!(matches!(JwtVerifier::new(&s), Err(JwtConfigError::Leeway)));
    }

    #[test]
    fn wrong_secret_algorithm_and_garbage_are_refused() {
        let v = JwtVerifier::new(&settings()).unwrap();
        let forged = hs(
            Algorithm::HS256,
            &claims(json!({})),
            b"another-secret-another-secret-xx",
        );
        assert_eq!(v.verify(&forged).unwrap_err(), JwtError::Signature);
        let hs384 = hs(Algorithm::HS384, &claims(json!({})), SECRET);
        assert!(matches!(v.verify(&hs384), Err(JwtError::Algorithm(_))));
        // alg none: header {"alg":"none"} with an empty signature.
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&claims(json!({})).to_string())
        );
        assert!(v.verify(&none).is_err());
        // A tampered payload keeps the old signature.
        let mut parts: Vec<String> = forged.split('.').map(String::from).collect();
        parts[1] = b64(&claims(json!({"sub": "root"})).to_string());
        let good = hs(Algorithm::HS256, &claims(json!({})), SECRET);
        parts[2] = good.split('.').nth(2).unwrap().to_string();
        assert_eq!(v.verify(&parts.join(".")).unwrap_err(), JwtError::Signature);
        for junk in [
            "",
            "a.b",
            "a.b.c",
            "eyJ.eyJ.x",
            &"x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert!(v.verify(junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn configuration_is_validated() {
        let mut s = settings();
        s.secret = Some(b"short".to_vec());
        assert!(matches!(
            JwtVerifier::new(&s),
            Err(JwtConfigError::ShortSecret(5))
        ));
        let mut s = settings();
        s.algorithms.push("RS256".into());
        assert!(matches!(
            JwtVerifier::new(&s),
            Err(JwtConfigError::NoKeyFor("RSA"))
        ));
        let mut s = settings();
        s.algorithms = vec!["none".into()];
        assert!(matches!(
            JwtVerifier::new(&s),
            Err(JwtConfigError::UnknownAlgorithm(_))
        ));
        let mut s = settings();
        s.audiences.clear();
        assert!(matches!(
            JwtVerifier::new(&s),
            Err(JwtConfigError::MissingIssuerOrAudience)
        ));
        let mut s = settings();
        s.public_keys = vec![("k.pem".into(), b"not a key".to_vec())];
        assert!(matches!(
            JwtVerifier::new(&s),
            Err(JwtConfigError::PublicKey { .. })
        ));
        let mut s = settings();
        s.jwks = vec![(
            "j.json".into(),
            r#"{"keys":[{"kty":"oct","k":"AAAA"}]}"#.into(),
        )];
        assert!(matches!(
            JwtVerifier::new(&s),
            Err(JwtConfigError::JwksKey { index: 0, .. })
        ));
        // Debug output never shows the secret.
        let dbg = format!("{:?}", JwtVerifier::new(&settings()).unwrap());
        assert!(!dbg.contains("test-secret"), "{dbg}");
    }

    /// An asymmetric key pair from rcgen: (private PKCS#8 PEM, public SPKI PEM, raw public key).
    fn pair(alg: &'static rcgen::SignatureAlgorithm) -> (String, String, Vec<u8>) {
        let kp = rcgen::KeyPair::generate_for(alg).unwrap();
        (
            kp.serialize_pem(),
            kp.public_key_pem(),
            kp.public_key_raw().to_vec(),
        )
    }

    fn asym(alg: &str, pem: Vec<(String, Vec<u8>)>, jwks: Vec<(String, String)>) -> JwtVerifier {
        JwtVerifier::new(&JwtSettings {
            algorithms: vec![alg.into()],
            public_keys: pem,
            jwks,
            issuers: vec!["https://issuer.test".into()],
            audiences: vec!["stockade".into()],
            leeway: Duration::from_secs(5),
            ..JwtSettings::default()
        })
        .unwrap()
    }

    #[test]
    fn ecdsa_and_eddsa_with_pem_public_keys() {
        for (rc, alg, name) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, Algorithm::ES256, "ES256"),
            (&rcgen::PKCS_ECDSA_P384_SHA384, Algorithm::ES384, "ES384"),
            (&rcgen::PKCS_ED25519, Algorithm::EdDSA, "EdDSA"),
        ] {
            let (private, public, _) = pair(rc);
            let (_, other_public, _) = pair(rc);
            let enc = match alg {
                Algorithm::EdDSA => EncodingKey::from_ed_pem(private.as_bytes()).unwrap(),
                _ => EncodingKey::from_ec_pem(private.as_bytes()).unwrap(),
            };
            let token = encode(&Header::new(alg), &claims(json!({})), &enc).unwrap();
            let v = asym(name, vec![("pub.pem".into(), public.into_bytes())], vec![]);
            assert_eq!(v.verify(&token).unwrap(), "alice", "{name}");
            // Signed by another key: refused.
            let v = asym(
                name,
                vec![("pub.pem".into(), other_public.into_bytes())],
                vec![],
            );
            assert_eq!(v.verify(&token).unwrap_err(), JwtError::Signature, "{name}");
        }
    }

    #[test]
    fn rsa_with_a_pem_key_and_no_confusion_with_hmac() {
        let private = include_str!("../../../tests/fixtures/security/jwt-rsa-private.pem");
        let public = include_str!("../../../tests/fixtures/security/jwt-rsa-public.pem");
        let enc = EncodingKey::from_rsa_pem(private.as_bytes()).unwrap();
        for (alg, name) in [(Algorithm::RS256, "RS256"), (Algorithm::PS384, "PS384")] {
            let token = encode(&Header::new(alg), &claims(json!({})), &enc).unwrap();
            let v = asym(
                name,
                vec![("rsa.pem".into(), public.as_bytes().to_vec())],
                vec![],
            );
            assert_eq!(v.verify(&token).unwrap(), "alice");
        }
        // The classic confusion attack: HS256 signed with the public key's PEM as the secret.
        let v = asym(
            "RS256",
            vec![("rsa.pem".into(), public.as_bytes().to_vec())],
            vec![],
        );
        let forged = hs(Algorithm::HS256, &claims(json!({})), public.as_bytes());
        assert!(matches!(v.verify(&forged), Err(JwtError::Algorithm(_))));
    }

    #[test]
    fn jwks_keys_are_chosen_by_kid() {
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let (ec_private, _, ec_raw) = pair(&rcgen::PKCS_ECDSA_P256_SHA256);
        let (ed_private, _, ed_raw) = pair(&rcgen::PKCS_ED25519);
        // ec_raw is the uncompressed point 0x04 || X || Y.
        let jwks = json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec-1", "alg": "ES256",
             "x": b64(&ec_raw[1..33]), "y": b64(&ec_raw[33..65])},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "x": b64(&ed_raw)},
        ]})
        .to_string();
        let v = JwtVerifier::new(&JwtSettings {
            algorithms: vec!["ES256".into(), "EdDSA".into()],
            jwks: vec![("jwks.json".into(), jwks)],
            issuers: vec!["https://issuer.test".into()],
            audiences: vec!["stockade".into()],
            leeway: Duration::from_secs(5),
            ..JwtSettings::default()
        })
        .unwrap();
        let sign = |alg: Algorithm, kid: Option<&str>, enc: &EncodingKey| {
            let mut h = Header::new(alg);
            h.kid = kid.map(String::from);
            encode(&h, &claims(json!({"sub": "svc-7"})), enc).unwrap()
        };
        let ec = EncodingKey::from_ec_pem(ec_private.as_bytes()).unwrap();
        let ed = EncodingKey::from_ed_pem(ed_private.as_bytes()).unwrap();
        assert_eq!(
            v.verify(&sign(Algorithm::ES256, Some("ec-1"), &ec))
                .unwrap(),
            "svc-7"
        );
        assert_eq!(
            v.verify(&sign(Algorithm::EdDSA, Some("ed-1"), &ed))
                .unwrap(),
            "svc-7"
        );
        assert_eq!(
            v.verify(&sign(Algorithm::EdDSA, None, &ed)).unwrap(),
            "svc-7"
        );
        assert_eq!(
            v.verify(&sign(Algorithm::ES256, Some("nope"), &ec))
                .unwrap_err(),
            JwtError::UnknownKey
        );
        // The EdDSA key under the EC key's kid: wrong family, no candidate.
        assert_eq!(
            v.verify(&sign(Algorithm::EdDSA, Some("ec-1"), &ed))
                .unwrap_err(),
            JwtError::UnknownKey
        );
    }
}
