//! Profiles: the shipped ones parse (and run a hello-world once `stockade run --profile` exists),
//! inheritance and merge rules, search order, and errors with exact positions.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use stockade::policy::{CodeVia, NetworkMode, Policy, RootFs, SeccompDefault};
use stockade::profile::{self, BUILTIN, CodeInput, Invalid, Loader, ProfileError};

fn loader(dirs: &[&Path]) -> Loader {
    Loader {
        profile_dirs: dirs.iter().map(|d| d.to_path_buf()).collect(),
        builtins: true,
        rootfs_dirs: Vec::new(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Load `text` as a file and return the positioned error it must produce.
fn invalid(text: &str) -> Invalid {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.toml", text);
    match loader(&[]).load(path.to_str().unwrap()) {
        Err(ProfileError::Invalid(e)) => *e,
        other => panic!("expected a positioned error, got {other:?}"),
    }
}

#[test]
fn every_shipped_profile_parses_and_is_embedded() {
    let on_disk: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|f| f.strip_suffix(".toml").map(str::to_string))
        .collect();
    let mut embedded: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
    let mut on_disk_sorted = on_disk.clone();
    on_disk_sorted.sort();
    embedded.sort();
    assert_eq!(
        embedded, on_disk_sorted,
        "profiles/*.toml and profile::BUILTIN differ"
    );
    for name in &embedded {
        let p = loader(&[])
            .load(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.name, *name);
        assert_eq!(p.policy.profile, *name);
        assert!(
            p.description.len() > 80,
            "{name}: describe what it allows and why"
        );
        assert_eq!(p.source, "built-in");
    }
    for required in [
        "python",
        "node",
        "bash",
        "sh",
        "minimal",
        "development",
        "production",
        "educational",
        "data_science",
        "strict",
    ] {
        assert!(
            embedded.iter().any(|n| n == required),
            "missing shipped profile {required}"
        );
    }
}

#[test]
fn language_profiles_name_interpreters_present_on_the_host_root() {
    for (name, interp) in [
        ("python", "python3"),
        ("node", "node"),
        ("bash", "bash"),
        ("sh", "sh"),
        ("perl", "perl"),
    ] {
        let p = loader(&[]).load(name).unwrap();
        assert_eq!(p.policy.argv, [interp], "{name}");
        assert!(
            Path::new("/usr/bin").join(interp).exists(),
            "{interp} missing on this host"
        );
    }
}

#[test]
fn presets_differ_in_the_promised_direction() {
    let get = |n: &str| loader(&[]).load(n).unwrap().policy;
    let (strict, production, minimal) = (get("strict"), get("production"), get("minimal"));
    assert!(strict.limits.memory < production.limits.memory);
    assert!(strict.limits.pids < production.limits.pids);
    assert!(strict.limits.wall < production.limits.wall);
    assert_eq!(
        strict.analysis.mode,
        stockade::policy::AnalysisMode::Enforce
    );
    assert_eq!(strict.analysis.preset, "strict");
    assert_eq!(production.network, NetworkMode::None);
    // Issue 10: outside the allowlist is an errno everywhere; only the dangerous calls kill.
    assert_eq!(production.seccomp.default_action, SeccompDefault::Errno);
    assert!(!production.best_effort.landlock && !production.best_effort.cgroup);
    assert_eq!(minimal.network, NetworkMode::Loopback);
    assert!(minimal.best_effort.landlock && minimal.best_effort.cgroup);
    assert_eq!(minimal.limits.cpu, None);
}

#[test]
fn python_profile_builds_the_documented_command_lines() {
    let p = loader(&[]).load("python").unwrap();
    assert_eq!(p.aliases, ["py", "python3"]);
    assert_eq!(p.chain, ["python", "production"]);
    let args = CodeInput::Args(vec!["-c".into(), "print(1)".into()]);
    assert_eq!(
        p.command_for(args).unwrap().argv,
        ["python3", "-c", "print(1)"]
    );
    let code = CodeInput::Code {
        code: "print(1)".into(),
        args: vec!["a".into()],
    };
    let inv = p.command_for(code).unwrap();
    assert_eq!(inv.argv, ["python3", "/sandbox/main.py", "a"]);
    assert_eq!(inv.files[0].contents, b"print(1)");
    let bash = loader(&[]).load("bash").unwrap();
    let code = CodeInput::Code {
        code: "echo $1".into(),
        args: vec!["x".into()],
    };
    assert_eq!(
        bash.command_for(code).unwrap().argv,
        ["bash", "-c", "echo $1", "bash", "x"]
    );
}

#[test]
fn inheritance_merges_tables_field_by_field_and_appends_lists() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "base.toml",
        r#"description = "base"
aliases = ["b"]
best_effort = ["landlock"]
[run]
command = ["python3"]
code = "argument"
code_flag = "-c"
[limits]
wall = "3s"
memory = "100MiB"
[seccomp]
groups = ["timers"]
allow = ["sched_yield"]
[landlock]
read = ["/opt"]
[[rootfs.mounts]]
source = "/usr"
target = "/data"
[[rootfs.mounts]]
source = "/etc"
target = "/cfg"
[env]
A = "1"
B = "2"
"#,
    );
    let child = write(
        dir.path(),
        "child.toml",
        r#"description = "child"
extends = "base.toml"
best_effort = ["cgroup"]
[run]
command = ["python3", "-I"]
[limits]
memory = "200MiB"
[seccomp]
groups = ["ipc", "timers"]
[landlock]
read = ["/srv"]
[[rootfs.mounts]]
source = "/var"
target = "/data"
writable = true
[env]
B = "3"
C = "4"
"#,
    );
    let p = loader(&[]).load(child.to_str().unwrap()).unwrap();
    let pol = &p.policy;
    assert_eq!(p.description, "child", "descriptions are not inherited");
    assert!(p.aliases.is_empty(), "aliases are not inherited");
    assert_eq!(pol.argv, ["python3", "-I"], "command replaces");
    assert_eq!(pol.code.via, CodeVia::Argument, "inherited from base [run]");
    assert_eq!(pol.code.flag.as_deref(), Some("-c"));
    assert_eq!(
        pol.limits.wall,
        Some(Duration::from_secs(3)),
        "[limits] merged field by field"
    );
    assert_eq!(pol.limits.memory, Some(200 << 20), "child wins");
    assert!(
        pol.best_effort.landlock && pol.best_effort.cgroup,
        "best_effort appends"
    );
    assert_eq!(
        pol.seccomp.groups,
        ["timers", "ipc"],
        "groups append without duplicates"
    );
    assert_eq!(pol.seccomp.extra_allow, ["sched_yield"]);
    assert_eq!(
        pol.landlock.read,
        [PathBuf::from("/opt"), PathBuf::from("/srv")]
    );
    let mounts: Vec<(&str, &str, bool)> = pol
        .mounts
        .iter()
        .map(|m| {
            (
                m.source.to_str().unwrap(),
                m.target.to_str().unwrap(),
                m.writable,
            )
        })
        .collect();
    assert_eq!(
        mounts,
        [("/etc", "/cfg", false), ("/var", "/data", true)],
        "same target replaces"
    );
    let env = |k: &str| {
        pol.env
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(
        (env("A"), env("B"), env("C")),
        (Some("1"), Some("3"), Some("4"))
    );
    assert_eq!(
        env("PATH"),
        Some("/usr/local/bin:/usr/bin:/bin"),
        "defaults stay"
    );
    assert_eq!(p.chain.len(), 2);
}

#[test]
fn a_user_profile_can_extend_a_shipped_one_and_override_limits() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "my.toml",
        "description = \"python with more memory\"\nextends = \"python\"\n[limits]\nmemory = \"1GiB\"\nwall = 2.5\n",
    );
    let p = loader(&[]).load(path.to_str().unwrap()).unwrap();
    assert_eq!(p.name, "my");
    assert_eq!(
        p.chain[1..],
        ["python".to_string(), "production".to_string()]
    );
    assert_eq!(p.policy.argv, ["python3"]);
    assert_eq!(p.policy.limits.memory, Some(1 << 30));
    assert_eq!(p.policy.limits.wall, Some(Duration::from_millis(2500)));
    assert_eq!(p.policy.limits.pids, Some(64), "from production");
}

#[test]
fn directory_profiles_take_precedence_and_may_extend_the_builtin_of_their_name() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "python.toml",
        "description = \"site python\"\nextends = \"python\"\n[limits]\npids = 5\n",
    );
    let p = loader(&[dir.path()]).load("python").unwrap();
    assert_eq!(p.description, "site python");
    assert_eq!(p.policy.limits.pids, Some(5));
    assert_eq!(p.policy.argv, ["python3"], "from the built-in python");
    assert_eq!(p.chain.len(), 3);
    assert!(p.source.ends_with("python.toml"));
    let listed = loader(&[dir.path()]).list();
    let python = listed.iter().find(|i| i.name == "python").unwrap();
    assert_eq!(python.description, "site python");
    assert_eq!(listed.iter().filter(|i| i.name == "python").count(), 1);
}

#[test]
fn cycles_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.toml",
        "description = \"a\"\nextends = \"b\"\n",
    );
    write(
        dir.path(),
        "b.toml",
        "description = \"b\"\nextends = \"a\"\n",
    );
    let err = loader(&[dir.path()]).load("a").unwrap_err();
    assert!(matches!(err, ProfileError::Cycle(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("a.toml -> ") && text.contains("b.toml -> ") && text.ends_with("a.toml"),
        "{text}"
    );
    write(
        dir.path(),
        "self.toml",
        "description = \"s\"\nextends = \"./self.toml\"\n",
    );
    let err = loader(&[])
        .load(dir.path().join("self.toml").to_str().unwrap())
        .unwrap_err();
    assert!(matches!(err, ProfileError::Cycle(_)), "{err:?}");
}

#[test]
fn unknown_field_names_position_section_and_nearest_field() {
    let e = invalid("description = \"x\"\n\n[limits]\nwall = \"1s\"\nmemroy = \"1MiB\"\n");
    assert_eq!((e.line, e.column), (5, 1));
    assert_eq!(e.field, "limits.memroy");
    assert_eq!(e.message, "unknown field `memroy` in [limits]");
    assert_eq!(e.hint.as_deref(), Some("did you mean `memory`?"));
    assert!(
        e.to_string()
            .ends_with("bad.toml:5:1: unknown field `memroy` in [limits]; did you mean `memory`?"),
        "{e}"
    );

    let e = invalid("description = \"x\"\nlimits = { wal = \"1s\" }\n");
    assert_eq!((e.line, e.column, e.field.as_str()), (2, 12, "limits.wal"));
    assert_eq!(e.hint.as_deref(), Some("did you mean `wall`?"));

    let e = invalid("descripton = \"x\"\n");
    assert_eq!((e.line, e.column), (1, 1));
    assert_eq!(e.message, "unknown field `descripton` in the top level");
    assert_eq!(e.hint.as_deref(), Some("did you mean `description`?"));

    let e = invalid("description = \"x\"\n[run]\nzzz = 1\n");
    assert!(
        e.hint.unwrap().starts_with("valid fields: command, code"),
        "no close match lists the fields"
    );

    let e =
        invalid("description = \"x\"\n[[rootfs.mounts]]\nsource = \"/usr\"\nwriteable = true\n");
    assert_eq!(
        (e.line, e.column, e.field.as_str()),
        (4, 1, "rootfs.mounts.writeable")
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `writable`?"));
}

#[test]
fn bad_values_point_at_the_value() {
    let e = invalid("description = \"x\"\n[limits]\nmemory = \"12 parsecs\"\n");
    assert_eq!(
        (e.line, e.column, e.field.as_str()),
        (3, 10, "limits.memory")
    );
    assert!(
        e.message
            .starts_with("`limits.memory`: invalid size \"12 parsecs\": unknown unit"),
        "{}",
        e.message
    );

    let e = invalid("description = \"x\"\nnetwork = \"loopbak\"\n");
    assert_eq!((e.line, e.column, e.field.as_str()), (2, 11, "network"));
    assert_eq!(
        e.message,
        "`network`: unknown value `loopbak` (expected one of: none, loopback)"
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `loopback`?"));

    let e = invalid("description = \"x\"\n[limits]\nwall = \"soon\"\n");
    assert_eq!((e.line, e.column, e.field.as_str()), (3, 8, "limits.wall"));

    let e = invalid("description = \"x\"\n[limits]\npids = \"many\"\n");
    assert_eq!((e.line, e.column), (3, 8));
    assert!(
        e.message.contains("expected a whole number"),
        "{}",
        e.message
    );

    let e = invalid("description = \"x\"\n[limits]\noutput = \"unlimited\"\n");
    assert_eq!(
        (e.line, e.column, e.message.as_str()),
        (3, 10, "`limits.output` cannot be unlimited")
    );

    let e = invalid("description = \"x\"\nbest_effort = [\"landlock\", \"seccomp\"]\n");
    assert_eq!((e.line, e.column, e.field.as_str()), (2, 28, "best_effort"));

    let e = invalid(
        "description = \"x\"\n[seccomp]\ngroups = [\"timer\"]\nallow = [\"sched_yeild\"]\n",
    );
    assert_eq!((e.line, e.column), (3, 11));
    assert_eq!(e.hint.as_deref(), Some("did you mean `timers`?"));

    let e = invalid("description = \"x\"\n[seccomp]\nallow = [\"sched_yeild\"]\n");
    assert_eq!(
        (e.line, e.column, e.field.as_str()),
        (3, 10, "seccomp.allow")
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `sched_yield`?"));

    let e = invalid("description = \"x\"\n[landlock]\nwrite = [\"relative/path\"]\n");
    assert_eq!(
        (e.line, e.column, e.field.as_str()),
        (3, 10, "landlock.write")
    );

    let e = invalid(
        "description = \"x\"\n[[rootfs.mounts]]\nsource = \"/usr\"\ntarget = \"/proc/x\"\n",
    );
    assert_eq!(
        (e.line, e.column, e.field.as_str()),
        (4, 10, "rootfs.mounts.target")
    );

    let e = invalid("description = \"x\"\n[policy]\nmode = \"warn\"\npreset = \"strikt\"\n");
    assert_eq!(
        (e.line, e.column, e.field.as_str()),
        (4, 10, "policy.preset")
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `strict`?"));

    let e = invalid("description = \"x\"\n[policy]\nthreshold = \"hgh\"\n");
    assert_eq!(
        (e.line, e.column, e.field.as_str()),
        (3, 13, "policy.threshold")
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `high`?"));

    let e = invalid("description = \"x\"\n[policy]\nlanguage = \"ruby\"\n");
    assert_eq!(
        e.message,
        "`policy.language`: unknown value `ruby` (expected one of: python, javascript, shell)"
    );

    let e = invalid("description = 5\n");
    assert_eq!((e.line, e.column, e.field.as_str()), (1, 15, "description"));
    assert!(e.message.contains("expected a string"), "{}", e.message);

    let e = invalid("description = \"x\"\n[limits\n");
    assert_eq!(e.line, 2, "syntax errors keep their position");
}

#[test]
fn missing_description_and_bad_extends_are_reported_in_place() {
    let e = invalid("[limits]\nwall = \"1s\"\n");
    assert_eq!((e.line, e.column, e.field.as_str()), (1, 1, "description"));
    assert_eq!(e.message, "missing field `description`");

    let e = invalid("description = \"x\"\nextends = \"pyhton\"\n");
    assert_eq!((e.line, e.column, e.field.as_str()), (2, 11, "extends"));
    assert!(
        e.message
            .starts_with("`extends`: profile `pyhton` not found"),
        "{}",
        e.message
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `python`?"));

    let e = invalid("description = \"x\"\nextends = \"./nope.toml\"\n");
    assert_eq!((e.line, e.column), (2, 11));
    assert!(e.message.contains("nope.toml"), "{}", e.message);
}

#[test]
fn errors_in_a_parent_name_the_parent_file() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "parent.toml",
        "description = \"p\"\n[limits]\nstack = \"-1\"\n",
    );
    let child = write(
        dir.path(),
        "child.toml",
        "description = \"c\"\nextends = \"parent.toml\"\n",
    );
    let err = loader(&[]).load(child.to_str().unwrap()).unwrap_err();
    let ProfileError::Invalid(e) = err else {
        panic!("{err:?}")
    };
    assert!(e.file.ends_with("parent.toml"), "{}", e.file);
    assert_eq!((e.line, e.column, e.field.as_str()), (3, 9, "limits.stack"));
}

#[test]
fn unknown_names_suggest_and_paths_are_read() {
    let err = loader(&[]).load("pyton").unwrap_err();
    assert!(matches!(err, ProfileError::NotFound { .. }));
    assert!(err.to_string().ends_with("did you mean `python`?"), "{err}");
    assert!(matches!(
        loader(&[]).load("Bad Name"),
        Err(ProfileError::BadName(_))
    ));
    let err = loader(&[]).load("/nonexistent/x.toml").unwrap_err();
    assert!(matches!(err, ProfileError::Read { .. }), "{err:?}");
}

#[test]
fn rootfs_names_resolve_in_the_rootfs_dirs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("deb")).unwrap();
    let path = write(
        dir.path(),
        "p.toml",
        "description = \"x\"\n[rootfs]\nroot = \"deb\"\n",
    );
    let mut l = loader(&[]);
    l.rootfs_dirs = vec![dir.path().join("none"), dir.path().to_path_buf()];
    let p = l.load(path.to_str().unwrap()).unwrap();
    assert_eq!(p.policy.rootfs, RootFs::Dir(dir.path().join("deb")));

    std::fs::write(&path, "description = \"x\"\n[rootfs]\nroot = \"missing\"\n").unwrap();
    let Err(ProfileError::Invalid(e)) = l.load(path.to_str().unwrap()) else {
        panic!()
    };
    assert_eq!((e.line, e.column, e.field.as_str()), (3, 8, "rootfs.root"));
    assert_eq!(
        e.hint.as_deref(),
        Some("build it with `scripts/build-rootfs missing`")
    );

    std::fs::write(&path, "description = \"x\"\n[rootfs]\nroot = \"./deb\"\n").unwrap();
    let p = l.load(path.to_str().unwrap()).unwrap();
    assert_eq!(
        p.policy.rootfs,
        RootFs::Dir(dir.path().join("./deb")),
        "paths are relative to the file"
    );
}

/// The rendered policy is itself a profile that loads back to the same policy.
#[test]
fn rendered_policies_load_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    for (name, _) in BUILTIN {
        let original = loader(&[]).load(name).unwrap().policy;
        let path = write(
            dir.path(),
            &format!("{name}.toml"),
            &profile::render_policy(&original),
        );
        let again = loader(&[])
            .load(path.to_str().unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .policy;
        assert_eq!(comparable(&original), comparable(&again), "{name}");
    }
}

fn comparable(p: &Policy) -> serde_json::Value {
    let mut p = p.clone();
    p.env.sort();
    serde_json::to_value(p).unwrap()
}

#[test]
fn cli_validate_prints_the_position_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.toml",
        "description = \"x\"\n[limits]\nmemroy = \"1MiB\"\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_stockade"))
        .args(["profile", "validate", "python", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("ok: python"), "{stdout}");
    assert!(
        stderr.contains("bad.toml:3:1: unknown field `memroy` in [limits]; did you mean `memory`?"),
        "{stderr}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_stockade"))
        .args(["profile", "list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), BUILTIN.len());
}

/// Every shipped profile runs a hello-world end to end, given as arguments after `--` and, for
/// language profiles, as code delivered the profile's way (`--code`). Needs `stockade run
/// --profile`; until the run command has it, the test says so and checks nothing more.
#[test]
fn every_shipped_profile_runs_hello_world() {
    let bin = env!("CARGO_BIN_EXE_stockade");
    let help = Command::new(bin).args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    if !help.contains("--profile") {
        eprintln!("skipped: `stockade run --help` does not mention --profile yet");
        return;
    }
    for (name, _) in BUILTIN {
        let p = loader(&[]).load(name).unwrap();
        // Compiled languages take their program as code (or a file name), not as arguments.
        let compiled = match *name {
            "c" => Some("#include <stdio.h>\nint main(void){ puts(\"hello\"); }"),
            "cpp" => Some("#include <iostream>\nint main(){ std::cout << \"hello\\n\"; }"),
            "java" => Some(
                "public class Main { public static void main(String[] a) { System.out.println(\"hello\"); } }",
            ),
            "rust" => Some("fn main() { println!(\"hello\"); }"),
            "go" => Some("package main\nimport \"fmt\"\nfunc main() { fmt.Println(\"hello\") }"),
            _ => None,
        };
        assert_eq!(compiled.is_some(), p.policy.compile.is_some(), "{name}");
        if let Some(code) = compiled {
            let run = ["run", "--profile", name, "--code", code];
            let out = Command::new(bin).args(run).output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.trim() == "hello",
                "{run:?}: status {:?}\nstdout: {stdout}\nstderr: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            continue;
        }
        let (args, code): (Vec<&str>, &str) = match p.policy.argv.first().map(String::as_str) {
            Some("python3") => (vec!["-c", "print('hello')"], "print('hello')"),
            Some("node") => (vec!["-e", "console.log('hello')"], "console.log('hello')"),
            Some("perl") => (vec!["-e", "print \"hello\\n\""], "print \"hello\\n\""),
            Some(_) => (vec!["-c", "echo hello"], "echo hello"),
            None => (vec!["/bin/sh", "-c", "echo hello"], ""),
        };
        let mut runs = vec![[&["run", "--profile", name, "--"][..], &args[..]].concat()];
        if !code.is_empty() && help.contains("--code") {
            runs.push(vec!["run", "--profile", name, "--code", code]);
        }
        for run in runs {
            let out = Command::new(bin).args(&run).output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.trim() == "hello",
                "{run:?}: status {:?}\nstdout: {stdout}\nstderr: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// docs/profiles.md documents every field the parser accepts (the parser lists them in its
/// "valid fields" hint when the unknown field is nowhere near one).
#[test]
fn docs_document_every_field() {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/profiles.md")).unwrap();
    let sections = [
        ("", "zzzzzzzzzzzz = 1\n"),
        ("run", "description = \"x\"\n[run]\nzzzzzzzzzzzz = 1\n"),
        (
            "rootfs",
            "description = \"x\"\n[rootfs]\nzzzzzzzzzzzz = 1\n",
        ),
        (
            "rootfs.mounts",
            "description = \"x\"\n[[rootfs.mounts]]\nzzzzzzzzzzzz = 1\n",
        ),
        (
            "compile",
            "description = \"x\"\n[compile]\nzzzzzzzzzzzz = 1\n",
        ),
        (
            "compile.limits",
            "description = \"x\"\n[compile.limits]\nzzzzzzzzzzzz = 1\n",
        ),
        (
            "limits",
            "description = \"x\"\n[limits]\nzzzzzzzzzzzz = 1\n",
        ),
        (
            "seccomp",
            "description = \"x\"\n[seccomp]\nzzzzzzzzzzzz = 1\n",
        ),
        (
            "landlock",
            "description = \"x\"\n[landlock]\nzzzzzzzzzzzz = 1\n",
        ),
        (
            "policy",
            "description = \"x\"\n[policy]\nzzzzzzzzzzzz = 1\n",
        ),
    ];
    let mut count = 0;
    for (section, text) in sections {
        let hint = invalid(text).hint.unwrap();
        let fields = hint.strip_prefix("valid fields: ").unwrap();
        for field in fields.split(", ") {
            count += 1;
            let tables = [
                "run", "compile", "rootfs", "limits", "seccomp", "landlock", "env", "policy",
            ];
            let row = match section.is_empty() && tables.contains(&field) {
                true => format!("### `[{field}]`"),
                false => format!("| `{field}` |"),
            };
            assert!(
                docs.contains(&row),
                "docs/profiles.md has no table row for `{field}` in [{section}]"
            );
        }
    }
    assert!(count > 35, "only {count} fields found");
}

/// A tiny rootfs from the host's dash and the libraries `ldd` names, readable by the sandbox's
/// unprivileged outer uid.
fn dash_root() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    for d in ["proc", "dev", "tmp", "sandbox", "usr/bin"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    std::fs::copy("/usr/bin/dash", root.join("usr/bin/sh")).unwrap();
    let ldd = Command::new("ldd").arg("/usr/bin/dash").output().unwrap();
    for lib in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let target = root.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(lib, &target).unwrap();
    }
    dir
}

fn verify_json(root: &Path) -> (Option<i32>, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_stockade"))
        .args(["rootfs", "verify", "--json"])
        .arg(root)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), report)
}

fn check_named<'r>(report: &'r serde_json::Value, name: &str) -> &'r serde_json::Value {
    let checks = report["checks"].as_array().unwrap();
    checks
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name}: {report}"))
}

#[test]
fn rootfs_verify_runs_the_interpreters_it_finds() {
    let dir = dash_root();
    let (code, report) = verify_json(dir.path());
    assert_eq!(code, Some(0), "{report}");
    let ran = check_named(&report, "runs sh");
    assert_eq!(
        (ran["status"].as_str(), ran["message"].as_str()),
        (Some("ok"), Some("ok")),
        "{report}"
    );

    // The file checks pass (the loader is there), but without libc the shell cannot start.
    let ldd = Command::new("ldd").arg("/usr/bin/dash").output().unwrap();
    let libc = String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .find(|w| w.starts_with('/') && w.contains("libc.so"))
        .map(str::to_string)
        .unwrap();
    std::fs::remove_file(dir.path().join(libc.trim_start_matches('/'))).unwrap();
    let (code, report) = verify_json(dir.path());
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(check_named(&report, "interpreter sh")["status"], "ok");
    let ran = check_named(&report, "runs sh");
    assert_eq!(ran["status"], "fail", "{report}");
}

/// The complete example in docs/profiles.md loads (with its data directory swapped for a real one).
#[test]
fn the_documented_example_loads() {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/profiles.md")).unwrap();
    let start = docs.find("## A complete example").unwrap();
    let block = &docs[start..];
    let block = &block[block.find("```toml\n").unwrap() + 8..];
    let block = &block[..block.find("```").unwrap()];
    let data = tempfile::tempdir().unwrap();
    let text = block.replace("/srv/course-data", data.path().to_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "grader.toml", &text);
    let p = loader(&[])
        .load(path.to_str().unwrap())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.chain[1], "educational");
    assert_eq!(p.aliases, ["grader"]);
    assert_eq!(p.policy.limits.memory, Some(512 << 20));
    assert_eq!(p.policy.limits.pids, Some(32), "from educational");
    assert_eq!(p.policy.mounts[0].target, PathBuf::from("/data"));
    assert_eq!(p.policy.code.file_name, "main.py");
}

fn stockade_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stockade"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn language_with_a_preset_in_one_step() {
    // The effective policy: python's interpreter with data_science's limits, env and analysis.
    let out = stockade_cli(&[
        "run",
        "--profile",
        "python",
        "--preset",
        "data_science",
        "--print-policy",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "command = [\"python3\"]",
        "memory = \"4GiB\"",
        "wall = \"120s\"",
        "OPENBLAS_NUM_THREADS = \"2\"",
        "PYTHONUNBUFFERED = \"1\"",
        "preset = \"data_science\"",
        "language = \"python\"",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    // `profile show` shows the same composition.
    let out = stockade_cli(&["profile", "show", "--json", "node", "--preset", "strict"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "node+strict");
    assert_eq!(v["policy"]["argv"], serde_json::json!(["node"]));
    assert_eq!(v["policy"]["limits"]["memory"], 128 << 20);
    assert_eq!(v["policy"]["analysis"]["mode"], "enforce");
    // And it runs: the preset's environment reaches the program, its limits are in the verdict.
    let out = stockade_cli(&[
        "run",
        "--json",
        "--profile",
        "python",
        "--preset",
        "data_science",
        "--code",
        "import os; print(os.environ['OMP_NUM_THREADS'], os.environ['MPLBACKEND'])",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["stdout"]["data"], "2 Agg\n", "{v}");
    assert_eq!(v["limits"]["memory"], 4u64 << 30);
    assert_eq!(v["limits"]["wall"], 120_000);
}

#[test]
fn a_preset_alone_or_in_the_wrong_place_says_what_to_write() {
    let stderr = |args: &[&str]| {
        let out = stockade_cli(args);
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = stderr(&["run", "--profile", "data_science", "--code", "print(1)"]);
    assert!(e.contains("--profile python --preset data_science"), "{e}");
    let e = stderr(&[
        "run",
        "--profile",
        "python",
        "--preset",
        "data_sciense",
        "--code",
        "1",
    ]);
    assert!(e.contains("preset `data_sciense` not found"), "{e}");
    assert!(e.contains("did you mean `data_science`?"), "{e}");
    let e = stderr(&[
        "run",
        "--profile",
        "python",
        "--preset",
        "node",
        "--code",
        "1",
    ]);
    assert!(e.contains("`node` is a language profile"), "{e}");
    let e = stderr(&[
        "run",
        "--profile",
        "strict",
        "--preset",
        "data_science",
        "--",
        "true",
    ]);
    assert!(e.contains("`strict` is a security preset"), "{e}");
    let e = stderr(&["run", "--preset", "python", "--", "true"]);
    assert!(e.contains("use --profile python"), "{e}");
    // A preset alone is the profile, and the command follows `--`.
    let out = stockade_cli(&[
        "run",
        "--preset",
        "educational",
        "--print-policy",
        "--",
        "true",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("memory = \"256MiB\"") && text.contains("wall = \"5s\""),
        "{text}"
    );
}

/// `[compile]`: a stage needs a command, names stay plain, limits are checked like `[limits]`,
/// and a child inherits (and may adjust) its parent's compile stage.
#[test]
fn compile_sections_are_checked_and_inherited() {
    let e = invalid("description = \"x\"\n[compile.limits]\nwall = \"5s\"\n");
    assert_eq!(e.field, "compile.command", "{e:?}");
    assert!(e.message.contains("needs a `command`"), "{e:?}");
    let e = invalid("description = \"x\"\n[compile]\ncommand = [\"cc\"]\nfile_name = \"../x.c\"\n");
    assert_eq!(
        (e.field.as_str(), e.line),
        ("compile.file_name", 4),
        "{e:?}"
    );
    let e = invalid(
        "description = \"x\"\n[compile]\ncommand = [\"cc\"]\n[compile.limits]\nmemory = \"lots\"\n",
    );
    assert_eq!(
        (e.field.as_str(), e.line),
        ("compile.limits.memory", 5),
        "{e:?}"
    );
    let e = invalid("description = \"x\"\n[compile]\ncommand = [\"cc\"]\nflags = 1\n");
    assert!(e.message.contains("unknown field `flags`"), "{e:?}");

    let dir = tempfile::tempdir().unwrap();
    let child = write(
        dir.path(),
        "fast-c.toml",
        "description = \"x\"\nextends = \"c\"\n[compile.limits]\nwall = \"2s\"\n",
    );
    let p = loader(&[]).load(child.to_str().unwrap()).unwrap().policy;
    let stage = p.compile.expect("inherited compile stage");
    assert_eq!(stage.argv[0], "gcc");
    assert_eq!(stage.limits.wall, Some(Duration::from_secs(2)));
    assert_eq!(
        stage.limits.memory,
        Some(512 << 20),
        "the rest is the parent's"
    );
    assert!(loader(&[]).load("python").unwrap().policy.compile.is_none());
}
