//! The launcher (and so every worker and sandbox it forks) is started before the service reads
//! its configuration: a planted JWT secret is in the service's memory and nowhere in the
//! launcher's (issue 11: keep the service's secrets out of the launcher and the sandboxes).

mod serve_support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;

use serve_support::Server;

const CANARY: &str = "launcher-canary-jwt-secret-5f3a9c1e77d04b28";

/// Whether `needle` occurs in any readable private mapping of `pid` (heap, stacks, anonymous
/// memory and the writable data of the binary).
fn memory_contains(pid: i32, needle: &[u8]) -> bool {
    let maps = std::fs::File::open(format!("/proc/{pid}/maps")).unwrap();
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    for line in BufReader::new(maps).lines().map_while(Result::ok) {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        // Readable and writable: where a parsed configuration lives. Read-only file mappings
        // (the binary's code and constants) cannot hold what was read at run time.
        if !perms.starts_with("rw") {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
        else {
            continue;
        };
        let len = usize::try_from(end - start).unwrap_or(0).min(256 << 20);
        let mut buf = vec![0u8; len];
        if mem.read_exact_at(&mut buf, start).is_err() {
            continue;
        }
        if buf.windows(needle.len()).any(|w| w == needle) {
            return true;
        }
    }
    false
}

#[test]
fn the_launcher_never_sees_the_service_s_secrets() {
    if !nix::unistd::Uid::current().is_root() {
        eprintln!("skipped: reading another process's memory needs root here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("jwt.secret");
    std::fs::write(&secret, format!("{CANARY}\n")).unwrap();
    let config = dir.path().join("stockade.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\ntcp = [\"jwt\"]\n\n[auth.jwt]\nalgorithms = [\"HS256\"]\nsecret_file = \"{}\"\nissuer = \"https://login.test\"\naudience = \"stockade\"\n",
            secret.display()
        ),
    )
    .unwrap();
    let s = Server::start(&["--config", config.to_str().unwrap()]);
    // The service is up and enforces the secret's method.
    assert_eq!(s.get("/v1/profiles").status, 401);
    let launcher: i32 = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", s.pid()))
        .unwrap()
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the service has its launcher as a child");
    assert!(
        memory_contains(s.pid(), CANARY.as_bytes()),
        "the scan must find the secret where it is (the service), or it proves nothing"
    );
    assert!(
        !memory_contains(launcher, CANARY.as_bytes()),
        "the launcher {launcher} holds the JWT secret"
    );
}
