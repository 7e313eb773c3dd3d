//! JavaScript: require/import styles, destructuring, evaluated strings, and words that are not
//! code.

use super::{expect_clean, expect_rules, findings};
use crate::analysis::Language::JavaScript;

#[test]
fn imports_in_every_form_are_found() {
    expect_rules(
        JavaScript,
        &[
            (
                "const cp = require('child_process')",
                &["module-subprocess"],
            ),
            (
                "import cp from 'node:child_process'",
                &["module-subprocess"],
            ),
            ("import * as net from 'net'", &["module-socket"]),
            ("import { readFile } from 'fs/promises'", &["module-fs"]),
            ("export * from 'vm'", &["module-eval"]),
            (
                "import('fs').then(m => m)",
                &["module-fs", "dynamic-import"],
            ),
            ("const w = require('worker_threads')", &["module-threading"]),
        ],
    );
}

#[test]
fn calls_resolve_through_aliases_and_destructuring() {
    expect_rules(
        JavaScript,
        &[
            (
                "const cp = require('child_process'); cp.exec('id')",
                &["system-command"],
            ),
            (
                "import { exec as run } from 'child_process'; run('ls')",
                &["system-command"],
            ),
            (
                "const { execSync: e } = require('child_process'); e('id')",
                &["system-command"],
            ),
            (
                "const { spawn } = require('child_process'); spawn('ls')",
                &["system-command"],
            ),
            (
                "let x; x = require('child_process'); x.fork('a.js')",
                &["system-command"],
            ),
            (
                "require('child_process')['exec']('id')",
                &["system-command"],
            ),
            (
                "const fs = require('fs'); fs.writeFileSync('/etc/x', 'y')",
                &["file-write"],
            ),
            ("require('fs').promises.unlink('/x')", &["file-delete"]),
            (
                "const f = await import('fs'); f.rmSync('/x')",
                &["file-delete"],
            ),
        ],
    );
}

#[test]
fn regex_scanner_bypasses_are_caught() {
    expect_rules(
        JavaScript,
        &[
            (
                "const x = '//'; require('child_process').exec('id')",
                &["system-command"],
            ),
            (
                "require('child_' + 'process').exec('id')",
                &["module-subprocess", "system-command"],
            ),
            (
                "require(`child_process`).exec('id')",
                &["module-subprocess"],
            ),
            ("require('\\x63hild_process')", &["module-subprocess"]),
            ("require(String.fromCharCode(102, 115))", &["module-fs"]),
            ("require(name)", &["computed-import"]),
            ("import(spec)", &["computed-import"]),
            ("globalThis['ev' + 'al']('1')", &["code-eval"]),
            ("window.eval('1')", &["code-eval"]),
            (
                "this.constructor.constructor('return process')()",
                &["code-eval"],
            ),
            ("[].constructor.constructor('return 1')()", &["code-eval"]),
            ("process[name]", &["hidden-access"]),
            (
                "process.mainModule.require('fs')",
                &["dynamic-import", "module-fs"],
            ),
            ("process.binding('spawn_sync')", &["system-command"]),
        ],
    );
}

#[test]
fn evaluated_strings_are_analysed_as_code() {
    expect_rules(
        JavaScript,
        &[
            (
                "eval(\"require('net').connect(80)\")",
                &["code-eval", "module-socket", "network-socket"],
            ),
            (
                "new Function('return process.env')()",
                &["code-eval", "env-access"],
            ),
            ("Function('a', 'return require(\"vm\")')", &["module-eval"]),
            (
                "setTimeout(\"require('fs')\", 10)",
                &["code-eval", "module-fs"],
            ),
            (
                "const vm = require('vm'); vm.runInNewContext('process.exit()')",
                &["code-eval"],
            ),
            ("eval(code)", &["computed-code"]),
            (
                "require('child_process').execSync('rm -rf /')",
                &["destructive-command"],
            ),
            (
                "require('child_process').spawn('rm', ['-rf', '/'])",
                &["destructive-command"],
            ),
            (
                "require('child_process').spawn('sh', ['-c', 'curl x | sh'])",
                &["computed-code"],
            ),
        ],
    );
    // A function passed to a timer is the normal use, not string evaluation.
    let found = super::rules(JavaScript, "setTimeout(() => run(), 10)");
    assert!(!found.contains(&"code-eval".to_string()), "{found:?}");
}

#[test]
fn behaviour_rules_match_their_calls() {
    expect_rules(
        JavaScript,
        &[
            ("console.log(process.env.SECRET)", &["env-access"]),
            ("fetch('http://x')", &["network-http"]),
            (
                "const https = require('https'); https.get('https://x')",
                &["network-http"],
            ),
            (
                "const net = require('net'); net.connect(80)",
                &["network-socket"],
            ),
            (
                "const fs = require('fs'); fs.openSync('/x', 'w')",
                &["file-write"],
            ),
            ("process.kill(1)", &["process-control"]),
            ("process.setuid(0)", &["privilege"]),
            ("process.dlopen(m, '/x.node')", &["native-code"]),
        ],
    );
}

#[test]
fn words_in_comments_and_strings_are_not_code() {
    expect_clean(
        JavaScript,
        &[
            "// require('child_process').exec('rm -rf /')\nconsole.log(1)",
            "/* fetch('http://x'); eval(y) */ let a = 1",
            "const s = 'eval(x)'; console.log(s)",
            "const t = `process.env.HOME`;",
            "const obj = { exec() { return 1 } }; obj.exec()",
            "const arr = [1, 2]; arr[i] = 3; arr.map((x) => x * 2)",
            "function evaluate(x) { return x + 1 } evaluate(2)",
            "const msg = \"require('fs')\"",
            "class A { constructor() { this.n = 1 } }",
        ],
    );
}

#[test]
fn malformed_code_is_a_finding_not_a_crash() {
    let found = findings(JavaScript, "strict", "function (\nrequire('fs')");
    assert!(found.iter().any(|f| f.rule == "parse-error"), "{found:?}");
    for code in ["", "`${", "/*", "}}}}", "require(", "new new new"] {
        let _ = findings(JavaScript, "strict", code);
    }
}
