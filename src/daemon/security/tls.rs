//! TLS for the TCP listeners (rustls with the ring provider: TLS 1.2 and 1.3, rustls' safe
//! defaults), optionally with client certificates verified against a CA bundle (and CRLs) by
//! webpki; the certificate subject becomes the principal (`cert:<CN>`, see `x509`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

/// Whether clients must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// TLS only; clients authenticate otherwise (keys, JWT).
    None,
    /// A certificate is checked when presented; without one, other methods apply.
    Optional,
    /// No certificate from the CA: no handshake.
    Required,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Server certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA bundle (PEM) for client certificates.
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// Certificate revocation lists (PEM) for client certificates.
    pub crls: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("read {what} {}", .path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("{what} {}: no PEM item found", .path.display())]
    Empty { what: &'static str, path: PathBuf },
    #[error("client CA bundle {}: a certificate is not usable as a trust anchor", .path.display())]
    Anchor {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("client certificate verifier")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    #[error("server certificate and key (do they match?)")]
    Config(#[source] rustls::Error),
    #[error("`client_auth` needs a `client_ca` bundle")]
    NoClientCa,
}

fn certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    };
    let list = CertificateDer::pem_file_iter(path)
        .map_err(read)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    if list.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(list)
}

/// The rustls server configuration for the settings (files are read now: a bad file stops the
/// start-up, not the first handshake).
pub fn server_config(s: &TlsSettings) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs("server certificate", &s.cert)?;
    let key = PrivateKeyDer::from_pem_file(&s.key).map_err(|source| TlsError::Read {
        what: "server key",
        path: s.key.clone(),
        source,
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?;
    let builder = match (s.client_auth, &s.client_ca) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => return Err(TlsError::NoClientCa),
        (mode, Some(ca)) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs("client CA bundle", ca)? {
                roots.add(c).map_err(|source| TlsError::Anchor {
                    path: ca.clone(),
                    source,
                })?;
            }
            let mut crls = Vec::new();
            for path in &s.crls {
                let read = |source| TlsError::Read {
                    what: "CRL",
                    path: path.clone(),
                    source,
                };
                for crl in CertificateRevocationListDer::pem_file_iter(path).map_err(read)? {
                    crls.push(crl.map_err(read)?);
                }
            }
            let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .with_crls(crls);
            if mode == ClientAuth::Optional {
                v = v.allow_unauthenticated();
            }
            builder.with_client_cert_verifier(v.build().map_err(TlsError::Verifier)?)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(TlsError::Config)?;
    // HTTP/1.1 only (the service speaks nothing else).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The principal of a connection's verified client certificate, if it presented one.
pub fn client_principal(conn: &rustls::ServerConnection) -> Option<String> {
    let leaf = conn.peer_certificates()?.first()?;
    let principal = super::x509::subject(leaf.as_ref())?.principal();
    if principal.is_none() {
        tracing::warn!(
            "client certificate subject longer than {} bytes as a principal name; not used as an identity",
            super::x509::MAX_PRINCIPAL
        );
    }
    principal
}

#[cfg(test)]
pub(crate) mod testing {
    //! Certificates for TLS tests: a CA, a server certificate for 127.0.0.1/localhost, and
    //! client certificates signed by the CA.

    use std::path::Path;

    use rcgen::{
        BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
        KeyPair, KeyUsagePurpose,
    };

    pub struct Ca {
        pub pem: String,
        cert: Certificate,
        key: KeyPair,
    }

    pub fn ca(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            cert,
            key,
        }
    }

    /// (certificate PEM, key PEM)
    pub fn leaf(ca: &Ca, cn: &str, server: bool) -> (String, String) {
        let sans = if server {
            vec!["localhost".to_string(), "127.0.0.1".to_string()]
        } else {
            Vec::new()
        };
        let mut p = CertificateParams::new(sans).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    pub fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn configurations_build_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca("test CA");
        let (cert, key) = leaf(&ca, "stockade", true);
        let s = TlsSettings {
            cert: write(dir.path(), "server.pem", &cert),
            key: write(dir.path(), "server.key", &key),
            client_ca: Some(write(dir.path(), "ca.pem", &ca.pem)),
            client_auth: ClientAuth::Required,
            crls: Vec::new(),
        };
        let c = server_config(&s).unwrap();
        assert_eq!(c.alpn_protocols, [b"http/1.1".to_vec()]);
        let mut plain = s.clone();
        plain.client_auth = ClientAuth::None;
        plain.client_ca = None;
        server_config(&plain).unwrap();
        let mut no_ca = s.clone();
        no_ca.client_ca = None;
        assert!(matches!(server_config(&no_ca), Err(TlsError::NoClientCa)));
        let mut missing = s.clone();
        missing.cert = dir.path().join("absent.pem");
        let e = server_config(&missing).unwrap_err().to_string();
        assert!(
            e.contains("server certificate") && e.contains("absent.pem"),
            "{e}"
        );
        let mut empty = s.clone();
        empty.client_ca = Some(write(dir.path(), "empty.pem", "nothing here\n"));
        assert!(matches!(server_config(&empty), Err(TlsError::Empty { .. })));
        // A key that does not belong to the certificate.
        let (_, other_key) = leaf(&ca, "other", true);
        let mut mismatch = s.clone();
        mismatch.key = write(dir.path(), "other.key", &other_key);
        assert!(matches!(server_config(&mismatch), Err(TlsError::Config(_))));
    }
}
