//! Pagination: page sizes and opaque page tokens.
//!
//! A page token carries the keyset cursor of the last item returned plus a fingerprint of the
//! query it belongs to (the RPC, the tenant and every filter). A token presented with another
//! query — another tenant, other filters — is refused, so tokens cannot carry a position from
//! one tenant's listing into another's. Every query also filters by the request's own tenant,
//! so a hand-made token can at most move the position inside the caller's own data.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

use super::ValidationError;

/// How many items one page holds: default 50, at most 1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u16);

impl PageSize {
    /// Used when the request leaves `page_size` at 0.
    pub const DEFAULT: u16 = 50;
    /// Larger requests are served this many items.
    pub const MAX: u16 = 1000;

    /// Reads a request's `page_size`: 0 means the default, larger than the maximum is capped,
    /// negative is an error.
    pub fn parse(raw: i32) -> Result<Self, ValidationError> {
        match raw {
            ..0 => Err(ValidationError::new("must not be negative")),
            0 => Ok(Self(Self::DEFAULT)),
            n => Ok(Self(u16::try_from(n).unwrap_or(Self::MAX).min(Self::MAX))),
        }
    }

    /// The largest page.
    pub const fn max() -> Self {
        Self(Self::MAX)
    }

    /// The number of items.
    pub fn get(self) -> u64 {
        u64::from(self.0)
    }
}

/// One page's worth of a listing request: how many, and after which cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest<C> {
    /// How many items to return.
    pub size: PageSize,
    /// Return items after this cursor; `None` for the first page.
    pub after: Option<C>,
}

/// Encoding and decoding of opaque page tokens.
pub struct PageToken;

#[derive(Serialize, Deserialize)]
struct Envelope<C> {
    /// Fingerprint of the query the token belongs to.
    q: String,
    /// The keyset cursor: the sort key of the last item returned.
    c: C,
}

impl PageToken {
    /// Longest token accepted; ours are far shorter.
    const MAX_LEN: usize = 2048;

    /// Makes the token for the page after `cursor` of the query described by `query`.
    pub fn encode<C: Serialize>(query: &str, cursor: &C) -> String {
        let envelope = Envelope {
            q: fingerprint(query),
            c: cursor,
        };
        // Serialising plain data (strings, integers) to JSON cannot fail.
        let json = serde_json::to_vec(&envelope).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Reads a request's `page_token`: empty means the first page (`None`).
    pub fn decode<C: DeserializeOwned>(
        query: &str,
        token: &str,
    ) -> Result<Option<C>, ValidationError> {
        if token.is_empty() {
            return Ok(None);
        }
        let invalid = || ValidationError::new("is not a page token of this query");
        if token.len() > Self::MAX_LEN {
            return Err(invalid());
        }
        let json = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let envelope: Envelope<C> = serde_json::from_slice(&json).map_err(|_| invalid())?;
        if envelope.q != fingerprint(query) {
            return Err(invalid());
        }
        Ok(Some(envelope.c))
    }
}

/// Describes a listing's filters for [`PageToken`]: every filter by name, unset ones empty,
/// encoded as a JSON array so no value can imitate another filter.
pub fn fingerprint_fields(fields: &[(&str, String)]) -> String {
    serde_json::to_string(fields).unwrap_or_default()
}

/// A time filter's value in [`fingerprint_fields`]: RFC 3339, empty when unset.
pub fn time_field(at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    at.map(|t| t.to_rfc3339()).unwrap_or_default()
}

fn fingerprint(query: &str) -> String {
    let digest = Sha256::digest(query.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_defaults_caps_and_refuses_negative() {
        assert_eq!(PageSize::parse(0).unwrap().get(), 50);
        assert_eq!(PageSize::parse(7).unwrap().get(), 7);
        assert_eq!(PageSize::parse(1000).unwrap().get(), 1000);
        assert_eq!(PageSize::parse(5000).unwrap().get(), 1000);
        assert_eq!(PageSize::parse(i32::MAX).unwrap().get(), 1000);
        assert!(PageSize::parse(-1).is_err());
        assert!(PageSize::parse(i32::MIN).is_err());
    }

    #[test]
    fn tokens_round_trip_within_their_query_only() {
        let token = PageToken::encode("domains tenant=acme", &"b.example".to_owned());
        let back: Option<String> = PageToken::decode("domains tenant=acme", &token).unwrap();
        assert_eq!(back.as_deref(), Some("b.example"));
        assert!(PageToken::decode::<String>("domains tenant=other", &token).is_err());
        assert!(PageToken::decode::<i64>("domains tenant=acme", &token).is_err());
        assert_eq!(
            PageToken::decode::<String>("domains tenant=acme", "").unwrap(),
            None
        );
    }

    #[test]
    fn garbage_tokens_are_refused() {
        for bad in ["x", "!!!!", "eyJxIjoxfQ", &"A".repeat(5000), "\r\n", "%00"] {
            assert!(PageToken::decode::<String>("q", bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_text_never_panics(raw in "\\PC{0,600}") {
            let _ = PageToken::decode::<(String, i64)>("q", &raw);
        }
    }
}
