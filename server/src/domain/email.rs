//! Email addresses, validated and normalised.

use std::fmt;

use super::{DomainName, ValidationError};

/// A mailbox address `local@domain`: a dot-atom local part of printable ASCII (no quoted
/// forms), an IDNA-normalised domain, lowercased (Exchange Online matches addresses without
/// regard to case), at most 254 characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EmailAddress {
    address: String,
    at: usize,
}

impl EmailAddress {
    /// Longest accepted address (RFC 5321 path limit less the angle brackets).
    pub const MAX_LEN: usize = 254;
    /// Longest local part (RFC 5321).
    pub const MAX_LOCAL_LEN: usize = 64;

    /// Parses an address; surrounding spaces and tabs are trimmed.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let raw = raw.trim_matches([' ', '\t']);
        if raw.is_empty() {
            return Err(ValidationError::new("must not be empty"));
        }
        if raw.len() > Self::MAX_LEN * 4 {
            return Err(ValidationError::new(format!(
                "must be at most {} characters",
                Self::MAX_LEN
            )));
        }
        let (local, domain) = raw
            .rsplit_once('@')
            .ok_or_else(|| ValidationError::new("must be an address like name@example.com"))?;
        if local.is_empty() || local.len() > Self::MAX_LOCAL_LEN {
            return Err(ValidationError::new(format!(
                "must have a local part of 1-{} characters",
                Self::MAX_LOCAL_LEN
            )));
        }
        if !local.bytes().all(is_atom_byte) {
            return Err(ValidationError::new(
                "has a local part with characters outside letters, digits and !#$%&'*+/=?^_`{|}~.-",
            ));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(ValidationError::new(
                "has a local part with a leading, trailing or doubled '.'",
            ));
        }
        let domain = DomainName::parse(domain)
            .map_err(|e| ValidationError::new(format!("has a domain that {e}")))?;
        let address = format!("{}@{}", local.to_ascii_lowercase(), domain);
        if address.len() > Self::MAX_LEN {
            return Err(ValidationError::new(format!(
                "must be at most {} characters",
                Self::MAX_LEN
            )));
        }
        Ok(Self {
            at: local.len(),
            address,
        })
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.address
    }

    /// The part before `@`.
    pub fn local_part(&self) -> &str {
        &self.address[..self.at]
    }

    /// The domain after `@`.
    pub fn domain(&self) -> &str {
        &self.address[self.at + 1..]
    }
}

fn is_atom_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b)
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalised() {
        let a = EmailAddress::parse("  Alice.Smith+tag@Mail.B\u{fc}cher.Example ").unwrap();
        assert_eq!(a.as_str(), "alice.smith+tag@mail.xn--bcher-kva.example");
        assert_eq!(a.local_part(), "alice.smith+tag");
        assert_eq!(a.domain(), "mail.xn--bcher-kva.example");
        assert_eq!(
            EmailAddress::parse("o'brien@example.com").unwrap().as_str(),
            "o'brien@example.com"
        );
        // Percent signs are ordinary atom characters: kept, never decoded.
        assert_eq!(
            EmailAddress::parse("al%40ice@example.com")
                .unwrap()
                .local_part(),
            "al%40ice"
        );
    }

    #[test]
    fn hostile_and_malformed_addresses_are_refused() {
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@@example.com",
            "ali ce@example.com",
            "\"alice\"@example.com",
            "alice@example.com\r\nBcc: eve@evil.example",
            "alice\0@example.com",
            ".alice@example.com",
            "alice.@example.com",
            "al..ice@example.com",
            "alice@*.example.com",
            "alice@192.0.2.1",
            "alice@[192.0.2.1]",
            "al\u{e9}ce@example.com",
            "alice@example.com'--",
            &format!("{}@example.com", "a".repeat(65)),
            &format!(
                "a@{}.com",
                [
                    "b".repeat(63),
                    "c".repeat(63),
                    "d".repeat(63),
                    "e".repeat(60)
                ]
                .join(".")
            ),
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn lookalike_domains_stay_distinct_from_the_real_one() {
        // Cyrillic "а" (U+0430) in "pаypal": a different domain, in its punycode form.
        let lookalike = EmailAddress::parse("ceo@p\u{430}ypal.com").unwrap();
        assert_ne!(lookalike.domain(), "paypal.com");
        assert!(lookalike.domain().starts_with("xn--"));
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics_and_accepted_addresses_are_canonical(raw in "\\PC{0,300}") {
            if let Ok(address) = EmailAddress::parse(&raw) {
                proptest::prop_assert!(address.as_str().bytes().all(|b| b.is_ascii_graphic()));
                proptest::prop_assert_eq!(EmailAddress::parse(address.as_str()).unwrap(), address);
            }
        }

        #[test]
        fn addresses_with_control_or_quote_characters_are_refused(
            local in "[a-z]{1,10}", bad in proptest::sample::select(vec!['\r', '\n', '\0', '"', '<', '>', '(', ')', ',', ';', ':', '\\', '[', ']']), pos in 0usize..10
        ) {
            let mut local: Vec<char> = local.chars().collect();
            let at = pos % (local.len() + 1);
            local.insert(at, bad);
            let raw = format!("{}@example.com", local.into_iter().collect::<String>());
            proptest::prop_assert!(EmailAddress::parse(&raw).is_err(), "{:?}", raw);
        }
    }
}
