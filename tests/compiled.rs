//! Compiled languages through `stockade run --profile c|cpp|java|rust|go`: a compile stage and a run stage,
//! each with its own verdict part; stdin reaches the program; a compile error is reported in the
//! compile part with the compiler's message and the program is not run; a runtime failure is the
//! run's own.

mod common;

use common::{Who, identities, is_root, shared_dir, stdout_of, stockade, verdict};
use serde_json::Value;

struct Lang {
    profile: &'static str,
    /// Reads one line and prints `got <line>`, then `hello`.
    echo: &'static str,
    /// Does not compile; the compiler names `undefined_name`.
    broken: &'static str,
    /// Compiles, then fails at run time.
    failing: &'static str,
    /// How that failure shows: status and a piece of stderr.
    failure: (&'static str, &'static str),
}

const LANGS: &[Lang] = &[
    Lang {
        profile: "c",
        echo: "#include <stdio.h>\nint main(void){char b[64]; if(fgets(b,sizeof b,stdin)) printf(\"got %s\", b); puts(\"hello\"); return 0;}\n",
        broken: "int main(void){ return undefined_name; }\n",
        failing: "#include <stdio.h>\nint main(void){ fprintf(stderr, \"bad input\\n\"); return 3; }\n",
        failure: ("exit_nonzero", "bad input"),
    },
    Lang {
        profile: "cpp",
        echo: "#include <iostream>\n#include <string>\nint main(){std::string l; std::getline(std::cin, l); std::cout << \"got \" << l << \"\\n\" << \"hello\" << std::endl;}\n",
        broken: "int main(){ return undefined_name; }\n",
        failing: "#include <vector>\n#include <cstdlib>\nint main(){ std::abort(); }\n",
        failure: ("signaled", ""),
    },
    Lang {
        profile: "java",
        echo: "import java.io.*;\npublic class Main { public static void main(String[] a) throws IOException {\n  BufferedReader r = new BufferedReader(new InputStreamReader(System.in));\n  System.out.println(\"got \" + r.readLine()); System.out.println(\"hello\"); } }\n",
        broken: "public class Main { public static void main(String[] a) { int x = undefined_name; } }\n",
        failing: "public class Main { public static void main(String[] a) { throw new IllegalStateException(\"bad input\"); } }\n",
        failure: ("exit_nonzero", "IllegalStateException: bad input"),
    },
    Lang {
        profile: "rust",
        echo: "use std::io::BufRead;\nfn main() { let mut l = String::new(); std::io::stdin().lock().read_line(&mut l).unwrap(); print!(\"got {}\", l); println!(\"hello\"); }\n",
        broken: "fn main() { let x: i32 = undefined_name; println!(\"{x}\"); }\n",
        failing: "fn main() { panic!(\"bad input\"); }\n",
        failure: ("exit_nonzero", "bad input"),
    },
    Lang {
        profile: "go",
        echo: "package main\nimport (\"bufio\"; \"fmt\"; \"os\")\nfunc main() { l, _ := bufio.NewReader(os.Stdin).ReadString('\\n'); fmt.Print(\"got \" + l); fmt.Println(\"hello\") }\n",
        broken: "package main\nfunc main() { _ = undefined_name }\n",
        failing: "package main\nimport \"os\"\nfunc main() { os.Stderr.WriteString(\"bad input\\n\"); os.Exit(3) }\n",
        failure: ("exit_nonzero", "bad input"),
    },
];

fn run_json(profile: &str, code: &str, stdin: Option<&[u8]>) -> Value {
    let out = stockade(
        Who::Me,
        &["run", "--json", "--profile", profile, "--code", code],
        stdin,
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{profile}: no verdict ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn hello_with_stdin_compiles_then_runs() {
    if !is_root() {
        return; // the profiles' memory limits need the cgroup limits only root has here
    }
    for lang in LANGS {
        let v = run_json(lang.profile, lang.echo, Some(b"line one\n"));
        let p = lang.profile;
        assert_eq!(v["status"], "ok", "{p}: {v}");
        assert_eq!(stdout_of(&v), "got line one\nhello\n", "{p}");
        let c = &v["compile"];
        assert_eq!(c["status"], "ok", "{p}: {c}");
        assert_eq!(c["exit_code"], 0, "{p}");
        // The stages have their own limits: the compile part reports the compiler's.
        assert_ne!(c["limits"]["wall"], Value::Null, "{p}");
        assert!(c["memory_peak_bytes"].as_u64().unwrap_or(0) > 0, "{p}: {c}");
        assert!(c["wall_ms"].as_u64().is_some() && c["cpu_ms"]["total_ms"].is_u64());
        assert!(v["compile"]["compile"].is_null(), "stages do not nest");
    }
}

#[test]
fn compile_errors_stop_before_the_run() {
    if !is_root() {
        return;
    }
    for lang in LANGS {
        let p = lang.profile;
        let v = run_json(p, lang.broken, Some(b"unused\n"));
        assert_eq!(v["status"], "compile_failed", "{p}: {v}");
        assert_eq!(v["exit_code"], Value::Null, "{p}: the program did not run");
        assert_eq!(stdout_of(&v), "");
        let message = v["message"].as_str().unwrap_or_default();
        assert!(message.contains("compilation failed"), "{p}: {message}");
        let c = &v["compile"];
        assert_eq!(c["status"], "exit_nonzero", "{p}: {c}");
        let diag = c["stderr"]["data"].as_str().unwrap_or_default();
        assert!(diag.contains("undefined_name"), "{p}: {diag}");
        // gcc, g++, javac and rustc say "error"; the go tool says "undefined: undefined_name".
        assert!(
            diag.contains("error") || diag.contains("undefined: undefined_name"),
            "{p}: {diag}"
        );
    }
    // Without --json: the compiler's message on stderr, and its exit code (gcc exits 1).
    let out = stockade(
        Who::Me,
        &["run", "--profile", "c", "--code", LANGS[0].broken],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("undefined_name") && err.contains("compile_failed"),
        "{err}"
    );
}

#[test]
fn runtime_failures_belong_to_the_run() {
    if !is_root() {
        return;
    }
    for lang in LANGS {
        let p = lang.profile;
        let v = run_json(p, lang.failing, None);
        let (status, stderr) = lang.failure;
        assert_eq!(v["status"], status, "{p}: {v}");
        assert_eq!(v["compile"]["status"], "ok", "{p}");
        let err = v["stderr"]["data"].as_str().unwrap_or_default();
        assert!(err.contains(stderr), "{p}: {err}");
    }
    let v = run_json("c", LANGS[0].failing, None);
    assert_eq!(v["exit_code"], 3);
    let v = run_json("cpp", LANGS[1].failing, None);
    assert_eq!(v["signal"], libc::SIGABRT);
}

#[test]
fn a_source_file_named_after_dash_dash_is_compiled_with_its_arguments() {
    if !is_root() {
        return;
    }
    let dir = shared_dir().join("compiled-file");
    std::fs::create_dir_all(&dir).unwrap();
    let code = "#include <stdio.h>\nint main(int c, char **v){ for(int i=1;i<c;i++) printf(\"%s;\", v[i]); return 0; }\n";
    std::fs::write(dir.join("args.c"), code).unwrap();
    let out = std::process::Command::new(common::bin())
        .current_dir(&dir)
        .args([
            "run",
            "--json",
            "--profile",
            "c",
            "--",
            "args.c",
            "a",
            "b c",
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(stdout_of(&v), "a;b c;");
}

#[test]
fn compile_limits_are_the_compile_stage_s_own() {
    if !is_root() {
        return;
    }
    // A compile stage that outlives its wall limit is a compile failure; the program never runs.
    let dir = shared_dir().join("compiled-limits");
    std::fs::create_dir_all(&dir).unwrap();
    let profile = dir.join("slowcc.toml");
    std::fs::write(
        &profile,
        "description = \"a compiler that hangs\"\nextends = \"c\"\n[compile]\ncommand = [\"sleep\", \"30\"]\n[compile.limits]\nwall = \"500ms\"\n",
    )
    .unwrap();
    let v = verdict(
        Who::Me,
        &["--profile", profile.to_str().unwrap(), "--code", "x"],
    );
    assert_eq!(v["status"], "compile_failed", "{v}");
    assert_eq!(v["compile"]["status"], "timeout_wall");
    assert_eq!(v["compile"]["limits"]["wall"], 500);
    assert_eq!(v["limits"]["wall"], 10000, "the run keeps its own limit");
}

#[test]
fn the_work_dir_is_removed_and_holds_no_host_files() {
    if !is_root() {
        return;
    }
    let before = work_dirs();
    // The program sees only what the stages put in /sandbox and can leave a symlink behind.
    let code = "#include <stdio.h>\n#include <unistd.h>\nint main(void){ symlink(\"/etc\", \"/sandbox/escape\"); FILE *f = popen(\"ls /sandbox\", \"r\"); char b[256]; while (fgets(b, sizeof b, f)) fputs(b, stdout); return 0; }\n";
    let v = run_json("c", code, None);
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(stdout_of(&v), "escape\nmain\nmain.c\n");
    assert!(
        std::path::Path::new("/etc/passwd").exists(),
        "removal followed the symlink"
    );
    // Other tests run at the same time and have work dirs of their own: wait for every dir that
    // appeared since `before` to be gone (ours is removed before stockade exits).
    let gone = (0..600).any(|_| {
        let left: Vec<String> = work_dirs()
            .into_iter()
            .filter(|d| !before.contains(d))
            .collect();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mounted = left.iter().any(|d| mounts.contains(d.as_str()));
        if left.is_empty() && !mounted {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        false
    });
    assert!(gone, "work dir left behind");
}

fn work_dirs() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("stockade-work-"))
        .collect();
    names.sort();
    names
}

/// Unprivileged callers cannot mount the work tmpfs: the shared work dir is then a private
/// directory of their own, and both stages still run.
#[test]
fn unprivileged_callers_compile_and_run_too() {
    for who in identities() {
        let v = verdict(
            who,
            &[
                "--best-effort",
                "cgroup",
                "--profile",
                "c",
                "--code",
                "int puts(const char *); int main(void){ puts(\"as anyone\"); }",
            ],
        );
        assert_eq!(v["status"], "ok", "{who:?}: {v}");
        assert_eq!(v["compile"]["status"], "ok", "{who:?}");
        assert_eq!(stdout_of(&v), "as anyone\n", "{who:?}");
    }
}
