//! What the `host` root is built from: the host's top-level layout (merged /usr links or real
//! directories) and the `/etc` entries of the allowlist, read once by the parent.

use std::path::{Path, PathBuf};

use super::host_etc;

/// Facts about the host root the `host` plan depends on, discovered once by the parent.
#[derive(Debug, Clone, Default)]
pub struct HostLayout {
    /// Top-level entries that are symlinks (merged /usr: `bin -> usr/bin`), with their targets.
    pub top_symlinks: Vec<(String, PathBuf)>,
    /// Top-level directories that must be bound because they are real directories (split /usr).
    pub top_dirs: Vec<String>,
    /// `/etc` entries of the allowlist (`host_etc::ALLOWED`) present on the host, by path
    /// relative to `/etc`.
    pub etc: Vec<(String, EtcEntry)>,
}

/// How one host `/etc` entry appears in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcEntry {
    /// A directory, bound read-only.
    Dir,
    /// A small regular file, copied into the root tmpfs: a copy costs a read and a write, a
    /// read-only bind two mount calls (plus a statfs), and exposes no host inode.
    File {
        contents: Vec<u8>,
        mode: u32,
    },
    /// A larger regular file, bound read-only.
    BigFile,
    Symlink(PathBuf),
}

/// Top-level names that Debian's merged /usr makes symlinks (or, on older systems, directories).
const USR_ALIASES: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

impl HostLayout {
    /// Inspect the host root (a few `lstat` calls and one listing of `/etc`).
    pub fn discover() -> HostLayout {
        let mut layout = HostLayout::default();
        for name in USR_ALIASES {
            let path = Path::new("/").join(name);
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(target) = std::fs::read_link(&path) {
                        layout.top_symlinks.push((name.to_string(), target));
                    }
                }
                Ok(m) if m.is_dir() => layout.top_dirs.push(name.to_string()),
                _ => {}
            }
        }
        layout.etc = host_etc::discover(Path::new("/etc"));
        layout
    }
}
