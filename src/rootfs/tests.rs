//! verify's checks against small trees built in a temporary directory.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use super::elf::elf_interpreter;
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
