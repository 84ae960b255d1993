//! Interim word splitter: plain words, single and double quotes, backslash.
//! Any other shell syntax is an error (the command is then not auto-allowed).

/// Splits `text` into argv with bash quote removal, or says which syntax it met.
pub fn split(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => cur.push(c),
                            Some(c @ ('$' | '`')) => return Err(format!("escaped {c} in quotes")),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c @ ('$' | '`' | '!')) => {
                            return Err(format!("{c} inside double quotes"));
                        }
                        Some(c) => cur.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') | None => return Err("line continuation".into()),
                Some(c) => {
                    in_word = true;
                    cur.push(c);
                }
            },
            c if c.is_ascii_alphanumeric() || "-_./:=,+@%^".contains(c) => {
                in_word = true;
                cur.push(c);
            }
            c if !c.is_ascii() => {
                in_word = true;
                cur.push(c);
            }
            c => return Err(format!("shell syntax {c:?}")),
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn quote_removal() {
        assert_eq!(
            split("a 'b c' \"d e\" f\\ g").unwrap(),
            ["a", "b c", "d e", "f g"]
        );
        assert_eq!(split("r''m").unwrap(), ["rm"]);
        assert!(split("a; b").is_err());
        assert!(split("a $(b)").is_err());
        assert!(split("a \"$x\"").is_err());
        assert!(split("a > f").is_err());
        assert!(split("a *").is_err());
        assert!(split("~").is_err());
    }
}
