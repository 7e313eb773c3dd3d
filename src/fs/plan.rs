//! The plan: a sandbox's `Shape` as `Vec<MountOp>`, pure data, unit-tested without root.

use std::path::{Path, PathBuf};

use super::{EtcEntry, HostLayout, MountOp};
use crate::policy::{RootFs, SANDBOX_DIR, Shape};

/// The sandbox's `/etc/passwd` and `/etc/group` on the `host` root: only the sandbox's own users.
const PASSWD: &str = "root:x:0:0:sandbox:/sandbox:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// The sandbox's `/etc/hosts`: loopback and its own name (the JVM's `getLocalHost` resolves it),
/// none of the host's entries.
fn hosts(hostname: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    )
}

/// Host device nodes bound into the minimal `/dev` (mknod is refused inside a user namespace).
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];

/// Build the mount plan of a sandbox. Files of an execution are not part of it: they are written
/// at exec time, from inside (`sandbox::agent`).
pub fn plan(shape: &Shape, host: &HostLayout) -> Vec<MountOp> {
    let p = PathBuf::from;
    let mut ops = Vec::new();
    match &shape.rootfs {
        RootFs::Host => {
            let copied: u64 = host
                .etc
                .iter()
                .map(|(_, e)| match e {
                    EtcEntry::File { contents, .. } => contents.len() as u64,
                    _ => 0,
                })
                .sum();
            ops.push(MountOp::RootTmpfs {
                size: (1 << 20) + copied,
            });
            ops.push(MountOp::Mkdir { path: p("/usr") });
            ops.push(MountOp::Bind {
                source: p("/usr"),
                target: p("/usr"),
                writable: false,
            });
            for (name, target) in &host.top_symlinks {
                ops.push(MountOp::Symlink {
                    target: target.clone(),
                    path: Path::new("/").join(name),
                });
            }
            for name in &host.top_dirs {
                let path = Path::new("/").join(name);
                ops.push(MountOp::Mkdir { path: path.clone() });
                ops.push(MountOp::Bind {
                    source: path.clone(),
                    target: path,
                    writable: false,
                });
            }
            ops.push(MountOp::Mkdir { path: p("/etc") });
            for (name, entry) in &host.etc {
                let path = Path::new("/etc").join(name);
                let bind = |path: PathBuf| MountOp::Bind {
                    source: path.clone(),
                    target: path,
                    writable: false,
                };
                match entry {
                    // `pki/tls/cert.pem`: a nested link needs its directory first.
                    EtcEntry::Symlink(target) if name.contains('/') => {
                        let parent = path.parent().map(Path::to_path_buf);
                        ops.extend(parent.map(|path| MountOp::Mkdir { path }));
                        ops.push(MountOp::Symlink {
                            target: target.clone(),
                            path,
                        });
                    }
                    EtcEntry::Symlink(target) => ops.push(MountOp::Symlink {
                        target: target.clone(),
                        path,
                    }),
                    EtcEntry::Dir => {
                        ops.push(MountOp::Mkdir { path: path.clone() });
                        ops.push(bind(path));
                    }
                    EtcEntry::File { contents, mode } => ops.push(MountOp::WriteFile {
                        path,
                        contents: contents.clone(),
                        mode: *mode,
                    }),
                    EtcEntry::BigFile => {
                        if name.contains('/') {
                            let parent = path.parent().map(Path::to_path_buf);
                            ops.extend(parent.map(|path| MountOp::Mkdir { path }));
                        }
                        ops.push(MountOp::Touch { path: path.clone() });
                        ops.push(bind(path));
                    }
                }
            }
            let file = |path: &str, text: &str| MountOp::WriteFile {
                path: PathBuf::from(path),
                contents: text.as_bytes().to_vec(),
                mode: 0o644,
            };
            ops.push(file("/etc/passwd", PASSWD));
            ops.push(file("/etc/group", GROUP));
            ops.push(file("/etc/hostname", &format!("{}\n", shape.hostname)));
            ops.push(file("/etc/hosts", &hosts(&shape.hostname)));
            for dir in ["/proc", "/dev", "/tmp", SANDBOX_DIR] {
                ops.push(MountOp::Mkdir { path: p(dir) });
            }
        }
        RootFs::Dir(dir) => ops.push(MountOp::RootBind {
            source: dir.clone(),
        }),
    }
    ops.push(MountOp::Proc { target: p("/proc") });
    dev_ops(&mut ops, shape.limits.tmp_size);
    ops.push(MountOp::Tmpfs {
        target: p("/tmp"),
        size: shape.limits.tmp_size,
        mode: 0o1777,
        exec: true,
    });
    ops.push(MountOp::Tmpfs {
        target: p(SANDBOX_DIR),
        size: shape.limits.sandbox_size,
        mode: 0o755,
        exec: true,
    });
    for m in &shape.mounts {
        if shape.rootfs == RootFs::Host {
            ops.push(MountOp::Mkdir {
                path: m.target.clone(),
            });
        }
        ops.push(MountOp::Bind {
            source: m.source.clone(),
            target: m.target.clone(),
            writable: m.writable,
        });
    }
    for f in &shape.files {
        ops.push(MountOp::WriteFile {
            path: f.path.clone(),
            contents: f.contents.clone(),
            mode: f.mode & 0o777,
        });
    }
    ops
}

/// The minimal `/dev`: a small tmpfs with host device nodes bound in, `/proc/self/fd` links, a
/// private `/dev/shm`, no tty; read-only once populated.
fn dev_ops(ops: &mut Vec<MountOp>, shm_size: u64) {
    let p = PathBuf::from;
    ops.push(MountOp::Tmpfs {
        target: p("/dev"),
        size: 64 << 10,
        mode: 0o755,
        exec: false,
    });
    for dev in DEVICES {
        let path = Path::new("/dev").join(dev);
        ops.push(MountOp::Touch { path: path.clone() });
        ops.push(MountOp::BindDevice { path });
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        ops.push(MountOp::Symlink {
            target: p(target),
            path: Path::new("/dev").join(name),
        });
    }
    // openpty(3), python's pty module and `script` need a pty pair; the instance is private.
    ops.push(MountOp::Mkdir {
        path: p("/dev/pts"),
    });
    ops.push(MountOp::Devpts {
        target: p("/dev/pts"),
    });
    ops.push(MountOp::Symlink {
        target: p("pts/ptmx"),
        path: p("/dev/ptmx"),
    });
    ops.push(MountOp::Mkdir {
        path: p("/dev/shm"),
    });
    ops.push(MountOp::Tmpfs {
        target: p("/dev/shm"),
        size: shm_size,
        mode: 0o1777,
        exec: false,
    });
    ops.push(MountOp::RemountReadOnly { target: p("/dev") });
}
