//! The README's `stockade run` examples, run as written (STYLE §14: docs that cannot rot).

mod common;

use std::process::Command;

#[test]
fn every_readme_run_example_works() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let dir = common::shared_dir().join("readme");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.py"), "print('main')\n").unwrap();
    let bin_dir = std::path::Path::new(common::bin()).parent().unwrap();
    let mut ran = 0;
    for line in readme.lines() {
        // Example lines: `stockade run ...   # comment`; the expected exit code follows from the comment.
        let Some(cmd) = line.strip_prefix("stockade run ").or_else(|| line.split_once("| stockade run ").map(|(_, c)| c)) else { continue };
        let cmd = if line.starts_with("stockade") { format!("stockade run {cmd}") } else { line.to_string() };
        let cmd = cmd.split("  #").next().unwrap().trim().to_string();
        let expect_timeout = line.contains("timeout_wall");
        let out = Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .current_dir(&dir)
            .env("PATH", format!("{}:/usr/local/bin:/usr/bin:/bin", bin_dir.display()))
            .output()
            .unwrap();
        let code = out.status.code();
        let want = if expect_timeout { Some(124) } else { Some(0) };
        assert_eq!(code, want, "README example failed: {cmd}\nstdout: {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        ran += 1;
    }
    assert!(ran >= 5, "expected the README's examples, found {ran}");
}
