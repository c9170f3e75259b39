//! Internet message ids (the RFC 5322 `Message-ID` header).

use std::fmt;

use super::ValidationError;

/// A `Message-ID` with its angle brackets, e.g. `<abc@mail.example.com>`: printable ASCII
/// without spaces, no CR/LF, no angle brackets inside, at most 998 octets. Kept as given
/// (ids are compared exactly); values that reach Graph queries are escaped where they are
/// put into a query, never here.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InternetMessageId(String);

impl InternetMessageId {
    /// Longest accepted id (the RFC 5322 line limit).
    pub const MAX_LEN: usize = 998;

    /// Parses a message id.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.is_empty() {
            return Err(ValidationError::new("must not be empty"));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(ValidationError::new(format!(
                "must be at most {} octets",
                Self::MAX_LEN
            )));
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ValidationError::new(
                "must be printable ASCII without spaces or line breaks",
            ));
        }
        let inner = raw
            .strip_prefix('<')
            .and_then(|r| r.strip_suffix('>'))
            .ok_or_else(|| {
                ValidationError::new("must be enclosed in angle brackets, like <id@host>")
            })?;
        if inner.is_empty() || inner.contains(['<', '>']) {
            return Err(ValidationError::new(
                "must hold one non-empty id between its angle brackets",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The id with its brackets.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InternetMessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_world_ids_are_accepted_as_given() {
        for ok in [
            "<CAF=abc+123@mail.gmail.com>",
            "<1234.5678@Exchange.Contoso.com>",
            "<o'brien#1%20x@host>",
            "<no-at-sign>",
            &format!("<{}@x>", "a".repeat(994)),
        ] {
            assert_eq!(InternetMessageId::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in [
            "",
            "abc@host",
            "<abc@host",
            "abc@host>",
            "<>",
            "<a b@host>",
            "<abc@host>\r\nBcc: x",
            "<abc\0@host>",
            "<a<b@host>",
            "<abc@h\u{f6}st>",
            &format!("<{}@x>", "a".repeat(995)),
        ] {
            assert!(
                InternetMessageId::parse(bad).is_err(),
                "{bad:?} was accepted"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics_and_accepted_ids_are_printable(raw in "\\PC{0,1200}") {
            if let Ok(id) = InternetMessageId::parse(&raw) {
                proptest::prop_assert!(id.as_str().len() <= 998);
                proptest::prop_assert!(!id.as_str().contains(['\r', '\n', ' ', '\0']));
            }
        }

        #[test]
        fn ids_of_printable_ascii_round_trip(inner in "[!-;=?-~]{1,200}") {
            let raw = format!("<{inner}>");
            let id = InternetMessageId::parse(&raw).unwrap();
            proptest::prop_assert_eq!(id.as_str(), raw.as_str());
        }
    }
}
