//! Root filesystem directories (bound read-only as `/`): where named ones live, and `verify`.
//!
//! A rootfs is built once by `scripts/build-rootfs` and then treated as immutable. Because it is
//! bound read-only, the mountpoints the sandbox needs must already exist in it, and anything
//! setuid in it is pointless at best (the mounts are nosuid) and a hazard if it is ever used
//! elsewhere. `verify` checks exactly that, without executing anything from the tree.

use std::fmt;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

/// Operator-installed root filesystems; searched first.
pub const SYSTEM_DIR: &str = "/var/lib/stockade/rootfs";

/// Mountpoints a rootfs must contain (the sandbox mounts proc, a minimal dev, and two tmpfs).
pub const MOUNTPOINTS: &[&str] = &["proc", "dev", "tmp", "sandbox"];

/// Interpreters `verify` looks for and reports; the shipped language profiles use these.
pub const KNOWN_INTERPRETERS: &[&str] = &["sh", "bash", "python3", "node", "perl"];

/// A one-line program that makes `interpreter` print its version (`NAME --version` for others).
pub fn version_probe(interpreter: &str) -> Vec<String> {
    let args: &[&str] = match interpreter {
        "sh" => &["-c", "echo ok"],
        "bash" => &["-c", "echo $BASH_VERSION"],
        "python3" => &["-c", "import sys; print(sys.version.split()[0])"],
        "node" => &["-e", "console.log(process.version)"],
        "perl" => &["-e", "print qq($^V\\n)"],
        _ => &["--version"],
    };
    std::iter::once(interpreter)
        .chain(args.iter().copied())
        .map(str::to_string)
        .collect()
}

/// The sandbox's `PATH` (see `crate::policy::default_env`), relative to the root.
const PATH_DIRS: &[&str] = &["usr/local/bin", "usr/bin", "bin"];

/// How many offending paths a check lists before it only counts.
const LIST_AT_MOST: usize = 10;

/// Where a rootfs name is looked up, in order: [`SYSTEM_DIR`], then `rootfs/out` of the source
/// tree this binary was built from (where `scripts/build-rootfs` writes).
pub fn default_dirs() -> Vec<PathBuf> {
    vec![
        PathBuf::from(SYSTEM_DIR),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs/out"),
    ]
}

/// The first `<dir>/<name>` that is a directory.
pub fn find(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(name)).find(|p| p.is_dir())
}

/// Every named rootfs in `dirs` (the first occurrence of a name wins), sorted by name.
pub fn list(dirs: &[PathBuf]) -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    for dir in dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let hidden = name.starts_with('.');
            if !hidden && entry.path().is_dir() && !found.iter().any(|(n, _)| *n == name) {
                found.push((name, entry.path()));
            }
        }
    }
    found.sort();
    found
}

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("{} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("stat {}", .path.display())]
    Stat {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

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

/// ELF `e_machine` of the machine this binary runs on (elf(5), `EM_*`).
fn host_machine() -> Option<u16> {
    match std::env::consts::ARCH {
        "x86_64" => Some(62),
        "aarch64" => Some(183),
        "riscv64" => Some(243),
        "x86" => Some(3),
        "arm" => Some(40),
        _ => None,
    }
}

/// Check that `path` is a little-endian ELF for this machine and return its `PT_INTERP` (the
/// dynamic loader), if any. Layout from elf(5).
fn elf_interpreter(path: &Path) -> Result<Option<String>, String> {
    // Headers and the loader path sit in the first page of every linker output we know; 64 KiB
    // avoids reading a 100 MB node binary whole.
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(64 << 10).read_to_end(&mut bytes))
        .map_err(|e| format!("read {}: {e}", path.display()))?;
    let not = |what: &str| format!("{} is {what}", path.display());
    if bytes.len() < 52 || &bytes[..4] != b"\x7fELF" {
        return Err(not("neither an ELF binary nor a #! script"));
    }
    let is64 = match bytes[4] {
        1 => false,
        2 => true,
        _ => return Err(not("an ELF of unknown class")),
    };
    if bytes[5] != 1 {
        return Err(not("a big-endian ELF"));
    }
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let machine = u16_at(18).unwrap_or_default();
    if Some(machine) != host_machine() {
        return Err(not(&format!(
            "an ELF for machine {machine}, not {}",
            std::env::consts::ARCH
        )));
    }
    // (program header table offset, entry size, count) sit at different offsets per class.
    let (phoff, phentsize, phnum) = if is64 {
        (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    } else {
        (u32_at(0x1c).map(u64::from), u16_at(0x2a), u16_at(0x2c))
    };
    let (Some(phoff), Some(size), Some(count)) = (phoff, phentsize, phnum) else {
        return Err(not("a truncated ELF"));
    };
    for i in 0..usize::from(count) {
        let Some(base) = usize::try_from(phoff)
            .ok()
            .map(|o| o + i * usize::from(size))
        else {
            break;
        };
        const PT_INTERP: u32 = 3;
        if u32_at(base) != Some(PT_INTERP) {
            continue;
        }
        let (off, len) = if is64 {
            (u64_at(base + 8), u64_at(base + 0x20))
        } else {
            (
                u32_at(base + 4).map(u64::from),
                u32_at(base + 0x10).map(u64::from),
            )
        };
        let range = off
            .zip(len)
            .and_then(|(o, l)| Some(usize::try_from(o).ok()?..usize::try_from(o + l).ok()?));
        let Some(raw) = range.and_then(|r| bytes.get(r)) else {
            return Err(not("an ELF with a truncated PT_INTERP"));
        };
        let loader = String::from_utf8_lossy(raw)
            .trim_end_matches('\0')
            .to_string();
        return Ok(Some(loader));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// A tiny but valid rootfs: the mountpoints, a merged-usr `/bin` link, the host's dash as
    /// `/usr/bin/sh` and the dynamic loader it names.
    fn good_root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["proc", "dev", "tmp", "sandbox", "usr/bin", "lib64"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        fs::copy("/usr/bin/dash", root.join("usr/bin/sh")).unwrap();
        let loader = elf_interpreter(Path::new("/usr/bin/dash"))
            .unwrap()
            .unwrap();
        let target = root.join(loader.trim_start_matches('/'));
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::copy(&loader, &target).unwrap();
        dir
    }

    fn check<'r>(report: &'r Report, name: &str) -> &'r Check {
        report
            .checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no check {name}: {report}"))
    }

    fn sh() -> Vec<String> {
        vec!["sh".to_string()]
    }

    #[test]
    fn a_clean_root_passes() {
        let dir = good_root();
        let report = verify(dir.path(), &sh()).unwrap();
        assert!(report.passed(), "{report}");
        assert_eq!(check(&report, "interpreter sh").status, CheckStatus::Ok);
        assert_eq!(
            check(&report, "interpreter python3").status,
            CheckStatus::Warn,
            "optional ones only warn"
        );
        assert!(report.to_string().ends_with("usable as a read-only rootfs"));
    }

    #[test]
    fn a_planted_setuid_file_fails_with_its_path() {
        let dir = good_root();
        let evil = dir.path().join("usr/bin/evil");
        fs::write(&evil, b"x").unwrap();
        fs::set_permissions(&evil, fs::Permissions::from_mode(0o4755)).unwrap();
        let report = verify(dir.path(), &sh()).unwrap();
        let c = check(&report, "setuid/setgid files");
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(
            c.message
                .starts_with("1 found: /usr/bin/evil (4755); fix: find "),
            "{}",
            c.message
        );
        assert!(!report.passed());
    }

    #[test]
    fn a_missing_mountpoint_fails_and_says_how_to_fix_it() {
        let dir = good_root();
        fs::remove_dir(dir.path().join("sandbox")).unwrap();
        fs::remove_dir(dir.path().join("tmp")).unwrap();
        symlink("/tmp", dir.path().join("tmp")).unwrap();
        let report = verify(dir.path(), &sh()).unwrap();
        let c = check(&report, "mountpoint /sandbox");
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(c.message.starts_with(
            "/sandbox is missing; the root is read-only, so create it before use: mkdir "
        ));
        let c = check(&report, "mountpoint /tmp");
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(c.message.contains("not a directory"), "{}", c.message);
        assert_eq!(check(&report, "mountpoint /proc").status, CheckStatus::Ok);
    }

    #[test]
    fn world_writable_dirs_need_the_sticky_bit() {
        let dir = good_root();
        fs::create_dir(dir.path().join("spool")).unwrap();
        fs::set_permissions(dir.path().join("spool"), fs::Permissions::from_mode(0o777)).unwrap();
        let report = verify(dir.path(), &sh()).unwrap();
        let c = check(&report, "world-writable dirs");
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(c.message.starts_with("1 found: /spool;"), "{}", c.message);
    }

    #[test]
    fn absolute_symlinks_resolve_inside_the_root() {
        let dir = good_root();
        symlink("/usr/bin/sh", dir.path().join("usr/bin/bash")).unwrap();
        symlink(
            "/opt/python/bin/python3",
            dir.path().join("usr/bin/python3"),
        )
        .unwrap();
        assert_eq!(
            resolve_in_root(dir.path(), "/bin/bash").unwrap(),
            dir.path().join("usr/bin/sh")
        );
        let report = verify(dir.path(), &["sh".into(), "bash".into(), "python3".into()]).unwrap();
        assert_eq!(check(&report, "interpreter bash").status, CheckStatus::Ok);
        let c = check(&report, "interpreter python3");
        assert_eq!(
            c.status,
            CheckStatus::Fail,
            "the host's python must not count"
        );
        assert_eq!(c.message, "not found in /usr/local/bin, /usr/bin or /bin");
    }

    #[test]
    fn interpreters_must_be_executables_for_this_machine() {
        let dir = good_root();
        let bin = dir.path().join("usr/bin");
        // An ELF header for machine 2 (SPARC) and otherwise plausible fields.
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[18] = 2;
        fs::write(bin.join("node"), &elf).unwrap();
        fs::write(bin.join("perl"), b"#!/bin/sh\n").unwrap();
        fs::write(bin.join("python3"), b"print(1)").unwrap();
        for f in ["node", "perl", "python3"] {
            fs::set_permissions(bin.join(f), fs::Permissions::from_mode(0o755)).unwrap();
        }
        fs::write(bin.join("bash"), b"#!/bin/sh\n").unwrap();
        let all: Vec<String> = ["sh", "bash", "node", "perl", "python3"]
            .map(String::from)
            .to_vec();
        let report = verify(dir.path(), &all).unwrap();
        let msg = |n: &str| check(&report, &format!("interpreter {n}")).message.clone();
        assert!(
            msg("node").ends_with("is an ELF for machine 2, not x86_64"),
            "{}",
            msg("node")
        );
        assert!(
            msg("bash").ends_with("is not executable"),
            "{}",
            msg("bash")
        );
        assert!(
            msg("python3").ends_with("is neither an ELF binary nor a #! script"),
            "{}",
            msg("python3")
        );
        assert_eq!(msg("perl"), "/usr/bin/perl: script run by /bin/sh");
        let loader = elf_interpreter(Path::new("/usr/bin/dash"))
            .unwrap()
            .unwrap();
        fs::remove_file(dir.path().join(loader.trim_start_matches('/'))).unwrap();
        let report = verify(dir.path(), &sh()).unwrap();
        let c = check(&report, "interpreter sh");
        assert_eq!(
            c.message,
            format!("its dynamic loader {loader} is missing from the rootfs")
        );
    }

    #[test]
    fn not_a_directory_is_an_error() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = verify(file.path(), &sh()).unwrap_err();
        assert!(err.to_string().ends_with("is not a directory"));
        assert!(matches!(
            verify(Path::new("/nonexistent/root"), &sh()),
            Err(RootfsError::Stat { .. })
        ));
    }

    #[test]
    fn named_rootfs_lookup_takes_the_first_directory() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        fs::create_dir(a.path().join("deb")).unwrap();
        fs::create_dir(b.path().join("deb")).unwrap();
        fs::create_dir(b.path().join("other")).unwrap();
        fs::create_dir(b.path().join(".deb.build.x")).unwrap();
        let dirs = [a.path().to_path_buf(), b.path().to_path_buf()];
        assert_eq!(find("deb", &dirs), Some(a.path().join("deb")));
        assert_eq!(find("none", &dirs), None);
        let names: Vec<String> = list(&dirs).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["deb", "other"], "hidden build dirs are not listed");
    }
}
