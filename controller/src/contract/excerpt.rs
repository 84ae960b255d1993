//! The one head-and-tail excerpt of command output shown in answers: the
//! head, one marker line `[aiops: N bytes ...]` saying what is not shown,
//! the tail. Used for collected output (bytes the agent dropped), saved
//! output (bytes in the file only) and the MCP cap for the model.

/// `head`, the marker for `hidden` bytes (when any), `tail`, as text.
/// `what` says what happened to them: `dropped`, or `not shown; ...`.
pub fn join(head: &[u8], hidden: u64, what: &str, tail: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(head).into_owned();
    if hidden > 0 {
        s.push_str(&format!("\n[aiops: {hidden} bytes {what}]\n"));
    }
    s.push_str(&String::from_utf8_lossy(tail));
    s
}

/// Cuts `s` to about `cap` bytes keeping its head and tail (on character
/// boundaries), marked like every other excerpt. Returns the bytes dropped.
pub fn cap_text(s: &str, cap: usize) -> (String, usize) {
    if s.len() <= cap {
        return (s.to_string(), 0);
    }
    let half = cap / 2;
    let mut head_end = half;
    while !s.is_char_boundary(head_end) {
        head_end -= 1;
    }
    let mut tail_start = s.len() - half;
    while !s.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    let dropped = tail_start - head_end;
    let text = join(
        &s.as_bytes()[..head_end],
        dropped as u64,
        "dropped",
        &s.as_bytes()[tail_start..],
    );
    (text, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_marker_for_every_excerpt() {
        assert_eq!(join(b"ab", 0, "dropped", b"yz"), "abyz");
        assert_eq!(
            join(b"ab", 5, "dropped", b"yz"),
            "ab\n[aiops: 5 bytes dropped]\nyz"
        );
        let (t, n) = cap_text(&"é".repeat(100), 11);
        assert!(t.contains(&format!("[aiops: {n} bytes dropped]")), "{t}");
        assert!(t.starts_with("éé\n") && t.ends_with("\néé"), "{t}");
        assert_eq!(cap_text("short", 10), ("short".to_string(), 0));
    }
}
