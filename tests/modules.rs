//! `[policy] allowed_modules` and `blocked_functions`: profile validation, and both enforcements
//! through `stockade run` (the analysis before the run, the start-up hooks inside the sandbox).

mod common;

use std::path::{Path, PathBuf};

use common::{Who, shared_dir, stdout_of, stockade, verdict};
use serde_json::Value;
use stockade::profile::{Loader, ProfileError};

/// A profile file in the shared scratch dir (the test user must be able to read it).
fn profile(name: &str, text: &str) -> PathBuf {
    let path = shared_dir().join(format!("{name}.toml"));
    std::fs::write(&path, format!("description = \"test\"\n{text}")).unwrap();
    path
}

fn load(path: &Path) -> Result<stockade::profile::Profile, ProfileError> {
    let loader = Loader {
        profile_dirs: Vec::new(),
        builtins: true,
        rootfs_dirs: Vec::new(),
    };
    loader.load(path.to_str().unwrap())
}

/// A python profile that allows `json` (and `extra`) and blocks `eval`, analysis in `mode`.
fn python(name: &str, mode: &str, extra: &[&str]) -> String {
    let mut allowed = vec!["json".to_string()];
    allowed.extend(extra.iter().map(|m| m.to_string()));
    let text = format!(
        "extends = \"python\"\n[policy]\nmode = \"{mode}\"\nallowed_modules = {allowed:?}\nblocked_functions = [\"eval\"]\n"
    );
    profile(name, &text).display().to_string()
}

fn run_code(profile: &str, code: &str) -> Value {
    verdict(Who::Me, &["--profile", profile, "--code", code])
}

fn stderr_of(v: &Value) -> String {
    v["stderr"]["data"].as_str().unwrap_or_default().to_string()
}

/// The findings of `rule` as (line, column, message).
fn findings(v: &Value, rule: &str) -> Vec<(u64, u64, String)> {
    v["policy"]["findings"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter(|f| f["rule"] == rule)
                .map(|f| {
                    (
                        f["line"].as_u64().unwrap(),
                        f["column"].as_u64().unwrap(),
                        f["message"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn profile_fields_are_validated_and_merged() {
    let path = profile(
        "modules-parent",
        "extends = \"python\"\n[policy]\nallowed_modules = [\"json\", \"os.path\", \"@scope/pkg\"]\nblocked_functions = [\"eval\"]\n",
    );
    let parent = load(&path).unwrap();
    assert_eq!(
        parent.policy.analysis.allowed_modules.as_deref(),
        Some(&["json".to_string(), "os.path".into(), "@scope/pkg".into()][..])
    );
    // A child replaces the allowlist and appends to the blocked functions.
    let child = profile(
        "modules-child",
        "extends = \"modules-parent.toml\"\n[policy]\nallowed_modules = [\"math\"]\nblocked_functions = [\"exec\", \"eval\"]\n",
    );
    let child = load(&child).unwrap();
    assert_eq!(
        child.policy.analysis.allowed_modules.as_deref(),
        Some(&["math".to_string()][..])
    );
    assert_eq!(child.policy.analysis.blocked_functions, ["eval", "exec"]);

    let bad = profile(
        "modules-bad-name",
        "[policy]\nallowed_modules = [\"json\", \"../os\"]\n",
    );
    let Err(ProfileError::Invalid(e)) = load(&bad) else {
        panic!("a path is not a module name");
    };
    assert_eq!(
        (e.line, e.column, e.field.as_str()),
        (3, 28, "policy.allowed_modules")
    );
    assert!(
        e.message.contains("`../os` is not a module name"),
        "{}",
        e.message
    );

    let bad = profile(
        "modules-bad-function",
        "[policy]\nblocked_functions = [\"evall\"]\n",
    );
    let Err(ProfileError::Invalid(e)) = load(&bad) else {
        panic!("unknown function names are refused");
    };
    assert_eq!((e.line, e.field.as_str()), (3, "policy.blocked_functions"));
    assert_eq!(e.hint.as_deref(), Some("did you mean `eval`?"));

    // A command that skips the start-up hook cannot carry the lists.
    let bad = profile(
        "modules-isolated",
        "extends = \"python\"\n[run]\ncommand = [\"python3\", \"-I\"]\n[policy]\nblocked_functions = [\"eval\"]\n",
    );
    let err = load(&bad).unwrap_err().to_string();
    assert!(
        err.contains("[run] command: python option `-I` turns off the start-up hook"),
        "{err}"
    );
}

#[test]
fn python_allowed_imports_work_and_others_fail_with_a_finding() {
    let p = python("py-warn", "warn", &[]);
    let v = run_code(&p, "import json\nprint(json.dumps([1, 2]))\n");
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(stdout_of(&v), "[1, 2]\n");
    assert!(findings(&v, "blocked_import").is_empty(), "{v}");

    let code = "import json\ntry:\n    import os\nexcept ImportError as e:\n    print(e)\ntry:\n    eval('1')\nexcept PermissionError as e:\n    print(e)\nimport socket\n";
    let v = run_code(&p, code);
    assert_eq!(v["status"], "exit_nonzero", "{v}");
    assert_eq!(
        stdout_of(&v),
        "Blocked import: os\nBlocked function: eval\n",
        "{v}"
    );
    assert!(
        stderr_of(&v).contains("ImportError: Blocked import: socket"),
        "{v}"
    );
    // Run time: each refusal with the line of the user's code, even the one the code caught.
    let runtime: Vec<(u64, String)> = findings(&v, "blocked_import")
        .into_iter()
        .filter(|f| f.2.contains("at run time"))
        .map(|(line, _, msg)| (line, msg))
        .collect();
    assert_eq!(
        runtime,
        [
            (
                3,
                "Blocked import: os (refused at run time in /sandbox/main.py)".to_string()
            ),
            (
                10,
                "Blocked import: socket (refused at run time in /sandbox/main.py)".to_string()
            ),
        ],
        "{v}"
    );
    let eval = findings(&v, "blocked_function");
    assert!(
        eval.iter().any(|f| f.0 == 7 && f.2.contains("at run time")),
        "{v}"
    );
    // Before the run: the same imports, at the module name.
    let static_ones: Vec<(u64, u64)> = findings(&v, "blocked_import")
        .into_iter()
        .filter(|f| !f.2.contains("at run time"))
        .map(|(l, c, _)| (l, c))
        .collect();
    assert_eq!(static_ones, [(3, 12), (10, 8)], "{v}");
    assert_eq!(v["policy"]["safe"], false);
}

#[test]
fn the_hook_works_without_the_analysis_and_keeps_the_library_working() {
    let p = python("py-off", "off", &["datetime", "decimal", "collections"]);
    // The library imports what it needs (re, _strptime through C, _pydecimal...), and a traceback
    // still shows the user's source line.
    let code = "import json, datetime, decimal, collections\nprint(datetime.datetime.strptime('2024', '%Y').year, decimal.Decimal('1.5') * 2, json.loads('[3]')[0])\nimport subprocess\n";
    let v = run_code(&p, code);
    assert_eq!(stdout_of(&v), "2024 3.0 3\n", "{v}");
    assert!(
        stderr_of(&v).contains("    import subprocess\n"),
        "the traceback shows the source: {v}"
    );
    // The analysis was off: the section exists for the run-time finding only.
    assert_eq!(v["policy"]["mode"], "off", "{v}");
    let found = findings(&v, "blocked_import");
    assert_eq!(found.len(), 1, "{v}");
    assert_eq!(found[0].0, 3);
}

#[test]
fn blocked_builtins_refuse_only_the_users_calls() {
    let p = profile(
        "py-builtins",
        "extends = \"python\"\n[policy]\nmode = \"off\"\nblocked_functions = [\"__import__\", \"open\", \"exec\", \"compile\"]\n",
    );
    let p = p.to_str().unwrap();
    // Import statements still work (they reach __import__ through IMPORT_NAME); explicit calls do
    // not. The library may still use the builtins itself: the traceback printer reads the source
    // with open().
    let code = "import json
for call in (lambda: __import__('json'), lambda: open('/etc/hostname'), lambda: exec('1'), lambda: compile('1', 'x', 'eval')):
    try:
        call()
    except PermissionError as e:
        print(e)
raise SystemError(json.dumps('end'))
";
    let v = run_code(p, code);
    assert_eq!(
        stdout_of(&v),
        "Blocked function: __import__\nBlocked function: open\nBlocked function: exec\nBlocked function: compile\n",
        "{v}"
    );
    assert!(
        stderr_of(&v).contains("    raise SystemError(json.dumps('end'))\nSystemError: \"end\""),
        "{v}"
    );
    let lines: Vec<u64> = findings(&v, "blocked_function")
        .iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(lines, [2, 2, 2, 2], "{v}");
}

#[test]
fn enforce_mode_refuses_before_the_run() {
    let p = python("py-enforce", "enforce", &[]);
    let v = run_code(&p, "import json\nimport os\n");
    assert_eq!(v["status"], "rejected_by_policy", "{v}");
    assert_eq!(
        findings(&v, "blocked_import"),
        [(
            2,
            8,
            "Blocked import: os (not in the profile's allowed_modules)".to_string()
        )]
    );
    let v = run_code(&p, "print(eval('1'))\n");
    assert_eq!(v["status"], "rejected_by_policy", "{v}");
    assert_eq!(findings(&v, "blocked_function")[0].0, 1);
    // The shipped example refuses the same way.
    let v = run_code("python_restricted", "import os\n");
    assert_eq!(v["status"], "rejected_by_policy", "{v}");
    let v = run_code(
        "python_restricted",
        "import math, json\nprint(json.dumps(math.gcd(12, 18)))\n",
    );
    assert_eq!(
        (v["status"].as_str(), stdout_of(&v).as_str()),
        (Some("ok"), "6\n"),
        "{v}"
    );
}

#[test]
fn the_runs_own_modules_are_allowed() {
    let helper = shared_dir().join("helper.py");
    std::fs::write(&helper, "import json\nVALUE = json.dumps('helped')\n").unwrap();
    let p = python("py-local", "enforce", &[]);
    let copy = format!("{}:/sandbox/helper.py", helper.display());
    let v = verdict(
        Who::Me,
        &[
            "--profile",
            &p,
            "--copy-in",
            &copy,
            "--code",
            "import helper\nprint(helper.VALUE)\n",
        ],
    );
    assert_eq!(
        (v["status"].as_str(), stdout_of(&v).as_str()),
        (Some("ok"), "\"helped\"\n"),
        "{v}"
    );
}

#[test]
fn the_hook_cannot_be_skipped_or_rewritten_from_inside() {
    let p = python("py-os", "off", &["os", "errno"]);
    // Options that skip sitecustomize are refused before anything starts.
    for flag in ["-I", "-S", "-E"] {
        let out = stockade(
            Who::Me,
            &["run", "--profile", &p, "--", flag, "-c", "import socket"],
            None,
        );
        assert_eq!(out.status.code(), Some(125), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("python option `{flag}`")), "{err}");
    }
    // `-m` runs a module through the library: the hook checks its name itself.
    let v = verdict(Who::Me, &["--profile", &p, "--", "-m", "http.server"]);
    assert_eq!(v["exit_code"], 1, "{v}");
    assert!(stderr_of(&v).contains("Blocked import: http.server"), "{v}");
    // On the host root the hook lives in the read-only root tmpfs.
    let code = "import errno\ntry:\n    open('/.stockade/python/sitecustomize.py', 'a')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])\n";
    let v = run_code(&p, code);
    assert_eq!(stdout_of(&v), "EROFS\n", "{v}");
}

#[test]
fn node_requires_and_eval_are_guarded() {
    let p = profile(
        "node-guard",
        "extends = \"node\"\n[policy]\nmode = \"off\"\nallowed_modules = [\"fs\", \"path\"]\nblocked_functions = [\"eval\", \"Function\"]\n",
    );
    let p = p.to_str().unwrap();
    let code = "const fs = require('node:fs'); const path = require('path');\nconsole.log(typeof fs.readFileSync, path.join('a', 'b'));\ntry { require('os'); } catch (e) { console.log(e.message, e.code); }\ntry { eval('1'); } catch (e) { console.log(e.message); }\ntry { new Function('return 1'); } catch (e) { console.log(e.message); }\nrequire('child_process');\n";
    let v = run_code(p, code);
    assert_eq!(v["status"], "exit_nonzero", "{v}");
    assert_eq!(
        stdout_of(&v),
        "function a/b\nBlocked import: os MODULE_NOT_FOUND\nBlocked function: eval\nBlocked function: Function\n",
        "{v}"
    );
    let lines: Vec<u64> = findings(&v, "blocked_import").iter().map(|f| f.0).collect();
    assert_eq!(lines, [3, 6], "{v}");
    assert_eq!(findings(&v, "blocked_function").len(), 2, "{v}");
    // ES modules: static `import` and dynamic `import()` go through the resolve hook.
    let code = "import('node:os').then(() => console.log('loaded'), (e) => console.log(e.message, e.code));\nimport('fs').then((m) => console.log('fs', typeof m.readFileSync));\n";
    let v = run_code(p, code);
    assert_eq!(v["status"], "ok", "{v}");
    let out = stdout_of(&v);
    assert!(
        out.contains("Blocked import: node:os ERR_MODULE_NOT_FOUND\n")
            && out.contains("fs function\n"),
        "{v}"
    );
    assert_eq!(
        findings(&v, "blocked_import")
            .iter()
            .filter(|f| f.2.contains("at run time"))
            .count(),
        1,
        "{v}"
    );
}
