//! The analyzer never panics: arbitrary bytes, token soup, and adversarial nesting.

use proptest::prelude::*;

use crate::analysis::{Language, analyze, preset};

/// Fragments that reach the walkers' special cases when glued together at random.
const TOKENS: &[&str] = &[
    "import ",
    "from ",
    " as ",
    "os",
    ".",
    "system",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "'",
    "\"",
    "\"\"\"",
    "`",
    "${",
    "$",
    "$(",
    "=",
    "+",
    ",",
    ";",
    ":",
    "\n",
    "  ",
    "#",
    "//",
    "/*",
    "*/",
    "eval",
    "exec",
    "__import__",
    "require",
    "import(",
    "getattr",
    "globals()",
    "sys.modules",
    "child_process",
    "Function",
    "new ",
    "rm -rf /",
    "bash -c ",
    "python3 -c ",
    "<<EOF\n",
    "EOF\n",
    "|",
    ">",
    "\\",
    "\\x",
    "é",
    "\0",
    "r\"",
    "f\"",
    "{x}",
    "constructor",
    "=>",
    "...",
];

fn check_all(code: &str) {
    let strict = preset("strict").unwrap();
    let lines = code.lines().count().max(1) + 1;
    for language in Language::ALL {
        let report = analyze(code, language, &strict);
        for f in &report.findings {
            assert!(f.line >= 1 && f.line <= lines, "line {} of {lines}", f.line);
            assert!(f.column >= 1);
            assert!(f.excerpt.chars().count() <= 121);
        }
        assert_eq!(report.safe, report.blocking().next().is_none());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_all(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn token_soup_never_panics(picks in proptest::collection::vec(0..TOKENS.len(), 0..160)) {
        let code: String = picks.iter().map(|&i| TOKENS[i]).collect();
        check_all(&code);
    }
}

#[test]
fn adversarial_nesting_and_size_stay_bounded() {
    let deep = [
        "(".repeat(20_000),
        format!("{}1{}", "[".repeat(5_000), "]".repeat(5_000)),
        format!("__import__({}'os')", "'o' + ".repeat(3_000)),
        format!("x = {}", "a.".repeat(10_000) + "b"),
        "$(".repeat(3_000),
        format!("eval({})", "\"".repeat(3)),
        "exec('".repeat(500),
    ];
    for code in &deep {
        check_all(code);
    }
}
