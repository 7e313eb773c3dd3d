//! JavaScript (Node): facts from the tree-sitter-javascript syntax tree.
//!
//! ES imports, `require` (with constant-folded names), `import()`, destructuring
//! (`const {exec: run} = require("child_process")`) and assignments bind names; calls, `new`,
//! member chains and constant subscripts (`cp["exec"]`) resolve through them. Strings passed to
//! `eval`, `Function`, `vm.*` or a string-form `setTimeout` are analysed as JavaScript, command
//! lines passed to `child_process` as shell.

use std::collections::{HashMap, HashSet};

use tree_sitter::Node;

use super::Language;
use super::facts::{
    Arg, FactKind, MAX_EXPR_DEPTH, Sink, Slot, Value, canonical, named_children, walk_tree,
};
use super::literal::js_string;

/// Names through which globals are reached (`globalThis.eval`, `window.eval`).
const GLOBAL_PREFIXES: &[&str] = &["globalThis", "global", "window", "self"];

/// Calls whose (last, for `Function`) constant string argument is JavaScript source.
const CODE_SINKS: &[&str] = &[
    "eval",
    "Function",
    "vm.runInThisContext",
    "vm.runInNewContext",
    "vm.runInContext",
    "vm.compileFunction",
    "vm.Script",
    "vm.SourceTextModule",
];

/// Timers that evaluate a string first argument (a function argument is the normal use).
const STRING_TIMERS: &[&str] = &["setTimeout", "setInterval", "setImmediate"];

/// `child_process` functions taking a shell command line.
const SHELL_LINE: &[&str] = &["child_process.exec", "child_process.execSync"];

/// `child_process` functions taking a file and an argv array.
const SHELL_ARGV: &[&str] = &[
    "child_process.spawn",
    "child_process.spawnSync",
    "child_process.execFile",
    "child_process.execFileSync",
];

/// Calls that load the module named by their first argument.
const REQUIRE_CALLS: &[&str] = &[
    "require",
    "module.require",
    "process.mainModule.require",
    "require.main.require",
    "module.constructor._load",
    "module._load",
    "module.Module._load",
];

/// Objects whose computed members (`process[x]`) hide what is reached.
const SENSITIVE_ROOTS: &[&str] = &["process", "Reflect", "Function", "require", "module"];

pub(crate) fn walk(root: Node, sink: &mut Sink) {
    let mut js = Js {
        sink,
        env: HashMap::new(),
        modules: HashSet::new(),
    };
    walk_tree(root, |node, slot| js.visit(node, slot));
}

struct Js<'a, 's> {
    sink: &'a mut Sink<'s>,
    env: HashMap<String, Value>,
    /// Modules imported or required so far; their computed members are worth a finding.
    modules: HashSet<String>,
}

impl Js<'_, '_> {
    fn text(&self, node: Node) -> String {
        self.sink.text(node).to_string()
    }

    fn visit(&mut self, node: Node, slot: Slot) -> bool {
        match node.kind() {
            "comment" | "string" | "regex" | "number" => false,
            "import_statement" => {
                self.import(node);
                false
            }
            "export_statement" => {
                if let Some(source) = node.child_by_field_name("source") {
                    if let Some(m) = self.constant(source, 0) {
                        self.import_fact(&module_name(&m), source);
                    }
                }
                true
            }
            "variable_declarator" => {
                if let (Some(name), Some(value)) = (
                    node.child_by_field_name("name"),
                    node.child_by_field_name("value"),
                ) {
                    self.bind(name, value);
                }
                true
            }
            "assignment_expression" => {
                if let (Some(left), Some(right)) = (
                    node.child_by_field_name("left"),
                    node.child_by_field_name("right"),
                ) {
                    self.bind(left, right);
                }
                true
            }
            "function_declaration" | "class_declaration" | "generator_function_declaration" => {
                if let Some(name) = node.child_by_field_name("name") {
                    self.env.insert(self.text(name), Value::Unknown);
                }
                true
            }
            "call_expression" | "new_expression" => {
                self.call(node);
                true
            }
            "member_expression" | "subscript_expression" => {
                self.member(node, slot);
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
        let Some(source) = node.child_by_field_name("source") else {
            return;
        };
        let Some(module) = self.constant(source, 0).map(|m| module_name(&m)) else {
            return;
        };
        for clause in named_children(node)
            .into_iter()
            .filter(|c| c.kind() == "import_clause")
        {
            for part in named_children(clause) {
                match part.kind() {
                    // Default import of a CommonJS module is the module object itself.
                    "identifier" => {
                        self.env
                            .insert(self.text(part), Value::Name(module.clone()));
                    }
                    "namespace_import" => {
                        for id in named_children(part) {
                            self.env.insert(self.text(id), Value::Name(module.clone()));
                        }
                    }
                    "named_imports" => {
                        for spec in named_children(part) {
                            let Some(name) = spec.child_by_field_name("name") else {
                                continue;
                            };
                            let member = self.constant(name, 0).unwrap_or_else(|| self.text(name));
                            let local = spec
                                .child_by_field_name("alias")
                                .map_or_else(|| member.clone(), |a| self.text(a));
                            self.env
                                .insert(local, Value::Name(format!("{module}.{member}")));
                        }
                    }
                    _ => {}
                }
            }
        }
        self.import_fact(&module, source);
    }

    fn bind(&mut self, target: Node, value: Node) {
        let value_node = value;
        let value = self.resolve(value_node, 0);
        match target.kind() {
            "identifier" => {
                self.env.insert(self.text(target), value);
            }
            "object_pattern" => {
                let base = match &value {
                    Value::Name(q) => Some(q.clone()),
                    _ => None,
                };
                for prop in named_children(target) {
                    let (key, local) = match prop.kind() {
                        "shorthand_property_identifier_pattern" => {
                            (self.text(prop), Some(self.text(prop)))
                        }
                        "pair_pattern" => (
                            prop.child_by_field_name("key")
                                .map(|k| self.constant(k, 0).unwrap_or_else(|| self.text(k)))
                                .unwrap_or_default(),
                            prop.child_by_field_name("value")
                                .filter(|v| v.kind() == "identifier")
                                .map(|v| self.text(v)),
                        ),
                        "object_assignment_pattern" => {
                            let left = prop.child_by_field_name("left").map(|l| self.text(l));
                            (left.clone().unwrap_or_default(), left)
                        }
                        _ => continue,
                    };
                    let Some(local) = local else { continue };
                    let bound = match &base {
                        Some(q) => Value::Name(format!("{q}.{key}")),
                        None => Value::Unknown,
                    };
                    self.env.insert(local, bound);
                }
            }
            _ => {}
        }
    }

    fn resolve(&self, node: Node, depth: usize) -> Value {
        if depth > MAX_EXPR_DEPTH {
            return Value::Unknown;
        }
        match node.kind() {
            "identifier" => {
                let name = self.sink.text(node);
                match self.env.get(name) {
                    Some(v) => v.clone(),
                    None => Value::Name(name.to_string()),
                }
            }
            "this" => Value::Name("this".into()),
            "member_expression" => {
                let (Some(object), Some(property)) = (
                    node.child_by_field_name("object"),
                    node.child_by_field_name("property"),
                ) else {
                    return Value::Unknown;
                };
                self.member_value(object, self.sink.text(property), depth)
            }
            "subscript_expression" => {
                let (Some(object), Some(index)) = (
                    node.child_by_field_name("object"),
                    node.child_by_field_name("index"),
                ) else {
                    return Value::Unknown;
                };
                match self.constant(index, depth) {
                    Some(key) => self.member_value(object, &key, depth),
                    None => Value::Unknown,
                }
            }
            "string" => js_string(self.sink.text(node)).map_or(Value::Unknown, Value::Const),
            "template_string" => {
                if named_children(node)
                    .iter()
                    .any(|c| c.kind() == "template_substitution")
                {
                    return Value::Unknown;
                }
                js_string(self.sink.text(node)).map_or(Value::Unknown, Value::Const)
            }
            "binary_expression" => self.sum(node, depth),
            "parenthesized_expression" | "sequence_expression" => match named_children(node).last()
            {
                Some(inner) => self.resolve(*inner, depth + 1),
                None => Value::Unknown,
            },
            "await_expression" => match named_children(node).first() {
                Some(inner) => self.resolve(*inner, depth + 1),
                None => Value::Unknown,
            },
            "call_expression" | "new_expression" => self.call_value(node, depth),
            _ => Value::Unknown,
        }
    }

    /// `a + b` of two constants.
    fn sum(&self, node: Node, depth: usize) -> Value {
        let op = node
            .child_by_field_name("operator")
            .map(|o| self.sink.text(o));
        let (Some("+"), Some(l), Some(r)) = (
            op,
            node.child_by_field_name("left"),
            node.child_by_field_name("right"),
        ) else {
            return Value::Unknown;
        };
        match (self.constant(l, depth), self.constant(r, depth)) {
            (Some(a), Some(b)) => Value::Const(a + &b),
            _ => Value::Unknown,
        }
    }

    fn member_value(&self, object: Node, property: &str, depth: usize) -> Value {
        match self.resolve(object, depth + 1) {
            Value::Name(q) => Value::Name(qualify(&q, property)),
            // `[].constructor.constructor` reaches `Function` from any value.
            _ if property == "constructor" => Value::Name("(value).constructor".into()),
            _ => Value::Unknown,
        }
    }

    fn import_fact(&mut self, module: &str, node: Node) {
        let root = module.split('.').next().unwrap_or_default().to_string();
        self.modules.insert(root);
        self.sink.push(FactKind::Import, module, node);
    }

    fn constant(&self, node: Node, depth: usize) -> Option<String> {
        match self.resolve(node, depth + 1) {
            Value::Const(s) => Some(s),
            _ => None,
        }
    }

    fn callee(&self, node: Node, depth: usize) -> Option<String> {
        let function = node
            .child_by_field_name("function")
            .or_else(|| node.child_by_field_name("constructor"))?;
        if function.kind() == "import" {
            return Some("import".into());
        }
        match self.resolve(function, depth + 1) {
            Value::Name(q) => Some(q),
            _ => None,
        }
    }

    fn call_value(&self, node: Node, depth: usize) -> Value {
        let Some(callee) = self.callee(node, depth) else {
            return Value::Unknown;
        };
        let args = arguments(node);
        let arg = |i: usize| args.get(i).and_then(|a| self.constant(*a, depth));
        if REQUIRE_CALLS.contains(&callee.as_str()) || callee == "import" {
            return arg(0).map_or(Value::Unknown, |m| Value::Name(module_name(&m)));
        }
        if callee == "String.fromCharCode" {
            let chars: Option<String> = args
                .iter()
                .map(|a| {
                    self.sink
                        .text(*a)
                        .parse::<u32>()
                        .ok()
                        .and_then(char::from_u32)
                })
                .collect();
            return chars.map_or(Value::Unknown, Value::Const);
        }
        Value::Name(format!("{callee}()"))
    }

    fn call(&mut self, node: Node) {
        let Some(name) = self.callee(node, 0) else {
            return;
        };
        let arg_nodes = arguments(node);
        let args: Vec<Arg> = arg_nodes.iter().map(|a| self.arg(*a)).collect();
        self.sink.push(FactKind::Call, &name, node).args = args;
        let Some(first) = arg_nodes.first().copied() else {
            return;
        };
        if REQUIRE_CALLS.contains(&name.as_str()) || name == "import" {
            match self.constant(first, 0) {
                Some(m) => self.import_fact(&module_name(&m), first),
                None => {
                    let detail = self.sink.snippet(node);
                    self.sink.construct("computed-import", &detail, first);
                }
            }
        } else if CODE_SINKS.contains(&name.as_str()) {
            // `Function(a, b, body)`: the body is the last argument.
            let source = if name == "Function" {
                arg_nodes.last().copied().unwrap_or(first)
            } else {
                first
            };
            match self.constant(source, 0) {
                Some(code) => self.sink.nested(Language::JavaScript, &code, &name, source),
                None => {
                    let detail = self.sink.snippet(node);
                    self.sink.construct("computed-code", &detail, source);
                }
            }
        } else if STRING_TIMERS.contains(&name.as_str()) {
            if let Some(code) = self.constant(first, 0) {
                self.sink.nested(Language::JavaScript, &code, &name, first);
            }
        } else if SHELL_LINE.contains(&name.as_str()) {
            if let Some(line) = self.constant(first, 0) {
                self.sink.nested(Language::Shell, &line, &name, first);
            }
        } else if SHELL_ARGV.contains(&name.as_str()) {
            self.shell_argv(&name, first, arg_nodes.get(1).copied());
        }
    }

    fn shell_argv(&mut self, name: &str, file: Node, argv: Option<Node>) {
        let Some(file) = self.constant(file, 0).map(|f| (f, file)) else {
            return;
        };
        let mut words = vec![file.0];
        if let Some(list) = argv.filter(|a| a.kind() == "array") {
            for item in named_children(list) {
                match self.constant(item, 0) {
                    Some(w) => words.push(w),
                    None => return,
                }
            }
        }
        let line = super::shell::quote_words(&words);
        self.sink.nested(Language::Shell, &line, name, file.1);
    }

    fn arg(&self, node: Node) -> Arg {
        if node.kind() == "array" {
            let words: Option<Vec<String>> = named_children(node)
                .into_iter()
                .map(|n| self.constant(n, 0))
                .collect();
            return words.map_or(Arg::Other, |w| Arg::Str(w.join(" ")));
        }
        self.resolve(node, 0).into_arg()
    }

    fn member(&mut self, node: Node, slot: Slot) {
        if node.kind() == "subscript_expression" {
            self.computed_member(node);
        }
        let is_callee = slot.is(&["call_expression"], "function")
            || slot.is(&["new_expression"], "constructor");
        let in_chain = slot.is(&["member_expression", "subscript_expression"], "object");
        let is_target = slot.is(&["assignment_expression"], "left");
        if is_callee || in_chain || is_target {
            return;
        }
        if let Value::Name(name) = self.resolve(node, 0) {
            self.sink.push(FactKind::Access, &name, node);
        }
    }

    /// A bare name used as a value (`[].map(eval)`, `run` after `{exec: run} = require(...)`):
    /// an access of what it is bound to, when that is a module member or a code evaluator.
    fn reference(&mut self, node: Node, slot: Slot) {
        let binding_or_callee = matches!(
            slot.field,
            Some("function" | "constructor" | "object" | "property" | "name" | "key" | "left")
                | Some("label" | "alias" | "parameter" | "parameters")
        );
        let in_pattern = slot.parent.is_none_or(|p| {
            matches!(
                p.kind(),
                "formal_parameters"
                    | "import_specifier"
                    | "export_specifier"
                    | "namespace_import"
                    | "import_clause"
                    | "pair_pattern"
                    | "object_pattern"
                    | "array_pattern"
                    | "rest_pattern"
                    | "assignment_pattern"
                    | "catch_clause"
            )
        });
        if binding_or_callee || in_pattern {
            return;
        }
        // Looked up directly rather than through `resolve`: this runs for every name in the file.
        let text = self.sink.text(node);
        let evaluator = |n: &str| n == "eval" || n == "Function";
        let name = match self.env.get(text) {
            Some(Value::Name(q)) if q.contains('.') || evaluator(q) => q.clone(),
            None if evaluator(text) => text.to_string(),
            _ => return,
        };
        self.sink.push(FactKind::Access, &name, node);
    }

    /// `process[x]`, `cp[name]`: a computed member of a module or a sensitive global.
    fn computed_member(&mut self, node: Node) {
        let (Some(object), Some(index)) = (
            node.child_by_field_name("object"),
            node.child_by_field_name("index"),
        ) else {
            return;
        };
        if self.constant(index, 0).is_some() {
            return;
        }
        let Value::Name(q) = self.resolve(object, 0) else {
            return;
        };
        let root = q.split('.').next().unwrap_or_default();
        if self.modules.contains(root) || SENSITIVE_ROOTS.contains(&root) {
            let detail = format!(
                "{} (member of {q} computed at run time)",
                self.sink.snippet(node)
            );
            self.sink.construct("computed-attribute", &detail, node);
        }
    }
}

fn arguments(call: Node) -> Vec<Node> {
    call.child_by_field_name("arguments")
        .map(named_children)
        .unwrap_or_default()
}

/// `q.property`, canonicalised: globals reached through `globalThis`, and the function
/// constructor reached through `x.constructor.constructor`, have their plain names.
fn qualify(q: &str, property: &str) -> String {
    let name = canonical(&format!("{q}.{property}"), GLOBAL_PREFIXES);
    if name.ends_with("constructor.constructor") || name == "Function.prototype.constructor" {
        return "Function".into();
    }
    name
}

/// Module specifiers as one name: `node:fs` is `fs`, `fs/promises` is `fs.promises`.
fn module_name(specifier: &str) -> String {
    specifier
        .strip_prefix("node:")
        .unwrap_or(specifier)
        .replace('/', ".")
}
