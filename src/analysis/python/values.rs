//! Python values: what an expression is statically known to be (a qualified name or a constant
//! string), with constant folding and the dynamic-import, `getattr` and `sys.modules` forms.

use tree_sitter::Node;

use super::{GLOBAL_PREFIXES, Py};
use crate::analysis::facts::{MAX_EXPR_DEPTH, Value, canonical, named_children};
use crate::analysis::literal::python_string;

impl Py<'_, '_> {
    /// The static value of an expression, as far as it is known.
    pub(super) fn resolve(&self, node: Node, depth: usize) -> Value {
        if depth > MAX_EXPR_DEPTH {
            return Value::Unknown;
        }
        match node.kind() {
            "identifier" => {
                let name = self.sink.text(node);
                match self.env.get(name) {
                    Some(v) => v.clone(),
                    None => Value::Name(canonical(name, GLOBAL_PREFIXES)),
                }
            }
            "attribute" => {
                let (Some(object), Some(attr)) = (
                    node.child_by_field_name("object"),
                    node.child_by_field_name("attribute"),
                ) else {
                    return Value::Unknown;
                };
                match self.resolve(object, depth + 1) {
                    Value::Name(q) => Value::Name(qualify(&q, self.sink.text(attr))),
                    _ => Value::Unknown,
                }
            }
            "string" => {
                if named_children(node)
                    .iter()
                    .any(|c| c.kind() == "interpolation")
                {
                    return Value::Unknown;
                }
                python_string(self.sink.text(node)).map_or(Value::Unknown, Value::Const)
            }
            "concatenated_string" => self.concat(&named_children(node), depth),
            "binary_operator" => {
                let op = node
                    .child_by_field_name("operator")
                    .map(|o| self.sink.text(o));
                match (
                    op,
                    node.child_by_field_name("left"),
                    node.child_by_field_name("right"),
                ) {
                    (Some("+"), Some(l), Some(r)) => self.concat(&[l, r], depth),
                    _ => Value::Unknown,
                }
            }
            "parenthesized_expression" => match named_children(node).first() {
                Some(inner) => self.resolve(*inner, depth + 1),
                None => Value::Unknown,
            },
            "named_expression" => match node.child_by_field_name("value") {
                Some(v) => self.resolve(v, depth + 1),
                None => Value::Unknown,
            },
            "call" => self.call_value(node, depth),
            "subscript" => self.subscript_value(node, depth),
            _ => Value::Unknown,
        }
    }

    pub(super) fn constant(&self, node: Node, depth: usize) -> Option<String> {
        match self.resolve(node, depth + 1) {
            Value::Const(s) => Some(s),
            _ => None,
        }
    }

    fn concat(&self, parts: &[Node], depth: usize) -> Value {
        let mut out = String::new();
        for part in parts {
            match self.constant(*part, depth) {
                Some(s) => out.push_str(&s),
                None => return Value::Unknown,
            }
        }
        Value::Const(out)
    }

    /// What a call evaluates to: modules for dynamic imports, names for `getattr`, constants
    /// for string-building calls, and `f()` for other calls of known names.
    fn call_value(&self, node: Node, depth: usize) -> Value {
        let Some(function) = node.child_by_field_name("function") else {
            return Value::Unknown;
        };
        let args = positional_args(node);
        let arg = |i: usize| args.get(i).and_then(|a| self.constant(*a, depth));
        if function.kind() == "attribute"
            && function
                .child_by_field_name("attribute")
                .is_some_and(|a| self.sink.text(a) == "join")
        {
            if let (Some(sep), Some(list)) = (
                function
                    .child_by_field_name("object")
                    .and_then(|o| self.constant(o, depth)),
                args.first(),
            ) {
                return self.join(*list, &sep, depth);
            }
        }
        let Value::Name(callee) = self.resolve(function, depth + 1) else {
            return Value::Unknown;
        };
        match callee.as_str() {
            "__import__" | "importlib.__import__" => match arg(0) {
                // Without a fromlist, `__import__("os.path")` returns the top-level package.
                Some(m) if args.len() < 4 && !has_keyword(self, node, "fromlist") => {
                    Value::Name(m.split('.').next().unwrap_or_default().to_string())
                }
                Some(m) => Value::Name(m),
                None => Value::Unknown,
            },
            "importlib.import_module" | "sys.modules.get" => {
                arg(0).map_or(Value::Unknown, Value::Name)
            }
            "getattr" => match (args.first().map(|o| self.resolve(*o, depth + 1)), arg(1)) {
                (Some(Value::Name(q)), Some(attr)) => Value::Name(qualify(&q, &attr)),
                _ => Value::Unknown,
            },
            "compile" | "str" => arg(0).map_or(Value::Unknown, Value::Const),
            "chr" => args
                .first()
                .and_then(|a| self.sink.text(*a).parse::<u32>().ok())
                .and_then(char::from_u32)
                .map_or(Value::Unknown, |c| Value::Const(c.to_string())),
            "globals" | "locals" | "vars" if args.is_empty() => Value::Name("globals()".into()),
            // `vars(os)["system"]` is `os.__dict__["system"]`.
            "vars" => match args.first().map(|a| self.resolve(*a, depth + 1)) {
                Some(Value::Name(q)) => Value::Name(format!("{q}.__dict__")),
                _ => Value::Unknown,
            },
            _ => Value::Name(format!("{callee}()")),
        }
    }

    pub(super) fn join(&self, list: Node, sep: &str, depth: usize) -> Value {
        if !matches!(list.kind(), "list" | "tuple") {
            return Value::Unknown;
        }
        let mut parts = Vec::new();
        for item in named_children(list) {
            match self.constant(item, depth) {
                Some(s) => parts.push(s),
                None => return Value::Unknown,
            }
        }
        Value::Const(parts.join(sep))
    }

    /// `sys.modules["os"]`, `globals()["os"]`, `__builtins__["eval"]`, `os.__dict__["system"]`.
    pub(super) fn subscript_value(&self, node: Node, depth: usize) -> Value {
        let (Some(value), Some(key)) = (
            node.child_by_field_name("value"),
            node.child_by_field_name("subscript"),
        ) else {
            return Value::Unknown;
        };
        let Some(key) = self.constant(key, depth) else {
            return Value::Unknown;
        };
        match self.resolve(value, depth + 1) {
            Value::Name(q) if q == "sys.modules" => Value::Name(key),
            Value::Name(q) if q == "globals()" => self
                .env
                .get(&key)
                .cloned()
                .unwrap_or(Value::Name(canonical(&key, GLOBAL_PREFIXES))),
            Value::Name(q) if q == "__builtins__" || q == "builtins" || q == "__dict__" => {
                Value::Name(canonical(&key, GLOBAL_PREFIXES))
            }
            Value::Name(q) => match q.strip_suffix(".__dict__") {
                Some(owner) => Value::Name(qualify(owner, &key)),
                None => Value::Unknown,
            },
            _ => Value::Unknown,
        }
    }
}

pub(super) fn positional_args(call: Node) -> Vec<Node> {
    call.child_by_field_name("arguments")
        .map(|list| {
            named_children(list)
                .into_iter()
                .filter(|a| {
                    !matches!(
                        a.kind(),
                        "keyword_argument" | "list_splat" | "dictionary_splat"
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn has_keyword(py: &Py, call: Node, keyword: &str) -> bool {
    call.child_by_field_name("arguments").is_some_and(|list| {
        named_children(list).iter().any(|a| {
            a.kind() == "keyword_argument"
                && a.child_by_field_name("name")
                    .is_some_and(|n| py.sink.text(n) == keyword)
        })
    })
}

/// `q.attr`, canonicalised (`builtins.eval` is `eval`).
pub(super) fn qualify(q: &str, attr: &str) -> String {
    canonical(&format!("{q}.{attr}"), GLOBAL_PREFIXES)
}
