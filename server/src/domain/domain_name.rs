//! Mail domain names, IDNA-normalised to lowercase ASCII.

use std::{fmt, net::IpAddr};

use super::ValidationError;

/// A mail domain such as `example.com` or `xn--bcher-kva.example`: IDNA-normalised lowercase
/// ASCII, at least two labels, no wildcards, no IP literals, no trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainName(String);

impl DomainName {
    /// Longest accepted name in its ASCII form (RFC 1035).
    pub const MAX_LEN: usize = 253;

    /// Parses a domain name given in Unicode or ASCII form; surrounding spaces and tabs are
    /// trimmed (line breaks and other control characters are refused anywhere).
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let raw = raw.trim_matches([' ', '\t']);
        if raw.is_empty() {
            return Err(ValidationError::new("must not be empty"));
        }
        // Bound the work before IDNA processing; a Unicode label takes at most 4 bytes a char.
        if raw.len() > Self::MAX_LEN * 4 {
            return Err(ValidationError::new(format!(
                "must be at most {} characters",
                Self::MAX_LEN
            )));
        }
        if raw.contains('*') {
            return Err(ValidationError::new("must not contain wildcards"));
        }
        if raw.ends_with('.') {
            return Err(ValidationError::new("must not end with '.'"));
        }
        let unbracketed = raw.trim_start_matches('[').trim_end_matches(']');
        if unbracketed.parse::<IpAddr>().is_ok() {
            return Err(ValidationError::new(
                "must be a domain name, not an IP address",
            ));
        }
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(ValidationError::new(
                "must not contain whitespace or control characters",
            ));
        }
        let ascii = idna::domain_to_ascii_strict(raw)
            .map_err(|_| ValidationError::new("is not a valid internationalised domain name"))?;
        Self::check_ascii(&ascii)?;
        Ok(Self(ascii))
    }

    fn check_ascii(ascii: &str) -> Result<(), ValidationError> {
        if ascii.len() > Self::MAX_LEN {
            return Err(ValidationError::new(format!(
                "must be at most {} characters in its ASCII form",
                Self::MAX_LEN
            )));
        }
        let labels: Vec<&str> = ascii.split('.').collect();
        if labels.len() < 2 {
            return Err(ValidationError::new(
                "must have at least two labels, e.g. example.com",
            ));
        }
        for label in &labels {
            let valid = !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid {
                return Err(ValidationError::new(format!(
                    "has an invalid label {label:?}: 1-63 letters, digits or '-', not at either end"
                )));
            }
        }
        if labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(ValidationError::new(
                "must be a domain name, not an IP address",
            ));
        }
        Ok(())
    }

    /// Trusts a value read back from our own database, where only parsed names are written.
    pub(crate) fn from_stored(value: String) -> Self {
        Self(value)
    }

    /// The ASCII form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        DomainName::parse(raw)
            .unwrap_or_else(|e| panic!("{raw:?}: {e}"))
            .to_string()
    }

    #[test]
    fn names_are_lowercased_and_idna_encoded() {
        assert_eq!(ok("Example.COM"), "example.com");
        assert_eq!(ok(" mail.example.co.uk "), "mail.example.co.uk");
        assert_eq!(ok("b\u{fc}cher.example"), "xn--bcher-kva.example");
        assert_eq!(ok("xn--bcher-kva.example"), "xn--bcher-kva.example");
    }

    #[test]
    fn wildcards_ip_literals_and_malformed_names_are_refused() {
        for bad in [
            "",
            "*.example.com",
            "example.com.",
            "localhost",
            "10.0.0.1",
            "[::1]",
            "::1",
            "1.2.3.4",
            "exa mple.com",
            "example..com",
            "-example.com",
            "example-.com",
            "exam_ple.com",
            "example.com\r\nX: y",
            "example.com\0",
            "example.com\r\n",
            "\nexample.com",
            "example.com'--",
            "%65xample.com",
        ] {
            assert!(DomainName::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn length_limits_hold_for_labels_and_names() {
        let label63 = "a".repeat(63);
        assert!(DomainName::parse(&format!("{label63}.com")).is_ok());
        assert!(DomainName::parse(&format!("{}.com", "a".repeat(64))).is_err());
        let long = std::iter::repeat_n(label63.as_str(), 4)
            .collect::<Vec<_>>()
            .join(".");
        assert!(long.len() > DomainName::MAX_LEN);
        assert!(DomainName::parse(&long).is_err());
        assert!(DomainName::parse(&"a".repeat(100_000)).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics_and_accepted_names_are_canonical(raw in "\\PC{0,300}") {
            if let Ok(name) = DomainName::parse(&raw) {
                let again = DomainName::parse(name.as_str()).expect("a canonical name reparses");
                proptest::prop_assert_eq!(again, name);
            }
        }
    }
}
