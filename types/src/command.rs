//! Command text as the assistant wrote it, checked once for size, emptiness
//! and control or invisible characters.

use serde::{Deserialize, Serialize};

/// Longest command text accepted, in bytes.
pub const MAX_COMMAND_BYTES: usize = 4096;

/// Input hygiene shared by every entry point: `Some(reason)` means malformed.
pub fn hygiene(command: &str) -> Option<String> {
    if command.len() > MAX_COMMAND_BYTES {
        return Some(format!(
            "malformed: command is {} bytes, more than {MAX_COMMAND_BYTES}",
            command.len()
        ));
    }
    if command.trim().is_empty() {
        return Some("malformed: empty command".into());
    }
    for (i, c) in command.char_indices() {
        let bad = match c {
            '\n' | '\t' => false,
            c if c.is_control() => true,
            // Unicode format, invisible and bidi characters, and non-ASCII spaces.
            '\u{00A0}'
            | '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180E}'
            | '\u{2000}'..='\u{200F}'
            | '\u{2028}'..='\u{202F}'
            | '\u{205F}'..='\u{206F}'
            | '\u{3000}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}' => true,
            _ => false,
        };
        if bad {
            return Some(format!(
                "malformed: control or invisible character U+{:04X} at byte {i}",
                c as u32
            ));
        }
    }
    None
}

/// A command that passed [`hygiene`]: at most [`MAX_COMMAND_BYTES`], not
/// blank, no control (other than tab and newline) or invisible characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommandText(String);

impl CommandText {
    /// Checks `text`; the error is the hygiene reason (`malformed: ...`).
    pub fn new(text: impl Into<String>) -> Result<CommandText, String> {
        let text = text.into();
        match hygiene(&text) {
            Some(why) => Err(why),
            None => Ok(CommandText(text)),
        }
    }

    /// The exact text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CommandText {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        CommandText::new(s)
    }
}

impl From<CommandText> for String {
    fn from(c: CommandText) -> String {
        c.0
    }
}

impl std::ops::Deref for CommandText {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CommandText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_text_refuses_what_hygiene_refuses() {
        assert!(CommandText::new("ls -la /tmp").is_ok());
        assert!(
            CommandText::new("echo a\u{202E}b")
                .unwrap_err()
                .contains("U+202E")
        );
        assert!(CommandText::new("  ").is_err());
        assert!(CommandText::new("x".repeat(MAX_COMMAND_BYTES + 1)).is_err());
        assert!(serde_json::from_str::<CommandText>("\"a\\u0007b\"").is_err());
    }
}
