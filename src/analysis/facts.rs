//! Language-neutral facts extracted from a tree-sitter syntax tree, and what walkers share.
//!
//! Each walker (`python`, `javascript`, `shell`) turns a syntax tree into [`Fact`]s: an import,
//! a call of a resolved qualified name, an access of one, a shell command, or a construct that
//! defeats static analysis (computed import, computed code, parse error). Rules only ever see
//! facts, so one rule model serves all three languages.

use tree_sitter::{Language as TsLanguage, Node, Parser, Tree};

use super::Language;

/// Strings passed to `eval`/`exec`/`bash -c` are analysed again, at most this deep; deeper
/// nesting is itself a finding (`nesting-limit`), so an attacker cannot hide code by wrapping.
pub(crate) const MAX_NESTING: usize = 3;

/// Expression resolution recurses on nested expressions; past this depth a value is unknown
/// (this bounds stack use on adversarial input such as 100 000 nested parentheses).
pub(crate) const MAX_EXPR_DEPTH: usize = 48;

/// Excerpts are cut to this many characters.
const EXCERPT_CHARS: usize = 120;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FactKind {
    /// A module import (`import os`, `require("fs")`, `__import__("os")`); name is the module.
    Import,
    /// A call of a resolved qualified name (`os.system`, `child_process.exec`, `eval`).
    Call,
    /// A reference to a resolved qualified name that is not called (`os.environ["X"]`).
    Access,
    /// A shell command; name is the command's base name (`rm` for `/bin/rm`).
    Command,
    /// A construct that hides intent from static analysis; name is the construct id.
    Construct,
}

/// One argument of a call or command, as far as it could be resolved statically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Arg {
    /// A constant string (after folding `"o" + "s"`, constant variables, joins).
    Str(String),
    /// A reference to a resolved qualified name (`socket.SOCK_RAW`).
    Name(String),
    Other,
}

#[derive(Debug, Clone)]
pub(crate) struct Fact {
    /// The language of the code the fact was found in (not always the outer snippet's:
    /// `os.system("rm -rf /")` yields a shell fact).
    pub language: Language,
    pub kind: FactKind,
    pub name: String,
    /// Human detail for messages when it differs from `name` (constructs: what was seen).
    pub detail: Option<String>,
    pub args: Vec<Arg>,
    pub keywords: Vec<(String, Arg)>,
    pub place: Place,
    /// Chain of evaluators this fact was found through (`eval`, `bash -c`), outermost first.
    pub via: Vec<String>,
}

/// Where a fact is. Positions and excerpts are computed only for facts that become findings.
#[derive(Debug, Clone)]
pub(crate) enum Place {
    /// A node of the analysed source: byte range, 0-based row and byte column.
    Node {
        start: usize,
        end: usize,
        row: usize,
        col: usize,
    },
    /// Inside an evaluated string: reported at the string's position, with the inner excerpt.
    Fixed {
        line: usize,
        column: usize,
        excerpt: String,
    },
}

impl Place {
    pub(crate) fn of(node: Node) -> Self {
        Place::Node {
            start: node.start_byte(),
            end: node.end_byte(),
            row: node.start_position().row,
            col: node.start_position().column,
        }
    }

    /// 1-based line, 1-based character column and excerpt, against the source `src`.
    pub(crate) fn resolve(&self, src: &str) -> (usize, usize, String) {
        match self {
            Place::Node {
                start,
                end,
                row,
                col,
            } => {
                let line_start = start.saturating_sub(*col);
                let column = src
                    .get(line_start..*start)
                    .map_or(*col, |s| s.chars().count());
                let text = src.get(*start..*end).unwrap_or("");
                (row + 1, column + 1, excerpt(text))
            }
            Place::Fixed {
                line,
                column,
                excerpt,
            } => (*line, *column, excerpt.clone()),
        }
    }
}

/// A statically known value of an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// A qualified name: a module, a module member or a builtin (`os`, `os.system`, `eval`).
    Name(String),
    /// A constant string.
    Const(String),
    Unknown,
}

impl Value {
    pub(crate) fn into_arg(self) -> Arg {
        match self {
            Value::Name(n) => Arg::Name(n),
            Value::Const(s) => Arg::Str(s),
            Value::Unknown => Arg::Other,
        }
    }
}

/// Collects facts for one source text; positions are 1-based lines and character columns.
pub(crate) struct Sink<'s> {
    pub language: Language,
    pub src: &'s str,
    pub depth: usize,
    pub facts: Vec<Fact>,
}

impl<'s> Sink<'s> {
    pub(crate) fn new(language: Language, src: &'s str, depth: usize) -> Self {
        Sink {
            language,
            src,
            depth,
            facts: Vec::new(),
        }
    }

    /// The source text of a node; empty if the range is not on character boundaries.
    pub(crate) fn text(&self, node: Node) -> &'s str {
        self.src.get(node.byte_range()).unwrap_or("")
    }

    /// Record a fact located at `node`.
    pub(crate) fn push(&mut self, kind: FactKind, name: &str, node: Node) -> &mut Fact {
        self.facts.push(Fact {
            language: self.language,
            kind,
            name: name.to_string(),
            detail: None,
            args: Vec::new(),
            keywords: Vec::new(),
            place: Place::of(node),
            via: Vec::new(),
        });
        let last = self.facts.len() - 1;
        &mut self.facts[last]
    }

    /// The first line of a node's text, for messages.
    pub(crate) fn snippet(&self, node: Node) -> String {
        excerpt(self.text(node))
    }

    /// Record a construct (`computed-code`, `parse-error`, ...) with a human detail.
    pub(crate) fn construct(&mut self, id: &str, detail: &str, node: Node) {
        self.push(FactKind::Construct, id, node).detail = Some(detail.to_string());
    }

    /// Analyse `code` (the constant string at `node`, passed to `via`) as `language`, one level
    /// deeper; its facts are reported at the string's position with their own excerpts.
    pub(crate) fn nested(&mut self, language: Language, code: &str, via: &str, node: Node) {
        if self.depth + 1 > MAX_NESTING {
            let detail = format!("code nested deeper than {MAX_NESTING} levels ({via})");
            self.construct("nesting-limit", &detail, node);
            return;
        }
        let (line, column, _) = Place::of(node).resolve(self.src);
        for mut fact in extract(language, code, self.depth + 1) {
            let (_, _, excerpt) = fact.place.resolve(code);
            fact.place = Place::Fixed {
                line,
                column,
                excerpt,
            };
            fact.via.insert(0, via.to_string());
            self.facts.push(fact);
        }
    }
}

/// First line of a node's text, trimmed and cut to [`EXCERPT_CHARS`].
pub(crate) fn excerpt(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() > EXCERPT_CHARS {
        let cut: String = line.chars().take(EXCERPT_CHARS).collect();
        format!("{cut}…")
    } else {
        line.to_string()
    }
}

fn grammar(language: Language) -> TsLanguage {
    match language {
        Language::Python => tree_sitter_python::LANGUAGE.into(),
        Language::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
        Language::Shell => tree_sitter_bash::LANGUAGE.into(),
    }
}

thread_local! {
    /// One parser per language and thread: creating a parser costs more than parsing a snippet.
    static PARSERS: std::cell::RefCell<[Option<Parser>; 3]> = const {
        std::cell::RefCell::new([None, None, None])
    };
}

/// Parse `code`; `None` only if the grammar cannot be loaded (an ABI mismatch at build time).
pub(crate) fn parse(language: Language, code: &str) -> Option<Tree> {
    let slot = language as usize;
    PARSERS.with(|cell| {
        // A nested analysis (eval of a string) parses while an outer tree is alive; trees do not
        // borrow the parser, so re-borrowing the cell here is fine, but be defensive anyway.
        let mut parsers = cell.try_borrow_mut().ok()?;
        if parsers[slot].is_none() {
            let mut parser = Parser::new();
            parser.set_language(&grammar(language)).ok()?;
            parsers[slot] = Some(parser);
        }
        parsers[slot].as_mut()?.parse(code, None)
    })
}

/// Number of error and missing nodes (0 for a clean parse); used to guess a language.
pub(crate) fn error_count(tree: &Tree) -> usize {
    if !tree.root_node().has_error() {
        return 0;
    }
    let mut count = 0;
    preorder(tree.root_node(), |node| {
        if node.is_error() || node.is_missing() {
            count += 1;
        }
        node.has_error()
    });
    count
}

/// Visit every node in source order without recursion (deeply nested input cannot overflow the
/// stack); `visit` returns whether to descend into the node's children.
pub(crate) fn preorder<'t>(root: Node<'t>, mut visit: impl FnMut(Node<'t>) -> bool) {
    walk_tree(root, |node, _| visit(node));
}

/// Where a node sits: its parent and the parent's field holding it (`Node::parent` walks down
/// from the root on every call, so walkers get this from the cursor instead).
#[derive(Clone, Copy)]
pub(crate) struct Slot<'t> {
    pub parent: Option<Node<'t>>,
    pub field: Option<&'static str>,
}

impl Slot<'_> {
    /// Whether the node is `parent.field` with a parent of one of `kinds`.
    pub(crate) fn is(&self, kinds: &[&str], field: &str) -> bool {
        self.field == Some(field) && self.parent.is_some_and(|p| kinds.contains(&p.kind()))
    }
}

/// [`preorder`] that also tells `visit` each node's [`Slot`].
pub(crate) fn walk_tree<'t>(root: Node<'t>, mut visit: impl FnMut(Node<'t>, Slot<'t>) -> bool) {
    let mut cursor = root.walk();
    let mut parents: Vec<Node<'t>> = Vec::new();
    loop {
        let node = cursor.node();
        let slot = Slot {
            parent: parents.last().copied(),
            field: cursor.field_name(),
        };
        if visit(node, slot) && cursor.goto_first_child() {
            parents.push(node);
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return;
            }
            parents.pop();
        }
    }
}

/// Parse and walk `code`, returning its facts (including a `parse-error` construct when the
/// grammar had to recover, and `analyzer-error` if the grammar could not be loaded).
pub(crate) fn extract(language: Language, code: &str, depth: usize) -> Vec<Fact> {
    let mut sink = Sink::new(language, code, depth);
    let Some(tree) = parse(language, code) else {
        sink.facts.push(Fact {
            language,
            kind: FactKind::Construct,
            name: "parse-error".into(),
            detail: Some(format!(
                "the {} grammar could not be loaded",
                language.name()
            )),
            args: Vec::new(),
            keywords: Vec::new(),
            place: Place::Fixed {
                line: 1,
                column: 1,
                excerpt: excerpt(code),
            },
            via: Vec::new(),
        });
        return sink.facts;
    };
    let root = tree.root_node();
    if root.has_error() {
        report_first_error(&mut sink, root, language);
    }
    match language {
        Language::Python => super::python::walk(root, &mut sink),
        Language::JavaScript => super::javascript::walk(root, &mut sink),
        Language::Shell => super::shell::walk(root, &mut sink),
    }
    sink.facts
}

fn report_first_error(sink: &mut Sink, root: Node, language: Language) {
    let mut first = None;
    preorder(root, |node| {
        if first.is_some() {
            return false;
        }
        if node.is_error() || node.is_missing() {
            first = Some(node);
            return false;
        }
        node.has_error()
    });
    let node = first.unwrap_or(root);
    let what = if node.is_missing() {
        format!("missing `{}`", node.kind())
    } else {
        "unexpected input".to_string()
    };
    let detail = format!("{} does not parse ({what})", language.name());
    sink.construct("parse-error", &detail, node);
}

/// Canonical form of a dotted name: builtins are reached as plain names whether written
/// `eval`, `builtins.eval` or `__builtins__.eval`; `globalThis.eval` likewise in JavaScript.
pub(crate) fn canonical(name: &str, global_prefixes: &[&str]) -> String {
    let mut name = name;
    loop {
        let stripped = global_prefixes
            .iter()
            .find_map(|p| name.strip_prefix(p).and_then(|rest| rest.strip_prefix('.')));
        match stripped {
            Some(rest) if !rest.is_empty() => name = rest,
            _ => return name.to_string(),
        }
    }
}

/// The named children of `node` with field `field`, in order.
pub(crate) fn children_by_field<'t>(node: Node<'t>, field: &str) -> Vec<Node<'t>> {
    let mut cursor = node.walk();
    node.children_by_field_name(field, &mut cursor).collect()
}

/// The named children of `node`, skipping comments.
pub(crate) fn named_children(node: Node) -> Vec<Node> {
    let mut cursor = node.walk();
    node.named_children(&mut cursor)
        .filter(|n| n.kind() != "comment")
        .collect()
}
