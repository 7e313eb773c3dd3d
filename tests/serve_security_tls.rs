//! TLS and mTLS against a spawned `stockade serve`: certificates are generated in the test
//! (rcgen); the client is rustls with the same ring provider. A client certificate from the CA
//! is the principal `cert:<CN>`; one from another CA, a revoked one (CRL) and none at all get no
//! handshake; TLS without client authentication works with API keys.

mod serve_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber, date_time_ymd,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serve_support::Response;

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

fn new_ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A certificate signed by `ca`: (certificate DER, key DER, PEMs).
struct Leaf {
    cert_pem: String,
    key_pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

fn leaf(ca: &Ca, cn: &str, server: bool, serial: u64) -> Leaf {
    let sans = if server {
        vec!["localhost".to_string(), "127.0.0.1".to_string()]
    } else {
        Vec::new()
    };
    let mut p = CertificateParams::new(sans).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.serial_number = Some(SerialNumber::from(serial));
    p.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().to_vec(),
        key_der: key.serialize_der(),
    }
}

fn crl(ca: &Ca, revoked_serial: u64) -> String {
    let params = CertificateRevocationListParams {
        this_update: date_time_ymd(2024, 1, 1),
        next_update: date_time_ymd(2099, 1, 1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: SerialNumber::from(revoked_serial),
            revocation_time: date_time_ymd(2024, 1, 1),
            reason_code: Some(RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params.signed_by(&ca.cert, &ca.key).unwrap().pem().unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `stockade serve` on a free port with a TLS listener (the shared helper checks readiness over
/// plain HTTP, so this one waits for the port instead).
struct TlsServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, config: &str) -> TlsServer {
    let cfg = write(dir, "stockade.toml", config);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let log = dir.join("serve.log");
    let child = Command::new(serve_support::bin())
        .args(["--log", "info", "serve", "--config"])
        .arg(&cfg)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut s = TlsServer { child, port, log };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "not listening: {}",
            std::fs::read_to_string(&s.log).unwrap_or_default()
        );
        if let Ok(Some(st)) = s.child.try_wait() {
            panic!(
                "serve exited {st}: {}",
                std::fs::read_to_string(&s.log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    s
}

fn client(ca_der: &[u8], cert: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca_der.to_vec())).unwrap();
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    Arc::new(match cert {
        Some(l) => b
            .with_client_auth_cert(
                vec![CertificateDer::from(l.cert_der.clone())],
                PrivateKeyDer::try_from(l.key_der.clone()).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    })
}

/// One HTTPS request; `Err` when the TLS handshake or the exchange fails.
fn https(
    port: u16,
    config: Arc<rustls::ClientConfig>,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    let conn = rustls::ClientConnection::new(config, ServerName::try_from("localhost").unwrap())
        .map_err(|e| e.to_string())?;
    let sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(&serve_support::raw_request("GET", path, headers, b""))
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // Servers may close without close_notify after `connection: close`.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    Response::parse(&raw).map_err(|e| e.to_string())
}

#[test]
fn mutual_tls_principals_wrong_ca_revoked_and_missing_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = new_ca("stockade test CA");
    let other_ca = new_ca("someone else's CA");
    let server = leaf(&ca, "stockade", true, 1);
    let bot = leaf(&ca, "build bot", false, 2);
    let revoked = leaf(&ca, "stolen laptop", false, 3);
    let stranger = leaf(&other_ca, "build bot", false, 2);
    let audit = d.join("audit.log");
    let config = format!(
        "[auth]\ntcp = [\"mtls\"]\n[tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\ncrls = [\"{}\"]\n[audit]\nsink = \"file\"\npath = \"{}\"\n",
        write(d, "server.pem", &server.cert_pem).display(),
        write(d, "server.key", &server.key_pem).display(),
        write(d, "ca.pem", &ca.cert.pem()).display(),
        write(d, "ca.crl", &crl(&ca, 3)).display(),
        audit.display()
    );
    let s = start(d, &config);
    let ca_der = ca.cert.der().to_vec();
    let r = https(s.port, client(&ca_der, Some(&bot)), "/v1/profiles", &[]).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.header("x-request-id").unwrap().to_string();
    let line = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["request_id"] == id.as_str())
        .unwrap();
    assert_eq!(
        (line["principal"].as_str(), line["auth"].as_str()),
        (Some("cert:build bot"), Some("mtls"))
    );

    // Same CN, other CA: no handshake. Revoked by the CRL: none either. No certificate: none.
    for (cert, alert) in [
        (Some(&stranger), "UnknownCA"),
        (Some(&revoked), "CertificateRevoked"),
        (None, "CertificateRequired"),
    ] {
        let e = https(s.port, client(&ca_der, cert), "/v1/profiles", &[]).unwrap_err();
        assert!(e.contains(alert), "expected {alert}: {e}");
    }
    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(&serve_support::raw_request("GET", "/healthz", &[], b""))
        .unwrap();
    let mut raw = Vec::new();
    let _ = plain.read_to_end(&mut raw);
    assert!(
        !raw.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    // The service still answers after the refused handshakes.
    assert_eq!(
        https(s.port, client(&ca_der, Some(&bot)), "/healthz", &[])
            .unwrap()
            .status,
        200
    );
}

#[test]
fn tls_without_client_certificates_carries_api_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = new_ca("stockade test CA");
    let server = leaf(&ca, "stockade", true, 1);
    let out = Command::new(serve_support::bin())
        .args(["key", "new", "--json", "--principal", "tls-client"])
        .output()
        .unwrap();
    let k: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let config = format!(
        "[auth]\ntcp = [\"api_key\"]\n[[auth.keys]]\nid = \"{}\"\nsha256 = \"{}\"\nprincipal = \"tls-client\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n[audit]\nsink = \"off\"\n",
        k["id"].as_str().unwrap(),
        k["sha256"].as_str().unwrap(),
        write(d, "server.pem", &server.cert_pem).display(),
        write(d, "server.key", &server.key_pem).display(),
    );
    let s = start(d, &config);
    let cfg = client(ca.cert.der(), None);
    let r = https(
        s.port,
        Arc::clone(&cfg),
        "/v1/profiles",
        &[("x-api-key", k["key"].as_str().unwrap())],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let r = https(s.port, cfg, "/v1/profiles", &[]).unwrap();
    assert_eq!(r.status, 401);
    // A client that does not trust the server's CA refuses the connection.
    let other = new_ca("not the server's CA");
    assert!(https(s.port, client(other.cert.der(), None), "/healthz", &[]).is_err());
    let log = std::fs::read_to_string(&s.log).unwrap();
    assert!(!log.contains(k["key"].as_str().unwrap()));
}
