//! Service security over real HTTP against a spawned `stockade serve`: every authentication
//! method accepted and refused, authorization refusals, rate-limit headers and recovery, the audit
//! log (complete lines, no secret in any log), the result cache (hits, single-flight, isolation
//! between principals), the circuit breaker (opened by a profile whose mount source disappears,
//! closed again once it is back), request fuzzing and a bounded loopback load test.

mod serve_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use serve_support::{Response, Server, eventually};

const JWT_SECRET: &str = "planted-jwt-hmac-secret-0123456789abcdef";

struct Key {
    key: String,
    id: String,
    sha256: String,
}

/// A key from the CLI, as an operator would make one.
fn new_key(principal: &str) -> Key {
    let out = std::process::Command::new(serve_support::bin())
        .args(["key", "new", "--json", "--principal", principal])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    Key {
        key: v["key"].as_str().unwrap().into(),
        id: v["id"].as_str().unwrap().into(),
        sha256: v["sha256"].as_str().unwrap().into(),
    }
}

fn key_entry(k: &Key, principal: &str, revoked: bool) -> String {
    format!(
        "[[auth.keys]]\nid = \"{}\"\nsha256 = \"{}\"\nprincipal = \"{principal}\"\nrevoked = {revoked}\n",
        k.id, k.sha256
    )
}

/// A config file and an audit log path in a fresh directory.
struct Conf {
    dir: tempfile::TempDir,
}

impl Conf {
    fn new() -> Conf {
        Conf {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn audit(&self) -> PathBuf {
        self.path("audit.log")
    }

    /// Write `stockade.toml` with a file audit sink plus `body`.
    fn write(&self, body: &str) -> String {
        let text = format!(
            "[audit]\nsink = \"file\"\npath = \"{}\"\n\n{body}",
            self.audit().display()
        );
        let p = self.path("stockade.toml");
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    fn audit_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.audit())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// The audit line of a request id (written when the request finished).
    fn audit_of(&self, id: &str) -> Value {
        let mut found = None;
        eventually(Duration::from_secs(5), || {
            found = self
                .audit_lines()
                .into_iter()
                .find(|l| l["request_id"] == id);
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no audit line for {id}"))
    }
}

fn request_id(r: &Response) -> String {
    r.header("x-request-id").unwrap().to_string()
}

fn execute(s: &Server, auth: &[(&str, &str)], body: &Value) -> Response {
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(auth);
    s.request(
        "POST",
        "/v1/execute",
        &h,
        &serde_json::to_vec(body).unwrap(),
    )
}

fn jwt(claims: &Value, alg: jsonwebtoken::Algorithm, key: &jsonwebtoken::EncodingKey) -> String {
    jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), claims, key).unwrap()
}

fn claims(over: &Value) -> Value {
    let now = jsonwebtoken::get_current_timestamp();
    let mut c =
        json!({"sub": "alice", "iss": "https://login.test", "aud": "stockade", "exp": now + 300});
    for (k, v) in over.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/security")
        .join(name)
}

#[test]
fn every_auth_method_is_accepted_and_bad_credentials_are_refused() {
    let conf = Conf::new();
    let good = new_key("ci");
    let revoked = new_key("old");
    std::fs::write(conf.path("jwt.secret"), format!("{JWT_SECRET}\n")).unwrap();
    let cfg = conf.write(&format!(
        r#"[auth]
tcp = ["api_key", "jwt"]
{good}{revoked}
[auth.jwt]
algorithms = ["HS256", "RS256"]
secret_file = "{secret}"
public_keys = ["{rsa}"]
issuer = "https://login.test"
audience = "stockade"
leeway = "5s"
"#,
        good = key_entry(&good, "ci", false),
        revoked = key_entry(&revoked, "old", true),
        secret = conf.path("jwt.secret").display(),
        rsa = fixture("jwt-rsa-public.pem").display(),
    ));
    let s = Server::start(&["--config", &cfg]);

    // No credential: 401 with no detail.
    let r = s.get("/v1/profiles");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"code": "unauthorized", "message": "authentication required"})
    );
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"stockade\"")
    );
    // Piston clients get Piston's shape.
    let r = s.get("/api/v2/runtimes");
    assert_eq!(
        (r.status, r.json()),
        (401, json!({"message": "authentication required"}))
    );

    // The key in each header form real clients use.
    let bearer = format!("Bearer {}", good.key);
    for (name, value) in [
        ("authorization", bearer.as_str()),
        ("authorization", good.key.as_str()),
        ("x-api-key", good.key.as_str()),
        ("x-auth-token", good.key.as_str()),
    ] {
        let r = s.request("GET", "/v1/profiles", &[(name, value)], b"");
        assert_eq!(r.status, 200, "{name}");
        let line = conf.audit_of(&request_id(&r));
        assert_eq!(line["principal"], "ci");
        assert_eq!(line["auth"], "api_key");
        assert_eq!(line["key_id"], good.id.as_str());
    }
    // Revoked and unknown keys.
    let r = s.request("GET", "/v1/profiles", &[("x-api-key", &revoked.key)], b"");
    assert_eq!(r.status, 401);
    let line = conf.audit_of(&request_id(&r));
    assert_eq!(
        line["rejection"],
        format!("unauthorized: revoked api key {}", revoked.id)
    );
    let r = s.request(
        "GET",
        "/v1/profiles",
        &[("x-api-key", "stk_00000000_nope")],
        b"",
    );
    assert_eq!(r.status, 401);

    // JWT: HS256 with the shared secret, RS256 with the public key; then the refusals.
    let hs = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes());
    let rsa = jsonwebtoken::EncodingKey::from_rsa_pem(
        &std::fs::read(fixture("jwt-rsa-private.pem")).unwrap(),
    )
    .unwrap();
    let ok = |t: &str| {
        s.request(
            "GET",
            "/v1/profiles",
            &[("authorization", &format!("Bearer {t}"))],
            b"",
        )
    };
    let r = ok(&jwt(
        &claims(&json!({})),
        jsonwebtoken::Algorithm::HS256,
        &hs,
    ));
    assert_eq!(r.status, 200);
    assert_eq!(conf.audit_of(&request_id(&r))["principal"], "jwt:alice");
    let r = ok(&jwt(
        &claims(&json!({"sub": "svc"})),
        jsonwebtoken::Algorithm::RS256,
        &rsa,
    ));
    assert_eq!(r.status, 200);
    assert_eq!(conf.audit_of(&request_id(&r))["principal"], "jwt:svc");
    let now = jsonwebtoken::get_current_timestamp();
    let wrong_key = jsonwebtoken::EncodingKey::from_secret(b"not-the-configured-secret-at-all!!");
    let cases = [
        (
            jwt(
                &claims(&json!({"exp": now - 60})),
                jsonwebtoken::Algorithm::HS256,
                &hs,
            ),
            "jwt: expired",
        ),
        (
            jwt(
                &claims(&json!({"aud": "elsewhere"})),
                jsonwebtoken::Algorithm::HS256,
                &hs,
            ),
            "jwt: wrong audience",
        ),
        (
            jwt(
                &claims(&json!({"iss": "https://evil.test"})),
                jsonwebtoken::Algorithm::HS256,
                &hs,
            ),
            "jwt: wrong issuer",
        ),
        (
            jwt(
                &claims(&json!({"nbf": now + 120})),
                jsonwebtoken::Algorithm::HS256,
                &hs,
            ),
            "jwt: not valid yet (nbf)",
        ),
        (
            jwt(
                &claims(&json!({})),
                jsonwebtoken::Algorithm::HS256,
                &wrong_key,
            ),
            "jwt: bad signature",
        ),
    ];
    for (token, reason) in cases {
        let r = ok(&token);
        assert_eq!(r.status, 401, "{reason}");
        assert_eq!(r.json()["message"], "authentication required");
        let line = conf.audit_of(&request_id(&r));
        assert_eq!(line["rejection"], format!("unauthorized: {reason}"));
    }

    // Health is public by default, metrics are not.
    assert_eq!(s.get("/healthz").status, 200);
    assert_eq!(s.get("/metrics").status, 401);
    let r = s.request("GET", "/metrics", &[("x-api-key", &good.key)], b"");
    assert!(
        r.text().contains("stockade_auth_failures_total"),
        "{}",
        r.text()
    );
}

#[test]
fn principals_are_refused_what_they_were_not_granted() {
    let conf = Conf::new();
    let limited = new_key("limited");
    let trusted = new_key("trusted");
    let cfg = conf.write(&format!(
        r#"[auth]
tcp = ["api_key"]
{}{}
[principals.limited]
profiles = ["python"]
max_wall = "2s"
max_memory = "128MiB"
network = "none"
[principals.trusted]
skip_check = true
"#,
        key_entry(&limited, "limited", false),
        key_entry(&trusted, "trusted", false)
    ));
    let s = Server::start(&["--config", &cfg]);
    let lim = [("x-api-key", limited.key.as_str())];
    let r = execute(&s, &lim, &json!({"profile": "sh", "code": "echo hi"}));
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json(),
        json!({"code": "forbidden", "message": "principal `limited` may not use profile `sh`"})
    );
    assert_eq!(
        conf.audit_of(&request_id(&r))["rejection"],
        "forbidden: principal `limited` may not use profile `sh`"
    );
    let r = execute(
        &s,
        &lim,
        &json!({"profile": "python", "code": "print(1)", "limits": {"wall_ms": 5000}}),
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["message"],
        "`limits.wall_ms` 5000 exceeds the maximum of 2000 for principal `limited`"
    );
    let r = execute(
        &s,
        &lim,
        &json!({"profile": "python", "code": "print(1)", "limits": {"memory_bytes": 1u64 << 30}}),
    );
    assert_eq!(r.status, 403);
    // Within the grant: runs, with the profile's limits capped at the grant.
    let r = execute(&s, &lim, &json!({"profile": "python", "code": "print(1)"}));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["limits"]["wall"], 2000);
    assert_eq!(v["limits"]["memory"], 128 << 20);
    // Piston: the same refusal in Piston's shape, with 403 kept.
    let body = json!({"language": "bash", "version": "*", "files": [{"content": "echo hi"}]});
    let r = s.request(
        "POST",
        "/api/v2/execute",
        &[("content-type", "application/json"), lim[0]],
        &serde_json::to_vec(&body).unwrap(),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"message": "principal `limited` may not use profile `bash`"})
    );
    // Lowering the pre-flight check: refused unless granted.
    let off = json!({"profile": "python", "code": "import subprocess\nprint(2)", "check": "off"});
    let r = execute(&s, &lim, &off);
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (403, json!("check_required"))
    );
    let r = execute(&s, &[("x-api-key", &trusted.key)], &off);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.json().get("policy").is_none(),
        "the check was skipped: {}",
        r.text()
    );
}

#[test]
fn rate_limits_answer_429_with_headers_and_recover() {
    let conf = Conf::new();
    let a = new_key("a");
    let b = new_key("b");
    let cfg = conf.write(&format!(
        r#"[auth]
tcp = ["api_key"]
{}{}
[rate_limit]
per_principal = "0.5/s"
principal_burst = 2
max_concurrent_per_principal = 1
"#,
        key_entry(&a, "a", false),
        key_entry(&b, "b", false)
    ));
    let s = Server::start(&["--config", &cfg]);
    let run = json!({"profile": "python", "code": "print(1)"});
    let ka = [("x-api-key", a.key.as_str())];
    let first = execute(&s, &ka, &run);
    assert_eq!(first.status, 200);
    assert_eq!(first.header("ratelimit-limit"), Some("2"));
    assert_eq!(first.header("ratelimit-remaining"), Some("1"));
    // A request the handler refuses still took its token (the bucket is taken first), and it
    // answers fast, so the third request comes well within the 2 s a token takes to return.
    let second = execute(&s, &ka, &json!({"profile": 5}));
    assert_eq!(second.status, 400);
    assert_eq!(second.header("ratelimit-remaining"), Some("0"));
    let refused = execute(&s, &ka, &run);
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(refused.json()["code"], "rate_limited");
    assert_eq!(refused.header("ratelimit-remaining"), Some("0"));
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert!(
        refused
            .header("ratelimit-reset")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(
        conf.audit_of(&request_id(&refused))["rejection"],
        "rate_limited: rate limit exceeded; retry later"
    );
    // Another principal is not affected; reads are not rate-limited per principal.
    assert_eq!(execute(&s, &[("x-api-key", &b.key)], &run).status, 200);
    assert_eq!(s.request("GET", "/v1/profiles", &ka, b"").status, 200);
    // After Retry-After the principal is served again.
    std::thread::sleep(Duration::from_secs(retry) + Duration::from_millis(100));
    assert_eq!(execute(&s, &ka, &run).status, 200);

    // One sandbox at a time per principal: a second run while one streams gets 429.
    std::thread::sleep(Duration::from_secs(2));
    let slow = json!({"profile": "python", "code": "import time\ntime.sleep(1.5)\nprint('done')"});
    let body = serde_json::to_vec(&slow).unwrap();
    let mut stream = serve_support::Streamed::open(
        &s,
        "/v1/execute",
        &[
            ("x-api-key", &b.key),
            ("accept", "application/x-ndjson"),
            ("content-type", "application/json"),
        ],
        &body,
    );
    assert_eq!(stream.status, 200);
    let busy = execute(&s, &[("x-api-key", &b.key)], &run);
    assert_eq!(busy.status, 429, "{}", busy.text());
    assert_eq!(busy.json()["code"], "too_many_runs");
    assert!(busy.header("retry-after").is_some());
    while stream.next_chunk().is_some() {}
    assert!(eventually(Duration::from_secs(10), || execute(
        &s,
        &[("x-api-key", &b.key)],
        &run
    )
    .status
        == 200));
}

/// Secrets planted in headers, the request's environment, its code and stdin, and the JWT
/// secret of the configuration: none may appear in the service log or the audit log.
#[test]
fn audit_lines_are_complete_and_no_secret_reaches_any_log() {
    let conf = Conf::new();
    let k = new_key("auditor");
    let cfg = conf.write(&format!(
        r#"[auth]
tcp = ["api_key", "jwt"]
{}
[auth.jwt]
algorithms = ["HS256"]
secret = "{JWT_SECRET}"
issuer = "https://login.test"
audience = "stockade"
"#,
        key_entry(&k, "auditor", false)
    ));
    let s = Server::start_env(
        &["--config", &cfg],
        &[("STOCKADE_PLANTED", "planted-server-env-secret")],
    );
    let code = "import subprocess\nprint('planted-code-secret-4471')";
    let env_secret = "planted-env-secret-9931";
    let stdin_secret = "planted-stdin-secret-2208";
    let r = execute(
        &s,
        &[("authorization", &format!("Bearer {}", k.key))],
        &json!({"profile": "python", "code": code, "env": {"API_TOKEN": env_secret}, "stdin": stdin_secret}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "ok", "{}\n{}", r.text(), s.log_text());
    let line = conf.audit_of(&request_id(&r));
    let digest = ring::digest::digest(&ring::digest::SHA256, code.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(line["code_sha256"], hex.as_str());
    assert_eq!(line["code_bytes"], code.len());
    for field in ["time", "request_id", "client", "wall_ms", "cpu_ms"] {
        assert!(!line[field].is_null(), "{field} missing: {line}");
    }
    // The measurements are the verdict's (memory is null where the host cannot measure it).
    let v = r.json();
    assert_eq!(line["wall_ms"], v["wall_ms"]);
    assert_eq!(line["cpu_ms"], v["cpu_ms"]["total_ms"]);
    assert!(line.get("memory_peak_bytes").is_some(), "{line}");
    assert_eq!(line["memory_peak_bytes"], v["memory_peak_bytes"]);
    assert_eq!(
        (line["principal"].as_str(), line["profile"].as_str()),
        (Some("auditor"), Some("python"))
    );
    assert_eq!(
        (line["verdict"].as_str(), line["exit_code"].as_i64()),
        (Some("ok"), Some(0))
    );
    assert_eq!(
        (
            line["method"].as_str(),
            line["path"].as_str(),
            line["status"].as_u64()
        ),
        (Some("POST"), Some("/v1/execute"), Some(200))
    );
    assert_eq!(line["findings"][0]["rule"], "module-subprocess");
    assert!(line["client"].as_str().unwrap().starts_with("127.0.0.1:"));

    // More planted secrets: a wrong key, a forged token, a key in a query-like path, a body
    // that the parser refuses (its error message would echo the value).
    let forged = jwt(
        &claims(&json!({})),
        jsonwebtoken::Algorithm::HS256,
        &jsonwebtoken::EncodingKey::from_secret(b"planted-forged-signing-key-000000000"),
    );
    let wrong = "stk_deadbeef_plantedWrongKeySecretxxxxxxxxxxxxxxxxxxxxxxxx";
    assert_eq!(
        s.request("GET", "/v1/profiles", &[("x-api-key", wrong)], b"")
            .status,
        401
    );
    assert_eq!(
        s.request(
            "GET",
            "/v1/profiles",
            &[("authorization", &format!("Bearer {forged}"))],
            b""
        )
        .status,
        401
    );
    assert_eq!(
        s.request(
            "GET",
            "/v1/profiles",
            &[("x-auth-token", "planted-judge0-token")],
            b""
        )
        .status,
        401
    );
    let bad = br#"{"profile":"python","code":"x","env":"planted-body-secret-5150"}"#;
    let r = s.request(
        "POST",
        "/v1/execute",
        &[("x-api-key", &k.key), ("content-type", "application/json")],
        bad,
    );
    assert_eq!(r.status, 400);
    assert_eq!(conf.audit_of(&request_id(&r))["rejection"], "invalid_body");
    let valid_jwt = jwt(
        &claims(&json!({})),
        jsonwebtoken::Algorithm::HS256,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    );
    assert_eq!(
        s.request(
            "GET",
            "/v1/profiles",
            &[("authorization", &format!("Bearer {valid_jwt}"))],
            b""
        )
        .status,
        200
    );

    let logs = format!(
        "{}\n{}",
        s.log_text(),
        std::fs::read_to_string(conf.audit()).unwrap()
    );
    assert!(
        logs.contains("authentication failed"),
        "the refusals were logged: {logs}"
    );
    for secret in [
        k.key.as_str(),
        &k.key[13..],
        wrong,
        &forged,
        &valid_jwt,
        "planted-judge0-token",
        JWT_SECRET,
        env_secret,
        stdin_secret,
        "planted-code-secret-4471",
        "planted-body-secret-5150",
        "planted-server-env-secret",
    ] {
        assert!(
            !logs.contains(secret),
            "secret {secret:?} found in a log:\n{logs}"
        );
    }
}

#[test]
fn cache_hits_single_flight_and_isolation_between_principals() {
    let conf = Conf::new();
    let a = new_key("a");
    let b = new_key("b");
    let cfg = conf.write(&format!(
        r#"[auth]
tcp = ["api_key"]
{}{}
[cache]
enabled = true
profiles = ["python"]
ttl = "60s"
"#,
        key_entry(&a, "a", false),
        key_entry(&b, "b", false)
    ));
    let s = Server::start(&["--config", &cfg]);
    let run = json!({"profile": "python", "code": "import random\nprint(random.random())"});
    let ka = [("x-api-key", a.key.as_str()), ("stockade-cache", "use")];
    let out = |r: &Response| r.json()["stdout"]["data"].as_str().unwrap().to_string();
    let first = execute(&s, &ka, &run);
    assert_eq!(
        first.header("cache-status"),
        Some("stockade; fwd=miss; stored")
    );
    let again = execute(&s, &ka, &run);
    assert!(
        again
            .header("cache-status")
            .unwrap()
            .starts_with("stockade; hit; ttl="),
        "{:?}",
        again.headers
    );
    assert_eq!(out(&again), out(&first), "a hit returns the stored result");
    assert_eq!(conf.audit_of(&request_id(&again))["cache"], "hit");
    assert_eq!(conf.audit_of(&request_id(&again))["verdict"], "ok");
    // Another principal never sees a's result.
    let other = execute(
        &s,
        &[("x-api-key", &b.key), ("stockade-cache", "use")],
        &run,
    );
    assert_eq!(
        other.header("cache-status"),
        Some("stockade; fwd=miss; stored")
    );
    assert_ne!(out(&other), out(&first));
    // Without opting in (mode = request), the cache is not consulted.
    let fresh = execute(&s, &[("x-api-key", &a.key)], &run);
    assert!(fresh.header("cache-status").is_none());
    assert_ne!(out(&fresh), out(&first));
    // A different input is a different entry.
    let other_code =
        json!({"profile": "python", "code": "import random\nprint(random.random(), 2)"});
    assert_eq!(
        execute(&s, &ka, &other_code).header("cache-status"),
        Some("stockade; fwd=miss; stored")
    );

    // Identical requests in flight share one execution.
    let slow = json!({"profile": "python", "code": "import random, time\ntime.sleep(1)\nprint(random.random())"});
    let port = s.port;
    let key = a.key.clone();
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let (slow, key) = (slow.clone(), key.clone());
            std::thread::spawn(move || {
                let body = serde_json::to_vec(&slow).unwrap();
                let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                use std::io::{Read, Write};
                let req = serve_support::raw_request(
                    "POST",
                    "/v1/execute",
                    &[
                        ("x-api-key", &key),
                        ("stockade-cache", "use"),
                        ("content-type", "application/json"),
                    ],
                    &body,
                );
                stream.write_all(&req).unwrap();
                let mut raw = Vec::new();
                stream.read_to_end(&mut raw).unwrap();
                Response::parse(&raw).unwrap()
            })
        })
        .collect();
    let answers: Vec<Response> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let outs: Vec<String> = answers.iter().map(out).collect();
    assert!(outs.iter().all(|o| *o == outs[0]), "{outs:?}");
    let statuses: Vec<&str> = answers
        .iter()
        .map(|r| r.header("cache-status").unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| s.contains("fwd=miss")).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().any(|s| s.contains("coalesced")),
        "{statuses:?}"
    );
}

#[test]
fn the_breaker_opens_on_setup_failures_and_recovers() {
    let conf = Conf::new();
    let data = conf.path("data");
    std::fs::create_dir(&data).unwrap();
    let profiles = conf.path("profiles");
    std::fs::create_dir(&profiles).unwrap();
    std::fs::write(
        profiles.join("flaky.toml"),
        format!(
            "description = \"python with a bind mount that the test removes\"\nextends = \"python\"\n[[rootfs.mounts]]\nsource = \"{}\"\ntarget = \"/data\"\n",
            data.display()
        ),
    )
    .unwrap();
    let cfg = conf.write("[breaker]\nfailures = 2\nrecovery = \"2s\"\n");
    let s = Server::start(&[
        "--config",
        &cfg,
        "--profile-dir",
        &profiles.display().to_string(),
    ]);
    let run = json!({"profile": "flaky", "code": "print('up')"});
    assert_eq!(execute(&s, &[], &run).json()["status"], "ok");
    // The fault: the mount source disappears, so sandbox set-up fails.
    let moved = conf.path("data.away");
    std::fs::rename(&data, &moved).unwrap();
    for _ in 0..2 {
        let r = execute(&s, &[], &run);
        assert_eq!(r.json()["status"], "setup_failed", "{}", r.text());
    }
    // User code failing does not count; set-up failing twice opened the circuit.
    let r = execute(&s, &[], &run);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["code"], "sandbox_unavailable");
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    let ready = s.get("/readyz");
    assert_eq!(
        (ready.status, ready.json()["reason"].clone()),
        (503, json!("sandbox_unavailable"))
    );
    assert_eq!(
        s.metric("stockade_breaker_state{state=\"open\"}"),
        Some(1.0)
    );
    // Repaired: after the recovery timeout a probe goes through and closes the circuit.
    std::fs::rename(&moved, &data).unwrap();
    assert!(eventually(Duration::from_secs(5), || s
        .get("/readyz")
        .status
        == 200));
    let r = execute(&s, &[], &run);
    assert_eq!((r.status, r.json()["status"].clone()), (200, json!("ok")));
    assert_eq!(
        s.metric("stockade_breaker_state{state=\"closed\"}"),
        Some(1.0)
    );
    let log = s.log_text();
    for transition in [
        "circuit breaker open",
        "circuit breaker half-open",
        "circuit breaker closed",
    ] {
        assert!(log.contains(transition), "{transition} not logged:\n{log}");
    }
    // Payload failures never open it.
    for _ in 0..3 {
        let r = execute(
            &s,
            &[],
            &json!({"profile": "flaky", "code": "raise SystemExit(3)"}),
        );
        assert_eq!(r.json()["status"], "exit_nonzero");
    }
    assert_eq!(s.get("/readyz").status, 200);
}

#[test]
fn unix_socket_peers_are_principals_and_slow_bodies_time_out() {
    let conf = Conf::new();
    let sock = conf.path("api.sock");
    let cfg = conf.write("[auth]\nunix = [\"peer\"]\n[http]\nbody_timeout = \"1s\"\n");
    let s = Server::start(&[
        "--config",
        &cfg,
        "--listen",
        &format!("unix:{}", sock.display()),
    ]);
    let r = serve_support::unix_request(&sock, "GET", "/v1/profiles", b"");
    assert_eq!(r.status, 200);
    let uid = nix::unistd::getuid().as_raw();
    let line = conf.audit_of(&request_id(&r));
    assert_eq!(line["principal"], format!("uid:{uid}"));
    assert_eq!(
        (line["auth"].as_str(), line["client"].as_str()),
        (Some("peer"), Some("unix"))
    );
    // A body announced but never sent: 408 after the body timeout, not a stuck connection.
    use std::io::{Read, Write};
    let mut c = s.connect().unwrap();
    c.write_all(b"POST /v1/execute HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"pro").unwrap();
    let started = Instant::now();
    let mut raw = Vec::new();
    let _ = c.read_to_end(&mut raw);
    let r = Response::parse(&raw).unwrap();
    assert_eq!(r.status, 408);
    assert_eq!(r.json()["code"], "request_timeout");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Random requests (methods, paths, headers, bodies) never crash the service or produce a 5xx
/// other than the documented 503s.
#[test]
fn fuzzed_requests_never_panic_or_fail_with_5xx() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let conf = Conf::new();
    let k = new_key("fuzz");
    let cfg = conf.write(&format!("[auth]\ntcp = [\"api_key\", \"jwt\"]\n{}\n[auth.jwt]\nalgorithms = [\"HS256\"]\nsecret = \"{JWT_SECRET}\"\nissuer = \"i\"\naudience = \"a\"\n", key_entry(&k, "fuzz", false)));
    let s = Server::start(&["--config", &cfg]);
    let paths = prop::sample::select(vec![
        "/v1/execute",
        "/v1/check",
        "/api/v2/execute",
        "/api/v2/piston/execute",
        "/v1/profiles",
        "/v1/profiles/python",
        "/metrics",
        "/readyz",
        "/nope",
        "/api/v2/packages",
    ]);
    let methods = prop::sample::select(vec!["GET", "POST", "DELETE", "PUT", "OPTIONS"]);
    let auth_values = prop_oneof![
        Just(String::new()),
        Just(k.key.clone()),
        Just(format!("Bearer {}", k.key)),
        "[ -~]{0,80}",
        "Bearer eyJ[A-Za-z0-9_.-]{0,120}",
    ];
    let bodies = prop_oneof![
        Just(b"{\"profile\":\"python\",\"code\":\"print(1)\"}".to_vec()),
        Just(
            b"{\"language\":\"python\",\"version\":\"*\",\"files\":[{\"content\":\"print(1)\"}]}"
                .to_vec()
        ),
        proptest::collection::vec(any::<u8>(), 0..300),
        "\\{\"[a-z_]{1,10}\":[ -~]{0,60}\\}".prop_map(String::into_bytes),
    ];
    let cts = prop::sample::select(vec![
        "application/json",
        "text/plain",
        "",
        "multipart/form-data",
        "application/x-www-form-urlencoded",
    ]);
    let mut runner = TestRunner::new(Config {
        cases: 120,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(methods, paths, auth_values, bodies, cts),
            |(m, p, auth, body, ct)| {
                let mut h: Vec<(&str, &str)> = Vec::new();
                if !auth.is_empty() {
                    h.push(("authorization", auth.as_str()));
                }
                if !ct.is_empty() {
                    h.push(("content-type", ct));
                }
                let r = s
                    .try_request(m, p, &h, &body)
                    .map_err(|e| TestCaseError::fail(format!("{m} {p}: {e}")))?;
                // DELETE /api/v2/packages is Piston's documented 500 (nothing is uninstalled).
                let documented =
                    r.status == 503 || (m == "DELETE" && p.starts_with("/api/v2/packages"));
                prop_assert!(
                    r.status < 500 || documented,
                    "{m} {p} -> {}: {}",
                    r.status,
                    r.text()
                );
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(s.get("/healthz").status, 200, "still serving");
    let log = s.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

/// Loopback load: a well-behaved principal, an abusive one and anonymous junk at once. The
/// abuser is throttled (429), the others are served; no 5xx except documented 503s.
#[test]
fn bounded_load_throttles_the_abuser_without_hurting_others() {
    let conf = Conf::new();
    let good = new_key("good");
    let abuser = new_key("abuser");
    let cfg = conf.write(&format!(
        "[auth]\ntcp = [\"api_key\"]\n{}{}\n[principals.abuser]\nrate = \"2/s\"\nburst = 2\n[principals.good]\nrate = \"100/s\"\nburst = 100\n",
        key_entry(&good, "good", false),
        key_entry(&abuser, "abuser", false)
    ));
    let s = Server::start(&[
        "--config",
        &cfg,
        "--max-concurrent",
        "4",
        "--queue-size",
        "64",
    ]);
    let port = s.port;
    let started = Instant::now();
    let worker = |key: String, n: usize| {
        std::thread::spawn(move || {
            let mut statuses = Vec::new();
            for _ in 0..n {
                let body = br#"{"profile":"python","code":"print(1)"}"#;
                let req = serve_support::raw_request(
                    "POST",
                    "/v1/execute",
                    &[("x-api-key", &key), ("content-type", "application/json")],
                    body,
                );
                use std::io::{Read, Write};
                let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                c.write_all(&req).unwrap();
                let mut raw = Vec::new();
                c.read_to_end(&mut raw).unwrap();
                statuses.push(Response::parse(&raw).unwrap().status);
            }
            statuses
        })
    };
    let good_threads: Vec<_> = (0..2).map(|_| worker(good.key.clone(), 12)).collect();
    let abuse_threads: Vec<_> = (0..4).map(|_| worker(abuser.key.clone(), 15)).collect();
    let junk = worker("stk_00000000_junk".into(), 30);
    let good_statuses: Vec<u16> = good_threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let abuse_statuses: Vec<u16> = abuse_threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let junk_statuses = junk.join().unwrap();
    let elapsed = started.elapsed();
    let all: Vec<u16> = good_statuses
        .iter()
        .chain(&abuse_statuses)
        .chain(&junk_statuses)
        .copied()
        .collect();
    assert!(all.iter().all(|s| *s < 500 || *s == 503), "{all:?}");
    assert!(
        good_statuses.iter().all(|s| *s == 200),
        "the good principal is served: {good_statuses:?}"
    );
    assert!(junk_statuses.iter().all(|s| *s == 401));
    // At 2/s with a burst of 2 the abuser gets at most 2 + 2 per second of the test through.
    let throttled = abuse_statuses.iter().filter(|s| **s == 429).count();
    let allowed_at_most = 3.0 + 2.0 * elapsed.as_secs_f64();
    assert!(
        throttled >= 20 && (60 - throttled) as f64 <= allowed_at_most,
        "the abuser is throttled: {abuse_statuses:?} in {elapsed:?}"
    );
    eprintln!(
        "load: {} requests in {:.1}s; good 200s {}, abuser 200/429 {}/{}, junk 401s {}",
        all.len(),
        elapsed.as_secs_f64(),
        good_statuses.len(),
        abuse_statuses.iter().filter(|s| **s == 200).count(),
        throttled,
        junk_statuses.len()
    );
}

#[test]
fn guessing_keys_is_throttled_per_address() {
    let conf = Conf::new();
    let k = new_key("someone");
    let cfg = conf.write(&format!(
        "[auth]\ntcp = [\"api_key\"]\n{}\n[rate_limit]\nper_address = \"1/min\"\naddress_burst = 3\n",
        key_entry(&k, "someone", false)
    ));
    let s = Server::start(&["--config", &cfg]);
    let statuses: Vec<u16> = (0..5)
        .map(|i| {
            let guess = format!("stk_00000000_guess{i}");
            s.request("GET", "/v1/profiles", &[("x-api-key", &guess)], b"")
                .status
        })
        .collect();
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    // Even the right key waits now: the bucket belongs to the address.
    let r = s.request("GET", "/v1/profiles", &[("x-api-key", &k.key)], b"");
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() > 1);
    // Health checks are not counted.
    assert_eq!(s.get("/healthz").status, 200);
}

#[test]
fn an_unauthenticated_address_beyond_loopback_is_refused_at_start() {
    let conf = Conf::new();
    let check = |cfg: &str| {
        std::process::Command::new(serve_support::bin())
            .args([
                "serve",
                "--check-config",
                "--config",
                cfg,
                "--listen",
                "0.0.0.0:2000",
            ])
            .output()
            .unwrap()
    };
    let out = check(&conf.write(""));
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("beyond loopback) without authentication"),
        "{err}"
    );
    let out = check(&conf.write("[auth]\nallow_unauthenticated_remote = true\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let k = new_key("remote");
    let out = check(&conf.write(&format!(
        "[auth]\ntcp = [\"api_key\"]\n{}",
        key_entry(&k, "remote", false)
    )));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn revoking_a_key_in_the_keys_file_takes_effect_on_sighup() {
    let conf = Conf::new();
    let a = new_key("a");
    let b = new_key("b");
    let file = conf.path("keys.toml");
    let entries = |a_revoked: bool| {
        format!(
            "[[key]]\nid = \"{}\"\nsha256 = \"{}\"\nprincipal = \"a\"\nrevoked = {a_revoked}\n\n[[key]]\nid = \"{}\"\nsha256 = \"{}\"\nprincipal = \"b\"\n",
            a.id, a.sha256, b.id, b.sha256
        )
    };
    std::fs::write(&file, entries(false)).unwrap();
    let cfg = conf.write(&format!(
        "[auth]\ntcp = [\"api_key\"]\nkeys_file = \"{}\"\n",
        file.display()
    ));
    let s = Server::start(&["--config", &cfg]);
    let status = |k: &Key| {
        s.request("GET", "/v1/profiles", &[("x-api-key", &k.key)], b"")
            .status
    };
    assert_eq!((status(&a), status(&b)), (200, 200));
    let hup = || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(s.pid()),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap()
    };
    std::fs::write(&file, entries(true)).unwrap();
    hup();
    assert!(eventually(Duration::from_secs(5), || status(&a) == 401));
    assert_eq!(status(&b), 200);
    // A broken file keeps the keys in force and says so.
    std::fs::write(&file, "[[key]]\nid = \"x\"\n").unwrap();
    hup();
    assert!(eventually(Duration::from_secs(5), || s
        .log_text()
        .contains("api keys not reloaded")));
    assert_eq!((status(&a), status(&b)), (401, 200));
}
