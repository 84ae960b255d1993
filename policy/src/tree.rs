//! tree-sitter-bash front end: one iterative walk that records every command
//! at any depth (for the forbidden scan), every redirect, and every piece of
//! syntax outside the auto grammar.

use std::cell::RefCell;
use std::ops::ControlFlow;

use tree_sitter::{Node, ParseOptions, Parser};

use crate::Redirect;
use crate::lex::decode_word;

/// Deepest syntax tree walked; deeper input cannot be verified.
pub(crate) const MAX_DEPTH: usize = 256;
/// Parse budget, in units of work: tree-sitter calls the progress callback
/// after a fixed number of parser operations, so counting the calls counts
/// work, not time. The controller and the agent run the same crate on the
/// same text and therefore stop (or not) at exactly the same point, however
/// loaded either host is. The worst 4 KiB inputs found need a few hundred.
pub(crate) const PARSE_WORK_BUDGET: usize = 50_000;
/// Most syntax nodes walked per parse; more cannot be verified.
pub(crate) const MAX_NODES: usize = 200_000;

/// A word as written: literal after quote removal, or dynamic (raw text).
#[derive(Debug, Clone)]
pub(crate) enum Word {
    Lit(String),
    Dyn(String),
}

impl Word {
    pub(crate) fn lit(&self) -> Option<&str> {
        match self {
            Word::Lit(s) => Some(s),
            Word::Dyn(_) => None,
        }
    }
}

/// One simple command anywhere in the tree.
#[derive(Debug, Clone)]
pub(crate) struct Cmd {
    pub start: usize,
    pub end: usize,
    /// Name first. Empty when the command is only assignments/redirects.
    pub words: Vec<Word>,
    /// Prefix assignments as written (`NAME=value`).
    pub assignments: Vec<String>,
    /// Index of the enclosing pipeline node and position in it.
    pub pipeline: Option<(usize, usize)>,
}

/// One file redirect anywhere in the tree.
#[derive(Debug, Clone)]
pub(crate) struct Redir {
    pub start: usize,
    pub fd: Option<String>,
    pub op: String,
    pub target: Word,
}

impl Redir {
    /// The auto-grammar form of this redirect, if it is one.
    pub(crate) fn harmless(&self) -> Option<Redirect> {
        let fd = self.fd.as_deref();
        match (fd, self.op.as_str(), self.target.lit()) {
            (Some("2"), ">&", Some("1")) => Some(Redirect::StderrToStdout),
            (None | Some("1"), ">", Some("/dev/null")) => Some(Redirect::StdoutToNull),
            (Some("2"), ">", Some("/dev/null")) => Some(Redirect::StderrToNull),
            (None | Some("0"), "<", Some(t)) => Some(Redirect::StdinFromFile(t.to_string())),
            _ => None,
        }
    }

    /// True when the redirect may write the target file.
    pub(crate) fn writes(&self) -> bool {
        matches!(self.op.as_str(), ">" | ">>" | ">|" | "&>" | "&>>" | "<>")
            || (self.op == ">&"
                && !matches!(self.target.lit(), Some(t) if t.chars().all(|c| c.is_ascii_digit() || c == '-')))
    }
}

/// Everything the walk learned.
#[derive(Debug, Default)]
pub(crate) struct Syntax {
    /// ERROR/MISSING nodes, a parse timeout, or no tree.
    pub error: Option<String>,
    /// The tree was deeper than [`MAX_DEPTH`].
    pub too_deep: bool,
    /// Syntax outside the auto grammar, in source order, deduplicated.
    pub features: Vec<String>,
    pub commands: Vec<Cmd>,
    pub redirects: Vec<Redir>,
    /// Text that may be shell code: here-doc bodies, here-strings, alias values.
    pub nested: Vec<String>,
    /// Function definitions: name and byte span of the body.
    pub functions: Vec<(String, usize, usize)>,
    /// Spans of process/command substitutions (for "download into a shell").
    pub substitutions: Vec<(usize, usize)>,
    /// Every variable assignment anywhere (`NAME=value`, `export NAME=value`).
    pub assignments: Vec<String>,
}

impl Syntax {
    fn feature(&mut self, f: &str) {
        if !self.features.iter().any(|x| x == f) {
            self.features.push(f.to_string());
        }
    }
}

thread_local! {
    // Parsers are reused per thread: creating one per command would dominate
    // classification time.
    static PARSER: RefCell<Option<Parser>> = const { RefCell::new(None) };
}

/// Parses and walks `text`.
pub(crate) fn parse(text: &str) -> Syntax {
    parse_within(text, PARSE_WORK_BUDGET)
}

/// Parses and walks `text`, giving up after `budget` units of work.
pub(crate) fn parse_within(text: &str, budget: usize) -> Syntax {
    parse_counting(text, budget).0
}

/// Like [`parse_within`], also returning the work the parse took.
pub(crate) fn parse_counting(text: &str, budget: usize) -> (Syntax, usize) {
    let mut work = 0usize;
    let mut syn = Syntax::default();
    let tree = PARSER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let parser = slot.get_or_insert_with(|| {
            let mut p = Parser::new();
            p.set_language(&tree_sitter_bash::LANGUAGE.into())
                .expect("tree-sitter-bash matches the tree-sitter ABI");
            p
        });
        let mut progress = |_: &tree_sitter::ParseState| {
            work += 1;
            if work > budget {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        // tree-sitter-bash's external scanner calls `isdigit`/`isalpha` on the
        // lookahead code point, which is undefined (and crashed, SIGSEGV) for
        // code points above 255, e.g. `{` followed by an emoji. Bash treats
        // every non-ASCII byte as an ordinary word character, so parse an
        // ASCII copy with each such byte replaced by `x`: node byte offsets
        // stay valid for the original text, which is what words are read from.
        let ascii: Vec<u8> = text
            .bytes()
            .map(|b| if b.is_ascii() { b } else { b'x' })
            .collect();
        let bytes = ascii.as_slice();
        let len = bytes.len();
        let tree = parser.parse_with_options(
            &mut |i, _| if i < len { &bytes[i..] } else { &[][..] },
            None,
            Some(ParseOptions::new().progress_callback(&mut progress)),
        );
        if tree.is_some() {
            parser.reset();
        } else {
            // A parse stopped by the budget leaves the parser mid-parse; start
            // the next one from a fresh parser rather than rely on `reset`.
            *slot = None;
        }
        tree
    });
    let Some(tree) = tree else {
        syn.error = Some(format!(
            "parse needs more than its work budget ({budget} units)"
        ));
        return (syn, work);
    };
    walk(tree.root_node(), text, &mut syn);
    (syn, work)
}

fn text_of<'a>(n: Node, src: &'a str) -> &'a str {
    src.get(n.start_byte()..n.end_byte()).unwrap_or("")
}

fn word_of(n: Node, src: &str) -> Word {
    let t = text_of(n, src);
    match decode_word(t) {
        Some(w) => Word::Lit(w),
        None => Word::Dyn(t.to_string()),
    }
}

/// Node kinds that are part of the auto grammar.
const PLAIN: &[&str] = &[
    "program",
    "list",
    "pipeline",
    "command",
    "command_name",
    "word",
    "string",
    "string_content",
    "raw_string",
    "concatenation",
    "number",
    "redirected_statement",
    "file_redirect",
    "file_descriptor",
];
/// Anonymous tokens of the auto grammar.
const PLAIN_TOKENS: &[&str] = &["|", "&&", "||", ";", "\n", ">", "<", ">&", "\"", ""];

/// Enclosing pipeline node and the command's position in it.
type PipeSlot = Option<(usize, usize)>;

fn walk(root: Node, src: &str, syn: &mut Syntax) {
    let mut pipeline_count = 0usize;
    // (node, depth, enclosing pipeline and index)
    let mut stack: Vec<(Node, usize, PipeSlot)> = vec![(root, 0, None)];
    let mut nodes = 0usize;
    while let Some((node, depth, pipe)) = stack.pop() {
        nodes += 1;
        if nodes > MAX_NODES {
            syn.too_deep = true;
            break;
        }
        if depth > MAX_DEPTH {
            syn.too_deep = true;
            continue;
        }
        if node.is_error() || node.is_missing() {
            syn.error
                .get_or_insert_with(|| format!("syntax error near byte {}", node.start_byte()));
        }
        let kind = node.kind();
        // `[ ARGS ]` is the program `[` with literal words: recorded as a
        // command when the word lexer reads it as exactly one.
        if kind == "test_command"
            && let Some(cmd) = bracket_test(node, src, pipe)
        {
            syn.commands.push(cmd);
            continue;
        }
        if node.is_named() {
            if !PLAIN.contains(&kind) && !node.is_error() {
                syn.feature(kind);
            }
        } else if !PLAIN_TOKENS.contains(&kind) {
            syn.feature(&format!("operator {kind}"));
        }
        match kind {
            "command" => {
                let mut cmd = Cmd {
                    start: node.start_byte(),
                    end: node.end_byte(),
                    words: Vec::new(),
                    assignments: Vec::new(),
                    pipeline: pipe,
                };
                // A cursor steps to the next child in O(1); `child(i)` is O(i),
                // quadratic on error nodes with thousands of children.
                let mut cursor = node.walk();
                for c in node.children(&mut cursor) {
                    match c.kind() {
                        "command_name" => cmd.words.push(word_of(c, src)),
                        "variable_assignment" => {
                            cmd.assignments.push(text_of(c, src).to_string());
                        }
                        "file_redirect" | "herestring_redirect" | "heredoc_redirect" => {}
                        _ if c.is_named() && !cmd.words.is_empty() => {
                            cmd.words.push(word_of(c, src));
                        }
                        _ => {}
                    }
                }
                syn.commands.push(cmd);
            }
            "file_redirect" => {
                let mut fd = None;
                let mut op = String::new();
                let mut target = Word::Dyn(String::new());
                // A cursor steps to the next child in O(1); `child(i)` is O(i),
                // quadratic on error nodes with thousands of children.
                let mut cursor = node.walk();
                for c in node.children(&mut cursor) {
                    if c.kind() == "file_descriptor" {
                        fd = Some(text_of(c, src).to_string());
                    } else if !c.is_named() && op.is_empty() {
                        op = c.kind().to_string();
                    } else if c.is_named() {
                        target = word_of(c, src);
                    }
                }
                syn.redirects.push(Redir {
                    start: node.start_byte(),
                    fd,
                    op,
                    target,
                });
            }
            "heredoc_body" | "herestring_redirect" => {
                let t = text_of(node, src);
                let t = t.strip_prefix("<<<").unwrap_or(t);
                // Quote removal where possible so `bash <<< 'rm -rf /'` is seen.
                let t = decode_word(t.trim()).unwrap_or_else(|| t.to_string());
                syn.nested.push(t);
            }
            "variable_assignment" => syn.assignments.push(text_of(node, src).to_string()),
            "function_definition" => {
                if let (Some(name), Some(body)) = (
                    node.child_by_field_name("name"),
                    node.child_by_field_name("body"),
                ) {
                    syn.functions.push((
                        text_of(name, src).to_string(),
                        body.start_byte(),
                        body.end_byte(),
                    ));
                }
            }
            "command_substitution" | "process_substitution" => {
                syn.substitutions.push((node.start_byte(), node.end_byte()));
            }
            _ => {}
        }
        // Children in reverse so they pop in source order.
        let n = node.child_count() as u32;
        let this_pipe = if kind == "pipeline" {
            pipeline_count += 1;
            Some(pipeline_count - 1)
        } else {
            None
        };
        let mut idx = 0usize;
        let mut kids = Vec::with_capacity(n as usize);
        let mut cursor = node.walk();
        for c in node.children(&mut cursor) {
            let p = match this_pipe {
                Some(p) if c.is_named() => {
                    idx += 1;
                    Some((p, idx - 1))
                }
                Some(_) => None,
                // Inside a redirected_statement the command keeps its pipeline slot.
                None if kind == "redirected_statement" => pipe,
                None => None,
            };
            kids.push((c, depth + 1, p));
        }
        stack.extend(kids.into_iter().rev());
    }
}

/// `[ WORD... ]` as a command, when every word is literal.
fn bracket_test(node: Node, src: &str, pipe: PipeSlot) -> Option<Cmd> {
    let text = text_of(node, src);
    if !text.starts_with("[ ") || text.starts_with("[[") {
        return None;
    }
    let pipes = crate::lex::plan(text).ok()?;
    let [p] = pipes.as_slice() else { return None };
    let [stage] = p.stages.as_slice() else {
        return None;
    };
    if !stage.redirects.is_empty() || stage.argv.last().map(String::as_str) != Some("]") {
        return None;
    }
    Some(Cmd {
        start: node.start_byte(),
        end: node.end_byte(),
        words: stage.argv.iter().cloned().map(Word::Lit).collect(),
        assignments: Vec::new(),
        pipeline: pipe,
    })
}

/// A syntax record of an already-lexed plan, for the forbidden scan.
pub(crate) fn from_plan(pipes: &[crate::Pipeline]) -> Syntax {
    let mut syn = Syntax::default();
    let mut pos = 0usize;
    for (pi, p) in pipes.iter().enumerate() {
        for (si, s) in p.stages.iter().enumerate() {
            syn.commands.push(Cmd {
                start: pos,
                end: pos + 1,
                words: s.argv.iter().cloned().map(Word::Lit).collect(),
                assignments: Vec::new(),
                pipeline: Some((pi, si)),
            });
            pos += 1;
        }
    }
    syn
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    /// Regression: `{` followed by a code point above 255 crashed the bash
    /// scanner (SIGSEGV in `isdigit`), taking the whole process down.
    #[test]
    fn non_ascii_after_a_brace_does_not_crash_the_scanner() {
        for c in ['\u{e9}', '\u{263a}', '\u{1f600}', '\u{10ffff}', '\u{4e2d}'] {
            for shape in [
                "echo {C",
                "echo {1C",
                "ls {C..2}",
                "x={C",
                "{C; }",
                "echo ${C}",
            ] {
                let cmd = shape.replace('C', &c.to_string());
                let _ = parse(&cmd);
                let _ = crate::Policy::builtin().classify(&cmd);
            }
        }
        // Non-ASCII arguments still decode from the original text.
        let d = crate::Policy::builtin().classify("grep caf\u{e9} /etc/hosts");
        assert_eq!(d.plan.pipelines[0].stages[0].argv[1], "caf\u{e9}");
    }

    /// The work the worst inputs take is far below the budget, and the same
    /// input always takes the same work.
    #[test]
    fn parse_work_is_deterministic_and_within_budget() {
        let inputs = [
            format!("{}ls{}", "$(".repeat(1000), ")".repeat(1000)),
            "(".repeat(4000),
            "\"'".repeat(2000),
            "ls && ".repeat(600) + "ls",
            "{".repeat(4000),
            "a=(".repeat(1300),
            "echo \"$((".repeat(400),
            "x<<E\n".repeat(500),
        ];
        for input in &inputs {
            let (_, work) = parse_counting(input, usize::MAX);
            assert!(
                work * 10 < PARSE_WORK_BUDGET,
                "{work} units for {:?}",
                &input[..20]
            );
            for _ in 0..3 {
                assert_eq!(parse_counting(input, usize::MAX).1, work);
            }
            // Just below its work the parse stops, at or above it finishes.
            if work > 0 {
                assert!(
                    parse_within(input, work - 1)
                        .error
                        .is_some_and(|e| e.contains("work budget"))
                );
            }
            assert!(
                !parse_within(input, work)
                    .error
                    .is_some_and(|e| e.contains("work budget"))
            );
        }
    }

    /// Budget-stopped parses followed by normal ones stay correct.
    #[test]
    fn a_parse_stopped_by_the_budget_does_not_poison_the_next_ones() {
        let inputs = [
            format!("{}ls{}", "$(".repeat(1000), ")".repeat(1000)),
            "(".repeat(4000),
            "\"'".repeat(2000),
            "ls && ".repeat(600) + "ls",
        ];
        // Stop parses at many different points, and parse normally after each.
        for micros in (0..3000).step_by(50) {
            for input in &inputs {
                let _ = parse_within(input, micros / 10);
                let ok = parse("ps aux | grep nginx");
                assert!(ok.error.is_none(), "{:?}", ok.error);
            }
        }
    }
}
