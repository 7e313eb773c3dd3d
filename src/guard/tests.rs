use super::*;

fn rules(allowed: Option<&[&str]>, blocked: &[&str]) -> Policy {
    let mut policy = Policy::default();
    policy.analysis.allowed_modules = allowed.map(|l| l.iter().map(|s| s.to_string()).collect());
    policy.analysis.blocked_functions = blocked.iter().map(|s| s.to_string()).collect();
    policy
}

#[test]
fn no_lists_no_guard() {
    assert!(setup(&Policy::default()).is_none());
}

#[test]
fn guards_go_read_only_on_the_host_root_and_lead_the_search_paths() {
    let mut policy = rules(Some(&["json"]), &["eval"]);
    policy.set_env("PYTHONPATH", "/sandbox/lib");
    let guard = setup(&policy).unwrap();
    let targets: Vec<_> = guard.files.iter().map(|f| f.target.clone()).collect();
    assert_eq!(
        targets,
        [
            PathBuf::from("/.stockade/python/sitecustomize.py"),
            PathBuf::from("/.stockade/node/guard.js"),
            PathBuf::from("/.stockade/node/loader.mjs")
        ]
    );
    let env = |k: &str| guard.env.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert_eq!(env("PYTHONPATH"), "/.stockade/python:/sandbox/lib");
    assert_eq!(
        env("NODE_OPTIONS"),
        "--require /.stockade/node/guard.js --disallow-code-generation-from-strings"
    );
    let python = String::from_utf8(guard.files[0].contents.clone()).unwrap();
    assert!(python.starts_with("_ALLOWED = frozenset([\"json\"])\n_BLOCKED = frozenset([\"eval\"])\n_WORK = \"/sandbox\"\n"), "{python}");
    let node = String::from_utf8(guard.files[1].contents.clone()).unwrap();
    assert!(
        node.starts_with("const ALLOWED = [\"json\"];\nconst BLOCKED = [\"eval\"];"),
        "{node}"
    );
    // Any module, blocked functions only: no allowlist, and no V8 flag without eval/Function.
    let guard = setup(&rules(None, &["open"])).unwrap();
    let python = String::from_utf8(guard.files[0].contents.clone()).unwrap();
    assert!(python.starts_with("_ALLOWED = None\n"), "{python}");
    assert!(!guard.env[1].1.contains("disallow"), "{:?}", guard.env);
}

#[test]
fn a_prepared_rootfs_gets_the_guards_in_the_work_dir() {
    let mut policy = rules(Some(&[]), &[]);
    policy.rootfs = RootFs::Dir("/srv/root".into());
    assert_eq!(dir(&policy), PathBuf::from("/sandbox/.stockade"));
}

#[test]
fn python_options_that_skip_site_are_refused() {
    let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for bad in [
        &["python3", "-I", "x.py"][..],
        &["/usr/bin/python3.11", "-uE", "x.py"],
        &["python3", "-W", "ignore", "-S", "-c", "1"],
    ] {
        let err = check_argv(&argv(bad)).unwrap_err();
        assert!(err.contains("start-up hook"), "{bad:?}: {err}");
    }
    for good in [
        &["python3", "/sandbox/main.py", "-I"][..],
        &["python3", "-c", "import sys", "-S"],
        &["python3", "-u", "-X", "importtime", "-m", "json.tool"],
        &["python3", "-Wignore", "x.py"],
        &["node", "-I"],
        &["sh", "-c", "python3 -I"],
    ] {
        assert!(check_argv(&argv(good)).is_ok(), "{good:?}");
    }
}

#[test]
fn work_files_name_local_modules() {
    let files = [
        Path::new("/sandbox/main.py"),
        Path::new("/sandbox/helper.py"),
        Path::new("/sandbox/pkg/__init__.py"),
        Path::new("/sandbox/data.csv"),
        Path::new("/tmp/other.py"),
    ];
    assert_eq!(local_modules(files), ["helper", "main", "pkg"]);
}

#[test]
fn stderr_marks_become_findings() {
    let stderr = "hello\n\
        [stockade] Blocked import: os at /sandbox/main.py:3:1\n\
        Traceback (most recent call last):\n\
        [stockade] Blocked import: os at /sandbox/main.py:3:1\n\
        [stockade] Blocked function: eval at <string>:1:7\n\
        [stockade] Blocked import: x at y at C:\\odd:path:2:5\n\
        [stockade] something else\n\
        [stockade] guard failed: RuntimeError('x')\n";
    let found = findings(stderr);
    let brief: Vec<(&str, usize, usize)> = found
        .iter()
        .map(|f| (f.rule.as_str(), f.line, f.column))
        .collect();
    assert_eq!(
        brief,
        [
            ("blocked_import", 3, 1),
            ("blocked_function", 1, 7),
            ("blocked_import", 2, 5),
            ("guard_failed", 0, 0)
        ]
    );
    assert_eq!(
        found[0].message,
        "Blocked import: os (refused at run time in /sandbox/main.py)"
    );
    assert!(found.iter().all(|f| f.severity == "high"));
    let many: String = (0..100)
        .map(|i| format!("[stockade] Blocked import: m{i} at f:1:1\n"))
        .collect();
    assert_eq!(findings(&many).len(), MAX_FINDINGS);
}

#[test]
fn findings_join_the_verdict_only_under_a_guard() {
    let stderr = b"[stockade] Blocked import: os at /sandbox/main.py:1:1\n";
    let mut verdict = Verdict::not_started(
        crate::verdict::Status::ExitNonzero,
        crate::policy::Limits::default(),
        String::new(),
    );
    verdict.stderr = crate::verdict::Stream::new(stderr, stderr.len() as u64);
    add_findings(&Policy::default().analysis, &mut verdict);
    assert!(verdict.policy.is_none());
    add_findings(&rules(Some(&["json"]), &[]).analysis, &mut verdict);
    let report = verdict.policy.unwrap();
    assert!(!report.safe);
    assert_eq!(report.mode, "off");
    assert_eq!(report.findings[0].rule, "blocked_import");
}
