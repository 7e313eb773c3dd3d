//! The plan of each root kind, without root.

use super::*;
use std::path::Path;

use crate::policy::{BindMount, Policy, RootFs};

fn layout() -> HostLayout {
    HostLayout {
        top_symlinks: vec![
            ("bin".into(), "usr/bin".into()),
            ("lib64".into(), "usr/lib64".into()),
        ],
        top_dirs: vec![],
        etc: vec![
            (
                "ld.so.cache".into(),
                EtcEntry::File {
                    contents: b"cache".to_vec(),
                    mode: 0o644,
                },
            ),
            ("mime.types".into(), EtcEntry::BigFile),
            ("ssl".into(), EtcEntry::Dir),
            (
                "localtime".into(),
                EtcEntry::Symlink("/usr/share/zoneinfo/UTC".into()),
            ),
        ],
    }
}

fn pos(ops: &[MountOp], pred: impl Fn(&MountOp) -> bool) -> usize {
    ops.iter().position(pred).expect("op missing from plan")
}

#[test]
fn host_plan_binds_usr_read_only_and_only_listed_etc_files() {
    let ops = plan(&Policy::default().shape(), &layout());
    assert_eq!(
        ops[0],
        MountOp::RootTmpfs {
            size: (1 << 20) + 5
        }
    );
    // Small files are copies, large ones and directories read-only binds.
    assert!(ops.contains(&MountOp::WriteFile {
        path: "/etc/ld.so.cache".into(),
        contents: b"cache".to_vec(),
        mode: 0o644
    }));
    assert!(!ops.iter().any(
        |op| matches!(op, MountOp::Bind { source, .. } if source == Path::new("/etc/ld.so.cache"))
    ));
    assert!(ops.contains(&MountOp::Bind {
        source: "/etc/mime.types".into(),
        target: "/etc/mime.types".into(),
        writable: false
    }));
    assert!(ops.contains(&MountOp::Bind {
        source: "/usr".into(),
        target: "/usr".into(),
        writable: false
    }));
    assert!(ops.contains(&MountOp::Symlink {
        target: "usr/bin".into(),
        path: "/bin".into()
    }));
    assert!(ops.contains(&MountOp::Bind {
        source: "/etc/ssl".into(),
        target: "/etc/ssl".into(),
        writable: false
    }));
    assert!(ops.contains(&MountOp::Symlink {
        target: "/usr/share/zoneinfo/UTC".into(),
        path: "/etc/localtime".into()
    }));
    // Nothing else of the host is bound, and nothing is writable but the device nodes.
    for op in &ops {
        if let MountOp::Bind {
            source, writable, ..
        } = op
        {
            let ok = source == Path::new("/usr")
                || source.starts_with("/etc/")
                || source.starts_with("/dev/");
            assert!(ok, "unexpected bind of {source:?}");
            assert_eq!(*writable, source.starts_with("/dev/"), "{source:?}");
        }
    }
    assert!(!ops.iter().any(
        |op| matches!(op, MountOp::Bind { source, .. } if source == Path::new("/etc/shadow"))
    ));
}

#[test]
fn nested_etc_entries_get_their_directories_and_hosts_is_the_sandboxs_own() {
    let mut host = layout();
    host.etc = vec![
        ("ssl/certs".into(), EtcEntry::Dir),
        (
            "pki/tls/cert.pem".into(),
            EtcEntry::Symlink("/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem".into()),
        ),
        ("pki/java/cacerts".into(), EtcEntry::BigFile),
    ];
    let ops = plan(&Policy::default().shape(), &host);
    let mkdir = |dir: &str| {
        pos(
            &ops,
            |op| matches!(op, MountOp::Mkdir { path } if path == Path::new(dir)),
        )
    };
    let link = pos(
        &ops,
        |op| matches!(op, MountOp::Symlink { path, .. } if path == Path::new("/etc/pki/tls/cert.pem")),
    );
    assert!(mkdir("/etc/pki/tls") < link);
    let touch = pos(
        &ops,
        |op| matches!(op, MountOp::Touch { path } if path == Path::new("/etc/pki/java/cacerts")),
    );
    assert!(mkdir("/etc/pki/java") < touch);
    let bind = pos(
        &ops,
        |op| matches!(op, MountOp::Bind { source, .. } if source == Path::new("/etc/ssl/certs")),
    );
    assert!(mkdir("/etc/ssl/certs") < bind);
    // Nothing of /etc/ssl but certs: no bind of the parent (and so of ssl/private).
    assert!(
        !ops.iter().any(
            |op| matches!(op, MountOp::Bind { source, .. } if source == Path::new("/etc/ssl"))
        )
    );
    let hosts = ops.iter().find_map(|op| match op {
        MountOp::WriteFile { path, contents, .. } if path == Path::new("/etc/hosts") => {
            Some(String::from_utf8_lossy(contents).into_owned())
        }
        _ => None,
    });
    assert_eq!(
        hosts.as_deref(),
        Some(
            "127.0.0.1\tlocalhost\n127.0.1.1\tstockade\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        )
    );
}

#[test]
fn proc_comes_before_dev_and_tmpfs_are_size_capped() {
    let mut policy = Policy::default();
    policy.limits.tmp_size = 5 << 20;
    policy.limits.sandbox_size = 7 << 20;
    let ops = plan(&policy.shape(), &layout());
    let proc_at = pos(&ops, |op| matches!(op, MountOp::Proc { .. }));
    let dev_at = pos(
        &ops,
        |op| matches!(op, MountOp::Tmpfs { target, .. } if target == Path::new("/dev")),
    );
    assert!(proc_at < dev_at);
    assert!(ops.contains(&MountOp::Tmpfs {
        target: "/tmp".into(),
        size: 5 << 20,
        mode: 0o1777,
        exec: true
    }));
    assert!(ops.contains(&MountOp::Tmpfs {
        target: "/sandbox".into(),
        size: 7 << 20,
        mode: 0o755,
        exec: true
    }));
    let ro_dev = pos(
        &ops,
        |op| matches!(op, MountOp::RemountReadOnly { target } if target == Path::new("/dev")),
    );
    let shm = pos(
        &ops,
        |op| matches!(op, MountOp::Tmpfs { target, .. } if target == Path::new("/dev/shm")),
    );
    assert!(shm < ro_dev, "/dev is made read-only after it is populated");
}

#[test]
fn rootfs_dir_plan_binds_the_directory_and_writes_nothing_into_it() {
    let mut policy = Policy::default();
    policy.rootfs = RootFs::Dir("/srv/rootfs".into());
    let ops = plan(&policy.shape(), &layout());
    assert_eq!(
        ops[0],
        MountOp::RootBind {
            source: "/srv/rootfs".into()
        }
    );
    assert!(
        !ops.iter()
            .any(|op| matches!(op, MountOp::Mkdir { path } if !path.starts_with("/dev")))
    );
    assert!(!ops.iter().any(|op| matches!(op, MountOp::WriteFile { .. })));
}

#[test]
fn extra_binds_come_after_the_work_dir() {
    let mut policy = Policy::default();
    policy.mounts.push(BindMount {
        source: "/data".into(),
        target: "/data".into(),
        writable: false,
    });
    let ops = plan(&policy.shape(), &layout());
    let work = pos(
        &ops,
        |op| matches!(op, MountOp::Tmpfs { target, .. } if target == Path::new("/sandbox")),
    );
    let bind = pos(
        &ops,
        |op| matches!(op, MountOp::Bind { source, .. } if source == Path::new("/data")),
    );
    assert!(work < bind);
}

#[test]
fn files_of_the_shape_are_written_last_without_set_id_bits() {
    let mut shape = Policy::default().shape();
    shape.files.push(crate::policy::File {
        path: "/.stockade/python/sitecustomize.py".into(),
        contents: b"x".to_vec(),
        mode: 0o4755,
    });
    let ops = plan(&shape, &layout());
    assert!(matches!(
        ops.last(),
        Some(MountOp::WriteFile { path, mode: 0o755, .. })
            if path == Path::new("/.stockade/python/sitecustomize.py")
    ));
}
