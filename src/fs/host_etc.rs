//! The `/etc` of a `host`-root sandbox: an explicit allowlist of what interpreters and compilers
//! read there, and an explicit list of what must never appear (docs/rootfs.md, "/etc").
//!
//! The list was drawn from `strace -f -e trace=%file` of python3 (numpy, pandas, matplotlib with
//! text, ssl, zoneinfo, mimetypes, pwd), node (os, tls, dns), perl, bash, gcc/g++, javac/java, and
//! from the symlinks Debian's `/usr` keeps into `/etc` (`find /usr -lname '/etc/*'`:
//! `/usr/bin/* -> /etc/alternatives/*`, the JDK's `conf/` and `lib/security/` ->
//! `/etc/java-17-openjdk/...` and `/etc/ssl/certs/java/cacerts`, Python's `sitecustomize.py`,
//! `locale.alias`). Everything else of `/etc` stays out: credentials and host identity never
//! enter, and a program that looks for something absent sees ENOENT, as on a minimal system.

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use super::EtcEntry;

/// When an allowlisted entry is expected on a host, for `stockade doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// On every glibc system: its absence breaks or changes ordinary programs.
    Always,
    /// When this host path exists (the toolchain that reads the entry is installed).
    With(&'static str),
    /// Distribution-specific; absent on many hosts and harmless then.
    Optional,
}

/// One allowlisted `/etc` entry.
#[derive(Debug, Clone, Copy)]
pub struct Allowed {
    /// A path relative to `/etc` (`ssl/certs`), or a top-level name with a trailing `*` for every
    /// entry starting with the prefix (`java-*`: `java-17-openjdk`, `java-21-openjdk`).
    pub name: &'static str,
    pub expect: Expect,
    /// Who reads it; shown by `stockade doctor` and docs/rootfs.md.
    pub why: &'static str,
}

const fn allow(name: &'static str, expect: Expect, why: &'static str) -> Allowed {
    Allowed { name, expect, why }
}

use Expect::{Always, Optional, With};

/// What a `host`-root sandbox sees of `/etc`, besides the generated [`GENERATED`] files. Directories are bound read-only whole; small files are copied; symlinks are
/// recreated and resolve inside the sandbox (to `/usr` or to another allowed entry).
pub const ALLOWED: &[Allowed] = &[
    allow(
        "ld.so.cache",
        Always,
        "the dynamic linker's library cache (ld.so(8))",
    ),
    allow(
        "ld.so.conf",
        Always,
        "library search path configuration, read by ldconfig -p and ctypes.util.find_library",
    ),
    allow("ld.so.conf.d", Always, "included by ld.so.conf"),
    allow(
        "nsswitch.conf",
        Always,
        "which databases getpwuid, getaddrinfo and getservbyname consult (glibc, java, node)",
    ),
    allow(
        "host.conf",
        Optional,
        "resolver options for /etc/hosts lookups",
    ),
    allow("gai.conf", Optional, "getaddrinfo's address ordering"),
    allow("protocols", Always, "getprotobyname (Python socket, Perl)"),
    allow("services", Always, "getservbyname (Python socket, Perl)"),
    allow(
        "localtime",
        Always,
        "the local time zone (a link into /usr/share/zoneinfo)",
    ),
    allow(
        "timezone",
        Optional,
        "the time zone's name (Debian; read by the JVM)",
    ),
    allow(
        "zoneinfo",
        Optional,
        "time zone data on systems that keep it in /etc (Python's TZPATH)",
    ),
    allow(
        "locale.alias",
        Optional,
        "locale name aliases; /usr/share/locale/locale.alias links here",
    ),
    allow(
        "mime.types",
        Optional,
        "file type by extension (Python mimetypes, node mime)",
    ),
    allow(
        "magic",
        Optional,
        "local libmagic rules (file, python-magic)",
    ),
    allow("magic.mime", Optional, "local libmagic MIME rules"),
    allow(
        "os-release",
        Always,
        "distribution identity (platform.freedesktop_os_release)",
    ),
    allow("debian_version", Optional, "Debian's release number"),
    allow("lsb-release", Optional, "distribution identity on Ubuntu"),
    allow(
        "ssl/certs",
        Always,
        "the TLS trust store (OpenSSL, Python ssl, node, the JDK's cacerts)",
    ),
    allow(
        "ssl/openssl.cnf",
        Always,
        "OpenSSL's configuration, loaded by every OpenSSL user",
    ),
    allow(
        "pki/tls/certs",
        Optional,
        "the TLS trust store on Fedora and RHEL",
    ),
    allow(
        "pki/tls/cert.pem",
        Optional,
        "the TLS trust bundle on Fedora and RHEL",
    ),
    allow(
        "pki/tls/openssl.cnf",
        Optional,
        "OpenSSL's configuration on Fedora and RHEL",
    ),
    allow(
        "pki/ca-trust/extracted",
        Optional,
        "the extracted trust bundles pki/tls links to",
    ),
    allow(
        "pki/java",
        Optional,
        "the JDK trust store on Fedora and RHEL",
    ),
    allow(
        "crypto-policies/back-ends",
        Optional,
        "system crypto policy included by Fedora's openssl.cnf and java.security",
    ),
    allow(
        "alternatives",
        Always,
        "Debian's alternatives links: /usr/bin/java, javac, cc, c++, awk, editor ... resolve through them",
    ),
    allow(
        "java-*",
        With("/usr/lib/jvm"),
        "the JDK's configuration (java.security, jvm.cfg, logging); its conf/ and lib/security/ link here",
    ),
    allow(
        "java",
        Optional,
        "the JDK's configuration on Fedora and RHEL",
    ),
    allow(
        "jvm",
        Optional,
        "the JDK's configuration on Fedora and RHEL",
    ),
    allow(
        "fonts",
        With("/usr/share/fonts"),
        "fontconfig's configuration (matplotlib, Pillow and anything that draws text)",
    ),
    allow(
        "matplotlibrc",
        Optional,
        "Debian's system-wide matplotlib defaults",
    ),
    allow(
        "python3.*",
        With("/usr/lib/python3"),
        "Debian's sitecustomize.py (/usr/lib/python3.X/sitecustomize.py links here)",
    ),
    allow(
        "python3",
        Optional,
        "Debian's Python build configuration (debian_config)",
    ),
    allow(
        "perl",
        With("/usr/share/perl"),
        "first directory on Debian perl's @INC (site configuration)",
    ),
    allow(
        "R",
        With("/usr/lib/R"),
        "R_HOME/etc links here: Renviron and Rprofile.site are needed to start R",
    ),
    allow("php", Optional, "php.ini and module configuration"),
    allow(
        "mono",
        Optional,
        "Mono's runtime configuration (config, machine.config), needed to start mono",
    ),
    allow("dotnet", Optional, ".NET's install location"),
    allow(
        "ImageMagick-*",
        Optional,
        "ImageMagick's policy and delegates",
    ),
    allow(
        "texmf",
        Optional,
        "TeX's configuration, read by latex (matplotlib usetex)",
    ),
];

/// Files the sandbox gets its own version of (`fs::plan`): the sandbox's users, name, and
/// `hosts` with loopback and that name; the host's would reveal its accounts and network.
pub const GENERATED: &[&str] = &["passwd", "group", "hostname", "hosts"];

/// Host files that must never be visible in the sandbox, whatever the allowlist says: a pattern
/// that ever matched one of them is refused in [`discover`], and tests assert their absence from
/// inside the sandbox. Paths relative to `/etc`.
pub const NEVER: &[&str] = &[
    "shadow",
    "shadow-",
    "gshadow",
    "gshadow-",
    "passwd-",
    "group-",
    "sudoers",
    "sudoers.d",
    "subuid",
    "subgid",
    "ssh",
    "ssl/private",
    "pki/tls/private",
    "machine-id",
    "security",
    "pam.d",
    "krb5.keytab",
    "environment",
    "credstore",
    "credstore.encrypted",
    "docker",
    "containerd",
    "kubernetes",
    "netrc",
    "npmrc",
    "pip.conf",
    "gitconfig",
    "wgetrc",
    "NetworkManager",
    "wpa_supplicant",
    "resolv.conf",
    "cron.d",
    "crontab",
    "stockade",
];

/// Files up to this size are copied into the sandbox's `/etc` rather than bound.
const COPY_MAX: u64 = 256 << 10;

/// The allowlisted entries present under `etc` (the host's `/etc`, injectable for tests), in
/// allowlist order, each with how it appears in the sandbox.
pub fn discover(etc: &Path) -> Vec<(String, EtcEntry)> {
    let mut found = Vec::new();
    for name in expand(etc) {
        if is_never(&name) {
            continue;
        }
        if let Some(entry) = inspect(&etc.join(&name)) {
            found.push((name, entry));
        }
    }
    found
}

/// The allowlist with its patterns expanded against `etc`: every name that may be looked at.
pub fn expand(etc: &Path) -> Vec<String> {
    let listing: Vec<String> = match std::fs::read_dir(etc) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    let mut names = Vec::new();
    for rule in ALLOWED {
        match rule.name.strip_suffix('*') {
            Some(prefix) => {
                let mut matched: Vec<&String> =
                    listing.iter().filter(|n| n.starts_with(prefix)).collect();
                matched.sort();
                names.extend(matched.into_iter().cloned());
            }
            None => names.push(rule.name.to_string()),
        }
    }
    names.dedup();
    names
}

/// Whether `name` (relative to `/etc`) is, or lies inside, a [`NEVER`] entry.
pub fn is_never(name: &str) -> bool {
    NEVER.iter().any(|n| Path::new(name).starts_with(n))
}

fn inspect(path: &Path) -> Option<EtcEntry> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    Some(if meta.file_type().is_symlink() {
        EtcEntry::Symlink(std::fs::read_link(path).ok()?)
    } else if meta.is_dir() {
        EtcEntry::Dir
    } else if !meta.is_file() {
        // A socket or FIFO in /etc is nothing an interpreter reads.
        return None;
    } else if meta.len() <= COPY_MAX {
        EtcEntry::File {
            // Unreadable to us: the sandbox could not read it either.
            contents: std::fs::read(path).ok()?,
            mode: meta.permissions().mode() & 0o755,
        }
    } else {
        EtcEntry::BigFile
    })
}

/// The allowlist rule that admits `name`, if any.
pub fn rule_for(name: &str) -> Option<&'static Allowed> {
    ALLOWED.iter().find(|r| match r.name.strip_suffix('*') {
        Some(prefix) => !name.contains('/') && name.starts_with(prefix),
        None => r.name == name,
    })
}

/// Where a symlink at `link` (an absolute path) with target `target` points, lexically: `..`
/// is applied to the link's directory without following other links, as the sandbox would see
/// it if every component were a plain directory.
pub fn lexical_target(link: &Path, target: &Path) -> PathBuf {
    let mut out = match target.is_absolute() {
        true => PathBuf::from("/"),
        false => link
            .parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf),
    };
    for c in target.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Whether an absolute path is visible in a `host`-root sandbox whose `/etc` holds `etc_names`:
/// `/usr` and the merged-usr links to it, the allowlisted `/etc` entries and the generated files.
pub fn visible_in_sandbox(path: &Path, etc_names: &[String]) -> bool {
    const TOP: &[&str] = &["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];
    if TOP.iter().any(|t| path.starts_with(Path::new("/").join(t))) {
        return true;
    }
    let Ok(rel) = path.strip_prefix("/etc") else {
        return false;
    };
    let rel = rel.to_string_lossy();
    GENERATED.contains(&rel.as_ref())
        || etc_names
            .iter()
            .any(|n| Path::new(rel.as_ref()).starts_with(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_etc() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path();
        for d in [
            "alternatives",
            "java-17-openjdk/security",
            "java-21-openjdk",
            "ssl/certs",
            "ssl/private",
            "ssh",
            "fonts/conf.d",
            "python3.11",
        ] {
            std::fs::create_dir_all(etc.join(d)).unwrap();
        }
        for f in [
            "ld.so.cache",
            "nsswitch.conf",
            "shadow",
            "gshadow",
            "machine-id",
            "sudoers",
            "subuid",
            "resolv.conf",
            "ssl/openssl.cnf",
            "ssl/private/key.pem",
            "javascript.conf",
        ] {
            std::fs::write(etc.join(f), "x").unwrap();
        }
        std::fs::write(etc.join("mime.types"), vec![b'm'; (COPY_MAX + 1) as usize]).unwrap();
        std::os::unix::fs::symlink("/usr/bin/java-real", etc.join("alternatives/java")).unwrap();
        std::os::unix::fs::symlink("../usr/lib/os-release", etc.join("os-release")).unwrap();
        dir
    }

    #[test]
    fn only_allowlisted_entries_are_found_and_secrets_never() {
        let dir = fake_etc();
        let found = discover(dir.path());
        let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        for wanted in [
            "ld.so.cache",
            "nsswitch.conf",
            "ssl/certs",
            "ssl/openssl.cnf",
            "alternatives",
            "java-17-openjdk",
            "java-21-openjdk",
            "fonts",
            "python3.11",
            "os-release",
            "mime.types",
        ] {
            assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
        }
        for secret in [
            "shadow",
            "gshadow",
            "machine-id",
            "sudoers",
            "subuid",
            "ssh",
            "ssl",
            "ssl/private",
            "resolv.conf",
            "javascript.conf",
        ] {
            assert!(!names.contains(&secret), "{secret} leaked: {names:?}");
        }
        assert!(found.iter().all(|(n, _)| !is_never(n)));
        let entry = |name: &str| &found.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(*entry("ssl/certs"), EtcEntry::Dir);
        assert_eq!(*entry("mime.types"), EtcEntry::BigFile);
        assert_eq!(
            *entry("os-release"),
            EtcEntry::Symlink("../usr/lib/os-release".into())
        );
        assert!(
            matches!(entry("ld.so.cache"), EtcEntry::File { contents, .. } if contents == b"x")
        );
    }

    #[test]
    fn no_allowlist_entry_can_admit_a_never_entry() {
        for rule in ALLOWED {
            match rule.name.strip_suffix('*') {
                Some(prefix) => {
                    let hit = NEVER.iter().find(|n| n.starts_with(prefix));
                    assert!(hit.is_none(), "{} could admit {hit:?}", rule.name);
                }
                None => assert!(!is_never(rule.name), "{} is on the never list", rule.name),
            }
        }
        assert!(is_never("ssl/private/key.pem"));
        assert!(!is_never("ssl/certs"));
    }

    #[test]
    fn symlink_targets_resolve_lexically() {
        assert_eq!(
            lexical_target(
                Path::new("/etc/os-release"),
                Path::new("../usr/lib/os-release")
            ),
            Path::new("/usr/lib/os-release")
        );
        assert_eq!(
            lexical_target(
                Path::new("/usr/bin/java"),
                Path::new("/etc/alternatives/java")
            ),
            Path::new("/etc/alternatives/java")
        );
        let names = vec!["alternatives".to_string(), "java-17-openjdk".to_string()];
        assert!(visible_in_sandbox(
            Path::new("/etc/alternatives/java"),
            &names
        ));
        assert!(visible_in_sandbox(Path::new("/bin/mt-gnu"), &names));
        assert!(visible_in_sandbox(Path::new("/etc/passwd"), &names));
        assert!(!visible_in_sandbox(
            Path::new("/etc/maven/settings.xml"),
            &names
        ));
        assert!(!visible_in_sandbox(Path::new("/opt/jdk/bin/java"), &names));
        assert_eq!(rule_for("java-21-openjdk").unwrap().name, "java-*");
        assert_eq!(rule_for("ssl/certs").unwrap().name, "ssl/certs");
        assert!(rule_for("shadow").is_none());
    }

    #[test]
    fn docs_name_every_allowed_and_never_entry() {
        let doc = include_str!("../../docs/rootfs.md");
        for rule in ALLOWED {
            assert!(
                doc.contains(&format!("`{}`", rule.name)),
                "docs/rootfs.md lacks {}",
                rule.name
            );
        }
        for never in NEVER {
            let stem = never.trim_end_matches('-').trim_end_matches(".encrypted");
            assert!(doc.contains(stem), "docs/rootfs.md lacks {never}");
        }
    }
}
