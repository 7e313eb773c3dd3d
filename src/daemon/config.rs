//! The service configuration: `stockade.toml` (strict TOML, positioned errors) plus command-line
//! overrides, validated into one `Config` that the rest of the daemon reads.
//!
//! Errors reuse the profile loader's helpers (`crate::profile::SourceFile`), so a bad config reads
//! like a bad profile: `stockade.toml:7:14: unknown field `queue_sise` in [capacity]; did you mean
//! `queue_size`?`. dist/config/stockade.toml is the annotated example; docs/service.md the
//! reference.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::security::config as security;
use crate::cgroup::{BackendKind, CgroupOptions};
use crate::profile::{ProfileError, SourceFile};
use crate::units;

/// Where the service listens (defined beside the listeners, which the security layer owns).
pub use super::security::listener::Listen;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<Listen>,
    /// Sandboxes running at once.
    pub max_concurrent: usize,
    /// Requests waiting for a sandbox slot at once; beyond that: 429.
    pub queue_size: usize,
    /// Longest wait for a slot; beyond that: 503.
    pub queue_timeout: Duration,
    /// Largest request body in bytes.
    pub max_body: usize,
    /// How long SIGTERM waits for running sandboxes before killing them.
    pub drain_timeout: Duration,
    /// Profile directories searched before the built-ins.
    pub profile_dirs: Vec<PathBuf>,
    pub builtin_profiles: bool,
    pub cgroup: CgroupOptions,
    pub piston: PistonConfig,
    /// Authentication, authorization, rate limits, audit, cache, breaker, HTTP hardening.
    pub security: security::SecurityConfig,
}

#[derive(Debug, Clone)]
pub struct PistonConfig {
    /// Serve `/api/v2` (and `/api/v2/piston`).
    pub enabled: bool,
    /// Bytes captured per stream before the run is stopped (Piston's `output_max_size`); `None`
    /// keeps each profile's own output limit.
    pub output_max_size: Option<u64>,
    /// Versions reported for runtimes, by profile name, instead of asking the interpreter.
    pub versions: BTreeMap<String, String>,
}

/// The default TCP address (Piston's port, loopback only: exposing the service is a choice).
pub const DEFAULT_TCP: &str = "127.0.0.1:2000";
/// Where `stockade serve` looks when `--config` is not given (missing is fine).
pub const DEFAULT_PATH: &str = "/etc/stockade/stockade.toml";

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![Listen::Tcp(
                DEFAULT_TCP.parse().expect("valid default address"),
            )],
            max_concurrent: default_concurrency(),
            queue_size: 64,
            queue_timeout: Duration::from_secs(10),
            max_body: 1 << 20,
            drain_timeout: Duration::from_secs(20),
            profile_dirs: vec![PathBuf::from(crate::profile::SYSTEM_DIR)],
            builtin_profiles: true,
            cgroup: CgroupOptions::default(),
            piston: PistonConfig {
                enabled: true,
                output_max_size: None,
                versions: BTreeMap::new(),
            },
            security: security::SecurityConfig::default(),
        }
    }
}

/// Concurrent sandboxes by default: two per core (runs spend much of their time in set-up and
/// I/O), but no more than memory allows at the production preset's 256 MiB each, and at least one.
pub fn default_concurrency() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let by_memory = mem_available().map_or(usize::MAX, |b| {
        usize::try_from(b / (256 << 20)).unwrap_or(usize::MAX)
    });
    (cores * 2).min(by_memory).max(1)
}

/// `MemAvailable` from /proc/meminfo, in bytes.
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The file format, one to one. Every field is optional; absent fields keep `Config::default()`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ConfigFile {
    /// `[listen]`: addresses.
    listen: ListenSection,
    /// `[capacity]`: concurrency, queue and body limits.
    capacity: CapacitySection,
    /// `[shutdown]`: the SIGTERM drain.
    shutdown: ShutdownSection,
    /// `[profiles]`: where profiles come from.
    profiles: ProfilesSection,
    /// `[cgroup]`: the limit manager.
    cgroup: CgroupSection,
    /// `[piston]`: the Piston v2 compatible API.
    piston: PistonSection,
    /// `[auth]`, `[tls]`, `[principals.*]`, `[rate_limit]`, `[audit]`, `[cache]`, `[breaker]`,
    /// `[http]`, `[cors]`: service security (`security::config`, docs/security-service.md).
    auth: security::AuthSection,
    tls: Option<security::TlsSection>,
    principals: BTreeMap<String, security::PrincipalSection>,
    rate_limit: security::RateLimitSection,
    audit: security::AuditSection,
    cache: security::CacheSection,
    breaker: security::BreakerSection,
    http: security::HttpSection,
    cors: security::CorsSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ListenSection {
    /// TCP addresses (`127.0.0.1:2000`, `[::1]:2000`); `[]` for none. Default: 127.0.0.1:2000.
    tcp: Option<Vec<Spanned<String>>>,
    /// A Unix socket path. Default: none.
    unix: Option<Spanned<String>>,
    /// Octal permission bits of the Unix socket. Default: `"0660"`.
    unix_mode: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct CapacitySection {
    /// Sandboxes at once; 0 or absent: from cores and memory.
    max_concurrent: Option<Spanned<i64>>,
    /// Waiting requests at once. Default 64.
    queue_size: Option<Spanned<i64>>,
    /// Longest wait for a slot, e.g. "10s".
    queue_timeout: Option<Spanned<String>>,
    /// Largest request body, e.g. "1MiB".
    max_body: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ShutdownSection {
    /// How long running sandboxes may finish after SIGTERM, e.g. "30s".
    drain_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ProfilesSection {
    /// Directories searched for `<name>.toml` before the built-ins.
    dirs: Option<Vec<Spanned<String>>>,
    /// Whether the built-in profiles are offered. Default true.
    builtins: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct CgroupSection {
    /// `auto` (default), `v2`, `v1` or `none`.
    backend: Option<Spanned<String>>,
    /// A delegated cgroup2 directory for the sandbox groups.
    root: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct PistonSection {
    /// Serve the Piston v2 API. Default true.
    enabled: Option<bool>,
    /// Bytes per output stream before the run is stopped (Piston's default is 1024).
    output_max_size: Option<Spanned<String>>,
    /// Reported runtime versions by profile name.
    versions: BTreeMap<String, Spanned<String>>,
}

impl Config {
    /// Read and validate a config file.
    pub fn from_file(path: &Path) -> Result<Config, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_text(&path.display().to_string(), &text)
    }

    /// Validate config text; `name` is used in error messages.
    pub fn from_text(name: &str, text: &str) -> Result<Config, ProfileError> {
        let src = SourceFile {
            name: name.to_string(),
            text,
        };
        let file: ConfigFile = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
        let mut c = Config::default();
        apply_listen(&src, file.listen, &mut c)?;
        apply_capacity(&src, file.capacity, &mut c)?;
        if let Some(d) = file.shutdown.drain_timeout {
            c.drain_timeout = duration(&src, &d, "shutdown.drain_timeout")?;
        }
        if let Some(dirs) = file.profiles.dirs {
            c.profile_dirs = dirs
                .iter()
                .map(|d| absolute(&src, d, "profiles.dirs"))
                .collect::<Result<_, _>>()?;
        }
        c.builtin_profiles = file.profiles.builtins.unwrap_or(true);
        if let Some(b) = file.cgroup.backend {
            c.cgroup.force = match b.get_ref().as_str() {
                "auto" => None,
                other => Some(other.parse::<BackendKind>().map_err(|m| {
                    src.error(
                        b.span(),
                        "cgroup.backend",
                        format!("`cgroup.backend`: {m}"),
                        None,
                    )
                })?),
            };
        }
        if let Some(r) = file.cgroup.root {
            c.cgroup.root = Some(absolute(&src, &r, "cgroup.root")?);
        }
        apply_piston(&src, file.piston, &mut c)?;
        let sections = security::Sections {
            auth: file.auth,
            tls: file.tls,
            principals: file.principals,
            rate_limit: file.rate_limit,
            audit: file.audit,
            cache: file.cache,
            breaker: file.breaker,
            http: file.http,
            cors: file.cors,
        };
        c.security = security::validate(&src, sections)?;
        Ok(c)
    }
}

fn apply_listen(
    src: &SourceFile<'_>,
    l: ListenSection,
    c: &mut Config,
) -> Result<(), ProfileError> {
    let mode = match &l.unix_mode {
        Some(m) => u32::from_str_radix(m.get_ref().trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                let msg = format!(
                    "`listen.unix_mode`: invalid mode `{}`: expected octal permission bits such as \"0660\"",
                    m.get_ref()
                );
                src.error(m.span(), "listen.unix_mode", msg, None)
            })?,
        None => 0o660,
    };
    if let Some(tcp) = l.tcp {
        c.listen.clear();
        for a in tcp {
            let addr = a.get_ref().parse::<SocketAddr>().map_err(|_| {
                let msg = format!(
                    "`listen.tcp`: invalid address `{}`: expected IP:PORT such as 127.0.0.1:2000 or [::1]:2000",
                    a.get_ref()
                );
                src.error(a.span(), "listen.tcp", msg, None)
            })?;
            c.listen.push(Listen::Tcp(addr));
        }
    }
    if let Some(u) = l.unix {
        let path = absolute(src, &u, "listen.unix")?;
        c.listen.push(Listen::Unix { path, mode });
    }
    if c.listen.is_empty() {
        let span = 0..0;
        let msg = "`listen`: no address to listen on; give `tcp` or `unix`".to_string();
        return Err(src.error(span, "listen", msg, None));
    }
    Ok(())
}

fn apply_capacity(
    src: &SourceFile<'_>,
    cap: CapacitySection,
    c: &mut Config,
) -> Result<(), ProfileError> {
    if let Some(n) = cap.max_concurrent {
        let n = count(src, &n, "capacity.max_concurrent", 0)?;
        if n > 0 {
            c.max_concurrent = n;
        }
    }
    if let Some(n) = cap.queue_size {
        c.queue_size = count(src, &n, "capacity.queue_size", 0)?;
    }
    if let Some(d) = cap.queue_timeout {
        c.queue_timeout = duration(src, &d, "capacity.queue_timeout")?;
    }
    if let Some(s) = cap.max_body {
        let bytes = size(src, &s, "capacity.max_body")?;
        c.max_body = usize::try_from(bytes)
            .ok()
            .filter(|b| (1024..=(1 << 30)).contains(b))
            .ok_or_else(|| {
                let msg = "`capacity.max_body`: must be between 1KiB and 1GiB".to_string();
                src.error(s.span(), "capacity.max_body", msg, None)
            })?;
    }
    Ok(())
}

fn apply_piston(
    src: &SourceFile<'_>,
    p: PistonSection,
    c: &mut Config,
) -> Result<(), ProfileError> {
    c.piston.enabled = p.enabled.unwrap_or(true);
    if let Some(s) = p.output_max_size {
        let bytes = size(src, &s, "piston.output_max_size")?;
        if bytes == 0 {
            let msg = "`piston.output_max_size`: must be at least 1 byte".to_string();
            return Err(src.error(s.span(), "piston.output_max_size", msg, None));
        }
        c.piston.output_max_size = Some(bytes);
    }
    for (name, version) in p.versions {
        if super::semver::Version::parse(version.get_ref()).is_none() {
            let msg = format!(
                "`piston.versions.{name}`: `{}` is not a version such as \"3.11.2\"",
                version.get_ref()
            );
            return Err(src.error(version.span(), "piston.versions", msg, None));
        }
        c.piston.versions.insert(name, version.into_inner());
    }
    Ok(())
}

fn duration(
    src: &SourceFile<'_>,
    v: &Spanned<String>,
    field: &str,
) -> Result<Duration, ProfileError> {
    units::parse_duration(v.get_ref())
        .map_err(|m| src.error(v.span(), field, format!("`{field}`: {m}"), None))
}

fn size(src: &SourceFile<'_>, v: &Spanned<String>, field: &str) -> Result<u64, ProfileError> {
    units::parse_size(v.get_ref())
        .map_err(|m| src.error(v.span(), field, format!("`{field}`: {m}"), None))
}

fn count(
    src: &SourceFile<'_>,
    v: &Spanned<i64>,
    field: &str,
    min: i64,
) -> Result<usize, ProfileError> {
    let n = *v.get_ref();
    if n < min || n > 1_000_000 {
        let msg = format!("`{field}`: {n} is out of range ({min} to 1000000)");
        return Err(src.error(v.span(), field, msg, None));
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

fn absolute(
    src: &SourceFile<'_>,
    v: &Spanned<String>,
    field: &str,
) -> Result<PathBuf, ProfileError> {
    let p = PathBuf::from(v.get_ref());
    if !p.is_absolute() {
        let msg = format!("`{field}`: `{}` must be an absolute path", v.get_ref());
        return Err(src.error(v.span(), field, msg, None));
    }
    Ok(p)
}

/// Parse a `--listen` value: `unix:/path`, a path starting with `/`, or a TCP `IP:PORT`.
pub fn parse_listen(spec: &str) -> Result<Listen, String> {
    if let Some(path) = spec
        .strip_prefix("unix:")
        .or(spec.starts_with('/').then_some(spec))
    {
        let path = PathBuf::from(path);
        if !path.is_absolute() {
            return Err(format!("--listen {spec}: the socket path must be absolute"));
        }
        return Ok(Listen::Unix { path, mode: 0o660 });
    }
    let tcp = spec.strip_prefix("tcp:").unwrap_or(spec);
    tcp.parse::<SocketAddr>().map(Listen::Tcp).map_err(|_| {
        format!("--listen {spec}: expected IP:PORT (127.0.0.1:2000, [::1]:2000) or unix:/PATH")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::from_text("stockade.toml", text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn an_empty_file_is_the_default() {
        let c = Config::from_text("x.toml", "").unwrap();
        assert_eq!(c.listen, Config::default().listen);
        assert_eq!(c.queue_size, 64);
        assert!(c.max_concurrent >= 1);
        assert!(c.piston.enabled);
    }

    #[test]
    fn every_section_is_read() {
        let text = r#"
[listen]
tcp = ["127.0.0.1:2001", "[::1]:2002"]
unix = "/run/stockade/api.sock"
unix_mode = "0600"
[capacity]
max_concurrent = 3
queue_size = 5
queue_timeout = "2s"
max_body = "64KiB"
[shutdown]
drain_timeout = "1m"
[profiles]
dirs = ["/srv/profiles"]
builtins = false
[cgroup]
backend = "none"
[piston]
enabled = false
output_max_size = "1KB"
versions = { sh = "0.5.12" }
"#;
        let c = Config::from_text("x.toml", text).unwrap();
        assert_eq!(c.listen.len(), 3);
        assert_eq!(
            c.listen[2],
            Listen::Unix {
                path: "/run/stockade/api.sock".into(),
                mode: 0o600
            }
        );
        assert_eq!((c.max_concurrent, c.queue_size), (3, 5));
        assert_eq!(c.queue_timeout, Duration::from_secs(2));
        assert_eq!(c.max_body, 64 << 10);
        assert_eq!(c.drain_timeout, Duration::from_secs(60));
        assert_eq!(c.profile_dirs, [PathBuf::from("/srv/profiles")]);
        assert!(!c.builtin_profiles && !c.piston.enabled);
        assert_eq!(c.cgroup.force, Some(BackendKind::None));
        assert_eq!(c.piston.output_max_size, Some(1000));
        assert_eq!(c.piston.versions["sh"], "0.5.12");
    }

    #[test]
    fn unknown_fields_name_file_line_and_the_nearest_field() {
        let e = err("[capacity]\nqueue_sise = 3\n");
        assert!(e.starts_with("stockade.toml:2:1:"), "{e}");
        assert!(
            e.contains("unknown field `queue_sise` in [capacity]"),
            "{e}"
        );
        assert!(e.contains("did you mean `queue_size`?"), "{e}");
        let e = err("[lisen]\n");
        assert!(e.contains("did you mean `listen`?"), "{e}");
    }

    #[test]
    fn bad_values_point_at_the_value() {
        let e = err("[capacity]\nqueue_timeout = \"soon\"\n");
        assert!(e.starts_with("stockade.toml:2:17:"), "{e}");
        assert!(
            e.contains("`capacity.queue_timeout`: invalid duration"),
            "{e}"
        );
        let e = err("[listen]\ntcp = [\"localhost\"]\n");
        assert!(
            e.contains("`listen.tcp`: invalid address `localhost`"),
            "{e}"
        );
        let e = err("[listen]\ntcp = []\n");
        assert!(e.contains("no address to listen on"), "{e}");
        let e = err("[capacity]\nqueue_size = -1\n");
        assert!(
            e.contains("`capacity.queue_size`: -1 is out of range"),
            "{e}"
        );
        let e = err("[cgroup]\nbackend = \"v3\"\n");
        assert!(e.contains("unknown cgroup backend"), "{e}");
        let e = err("[listen]\nunix = \"api.sock\"\n");
        assert!(e.contains("must be an absolute path"), "{e}");
        let e = err("[piston]\nversions = { sh = \"new\" }\n");
        assert!(e.contains("`piston.versions.sh`"), "{e}");
        let e = err("[capacity]\nmax_concurrent = \"4\"\n");
        assert!(e.contains("capacity.max_concurrent"), "{e}");
    }

    #[test]
    fn listen_flags_accept_tcp_and_unix() {
        assert_eq!(
            parse_listen("127.0.0.1:9").unwrap(),
            Listen::Tcp("127.0.0.1:9".parse().unwrap())
        );
        assert!(matches!(
            parse_listen("unix:/tmp/s").unwrap(),
            Listen::Unix { .. }
        ));
        assert!(matches!(
            parse_listen("/tmp/s").unwrap(),
            Listen::Unix { .. }
        ));
        assert!(parse_listen("unix:rel").is_err());
        assert!(parse_listen("nowhere").is_err());
    }
}
