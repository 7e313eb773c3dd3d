//! API keys: generation, hashing and constant-time verification against stored SHA-256 hashes.
//!
//! A key is `stk_<id>_<secret>`: an 8-hex-digit public id (for logs and the audit trail) and 32
//! random bytes from the OS (`getrandom` through ring's `SystemRandom`), base64url. Only the
//! SHA-256 of the whole key is stored. A fast hash is the right choice here, unlike for passwords:
//! with 256 bits of entropy a preimage search is infeasible whatever the hash costs, while a slow
//! hash (argon2, bcrypt) would spend tens of milliseconds and megabytes of memory per request,
//! which an unauthenticated client could use to exhaust the service (OWASP's password-storage
//! advice is about low-entropy secrets). Verification hashes the presented key and compares it
//! with every stored hash in constant time (`subtle`), without an early exit, so timing reveals
//! neither which entry matched nor how much of a hash did.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use toml::Spanned;

use super::{hex, parse_digest, sha256};
use crate::profile::{ProfileError, SourceFile};

pub const KEY_PREFIX: &str = "stk_";

/// Longest key accepted from a client; longer input is refused before hashing.
pub const MAX_KEY_LEN: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("read random bytes from the operating system")]
    Random,
}

/// A freshly generated key: `key` is shown once to the operator, `sha256` goes to the config.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub id: String,
    pub key: String,
    pub sha256: String,
}

/// Generate a key from the OS random source.
pub fn generate() -> Result<NewKey, KeyError> {
    use ring::rand::SecureRandom;
    let rng = ring::rand::SystemRandom::new();
    let mut id = [0u8; 4];
    let mut secret = [0u8; 32];
    rng.fill(&mut id).map_err(|_| KeyError::Random)?;
    rng.fill(&mut secret).map_err(|_| KeyError::Random)?;
    let id = hex(&id);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let key = format!("{KEY_PREFIX}{id}_{secret}");
    let sha256 = hash(&key);
    Ok(NewKey { id, key, sha256 })
}

/// The stored form of a key: lowercase hex SHA-256 of its bytes.
pub fn hash(key: &str) -> String {
    hex(&sha256(key.as_bytes()))
}

/// The public id embedded in a generated key, if the key has that shape.
pub fn embedded_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()) && !secret.is_empty()).then_some(id)
}

/// One configured key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// Public id: in logs, the audit log and error reports instead of the key.
    pub id: String,
    pub sha256: [u8; 32],
    /// The principal this key authenticates as.
    pub principal: String,
    /// A revoked key is refused (kept in the file so the audit log can name it).
    pub revoked: bool,
}

/// What a presented key turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck<'a> {
    Valid(&'a KeyEntry),
    Revoked(&'a KeyEntry),
    Unknown,
}

#[derive(Debug, Clone, Default)]
pub struct KeyStore {
    entries: Vec<KeyEntry>,
}

impl KeyStore {
    pub fn new(entries: Vec<KeyEntry>) -> Self {
        KeyStore { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Check a presented key: every entry is compared, in constant time, whatever matches.
    pub fn check(&self, presented: &str) -> KeyCheck<'_> {
        if presented.is_empty() || presented.len() > MAX_KEY_LEN {
            return KeyCheck::Unknown;
        }
        let digest = sha256(presented.as_bytes());
        let mut found: Option<&KeyEntry> = None;
        for e in &self.entries {
            let equal: bool = e.sha256.ct_eq(&digest).into();
            if equal && found.is_none() {
                found = Some(e);
            }
        }
        match found {
            Some(e) if e.revoked => KeyCheck::Revoked(e),
            Some(e) => KeyCheck::Valid(e),
            None => KeyCheck::Unknown,
        }
    }
}

/// `[[key]]` in a keys file, or `[[auth.keys]]` in stockade.toml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyWire {
    /// Public id (`stockade key new` prints it); unique.
    pub id: Spanned<String>,
    /// Lowercase hex SHA-256 of the key (`stockade key new` / `stockade key hash`).
    pub sha256: Spanned<String>,
    /// Principal name; default `key:<id>`.
    #[serde(default)]
    pub principal: Option<Spanned<String>>,
    /// Refuse this key. Default false.
    #[serde(default)]
    pub revoked: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    /// The keys.
    #[serde(default)]
    key: Vec<KeyWire>,
}

/// Validate wire entries (ids unique and well-formed, hashes 64 hex digits, principals named).
pub fn entries(
    src: &SourceFile<'_>,
    field: &str,
    wire: Vec<KeyWire>,
) -> Result<Vec<KeyEntry>, ProfileError> {
    let mut out: Vec<KeyEntry> = Vec::with_capacity(wire.len());
    for w in wire {
        let id = w.id.get_ref().clone();
        if id.is_empty() || id.len() > 64 || !id.bytes().all(is_name_byte) {
            let msg = format!("`{field}.id`: `{id}` must be 1-64 letters, digits, `-`, `_`, `.`");
            return Err(src.error(w.id.span(), field, msg, None));
        }
        if out.iter().any(|e| e.id == id) {
            let msg = format!("`{field}.id`: `{id}` is used by two keys");
            return Err(src.error(w.id.span(), field, msg, None));
        }
        let Some(digest) = parse_digest(w.sha256.get_ref()) else {
            let msg = format!(
                "`{field}.sha256`: expected 64 hex digits (the SHA-256 of the key; `stockade key hash` prints it)"
            );
            return Err(src.error(w.sha256.span(), field, msg, None));
        };
        let principal = match &w.principal {
            Some(p) if valid_principal(p.get_ref()) => p.get_ref().clone(),
            Some(p) => {
                let msg = format!(
                    "`{field}.principal`: `{}` must be 1-128 printable ASCII characters without quotes or backslashes",
                    p.get_ref()
                );
                return Err(src.error(p.span(), field, msg, None));
            }
            None => format!("key:{id}"),
        };
        out.push(KeyEntry {
            id,
            sha256: digest,
            principal,
            revoked: w.revoked,
        });
    }
    Ok(out)
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.".contains(&b)
}

/// Principal names appear in logs and config keys: printable ASCII without quotes or
/// backslashes (so they never need escaping), at most 128 bytes.
pub fn valid_principal(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\')
}

/// Read a keys file (`[[key]]` entries, same fields as `[[auth.keys]]`).
pub fn load_file(path: &Path) -> Result<Vec<KeyEntry>, ProfileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
        path: PathBuf::from(path),
        source,
    })?;
    parse_file(&path.display().to_string(), &text)
}

pub fn parse_file(name: &str, text: &str) -> Result<Vec<KeyEntry>, ProfileError> {
    let src = SourceFile {
        name: name.to_string(),
        text,
    };
    let file: KeysFile = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
    entries(&src, "key", file.key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(keys: &[(&NewKey, bool)]) -> KeyStore {
        KeyStore::new(
            keys.iter()
                .map(|(k, revoked)| KeyEntry {
                    id: k.id.clone(),
                    sha256: parse_digest(&k.sha256).unwrap(),
                    principal: format!("p-{}", k.id),
                    revoked: *revoked,
                })
                .collect(),
        )
    }

    #[test]
    fn generated_keys_are_random_well_formed_and_hash_to_their_digest() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a.key, b.key);
        assert_ne!(a.id, b.id);
        assert!(a.key.starts_with("stk_"), "{}", a.key);
        // prefix + 8 hex + '_' + 43 base64url characters (32 bytes, no padding).
        assert_eq!(a.key.len(), 4 + 8 + 1 + 43);
        assert_eq!(embedded_id(&a.key), Some(a.id.as_str()));
        assert_eq!(a.sha256, hash(&a.key));
        assert_eq!(a.sha256.len(), 64);
        assert!(!a.sha256.contains(&a.key[13..]));
    }

    #[test]
    fn valid_revoked_and_unknown_keys() {
        let good = generate().unwrap();
        let revoked = generate().unwrap();
        let s = store(&[(&good, false), (&revoked, true)]);
        match s.check(&good.key) {
            KeyCheck::Valid(e) => assert_eq!(e.id, good.id),
            other => panic!("{other:?}"),
        }
        assert!(matches!(s.check(&revoked.key), KeyCheck::Revoked(e) if e.id == revoked.id));
        // One character off, a prefix, an empty and an oversized key are all unknown.
        let mut wrong = good.key.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(s.check(&wrong), KeyCheck::Unknown);
        assert_eq!(s.check(&good.key[..20]), KeyCheck::Unknown);
        assert_eq!(s.check(""), KeyCheck::Unknown);
        assert_eq!(s.check(&"x".repeat(MAX_KEY_LEN + 1)), KeyCheck::Unknown);
        // Keys not made by `stockade key new` work too (e.g. migrated Judge0 tokens).
        let legacy = "judge0-token-0123456789";
        let s = KeyStore::new(vec![KeyEntry {
            id: "legacy".into(),
            sha256: sha256(legacy.as_bytes()),
            principal: "judge".into(),
            revoked: false,
        }]);
        assert!(matches!(s.check(legacy), KeyCheck::Valid(e) if e.principal == "judge"));
    }

    #[test]
    fn embedded_ids_need_the_exact_shape() {
        assert_eq!(embedded_id("stk_0a1b2c3d_xyz"), Some("0a1b2c3d"));
        assert_eq!(embedded_id("stk_0a1b2c3_xyz"), None);
        assert_eq!(embedded_id("stk_0a1b2c3d_"), None);
        assert_eq!(embedded_id("sk_0a1b2c3d_xyz"), None);
        assert_eq!(embedded_id("stk_0a1b2c3g_xyz"), None);
    }

    #[test]
    fn keys_files_are_strict_and_positioned() {
        let k = generate().unwrap();
        let text = format!(
            "[[key]]\nid = \"{}\"\nsha256 = \"{}\"\nprincipal = \"ci\"\n\n[[key]]\nid = \"old\"\nsha256 = \"{}\"\nrevoked = true\n",
            k.id, k.sha256, k.sha256
        );
        let e = parse_file("keys.toml", &text).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].principal.as_str(), e[0].revoked), ("ci", false));
        assert_eq!((e[1].principal.as_str(), e[1].revoked), ("key:old", true));

        let err = |t: &str| parse_file("keys.toml", t).unwrap_err().to_string();
        let e = err("[[key]]\nid = \"a\"\nsha256 = \"abc\"\n");
        assert!(e.starts_with("keys.toml:3:10:"), "{e}");
        assert!(e.contains("expected 64 hex digits"), "{e}");
        let e = err("[[key]]\nid = \"a\"\nsha265 = \"abc\"\n");
        assert!(e.contains("did you mean `sha256`?"), "{e}");
        let twice = format!(
            "[[key]]\nid = \"a\"\nsha256 = \"{0}\"\n[[key]]\nid = \"a\"\nsha256 = \"{0}\"\n",
            k.sha256
        );
        assert!(err(&twice).contains("used by two keys"));
        let spaced = format!("[[key]]\nid = \"a b\"\nsha256 = \"{}\"\n", k.sha256);
        assert!(err(&spaced).contains("`key.id`"));
        let bad_principal = format!(
            "[[key]]\nid = \"a\"\nsha256 = \"{}\"\nprincipal = \"tab\\there\"\n",
            k.sha256
        );
        assert!(err(&bad_principal).contains("`key.principal`"));
    }
}
