//! Root filesystem directories (bound read-only as `/`): where named ones live, and `verify`.
//!
//! A rootfs is built once by `scripts/build-rootfs` and then treated as immutable. Because it is
//! bound read-only, the mountpoints the sandbox needs must already exist in it, and anything
//! setuid in it is pointless at best (the mounts are nosuid) and a hazard if it is ever used
//! elsewhere. `verify` checks exactly that, without executing anything from the tree.

use std::fs;
use std::path::{Path, PathBuf};

mod elf;
#[cfg(test)]
mod tests;
mod verify;

pub use self::verify::{Check, CheckStatus, Report, resolve_in_root, verify};

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
