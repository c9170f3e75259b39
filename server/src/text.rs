//! Text from outside (Microsoft's errors and descriptions, redirect parameters) made safe to
//! store, log and send on: no control characters (PostgreSQL refuses U+0000, logs and
//! headers break on newlines) and a bounded length.

/// `text` without control characters, at most `max_chars` characters.
pub fn printable(text: &str, max_chars: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(max_chars)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_text_loses_control_characters_and_its_excess() {
        assert_eq!(printable("a\u{0}b\r\nc", 10), "abc");
        assert_eq!(printable(&"é".repeat(300), 128).chars().count(), 128);
    }
}
