//! The audit log: one JSON line per request — who (principal, auth method, key id, client
//! address), what (profile, SHA-256 and length of the code; never the code, its input or its
//! environment), the outcome (HTTP status, verdict, exit code, times, memory, policy findings,
//! rejection reason, cache use). Sinks: a file rotated by size (`audit.log`, `audit.log.1`, ...),
//! stdout, or journald's native socket (systemd.journal-fields(7): `SYSLOG_IDENTIFIER`,
//! `MESSAGE`, plus `STOCKADE_*` fields for filtering with `journalctl STOCKADE_PRINCIPAL=…`).
//!
//! A record is written once, when the last part of the request that holds it finishes: the
//! middleware for ordinary answers, the response stream for streamed runs.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use serde::Serialize;

use super::redact::redact;
use crate::verdict::Verdict;

/// journald's native protocol socket (systemd-journald.service(8)).
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule: String,
    pub severity: String,
    pub line: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditRecord {
    /// RFC 3339 UTC with milliseconds, when the request arrived.
    pub time: String,
    pub request_id: String,
    pub principal: Option<String>,
    pub auth: Option<&'static str>,
    pub key_id: Option<String>,
    /// `IP:PORT`, or `unix` (with `uid` below) for the Unix socket.
    pub client: Option<String>,
    pub uid: Option<u32>,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub profile: Option<String>,
    pub code_sha256: Option<String>,
    pub code_bytes: Option<usize>,
    pub verdict: Option<&'static str>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub wall_ms: Option<u64>,
    pub cpu_ms: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// `hit`, `joined` or `miss` when the result cache was consulted.
    pub cache: Option<&'static str>,
    /// Why the request was refused (a stable code, then a redacted message).
    pub rejection: Option<String>,
    pub duration_ms: u64,
}

impl AuditRecord {
    pub fn verdict(&mut self, v: &Verdict) {
        self.verdict = Some(v.status.as_str());
        self.exit_code = v.exit_code;
        self.signal = v.signal;
        self.wall_ms = Some(v.wall_ms);
        self.cpu_ms = Some(v.cpu_ms.total_ms);
        self.memory_peak_bytes = v.memory_peak_bytes;
        if let Some(p) = &v.policy {
            self.findings = p
                .findings
                .iter()
                .map(|f| Finding {
                    rule: f.rule.clone(),
                    severity: f.severity.clone(),
                    line: f.line,
                })
                .collect();
        }
    }

    /// Record the code: its SHA-256 and length, over the parts in order.
    pub fn code(&mut self, parts: &[&[u8]]) {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut len = 0;
        for p in parts {
            ctx.update(p);
            len += p.len();
        }
        self.code_sha256 = Some(super::hex(ctx.finish().as_ref()));
        self.code_bytes = Some(len);
    }

    /// Record a refusal; the first reason given wins (it is the most specific).
    pub fn reject(&mut self, code: &str, message: &str) {
        if self.rejection.is_none() {
            let mut m = redact(message);
            if m.len() > 300 {
                let mut cut = 300;
                while !m.is_char_boundary(cut) {
                    cut -= 1;
                }
                m.truncate(cut);
                m.push('…');
            }
            self.rejection = Some(if m.is_empty() {
                code.to_string()
            } else {
                format!("{code}: {m}")
            });
        }
    }
}

/// Where records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkConfig {
    Off,
    Stdout,
    File {
        path: PathBuf,
        max_bytes: u64,
        keep: usize,
    },
    Journald {
        socket: PathBuf,
        identifier: String,
    },
}

enum Sink {
    Off,
    Stdout,
    File(FileSink),
    Journald {
        socket: UnixDatagram,
        path: PathBuf,
        identifier: String,
    },
}

struct FileSink {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: File,
    written: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("open audit log {}", .path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rotate audit log {}", .path.display())]
    Rotate {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write audit log {}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("create a datagram socket for journald")]
    Socket(#[source] std::io::Error),
}

fn open(path: &Path) -> Result<File, AuditError> {
    // 0640: the audit trail names principals and clients; not for every local user.
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .map_err(|source| AuditError::Open {
            path: path.to_path_buf(),
            source,
        })
}

impl FileSink {
    fn write(&mut self, line: &[u8]) -> Result<(), AuditError> {
        if self.written > 0 && self.written + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file
            .write_all(line)
            .map_err(|source| AuditError::Write {
                path: self.path.clone(),
                source,
            })?;
        self.written += line.len() as u64;
        Ok(())
    }

    /// `log` → `log.1` → … → `log.<keep>` (the oldest is overwritten), then a fresh `log`.
    fn rotate(&mut self) -> Result<(), AuditError> {
        let numbered = |n: usize| PathBuf::from(format!("{}.{n}", self.path.display()));
        let fail = |source| AuditError::Rotate {
            path: self.path.clone(),
            source,
        };
        if self.keep == 0 {
            std::fs::remove_file(&self.path).map_err(fail)?;
        } else {
            for n in (1..self.keep).rev() {
                match std::fs::rename(numbered(n), numbered(n + 1)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail(e)),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, numbered(1)).map_err(fail)?;
        }
        self.file = open(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

pub struct AuditLog {
    sink: Mutex<Sink>,
    pub errors: AtomicU64,
    pub lines: AtomicU64,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

impl AuditLog {
    pub fn open(config: &SinkConfig) -> Result<Self, AuditError> {
        let sink = match config {
            SinkConfig::Off => Sink::Off,
            SinkConfig::Stdout => Sink::Stdout,
            SinkConfig::File {
                path,
                max_bytes,
                keep,
            } => {
                let file = open(path)?;
                let written = file.metadata().map(|m| m.len()).unwrap_or(0);
                Sink::File(FileSink {
                    path: path.clone(),
                    max_bytes: *max_bytes,
                    keep: *keep,
                    file,
                    written,
                })
            }
            SinkConfig::Journald { socket, identifier } => Sink::Journald {
                socket: UnixDatagram::unbound().map_err(AuditError::Socket)?,
                path: socket.clone(),
                identifier: identifier.clone(),
            },
        };
        Ok(AuditLog {
            sink: Mutex::new(sink),
            errors: AtomicU64::new(0),
            lines: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Sink> {
        self.sink
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Write one record. A failure is counted and logged, never turned into a failed request.
    pub fn write(&self, rec: &AuditRecord) {
        let json = match serde_json::to_string(rec) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!("audit record not serialisable: {e}");
                return;
            }
        };
        let result = match &mut *self.lock() {
            Sink::Off => return,
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{json}")
                    .and_then(|()| out.flush())
                    .map_err(|source| AuditError::Write {
                        path: PathBuf::from("stdout"),
                        source,
                    })
            }
            Sink::File(f) => f.write(format!("{json}\n").as_bytes()),
            Sink::Journald {
                socket,
                path,
                identifier,
            } => {
                let msg = journal_message(identifier, rec, &json);
                socket
                    .send_to(msg.as_bytes(), &*path)
                    .map(|_| ())
                    .map_err(|source| AuditError::Write {
                        path: path.clone(),
                        source,
                    })
            }
        };
        match result {
            Ok(()) => {
                self.lines.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(request_id = %rec.request_id, "audit: {e}: {}", source_of(&e));
            }
        }
    }
}

fn source_of(e: &AuditError) -> String {
    std::error::Error::source(e).map_or_else(String::new, ToString::to_string)
}

/// A journald native-protocol datagram: `FIELD=value` lines. Every value here is single-line
/// (the JSON has its newlines escaped; principals are printable ASCII).
fn journal_message(identifier: &str, rec: &AuditRecord, json: &str) -> String {
    let mut m = format!("SYSLOG_IDENTIFIER={identifier}\nPRIORITY=6\nMESSAGE={json}\n");
    m.push_str(&format!("STOCKADE_REQUEST_ID={}\n", rec.request_id));
    if let Some(p) = &rec.principal {
        m.push_str(&format!("STOCKADE_PRINCIPAL={p}\n"));
    }
    m.push_str(&format!("STOCKADE_STATUS={}\n", rec.status));
    m
}

/// A record in progress, written when the last holder lets go.
pub struct Pending {
    record: Mutex<AuditRecord>,
    log: Arc<AuditLog>,
    started: std::time::Instant,
}

impl Pending {
    pub fn new(log: Arc<AuditLog>, record: AuditRecord) -> Arc<Self> {
        Arc::new(Pending {
            record: Mutex::new(record),
            log,
            started: std::time::Instant::now(),
        })
    }

    /// Change the record.
    pub fn with<R>(&self, f: impl FnOnce(&mut AuditRecord) -> R) -> R {
        f(&mut self
            .record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let rec = self
            .record
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rec.duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.log.write(rec);
    }
}

/// RFC 3339 UTC with milliseconds (no dependency on a date crate: civil-from-days, Howard
/// Hinnant's algorithm, http://howardhinnant.github.io/date_algorithms.html).
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::verdict::{PolicyFinding, PolicyReport, Status};

    fn record(id: &str) -> AuditRecord {
        AuditRecord {
            time: rfc3339(SystemTime::now()),
            request_id: id.into(),
            principal: Some("ci".into()),
            auth: Some("api_key"),
            key_id: Some("0a1b2c3d".into()),
            client: Some("127.0.0.1:4000".into()),
            method: "POST".into(),
            path: "/v1/execute".into(),
            status: 200,
            ..AuditRecord::default()
        }
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(951_782_400_123); // 2000-02-29
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.123Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.000Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn verdicts_code_and_rejections_fill_the_record() {
        let mut r = record("a");
        r.code(&[b"print(", b"1)"]);
        assert_eq!(r.code_bytes, Some(8));
        assert_eq!(
            r.code_sha256.as_deref(),
            Some(super::super::hex(&super::super::sha256(b"print(1)")).as_str())
        );
        let mut v = Verdict::not_started(Status::RejectedByPolicy, Default::default(), "x".into());
        v.policy = Some(PolicyReport {
            preset: "strict".into(),
            mode: "enforce".into(),
            safe: false,
            findings: vec![PolicyFinding {
                rule: "subprocess".into(),
                severity: "HIGH".into(),
                message: "m".into(),
                line: 3,
                column: 1,
            }],
        });
        r.verdict(&v);
        assert_eq!(r.verdict, Some("rejected_by_policy"));
        assert_eq!(r.findings[0].rule, "subprocess");
        r.reject("forbidden", "key stk_0a1b2c3d_secretsecret is not allowed");
        r.reject("later", "ignored");
        assert_eq!(
            r.rejection.as_deref(),
            Some("forbidden: key stk_0a1b2c3d_[REDACTED] is not allowed")
        );
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("secretsecret"));
        assert!(!json.contains("print(1)"));
    }

    #[test]
    fn file_sink_writes_one_line_per_record_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = Arc::new(
            AuditLog::open(&SinkConfig::File {
                path: path.clone(),
                max_bytes: 700,
                keep: 2,
            })
            .unwrap(),
        );
        for i in 0..12 {
            // Written when the last holder drops it.
            let p = Pending::new(Arc::clone(&log), record(&format!("req-{i:02}")));
            let held = Arc::clone(&p);
            drop(p);
            held.with(|r| r.status = 429);
        }
        assert_eq!(log.lines.load(Ordering::Relaxed), 12);
        let current = std::fs::read_to_string(&path).unwrap();
        let one = std::fs::read_to_string(dir.path().join("audit.log.1")).unwrap();
        let two = std::fs::read_to_string(dir.path().join("audit.log.2")).unwrap();
        assert!(!dir.path().join("audit.log.3").exists(), "keep = 2");
        for text in [&current, &one, &two] {
            assert!(text.len() <= 700, "{}", text.len());
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(v["status"], 429);
                assert_eq!(v["principal"], "ci");
            }
        }
        assert!(
            current.contains("req-11"),
            "the newest record is in the current file"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o640
        );
    }

    #[test]
    fn journald_sink_sends_native_protocol_datagrams() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("journal.sock");
        let server = UnixDatagram::bind(&sock).unwrap();
        let log = AuditLog::open(&SinkConfig::Journald {
            socket: sock,
            identifier: "stockade-audit".into(),
        })
        .unwrap();
        log.write(&record("req-j"));
        let mut buf = vec![0u8; 8192];
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let n = server.recv(&mut buf).unwrap();
        let msg = String::from_utf8_lossy(&buf[..n]);
        assert!(
            msg.starts_with("SYSLOG_IDENTIFIER=stockade-audit\nPRIORITY=6\nMESSAGE={"),
            "{msg}"
        );
        assert!(msg.contains("STOCKADE_PRINCIPAL=ci\n"), "{msg}");
        assert!(msg.contains("STOCKADE_REQUEST_ID=req-j\n"), "{msg}");
        assert_eq!(msg.lines().filter(|l| l.starts_with("MESSAGE=")).count(), 1);
    }

    #[test]
    fn write_failures_are_counted_not_fatal() {
        let log = AuditLog::open(&SinkConfig::Journald {
            socket: PathBuf::from("/nonexistent/journal.sock"),
            identifier: "x".into(),
        })
        .unwrap();
        log.write(&record("r"));
        assert_eq!(log.errors.load(Ordering::Relaxed), 1);
    }
}
