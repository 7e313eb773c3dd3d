//! Tests of the security sections.

use serde::Deserialize;

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

const KEY: &str = "[[auth.keys]]\nid = \"0a1b2c3d\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\nprincipal = \"ci\"\n";

#[test]
fn configured_credentials_are_the_default_methods() {
    // Issue 11 item 8: keys and grants without `[auth] tcp` used to serve everyone anonymously.
    let c = parse(&format!("{KEY}[principals.ci]\nprofiles = [\"python\"]\n")).unwrap();
    assert!(c.auth.tcp.api_key && !c.auth.tcp.jwt && !c.auth.tcp.mtls);
    assert!(c.auth.unix.api_key && !c.auth.unix.peer);
    assert!(c.check_required(true, true).is_ok());
    let text = c.describe(&[crate::daemon::config::Listen::Tcp(
        "127.0.0.1:2000".parse().unwrap(),
    )]);
    assert!(
        text.contains("listener tcp:127.0.0.1:2000: api_key (default: the configured credentials)"),
        "{text}"
    );
    assert!(text.contains("principal ci: profiles python"), "{text}");
    assert!(
        text.contains("everyone else (other principals, anonymous callers): every profile"),
        "{text}"
    );
    assert!(text.contains("api key 0a1b2c3d: principal ci"), "{text}");
    // Explicit methods stay as written.
    let c = parse(&format!(
        "[auth]\ntcp = [\"api_key\"]\nunix = [\"peer\"]\n{KEY}"
    ))
    .unwrap();
    assert!(c.auth.unix.peer && !c.auth.unix.api_key);
}

#[test]
fn a_listener_that_ignores_configured_credentials_is_refused() {
    let c = parse(&format!("[auth]\ntcp = []\n{KEY}")).unwrap();
    let e = c.check_required(true, false).unwrap_err();
    assert!(
        e.contains("[[auth.keys]]/keys_file configured, but `[auth] tcp` lists no method"),
        "{e}"
    );
    // Only the listener kinds in use matter.
    assert!(c.check_required(false, true).is_ok());
    // Grants for principals nobody can become restrict nothing.
    let c = parse("[principals.ci]\nprofiles = [\"python\"]\n").unwrap();
    let e = c.check_required(false, true).unwrap_err();
    assert!(e.contains("[principals.ci] configured"), "{e}");
    assert!(e.contains("`[auth] unix` is not set"), "{e}");
    let c =
        parse("[auth]\nunix = [\"peer\"]\n[principals.\"uid:1000\"]\nprofiles = [\"python\"]\n")
            .unwrap();
    assert!(c.check_required(false, true).is_ok());
    // Principals reachable through one listener: another may stay anonymous (it gets `*`).
    assert!(c.check_required(true, true).is_ok());
    assert!(
        c.check_required(true, false).is_err(),
        "nobody can be uid:1000"
    );
    // A service-wide grant for everyone (`*`) needs no authentication.
    let c = parse("[principals.\"*\"]\nprofiles = [\"python\"]\n").unwrap();
    assert!(c.check_required(true, true).is_ok());
}
