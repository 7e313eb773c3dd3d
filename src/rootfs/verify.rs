//! `stockade rootfs verify`: the checks of a rootfs directory (mountpoints, interpreters and the
//! loaders they name, set-id files and device nodes), made without executing anything from it.

use std::fmt;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use super::elf::elf_interpreter;
use super::{KNOWN_INTERPRETERS, LIST_AT_MOST, MOUNTPOINTS, PATH_DIRS, RootfsError};

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    /// Worth knowing, not a reason to refuse the rootfs (e.g. an optional interpreter missing).
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub status: CheckStatus,
    /// What was checked: `mountpoint /proc`, `interpreter python3`, `setuid files`.
    pub name: String,
    pub message: String,
}

/// Everything `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub root: PathBuf,
    pub checks: Vec<Check>,
}

impl Report {
    /// True when no check failed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != CheckStatus::Fail)
    }

    /// Add a check made elsewhere (the CLI runs the interpreters in a sandbox).
    pub fn push(
        &mut self,
        status: CheckStatus,
        name: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.checks.push(Check {
            status,
            name: name.into(),
            message: message.into(),
        });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            let tag = match c.status {
                CheckStatus::Ok => "ok  ",
                CheckStatus::Warn => "warn",
                CheckStatus::Fail => "FAIL",
            };
            writeln!(f, "{tag}  {:<22} {}", c.name, c.message)?;
        }
        let verdict = if self.passed() {
            "usable"
        } else {
            "NOT usable"
        };
        write!(
            f,
            "{}: {verdict} as a read-only rootfs",
            self.root.display()
        )
    }
}

/// Check `root`: mountpoints, interpreters (`require` must be present, the others of
/// [`KNOWN_INTERPRETERS`] are reported), setuid/setgid files and world-writable directories.
pub fn verify(root: &Path, require: &[String]) -> Result<Report, RootfsError> {
    let meta = fs::metadata(root).map_err(|source| RootfsError::Stat {
        path: root.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(RootfsError::NotADirectory(root.to_path_buf()));
    }
    let mut report = Report {
        root: root.to_path_buf(),
        checks: Vec::new(),
    };
    check_mountpoints(root, &mut report);
    check_interpreters(root, require, &mut report);
    check_tree(root, meta.dev(), &mut report);
    Ok(report)
}

fn check_mountpoints(root: &Path, report: &mut Report) {
    for name in MOUNTPOINTS {
        let label = format!("mountpoint /{name}");
        match fs::symlink_metadata(root.join(name)) {
            Ok(m) if m.is_dir() => report.push(CheckStatus::Ok, label, "present"),
            Ok(_) => report.push(
                CheckStatus::Fail,
                label,
                format!("/{name} exists but is not a directory (a symlink or file cannot be mounted over safely)"),
            ),
            Err(_) => report.push(
                CheckStatus::Fail,
                label,
                format!("/{name} is missing; the root is read-only, so create it before use: mkdir {}", root.join(name).display()),
            ),
        }
    }
}

fn check_interpreters(root: &Path, require: &[String], report: &mut Report) {
    let mut names: Vec<&str> = KNOWN_INTERPRETERS.to_vec();
    names.extend(
        require
            .iter()
            .map(String::as_str)
            .filter(|r| !KNOWN_INTERPRETERS.contains(r)),
    );
    for name in names {
        let label = format!("interpreter {name}");
        let required = require.iter().any(|r| r == name);
        match find_executable(root, name) {
            Ok(found) => report.push(CheckStatus::Ok, label, found),
            Err(why) if required => report.push(CheckStatus::Fail, label, why),
            Err(why) => report.push(CheckStatus::Warn, label, format!("{why} (not required)")),
        }
    }
}

/// Find `name` on the sandbox's PATH inside `root` and check it can run on this machine.
fn find_executable(root: &Path, name: &str) -> Result<String, String> {
    for dir in PATH_DIRS {
        let inside = format!("/{dir}/{name}");
        if let Ok(host) = resolve_in_root(root, &inside) {
            if host.exists() {
                return check_program(root, &host, 0).map(|what| format!("{inside}: {what}"));
            }
        }
    }
    Err("not found in /usr/local/bin, /usr/bin or /bin".to_string())
}

/// Resolve `path` as the sandbox would see it: symlinks (absolute ones too) stay inside `root`.
pub fn resolve_in_root(root: &Path, path: &str) -> Result<PathBuf, String> {
    let mut pending: Vec<String> = components(path);
    pending.reverse();
    let mut current: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            current.pop();
            continue;
        }
        current.push(part);
        let host: PathBuf = current.iter().fold(root.to_path_buf(), |p, c| p.join(c));
        let Ok(meta) = fs::symlink_metadata(&host) else {
            // Missing: the rest cannot resolve either; report the path as it stands.
            current.extend(pending.into_iter().rev());
            return Ok(current.iter().fold(root.to_path_buf(), |p, c| p.join(c)));
        };
        if meta.file_type().is_symlink() {
            links += 1;
            if links > 40 {
                return Err(format!("too many levels of symbolic links in {path}"));
            }
            let target =
                fs::read_link(&host).map_err(|e| format!("readlink {}: {e}", host.display()))?;
            current.pop();
            if target.is_absolute() {
                current.clear();
            }
            let target = target.to_string_lossy().into_owned();
            pending.extend(components(&target).into_iter().rev());
        }
    }
    Ok(current.iter().fold(root.to_path_buf(), |p, c| p.join(c)))
}

fn components(path: &str) -> Vec<String> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// Check a resolved program: a regular, executable file that is an ELF for this machine (with
/// its dynamic loader present in `root`) or a script whose `#!` interpreter passes the same check.
fn check_program(root: &Path, host: &Path, depth: u8) -> Result<String, String> {
    let meta = fs::metadata(host).map_err(|e| format!("stat {}: {e}", host.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", host.display()));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("{} is not executable", host.display()));
    }
    let mut head = vec![0u8; 256];
    let n = File::open(host)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| format!("read {}: {e}", host.display()))?;
    head.truncate(n);
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = String::from_utf8_lossy(line.split(|b| *b == b'\n').next().unwrap_or_default());
        let interp = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        if depth >= 4 || interp.is_empty() {
            return Err(format!("{}: unusable #! line", host.display()));
        }
        let resolved = resolve_in_root(root, &interp)?;
        check_program(root, &resolved, depth + 1)?;
        return Ok(format!("script run by {interp}"));
    }
    if let Some(loader) = elf_interpreter(host)? {
        let resolved = resolve_in_root(root, &loader)?;
        if !resolved.is_file() {
            return Err(format!(
                "its dynamic loader {loader} is missing from the rootfs"
            ));
        }
    }
    Ok(format!("ELF {}", std::env::consts::ARCH))
}

/// Walk the tree once (staying on its filesystem) for setuid/setgid files and world-writable
/// directories without the sticky bit.
fn check_tree(root: &Path, dev: u64, report: &mut Report) {
    let mut setid = Vec::new();
    let mut writable = Vec::new();
    let mut unreadable = Vec::new();
    let mut devices = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                unreadable.push(format!("{}: {e}", dir.display()));
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let mode = meta.mode();
            let kind = meta.file_type();
            if kind.is_block_device() || kind.is_char_device() {
                devices.push(inside(root, &path));
            }
            if meta.is_file() && mode & 0o6000 != 0 {
                setid.push(format!("{} ({:o})", inside(root, &path), mode & 0o7777));
            }
            if meta.is_dir() {
                if mode & 0o002 != 0 && mode & 0o1000 == 0 {
                    writable.push(inside(root, &path));
                }
                if meta.dev() == dev {
                    stack.push(path);
                }
            }
        }
    }
    let fix = format!(
        "find {} -xdev -type f -perm /6000 -exec chmod ug-s {{}} +",
        root.display()
    );
    summarize(report, "setuid/setgid files", setid, &format!("fix: {fix}"));
    let fix = format!(
        "find {} -xdev -type d -perm -0002 ! -perm -1000 -exec chmod o-w {{}} +",
        root.display()
    );
    summarize(
        report,
        "world-writable dirs",
        writable,
        &format!("without the sticky bit; fix: {fix}"),
    );
    if !devices.is_empty() {
        // Inert (the binds are nodev and /dev is replaced), but a built tree has none.
        let shown: Vec<&str> = devices
            .iter()
            .take(LIST_AT_MOST)
            .map(String::as_str)
            .collect();
        let msg = format!(
            "{} found ({}); unused: the sandbox mounts its own /dev",
            devices.len(),
            shown.join(", ")
        );
        report.push(CheckStatus::Warn, "device nodes", msg);
    }
    if !unreadable.is_empty() {
        report.push(CheckStatus::Warn, "unreadable dirs", unreadable.join(", "));
    }
}

fn summarize(report: &mut Report, label: &str, mut found: Vec<String>, fix: &str) {
    if found.is_empty() {
        report.push(CheckStatus::Ok, label, "none");
        return;
    }
    found.sort();
    let total = found.len();
    let mut shown = found
        .into_iter()
        .take(LIST_AT_MOST)
        .collect::<Vec<_>>()
        .join(", ");
    if total > LIST_AT_MOST {
        shown.push_str(&format!(" and {} more", total - LIST_AT_MOST));
    }
    report.push(
        CheckStatus::Fail,
        label,
        format!("{total} found: {shown}; {fix}"),
    );
}

/// A host path shown as the sandbox would see it (`/usr/bin/passwd`).
fn inside(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    format!("/{}", rel.display())
}
