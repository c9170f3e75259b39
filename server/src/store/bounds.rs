//! Text from outside (Microsoft's errors, its descriptions) made storable: no control
//! characters (PostgreSQL refuses U+0000) and no longer than its column holds (PostgreSQL
//! refuses an over-long VARCHAR; SQLite would keep it).

/// `grants.error` is a VARCHAR(128).
pub(crate) const GRANT_ERROR: usize = 128;
/// Free text kept in TEXT columns (descriptions, reasons): bounded all the same.
pub(crate) const FREE_TEXT: usize = 2_000;

/// `text` without control characters, at most `max_chars` characters.
pub(crate) fn bounded(text: &str, max_chars: usize) -> String {
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
        assert_eq!(bounded("a\u{0}b\r\nc", 10), "abc");
        assert_eq!(bounded(&"é".repeat(300), GRANT_ERROR).chars().count(), 128);
    }
}
