//! Shell (bash/POSIX sh): facts from the tree-sitter-bash syntax tree.
//!
//! Every simple command is a fact named by its base name (`/bin/rm` is `rm`), with its words
//! decoded (quotes, `$'\x72m'`, variables assigned constants earlier: `c=rm; $c -rf /`).
//! Wrappers (`sudo`, `env`, `timeout`, ...) also yield the wrapped command. Code handed to an
//! interpreter (`eval`, `bash -c`, `python3 -c`, `node -e`, heredocs, `echo ... | sh`) is
//! analysed in its language; code that cannot be known statically is a `computed-code` construct.

use std::collections::HashMap;

use tree_sitter::Node;

use super::Language;
use super::facts::{
    Arg, FactKind, MAX_EXPR_DEPTH, Sink, children_by_field, named_children, preorder,
};
use super::literal::{ansi_c_string, shell_double_quoted, shell_word};

/// Commands that run another command given as their arguments.
const WRAPPERS: &[&str] = &[
    "sudo", "doas", "env", "nohup", "exec", "command", "builtin", "time", "timeout", "nice",
    "ionice", "setsid", "stdbuf", "xargs", "watch", "strace", "chroot", "runuser", "busybox",
    "unbuffer", "chrt", "taskset",
];

/// Wrapper options that take a value (`sudo -u root`, `nice -n 5`, `xargs -I {}`).
const OPTIONS_WITH_VALUE: &[&str] = &["-u", "-g", "-n", "-p", "-C", "-I", "-L", "-P", "-k", "-o"];

/// Redirection targets that are not files.
const HARMLESS_TARGETS: &[&str] = &["/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "-"];

/// Wrapper chains are followed at most this far (`sudo env nice rm`).
const MAX_WRAPPER_HOPS: usize = 4;

pub(crate) fn walk(root: Node, sink: &mut Sink) {
    let mut sh = Sh {
        sink,
        vars: HashMap::new(),
    };
    preorder(root, |node| sh.visit(node));
}

/// Words as one command line, each single-quoted so the shell parser sees them unchanged.
pub(crate) fn quote_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

struct Sh<'a, 's> {
    sink: &'a mut Sink<'s>,
    /// Variables assigned constant values so far.
    vars: HashMap<String, String>,
}

impl Sh<'_, '_> {
    fn visit(&mut self, node: Node) -> bool {
        match node.kind() {
            "comment" | "raw_string" | "ansi_c_string" => false,
            "variable_assignment" => {
                self.assign(node);
                true
            }
            "command" => {
                self.command(node);
                self.fed_code(node, &children_by_field(node, "redirect"));
                true
            }
            "file_redirect" => {
                self.redirect(node);
                true
            }
            "redirected_statement" => {
                if let Some(body) = node.child_by_field_name("body") {
                    self.fed_code(body, &named_children(node));
                }
                true
            }
            "pipeline" => {
                self.pipeline(node);
                true
            }
            _ => true,
        }
    }

    fn assign(&mut self, node: Node) {
        let Some(name) = node.child_by_field_name("name") else {
            return;
        };
        let name = self.sink.text(name).to_string();
        match node
            .child_by_field_name("value")
            .and_then(|v| self.value(v, 0))
        {
            Some(value) => self.vars.insert(name, value),
            None => self.vars.remove(&name),
        };
    }

    /// The constant value of a word, string or expansion, if it has one.
    fn value(&self, node: Node, depth: usize) -> Option<String> {
        if depth > MAX_EXPR_DEPTH {
            return None;
        }
        let text = self.sink.text(node);
        match node.kind() {
            "word" | "number" => Some(shell_word(text)),
            "raw_string" => Some(text.strip_prefix('\'')?.strip_suffix('\'')?.to_string()),
            "ansi_c_string" => ansi_c_string(text),
            "string" => self.double_quoted(node, depth),
            "concatenation" | "command_name" => {
                let mut out = String::new();
                for part in named_children(node) {
                    out.push_str(&self.value(part, depth + 1)?);
                }
                Some(out)
            }
            "simple_expansion" | "expansion" => {
                let parts = named_children(node);
                match parts.as_slice() {
                    [var] if var.kind() == "variable_name" => {
                        self.vars.get(self.sink.text(*var)).cloned()
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// `"..."`: literal text between expansions, which must themselves be constant.
    fn double_quoted(&self, node: Node, depth: usize) -> Option<String> {
        let (start, end) = (node.start_byte() + 1, node.end_byte().checked_sub(1)?);
        let mut out = String::new();
        let mut at = start;
        for part in named_children(node) {
            if part.kind() == "string_content" {
                continue;
            }
            out.push_str(&shell_double_quoted(
                self.sink.src.get(at..part.start_byte())?,
            ));
            out.push_str(&self.value(part, depth + 1)?);
            at = part.end_byte();
        }
        out.push_str(&shell_double_quoted(self.sink.src.get(at..end)?));
        Some(out)
    }

    fn command(&mut self, node: Node) {
        let Some(name_node) = node.child_by_field_name("name") else {
            return;
        };
        let args: Vec<Option<String>> = children_by_field(node, "argument")
            .into_iter()
            .map(|a| self.value(a, 0))
            .collect();
        match self.value(name_node, 0) {
            Some(name) => self.command_fact(&name, &args, node, 0),
            None => {
                let detail = format!(
                    "{} (command name computed at run time)",
                    self.sink.snippet(name_node)
                );
                self.sink.construct("computed-command", &detail, name_node);
            }
        }
    }

    fn command_fact(&mut self, name: &str, args: &[Option<String>], node: Node, hops: usize) {
        let base = name.rsplit('/').next().unwrap_or(name).to_string();
        let fact = self.sink.push(FactKind::Command, &base, node);
        fact.args = args
            .iter()
            .map(|a| a.clone().map_or(Arg::Other, Arg::Str))
            .collect();
        if base == "eval" {
            let words: Option<Vec<String>> = args.iter().cloned().collect();
            match words {
                Some(words) => self
                    .sink
                    .nested(Language::Shell, &words.join(" "), "eval", node),
                None => {
                    let detail = self.sink.snippet(node);
                    self.sink.construct("computed-code", &detail, node);
                }
            }
        } else if let Some(language) = interpreter(&base) {
            self.inline_code(&base, language, args, node);
        } else if WRAPPERS.contains(&base.as_str()) && hops < MAX_WRAPPER_HOPS {
            if let Some(i) = wrapped_index(&base, args) {
                if let Some(Some(inner)) = args.get(i) {
                    self.command_fact(inner, &args[i + 1..], node, hops + 1);
                }
            }
        }
    }

    /// `bash -c CODE`, `python3 -c CODE`, `node -e CODE`.
    fn inline_code(&mut self, base: &str, language: Language, args: &[Option<String>], node: Node) {
        let flags: &[&str] = match language {
            Language::Shell => &["-c"],
            Language::Python => &["-c"],
            Language::JavaScript => &["-e", "--eval", "-p", "--print"],
        };
        let position = args.iter().position(|a| {
            a.as_deref().is_some_and(|a| {
                flags.contains(&a)
                    || (language == Language::Shell
                        && a.starts_with('-')
                        && !a.starts_with("--")
                        && a.contains('c'))
            })
        });
        let Some(i) = position else { return };
        match args.get(i + 1) {
            Some(Some(code)) => {
                let via = format!("{base} {}", args[i].as_deref().unwrap_or_default());
                self.sink.nested(language, code, &via, node);
            }
            Some(None) => {
                let detail = self.sink.snippet(node);
                self.sink.construct("computed-code", &detail, node);
            }
            None => {}
        }
    }

    fn redirect(&mut self, node: Node) {
        let mut cursor = node.walk();
        let operator = node
            .children(&mut cursor)
            .find(|c| !c.is_named())
            .map(|c| c.kind().to_string())
            .unwrap_or_default();
        let Some(destination) = node.child_by_field_name("destination") else {
            return;
        };
        let target = self.value(destination, 0);
        if let Some(t) = target.as_deref() {
            if t.starts_with("/dev/tcp/") || t.starts_with("/dev/udp/") {
                self.sink
                    .construct("dev-tcp", &format!("network connection through {t}"), node);
                return;
            }
        }
        let writes = matches!(
            operator.as_str(),
            ">" | ">>" | "&>" | "&>>" | ">|" | "<>" | ">&"
        );
        if !writes || destination.kind() == "number" {
            return;
        }
        match target {
            Some(t) if HARMLESS_TARGETS.contains(&t.as_str()) || t.starts_with("/dev/fd/") => {}
            Some(t) => self
                .sink
                .construct("file-redirect", &format!("write to {t}"), node),
            None => self.sink.construct(
                "file-redirect",
                "write to a path computed at run time",
                node,
            ),
        }
    }

    /// `python3 <<EOF ... EOF` and `bash <<< "..."`: the heredoc or here-string is the program.
    fn fed_code(&mut self, body: Node, redirects: &[Node]) {
        if !redirects
            .iter()
            .any(|r| matches!(r.kind(), "heredoc_redirect" | "herestring_redirect"))
        {
            return;
        }
        let Some((base, language)) = self.stdin_interpreter(body) else {
            return;
        };
        for redirect in redirects.iter().copied() {
            let code = match redirect.kind() {
                "heredoc_redirect" => named_children(redirect)
                    .into_iter()
                    .find(|c| c.kind() == "heredoc_body")
                    .map(|b| self.sink.text(b).to_string()),
                "herestring_redirect" => named_children(redirect)
                    .first()
                    .and_then(|v| self.value(*v, 0)),
                _ => continue,
            };
            match (code, language) {
                (Some(code), Some(language)) => self.sink.nested(language, &code, &base, redirect),
                _ => {
                    let detail = format!(
                        "{} (code fed to {base} on standard input)",
                        self.sink.snippet(body)
                    );
                    self.sink.construct("computed-code", &detail, redirect);
                }
            }
        }
    }

    /// `echo CODE | sh`: constant output of echo/printf is analysed, anything else piped into
    /// an interpreter (`curl ... | bash`) is code nobody can see before it runs.
    fn pipeline(&mut self, node: Node) {
        let stages = named_children(node);
        for pair in stages.windows(2) {
            let Some((base, language)) = self.stdin_interpreter(pair[1]) else {
                continue;
            };
            match (self.echoed(pair[0]), language) {
                (Some(code), Some(language)) => self.sink.nested(language, &code, &base, pair[0]),
                _ => {
                    let detail = self.sink.snippet(node);
                    self.sink.construct("computed-code", &detail, pair[1]);
                }
            }
        }
    }

    /// An interpreter command reading its program from standard input.
    fn stdin_interpreter(&self, command: Node) -> Option<(String, Option<Language>)> {
        if command.kind() != "command" {
            return None;
        }
        let name = self.value(command.child_by_field_name("name")?, 0)?;
        let base = name.rsplit('/').next().unwrap_or(&name).to_string();
        let known = interpreter(&base);
        let other = matches!(base.as_str(), "perl" | "ruby" | "php" | "lua" | "Rscript");
        if known.is_none() && !other {
            return None;
        }
        // With a script file or -c argument, stdin is data, not the program.
        let args = children_by_field(command, "argument");
        let reads_stdin = args.iter().all(|a| {
            self.value(*a, 0)
                .is_some_and(|v| v == "-" || v == "-s" || v == "-i")
        });
        reads_stdin.then_some((base, known))
    }

    fn echoed(&self, command: Node) -> Option<String> {
        if command.kind() != "command" {
            return None;
        }
        let name = self.value(command.child_by_field_name("name")?, 0)?;
        if name != "echo" && name != "printf" {
            return None;
        }
        let words: Option<Vec<String>> = children_by_field(command, "argument")
            .into_iter()
            .map(|a| self.value(a, 0))
            .filter(|w| w.as_deref().is_none_or(|w| w != "-e" && w != "-n"))
            .collect();
        Some(words?.join(" "))
    }
}

/// The language of an interpreter command (`python3.11` is Python, `dash` is shell).
fn interpreter(base: &str) -> Option<Language> {
    let versioned = |prefix: &str| {
        base.strip_prefix(prefix)
            .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '.'))
    };
    match base {
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "ash" | "mksh" => Some(Language::Shell),
        "node" | "nodejs" => Some(Language::JavaScript),
        _ if versioned("python") || versioned("pypy") => Some(Language::Python),
        _ => None,
    }
}

/// Index of the wrapped command in a wrapper's arguments: skip options (and their values),
/// `NAME=value` for env, and the leading operand of timeout (duration) and chroot (new root).
fn wrapped_index(wrapper: &str, args: &[Option<String>]) -> Option<usize> {
    let mut i = 0;
    let mut operands_to_skip =
        usize::from(matches!(wrapper, "timeout" | "chroot" | "chrt" | "taskset"));
    while let Some(arg) = args.get(i) {
        let arg = arg.as_deref()?;
        if arg == "--" {
            i += 1;
        } else if arg.starts_with('-') {
            i += if OPTIONS_WITH_VALUE.contains(&arg) {
                2
            } else {
                1
            };
            continue;
        } else if wrapper == "env" && arg.contains('=') {
            i += 1;
            continue;
        } else if operands_to_skip > 0 {
            operands_to_skip -= 1;
            i += 1;
            continue;
        }
        return args.get(i).map(|_| i);
    }
    None
}
