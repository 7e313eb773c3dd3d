//! The `/etc` of a `host`-root sandbox, seen from inside: what interpreters read is there and
//! works, secrets are not, and links into `/etc` resolve as they do on the host.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Who, facts, identities, stdout_of, verdict};

/// Host secrets and host identity; none may be visible in the sandbox. Kept apart from the
/// library's own list so that shrinking that list fails here.
const SECRETS: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/passwd-",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/subuid",
    "/etc/subgid",
    "/etc/ssh",
    "/etc/ssl/private",
    "/etc/machine-id",
    "/etc/security",
    "/etc/pam.d",
    "/etc/environment",
    "/etc/resolv.conf",
    "/etc/npmrc",
    "/etc/pip.conf",
    "/etc/gitconfig",
    "/etc/maven",
    "/etc/cron.d",
    "/etc/stockade",
];

/// What the strace'd interpreters and compilers read (docs/rootfs.md); each must be visible when
/// the host has it.
const NEEDED: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/nsswitch.conf",
    "/etc/protocols",
    "/etc/services",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/mime.types",
    "/etc/os-release",
    "/etc/locale.alias",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/ssl/certs/java/cacerts",
    "/etc/ssl/openssl.cnf",
    "/etc/alternatives/java",
    "/etc/alternatives/javac",
    "/etc/java-17-openjdk/security/java.security",
    "/etc/fonts/fonts.conf",
    "/etc/matplotlibrc",
    "/etc/python3.11/sitecustomize.py",
];

/// Files every `host` sandbox gets its own version of.
const GENERATED: &[&str] = &["/etc/passwd", "/etc/group", "/etc/hostname", "/etc/hosts"];

/// Symlinks that lead into `/etc` (Debian's alternatives, the JDK's conf and trust store,
/// Python's sitecustomize): listed when they dangle.
const DANGLING: &str = "for f in /etc/alternatives/* /usr/lib/jvm/*/conf/* /usr/lib/jvm/*/conf/*/* \
    /usr/lib/jvm/*/lib/security/* /usr/lib/python3*/sitecustomize.py \
    /usr/share/locale/locale.alias /usr/share/matplotlib/mpl-data/matplotlibrc; do \
    if [ -L \"$f\" ] && [ ! -e \"$f\" ]; then echo \"dangling=$f\"; fi; done";

fn sandbox_sh(who: Who, script: &str) -> String {
    let v = verdict(who, &["--", "sh", "-c", script]);
    assert_eq!(v["status"], "ok", "{who:?}: {v}");
    stdout_of(&v)
}

fn host_sh(script: &str) -> String {
    let out = Command::new("sh").args(["-c", script]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn secrets_are_absent_and_what_interpreters_read_is_present() {
    let library: Vec<String> = stockade::fs::host_etc::NEVER
        .iter()
        .map(|n| format!("/etc/{n}"))
        .collect();
    let mut paths: Vec<&str> = SECRETS
        .iter()
        .copied()
        .chain(NEEDED.iter().copied())
        .collect();
    paths.extend(GENERATED);
    paths.extend(library.iter().map(String::as_str));
    let script: String = paths
        .iter()
        .map(|p| {
            format!(
                "if [ -e {p} ] || [ -L {p} ]; then echo present={p}; else echo absent={p}; fi\n"
            )
        })
        .collect();
    for who in identities() {
        let f = facts(&sandbox_sh(who, &script));
        let present = f.get("present").cloned().unwrap_or_default();
        for secret in SECRETS
            .iter()
            .copied()
            .chain(library.iter().map(String::as_str))
        {
            assert!(
                !present.iter().any(|p| p == secret),
                "{who:?}: {secret} is visible"
            );
        }
        for needed in NEEDED {
            if Path::new(needed).exists() {
                assert!(
                    present.iter().any(|p| p == needed),
                    "{who:?}: {needed} is missing"
                );
            }
        }
        for generated in GENERATED {
            assert!(
                present.iter().any(|p| p == generated),
                "{who:?}: {generated} is missing"
            );
        }
    }
}

#[test]
fn links_into_etc_resolve_as_on_the_host() {
    let on_host = host_sh(DANGLING);
    for who in identities() {
        assert_eq!(sandbox_sh(who, DANGLING), on_host, "{who:?}");
    }
    if Path::new("/usr/bin/javac").exists() {
        // /usr/bin/javac -> /etc/alternatives/javac -> /usr/lib/jvm/.../bin/javac.
        let script = "readlink -f /usr/bin/javac; test -x \"$(readlink -f /usr/bin/javac)\" && echo executable";
        let inside = sandbox_sh(Who::Me, script);
        assert_eq!(inside, host_sh(script));
        assert!(inside.ends_with("executable\n"), "{inside}");
    }
}

#[test]
fn tls_roots_fonts_and_users_work_inside() {
    // The same trust store and the same default font as on the host.
    let py = "import ssl, pwd; print(ssl.create_default_context().cert_store_stats()['x509_ca'] > 0, pwd.getpwuid(0).pw_name)";
    let v = verdict(Who::Me, &["--", "/usr/bin/python3", "-c", py]);
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(stdout_of(&v), "True root\n");
    if Path::new("/usr/bin/fc-match").exists() {
        let inside = sandbox_sh(Who::Me, "fc-match sans");
        assert_eq!(inside, host_sh("fc-match sans"));
        assert!(!inside.is_empty());
    }
    // The sandbox's own name resolves (the JVM's getLocalHost needs it). `--seccomp errno`:
    // glibc's resolver probes sockets the default filter kills, which is not what this tests.
    let py = "import socket; print(socket.gethostbyname(socket.gethostname()), socket.gethostbyname('localhost'))";
    let v = verdict(
        Who::Me,
        &["--seccomp", "errno", "--", "/usr/bin/python3", "-c", py],
    );
    assert_eq!(stdout_of(&v), "127.0.1.1 127.0.0.1\n", "{v}");
}

#[test]
fn javac_and_java_find_their_configuration() {
    if !Path::new("/usr/bin/javac").exists() {
        eprintln!("no JDK on this host; skipped");
        return;
    }
    let src = common::shared_dir().join("Main.java");
    std::fs::write(
        &src,
        "public class Main { public static void main(String[] a) { System.out.println(\"hi \" + java.time.ZoneId.systemDefault().getId().isEmpty()); } }\n",
    )
    .unwrap();
    let copy = format!("{}:/sandbox/Main.java", src.display());
    // `--seccomp errno`: the JVM's start-up probes syscalls the default filter kills (issue 10,
    // item 1); this test is about the files it reads from /etc/java-*, /etc/alternatives and
    // /etc/ssl/certs/java.
    let v = verdict(
        Who::Me,
        &[
            "--seccomp",
            "errno",
            "--wall-time",
            "90s",
            "--copy-in",
            &copy,
            "--",
            "sh",
            "-c",
            "javac Main.java && java Main && java Main.java",
        ],
    );
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(stdout_of(&v), "hi false\nhi false\n", "{v}");
}
