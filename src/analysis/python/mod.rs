//! Python: facts from the tree-sitter-python syntax tree.
//!
//! Imports in every form bind names (`import os.path as p`, `from os import system as s`), and
//! calls, attribute chains and subscripts are resolved through those bindings and through
//! assignments in source order (`f = os.system; f("id")` is a call of `os.system`). Dynamic
//! imports with constant names (`__import__("o" + "s")`) are imports; strings passed to
//! `eval`/`exec`/`compile` are analysed as Python and strings passed to `os.system`/`subprocess`
//! as shell. Comments and plain strings never produce facts: only syntax nodes do.

mod values;

use std::collections::HashMap;

use tree_sitter::Node;
use values::positional_args;

use crate::analysis::Language;
use crate::analysis::facts::{
    Arg, FactKind, Sink, Slot, Value, children_by_field, named_children, walk_tree,
};

/// Names through which builtins are reached (`builtins.eval`, `__builtins__.eval`).
const GLOBAL_PREFIXES: &[&str] = &["builtins", "__builtins__"];

/// Attributes used to climb from any object to `object.__subclasses__()`, a function's globals
/// or a frame: the classic escapes from in-process Python "sandboxes".
const ESCAPE_ATTRIBUTES: &[&str] = &[
    "__subclasses__",
    "__globals__",
    "__builtins__",
    "__code__",
    "__bases__",
    "__base__",
    "__mro__",
    "__getattribute__",
    "__reduce__",
    "__reduce_ex__",
    "__loader__",
    "__closure__",
    "f_globals",
    "f_locals",
    "f_builtins",
    "f_back",
    "gi_frame",
    "tb_frame",
];

/// Builtins worth a finding even when only referenced (`map(eval, xs)`).
const REFERENCE_BUILTINS: &[&str] = &[
    "eval",
    "exec",
    "compile",
    "__import__",
    "getattr",
    "setattr",
    "delattr",
    "globals",
    "vars",
    "open",
    "breakpoint",
];

/// Calls whose first argument is Python source.
const CODE_SINKS: &[&str] = &["eval", "exec", "compile"];

/// Calls whose first argument is a shell command line (or an argv list).
const SHELL_SINKS: &[&str] = &[
    "os.system",
    "os.popen",
    "subprocess.run",
    "subprocess.call",
    "subprocess.check_call",
    "subprocess.check_output",
    "subprocess.getoutput",
    "subprocess.getstatusoutput",
    "subprocess.Popen",
    "commands.getoutput",
    "commands.getstatusoutput",
    "asyncio.create_subprocess_shell",
    "asyncio.create_subprocess_exec",
    "pty.spawn",
];

/// Calls that import the module named by their first argument.
const IMPORT_CALLS: &[&str] = &[
    "__import__",
    "importlib.__import__",
    "importlib.import_module",
];

pub(crate) fn walk(root: Node, sink: &mut Sink) {
    let mut py = Py {
        sink,
        env: HashMap::new(),
        stars: Vec::new(),
    };
    walk_tree(root, |node, slot| py.visit(node, slot));
}

struct Py<'a, 's> {
    sink: &'a mut Sink<'s>,
    /// Names bound so far, in source order (flow-insensitive beyond that).
    env: HashMap<String, Value>,
    /// Modules imported with `from m import *`.
    stars: Vec<String>,
}

impl Py<'_, '_> {
    fn text(&self, node: Node) -> String {
        self.sink.text(node).to_string()
    }

    fn visit(&mut self, node: Node, slot: Slot) -> bool {
        match node.kind() {
            "comment" => false,
            // Only f-strings hold code (their `{...}` fields); other literals are data.
            "string" => self
                .sink
                .text(node)
                .split(['\'', '"'])
                .next()
                .is_some_and(|prefix| prefix.contains(['f', 'F'])),
            "import_statement" => {
                self.import(node);
                false
            }
            "import_from_statement" => {
                self.import_from(node);
                false
            }
            "future_import_statement" => false,
            "assignment" => {
                self.assign(node);
                true
            }
            "augmented_assignment" => {
                self.augmented(node);
                true
            }
            "named_expression" => {
                if let (Some(name), Some(value)) = (
                    node.child_by_field_name("name"),
                    node.child_by_field_name("value"),
                ) {
                    let value = self.resolve(value, 0);
                    self.env.insert(self.text(name), value);
                }
                true
            }
            "function_definition" | "class_definition" => {
                if let Some(name) = node.child_by_field_name("name") {
                    self.env.insert(self.text(name), Value::Unknown);
                }
                true
            }
            "call" => {
                self.call(node);
                true
            }
            "attribute" => {
                self.attribute(node, slot);
                true
            }
            "subscript" => {
                self.subscript(node);
                true
            }
            "identifier" => {
                self.reference(node, slot);
                false
            }
            _ => true,
        }
    }

    fn import(&mut self, node: Node) {
        for item in children_by_field(node, "name") {
            let (module, alias) = match item.kind() {
                "aliased_import" => (
                    item.child_by_field_name("name")
                        .map(|n| dotted(self.sink.text(n))),
                    item.child_by_field_name("alias").map(|n| self.text(n)),
                ),
                _ => (Some(dotted(self.sink.text(item))), None),
            };
            let Some(module) = module else { continue };
            match alias {
                Some(alias) => self.env.insert(alias, Value::Name(module.clone())),
                None => {
                    let root = module.split('.').next().unwrap_or_default().to_string();
                    self.env.insert(root.clone(), Value::Name(root))
                }
            };
            self.sink.push(FactKind::Import, &module, item);
        }
    }

    fn import_from(&mut self, node: Node) {
        let Some(module_node) = node.child_by_field_name("module_name") else {
            return;
        };
        let module = dotted(self.sink.text(module_node));
        // Relative imports name the user's own modules: bind, but they are not stdlib facts.
        let relative = module_node.kind() == "relative_import";
        for item in children_by_field(node, "name") {
            let (name, alias) = match item.kind() {
                "aliased_import" => (
                    item.child_by_field_name("name")
                        .map(|n| dotted(self.sink.text(n))),
                    item.child_by_field_name("alias").map(|n| self.text(n)),
                ),
                _ => (Some(dotted(self.sink.text(item))), None),
            };
            let Some(name) = name else { continue };
            let bound = alias.unwrap_or_else(|| name.clone());
            let value = if relative {
                Value::Unknown
            } else {
                Value::Name(format!("{module}.{name}"))
            };
            self.env.insert(bound, value);
        }
        if relative {
            return;
        }
        if named_children(node)
            .iter()
            .any(|c| c.kind() == "wildcard_import")
        {
            self.stars.push(module.clone());
        }
        self.sink.push(FactKind::Import, &module, module_node);
    }

    fn assign(&mut self, node: Node) {
        let (Some(left), Some(mut right)) = (
            node.child_by_field_name("left"),
            node.child_by_field_name("right"),
        ) else {
            return;
        };
        // `a = b = os.system`: the value is the innermost right-hand side.
        while right.kind() == "assignment" {
            match right.child_by_field_name("right") {
                Some(r) => right = r,
                None => return,
            }
        }
        self.bind(left, right);
    }

    fn bind(&mut self, target: Node, value: Node) {
        match target.kind() {
            "identifier" => {
                let v = self.resolve(value, 0);
                self.env.insert(self.text(target), v);
            }
            "pattern_list" | "tuple_pattern" | "list_pattern" => {
                let targets = named_children(target);
                let values = match value.kind() {
                    "expression_list" | "tuple" | "list" => named_children(value),
                    _ => Vec::new(),
                };
                for (i, t) in targets.iter().enumerate() {
                    match values.get(i) {
                        Some(v) if values.len() == targets.len() => self.bind(*t, *v),
                        _ if t.kind() == "identifier" => {
                            self.env.insert(self.text(*t), Value::Unknown);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }

    fn augmented(&mut self, node: Node) {
        let (Some(left), Some(right)) = (
            node.child_by_field_name("left"),
            node.child_by_field_name("right"),
        ) else {
            return;
        };
        if left.kind() != "identifier" {
            return;
        }
        let name = self.text(left);
        let op = node.child_by_field_name("operator").map(|o| self.text(o));
        let value = match (self.env.get(&name).cloned(), self.resolve(right, 0), op) {
            (Some(Value::Const(a)), Value::Const(b), Some(op)) if op == "+=" => {
                Value::Const(a + &b)
            }
            _ => Value::Unknown,
        };
        self.env.insert(name, value);
    }

    fn call(&mut self, node: Node) {
        let Some(function) = node.child_by_field_name("function") else {
            return;
        };
        let Value::Name(name) = self.resolve(function, 0) else {
            return;
        };
        let mut args = Vec::new();
        let mut keywords = Vec::new();
        if let Some(list) = node.child_by_field_name("arguments") {
            for a in named_children(list) {
                match a.kind() {
                    "keyword_argument" => {
                        if let (Some(k), Some(v)) = (
                            a.child_by_field_name("name"),
                            a.child_by_field_name("value"),
                        ) {
                            keywords.push((self.text(k), self.arg(v)));
                        }
                    }
                    "list_splat" | "dictionary_splat" => args.push(Arg::Other),
                    _ => args.push(self.arg(a)),
                }
            }
        }
        if function.kind() == "identifier" && !self.env.contains_key(self.sink.text(function)) {
            for module in self.stars.clone() {
                let fact = self
                    .sink
                    .push(FactKind::Call, &format!("{module}.{name}"), node);
                fact.args = args.clone();
            }
        }
        let fact = self.sink.push(FactKind::Call, &name, node);
        fact.args = args;
        fact.keywords = keywords;
        self.special_call(&name, node);
    }

    /// An argument as a fact argument; a list of constants is the command line it spells.
    fn arg(&self, node: Node) -> Arg {
        if matches!(node.kind(), "list" | "tuple") {
            return match self.join(node, " ", 0) {
                Value::Const(s) => Arg::Str(s),
                _ => Arg::Other,
            };
        }
        self.resolve(node, 0).into_arg()
    }

    fn special_call(&mut self, name: &str, node: Node) {
        let args = positional_args(node);
        let Some(first) = args.first().copied() else {
            return;
        };
        if IMPORT_CALLS.contains(&name) {
            match self.constant(first, 0) {
                Some(module) => {
                    self.sink.push(FactKind::Import, &module, first);
                }
                None => {
                    let detail = self.sink.snippet(node);
                    self.sink.construct("computed-import", &detail, first);
                }
            }
        } else if CODE_SINKS.contains(&name) {
            self.code_sink(name, first, node);
        } else if matches!(name, "getattr" | "setattr" | "delattr") {
            if let Some(attr) = args.get(1) {
                if self.constant(*attr, 0).is_none() {
                    let detail = format!(
                        "{} (attribute name computed at run time)",
                        self.sink.snippet(node)
                    );
                    self.sink.construct("computed-attribute", &detail, *attr);
                }
            }
        } else if SHELL_SINKS.contains(&name) {
            let line = if matches!(first.kind(), "list" | "tuple") {
                self.argv(first)
            } else {
                self.constant(first, 0)
            };
            if let Some(line) = line {
                self.sink.nested(Language::Shell, &line, name, first);
            }
        }
    }

    /// A list of constant strings as a shell command line, each word single-quoted.
    fn argv(&self, list: Node) -> Option<String> {
        let words: Option<Vec<String>> = named_children(list)
            .into_iter()
            .map(|item| self.constant(item, 0))
            .collect();
        Some(crate::analysis::shell::quote_words(&words?))
    }

    fn code_sink(&mut self, name: &str, first: Node, call: Node) {
        if first.kind() == "call" {
            // `exec(compile("...", ...))`: the string is analysed where `compile` is visited.
            let callee = first
                .child_by_field_name("function")
                .map(|f| self.resolve(f, 0));
            if callee == Some(Value::Name("compile".into())) {
                return;
            }
        }
        match self.constant(first, 0) {
            Some(code) => self.sink.nested(Language::Python, &code, name, first),
            None => {
                let detail = self.sink.snippet(call);
                self.sink.construct("computed-code", &detail, first);
            }
        }
    }

    fn attribute(&mut self, node: Node, slot: Slot) {
        if let Some(attr) = node.child_by_field_name("attribute") {
            let attr = self.sink.text(attr);
            if ESCAPE_ATTRIBUTES.contains(&attr) {
                self.sink
                    .construct("dunder-attribute", &format!("attribute .{attr}"), node);
            }
        }
        // Only the outermost attribute of a chain that is not called is an access; a called
        // chain is a call fact, and `os.environ.get` covers `os.environ` by prefix.
        if slot.is(&["attribute"], "object") || slot.is(&["call"], "function") {
            return;
        }
        if let Value::Name(name) = self.resolve(node, 0) {
            self.sink.push(FactKind::Access, &name, node);
        }
    }

    /// A bare name used as a value (`map(eval, xs)`, `run = s` after `from os import system as
    /// s`): an access of what it is bound to, when that is a module member or a risky builtin.
    fn reference(&mut self, node: Node, slot: Slot) {
        let not_a_value = matches!(
            slot.field,
            Some("function" | "object" | "attribute" | "name" | "alias" | "left")
        ) || slot.parent.is_none_or(|p| {
            matches!(
                p.kind(),
                "parameters"
                    | "lambda_parameters"
                    | "typed_parameter"
                    | "global_statement"
                    | "nonlocal_statement"
            )
        });
        if not_a_value {
            return;
        }
        // Looked up directly rather than through `resolve`: this runs for every name in the file.
        let text = self.sink.text(node);
        let name = match self.env.get(text) {
            Some(Value::Name(q)) if q.contains('.') || REFERENCE_BUILTINS.contains(&q.as_str()) => {
                q.clone()
            }
            None if REFERENCE_BUILTINS.contains(&text) => text.to_string(),
            _ => return,
        };
        self.sink.push(FactKind::Access, &name, node);
    }

    fn subscript(&mut self, node: Node) {
        let Some(value) = node.child_by_field_name("value") else {
            return;
        };
        if self.resolve(value, 0) == Value::Name("sys.modules".into()) {
            if let Value::Name(module) = self.subscript_value(node, 0) {
                self.sink.push(FactKind::Import, &module, node);
            }
        }
    }
}

/// A dotted name without the whitespace Python allows around dots.
fn dotted(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}
