//! A second, independent reader of the auto grammar.
//!
//! A linear scanner (no tree, no recursion) that understands only plain
//! words, quotes, backslashes, `| && || ;` and newlines, and the few harmless
//! redirects. The plan it builds must equal the one derived from the
//! tree-sitter tree before anything is auto-allowed: two readers written
//! differently must agree on what bash would run.

use crate::{Connector, Pipeline, Redirect, Stage};

/// Splits `text` into pipelines of literal argv stages, or says which syntax
/// took it outside the auto grammar.
pub(crate) fn plan(text: &str) -> Result<Vec<Pipeline>, String> {
    let mut lx = Lexer {
        chars: text.chars().collect(),
        pos: 0,
    };
    let mut pipelines: Vec<Pipeline> = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut cur = Stage {
        argv: Vec::new(),
        privileged: false,
        redirects: Vec::new(),
    };
    let mut connector = Connector::Seq;
    loop {
        match lx.next_token()? {
            Tok::Word(w) => cur.argv.push(w),
            Tok::Redir(r) => cur.redirects.push(r),
            Tok::Pipe => {
                if cur.argv.is_empty() {
                    return Err("empty pipeline stage".into());
                }
                stages.push(std::mem::replace(&mut cur, empty_stage()));
            }
            tok @ (Tok::And | Tok::Or | Tok::Semi | Tok::Newline | Tok::End) => {
                if cur.argv.is_empty() {
                    if !cur.redirects.is_empty() || !stages.is_empty() {
                        return Err("redirect or pipe without a command".into());
                    }
                    // `;` or newline after nothing, or at the end: allowed only
                    // where bash allows it (a newline anywhere, `;` after a command).
                    match tok {
                        Tok::Newline => continue,
                        Tok::End if matches!(connector, Connector::Seq) => break,
                        Tok::Semi if !pipelines.is_empty() && lx.after_semi_ok() => {
                            continue;
                        }
                        _ => return Err("operator without a command".into()),
                    }
                }
                stages.push(std::mem::replace(&mut cur, empty_stage()));
                pipelines.push(Pipeline {
                    connector,
                    stages: std::mem::take(&mut stages),
                });
                connector = match tok {
                    Tok::And => Connector::And,
                    Tok::Or => Connector::Or,
                    Tok::End => break,
                    _ => Connector::Seq,
                };
                if matches!(tok, Tok::And | Tok::Or) {
                    // bash allows newlines after && and ||.
                    lx.skip_blank_lines();
                }
            }
        }
    }
    if pipelines.is_empty() {
        return Err("empty command".into());
    }
    Ok(pipelines)
}

fn empty_stage() -> Stage {
    Stage {
        argv: Vec::new(),
        privileged: false,
        redirects: Vec::new(),
    }
}

enum Tok {
    Word(String),
    Redir(Redirect),
    Pipe,
    And,
    Or,
    Semi,
    Newline,
    End,
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
}

impl Lexer {
    fn peek(&self, off: usize) -> Option<char> {
        self.chars.get(self.pos + off).copied()
    }

    fn skip_blanks(&mut self) {
        loop {
            match (self.peek(0), self.peek(1)) {
                (Some(' ' | '\t'), _) => self.pos += 1,
                // A line continuation between words is just a separator.
                (Some('\\'), Some('\n')) => self.pos += 2,
                _ => break,
            }
        }
    }

    fn skip_blank_lines(&mut self) {
        loop {
            self.skip_blanks();
            if self.peek(0) == Some('\n') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// After a `;` with nothing before it in this pipeline, bash accepts only
    /// the end of input or a newline (`a;;` and `a; ;` are errors).
    fn after_semi_ok(&self) -> bool {
        false
    }

    fn next_token(&mut self) -> Result<Tok, String> {
        self.skip_blanks();
        let Some(c) = self.peek(0) else {
            return Ok(Tok::End);
        };
        match c {
            '\n' => {
                self.pos += 1;
                Ok(Tok::Newline)
            }
            '|' => match self.peek(1) {
                Some('|') => {
                    self.pos += 2;
                    self.skip_blank_lines();
                    Ok(Tok::Or)
                }
                Some('&') => Err("|& is not in the auto grammar".into()),
                _ => {
                    self.pos += 1;
                    // bash allows newlines after a pipe.
                    self.skip_blank_lines();
                    Ok(Tok::Pipe)
                }
            },
            '&' => match self.peek(1) {
                Some('&') => {
                    self.pos += 2;
                    Ok(Tok::And)
                }
                _ => Err("background or &> redirect is not in the auto grammar".into()),
            },
            ';' => {
                if self.peek(1) == Some(';') || self.peek(1) == Some('&') {
                    return Err(";; is not in the auto grammar".into());
                }
                self.pos += 1;
                Ok(Tok::Semi)
            }
            '>' | '<' => self.redirect(None),
            '#' => Err("comments are not in the auto grammar".into()),
            _ => self.word(),
        }
    }

    fn redirect(&mut self, fd: Option<char>) -> Result<Tok, String> {
        let op = self.peek(0).expect("caller checked");
        self.pos += 1;
        let fd = fd.unwrap_or(if op == '>' { '1' } else { '0' });
        if op == '>' && self.peek(0) == Some('&') {
            // Only `2>&1` exactly, followed by a delimiter.
            if fd == '2' && self.peek(1) == Some('1') && is_delim(self.peek(2)) {
                self.pos += 2;
                return Ok(Tok::Redir(Redirect::StderrToStdout));
            }
            return Err("fd duplication other than 2>&1".into());
        }
        if matches!(self.peek(0), Some('>' | '<' | '|' | '&' | '(')) {
            return Err("redirect operator outside the auto grammar".into());
        }
        self.skip_blanks();
        let Tok::Word(target) = self.word()? else {
            return Err("redirect without a target".into());
        };
        match (op, fd, target.as_str()) {
            ('>', '1', "/dev/null") => Ok(Tok::Redir(Redirect::StdoutToNull)),
            ('>', '2', "/dev/null") => Ok(Tok::Redir(Redirect::StderrToNull)),
            ('<', '0', t) if !t.is_empty() => Ok(Tok::Redir(Redirect::StdinFromFile(target))),
            _ => Err("redirect writes a file".into()),
        }
    }

    /// One word with bash quote removal; anything that expands is an error.
    fn word(&mut self) -> Result<Tok, String> {
        let mut out = String::new();
        let mut raw_digits = String::new();
        let mut quoted = false;
        let mut first = true;
        let mut any = false;
        while let Some(c) = self.peek(0) {
            match c {
                ' ' | '\t' | '\n' | '|' | '&' | ';' => break,
                '>' | '<' => {
                    // `2>`: a word of one digit directly before the operator is a fd.
                    if any && !quoted && raw_digits.len() == out.len() {
                        if matches!(out.as_str(), "0" | "1" | "2") {
                            let fd = out.chars().next();
                            return self.redirect(fd);
                        }
                        if !out.is_empty() {
                            return Err("unusual file descriptor".into());
                        }
                    }
                    break;
                }
                '\'' => {
                    self.pos += 1;
                    quoted = true;
                    loop {
                        match self.peek(0) {
                            Some('\'') => break,
                            Some(c) => {
                                out.push(c);
                                self.pos += 1;
                            }
                            None => return Err("unterminated single quote".into()),
                        }
                    }
                    self.pos += 1;
                }
                '"' => {
                    self.pos += 1;
                    quoted = true;
                    loop {
                        match self.peek(0) {
                            Some('"') => break,
                            Some('\\') => {
                                match self.peek(1) {
                                    Some('\n') => {}
                                    Some(c @ ('"' | '\\')) => out.push(c),
                                    Some('$' | '`') => {
                                        return Err("escaped $ or ` in double quotes".into());
                                    }
                                    Some(c) => {
                                        out.push('\\');
                                        out.push(c);
                                    }
                                    None => return Err("unterminated double quote".into()),
                                }
                                self.pos += 2;
                                continue;
                            }
                            Some('$' | '`') => {
                                return Err("expansion inside double quotes".into());
                            }
                            Some(c) => {
                                out.push(c);
                                self.pos += 1;
                            }
                            None => return Err("unterminated double quote".into()),
                        }
                    }
                    self.pos += 1;
                }
                '\\' => match self.peek(1) {
                    Some('\n') => self.pos += 2,
                    Some(c) => {
                        quoted = true;
                        out.push(c);
                        self.pos += 2;
                    }
                    None => return Err("trailing backslash".into()),
                },
                // A lone `[` or `]` (the test command and its end) is literal.
                '[' | ']' if first && is_delim(self.peek(1)) => {
                    out.push(c);
                    self.pos += 1;
                }
                '$' | '`' | '(' | ')' | '{' | '}' | '*' | '?' | '[' | ']' | '~' => {
                    return Err(format!("{c} is not in the auto grammar"));
                }
                '#' if first => return Err("comments are not in the auto grammar".into()),
                c if c.is_ascii_alphanumeric() || "-_./:=,+@%^!#".contains(c) || !c.is_ascii() => {
                    if c.is_ascii_digit() {
                        raw_digits.push(c);
                    }
                    out.push(c);
                    self.pos += 1;
                }
                c => return Err(format!("{c:?} is not in the auto grammar")),
            }
            first = false;
            any = true;
        }
        if !any {
            return Err("expected a word".into());
        }
        Ok(Tok::Word(out))
    }
}

/// Decodes one word's source text (as delimited by the tree) with bash quote
/// removal; `None` when it is not a single literal word.
pub(crate) fn decode_word(text: &str) -> Option<String> {
    let mut lx = Lexer {
        chars: text.chars().collect(),
        pos: 0,
    };
    match lx.word() {
        Ok(Tok::Word(w)) if lx.pos == lx.chars.len() => Some(w),
        _ => None,
    }
}

fn is_delim(c: Option<char>) -> bool {
    matches!(c, None | Some(' ' | '\t' | '\n' | '|' | '&' | ';'))
}

#[cfg(test)]
mod tests {
    use super::plan;

    fn argvs(t: &str) -> Vec<Vec<String>> {
        plan(t)
            .unwrap()
            .into_iter()
            .flat_map(|p| p.stages.into_iter().map(|s| s.argv))
            .collect()
    }

    #[test]
    fn quote_removal() {
        assert_eq!(
            argvs("a 'b c' \"d e\" f\\ g"),
            [vec!["a", "b c", "d e", "f g"]]
        );
        assert_eq!(argvs("r''m"), [vec!["rm"]]);
        assert_eq!(
            argvs("a | b && c; d\ne"),
            [vec!["a"], vec!["b"], vec!["c"], vec!["d"], vec!["e"]]
        );
        assert_eq!(argvs("a \\\n b"), [vec!["a", "b"]]);
        assert_eq!(argvs("a\\\nb"), [vec!["ab"]]);
        assert!(plan("a $(b)").is_err());
        assert!(plan("a \"$x\"").is_err());
        assert!(plan("a > f").is_err());
        assert!(plan("a *").is_err());
        assert!(plan("~").is_err());
        assert!(plan("a;;").is_err());
        assert!(plan("a &").is_err());
        assert!(plan("a 12>/dev/null").is_err());
        assert!(plan("a # c").is_err());
        assert_eq!(argvs("a b#c"), [vec!["a", "b#c"]]);
        let p = plan("ls 2>/dev/null >/dev/null 2>&1 </etc/hosts").unwrap();
        assert_eq!(p[0].stages[0].redirects.len(), 4);
        assert_eq!(argvs("ls a2>/dev/null"), [vec!["ls", "a2"]]);
    }
}
