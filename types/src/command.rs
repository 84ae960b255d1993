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
            c => c.is_control() || invisible(c),
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

/// Hygiene of a one-line free-text field shown to a human (`reason`,
/// `requester`, ...): `Some(reason)` when it holds a control character
/// (newlines and tabs included) or a format, invisible, bidi or line
/// separator character that could make what the approver reads differ
/// from what is stored.
pub fn text_hygiene(field: &str, value: &str) -> Option<String> {
    value.char_indices().find_map(|(i, c)| {
        (c.is_control() || invisible(c)).then(|| {
            format!(
                "{field} contains a control or invisible character U+{:04X} at byte {i}",
                c as u32
            )
        })
    })
}

/// Unicode format (general category Cf), invisible (default-ignorable)
/// and bidi characters, line and paragraph separators, and non-ASCII
/// spaces and blanks. Tag characters (U+E0000 block) spell hidden ASCII
/// text that a model reads and a human does not see; variation selectors
/// change nothing visible yet make the bytes differ.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00A0}'
            | '\u{00AD}'
            | '\u{034F}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{2000}'..='\u{200F}'
            | '\u{2028}'..='\u{202F}'
            | '\u{205F}'..='\u{206F}'
            | '\u{2800}'
            | '\u{3000}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
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

    #[test]
    fn every_format_character_and_every_tag_is_invisible_here() {
        use unicode_general_category::{GeneralCategory, get_general_category};
        let missed: Vec<String> = (0..=0x10FFFFu32)
            .filter_map(char::from_u32)
            .filter(|c| get_general_category(*c) == GeneralCategory::Format && !invisible(*c))
            .map(|c| format!("U+{:04X}", c as u32))
            .collect();
        assert!(
            missed.is_empty(),
            "format characters not refused: {missed:?}"
        );
        for c in [
            '\u{E0041}',
            '\u{E0001}',
            '\u{FE0F}',
            '\u{E0100}',
            '\u{180B}',
            '\u{2800}',
        ] {
            assert!(text_hygiene("reason", &format!("a{c}b")).is_some(), "{c:?}");
            assert!(hygiene(&format!("echo a{c}b")).is_some(), "{c:?}");
        }
        assert!(text_hygiene("reason", "Neustart nötig: 日本語 ok").is_none());
    }
}
