//! The README's `stockade run` examples, run as written (STYLE §14: docs that cannot rot).

mod common;

use std::process::Command;

#[test]
fn every_readme_run_example_works() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let dir = common::shared_dir().join("readme");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.py"), "print('main')\n").unwrap();
    // The README's "your own profile" example.
    std::fs::write(
        dir.join("my.toml"),
        "description = \"README example\"\nextends = \"python\"\n",
    )
    .unwrap();
    let bin_dir = std::path::Path::new(common::bin()).parent().unwrap();
    let mut ran = 0;
    for line in readme.lines() {
        // Example lines: `stockade run ...   # comment`; the expected exit code follows from the comment.
        let Some(cmd) = line
            .strip_prefix("stockade run ")
            .or_else(|| line.split_once("| stockade run ").map(|(_, c)| c))
        else {
            continue;
        };
        let cmd = if line.starts_with("stockade") {
            format!("stockade run {cmd}")
        } else {
            line.to_string()
        };
        let cmd = cmd.split("  #").next().unwrap().trim().to_string();
        let want = if line.contains("timeout_wall") {
            Some(124)
        } else if line.contains("rejected_by_policy") {
            Some(126)
        } else if line.contains("compile_failed") {
            Some(1)
        } else {
            Some(0)
        };
        let out = Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .current_dir(&dir)
            .env(
                "PATH",
                format!("{}:/usr/local/bin:/usr/bin:/bin", bin_dir.display()),
            )
            .output()
            .unwrap();
        let code = out.status.code();
        assert_eq!(
            code,
            want,
            "README example failed: {cmd}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ran += 1;
    }
    assert!(ran >= 5, "expected the README's examples, found {ran}");
}
