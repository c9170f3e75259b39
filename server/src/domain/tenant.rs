//! Tenants (our customer accounts) and their registered mail domains.

use std::fmt;

use chrono::{DateTime, Utc};

use super::{DomainName, ValidationError};

/// Our id of a customer account: 1-63 characters of `a-z`, `0-9` and `-`, neither starting nor
/// ending with `-`. Chosen by the caller at creation, stable, never reused.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TenantId(String);

impl TenantId {
    /// Longest accepted id (a DNS label's length, so ids can appear in host names).
    pub const MAX_LEN: usize = 63;

    /// Parses a tenant id, refusing anything but the documented alphabet.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.is_empty() {
            return Err(ValidationError::new("must not be empty"));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(ValidationError::new(format!(
                "must be at most {} characters",
                Self::MAX_LEN
            )));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(ValidationError::new(
                "may contain only lowercase letters a-z, digits 0-9 and '-'",
            ));
        }
        if raw.starts_with('-') || raw.ends_with('-') {
            return Err(ValidationError::new("must not start or end with '-'"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A human-readable tenant name: 1-200 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Longest accepted name, in characters.
    pub const MAX_CHARS: usize = 200;

    /// Parses a display name; surrounding whitespace is trimmed.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(ValidationError::new("must not be empty"));
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(ValidationError::new(format!(
                "must be at most {} characters",
                Self::MAX_CHARS
            )));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(ValidationError::new("must not contain control characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What CreateTenant asks for.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// The caller-chosen id.
    pub id: TenantId,
    /// The operator-facing name.
    pub display_name: DisplayName,
}

/// A stored tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Our id.
    pub id: TenantId,
    /// The operator-facing name.
    pub display_name: DisplayName,
    /// The Microsoft 365 tenant proven by a consent, once granted.
    pub microsoft_tenant_id: Option<super::MicrosoftTenantId>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What deleting (offboarding) a tenant removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantDeletion {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The Microsoft 365 tenant it was linked to.
    pub microsoft_tenant_id: Option<super::MicrosoftTenantId>,
    /// The domains it held (free for another tenant now).
    pub domains: Vec<super::DomainName>,
    /// Its deliveries.
    pub delivery_count: u64,
    /// Its retract and restore jobs.
    pub job_count: u64,
    /// When its audit trail is removed; `None` keeps it forever.
    pub audit_purge_at: Option<DateTime<Utc>>,
}

/// Whether retract may act on a domain's mailboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetractStatus {
    /// No grant attempted yet.
    NotGranted,
    /// A consent attempt is in progress.
    Pending,
    /// Verified in the linked Microsoft 365 tenant.
    Granted,
    /// The last grant or verification failed; the domain's reason says why.
    Failed,
}

impl RetractStatus {
    /// The value stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotGranted => "not_granted",
            Self::Pending => "pending",
            Self::Granted => "granted",
            Self::Failed => "failed",
        }
    }

    /// Reads a stored value back.
    pub fn from_stored(value: &str) -> Option<Self> {
        Some(match value {
            "not_granted" => Self::NotGranted,
            "pending" => Self::Pending,
            "granted" => Self::Granted,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// A mail domain registered to a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// The IDNA-normalised name.
    pub name: DomainName,
    /// The tenant that holds it.
    pub tenant_id: TenantId,
    /// Whether retract may act on it.
    pub retract_status: RetractStatus,
    /// Why it failed, when it did.
    pub status_reason: Option<String>,
    /// When it was last checked against Microsoft 365.
    pub last_checked_at: Option<DateTime<Utc>>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_follow_the_documented_alphabet() {
        for ok in ["a", "acme", "acme-eu-1", "0", &"a".repeat(63)] {
            assert_eq!(
                TenantId::parse(ok).map(|t| t.to_string()),
                Ok(ok.to_owned())
            );
        }
        for bad in [
            "",
            "Acme",
            "acme_eu",
            "-acme",
            "acme-",
            "acme eu",
            "ac\u{e9}me",
            "a\0",
            &"a".repeat(64),
        ] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn display_names_are_trimmed_bounded_and_printable() {
        assert_eq!(
            DisplayName::parse("  Acme Corp ").unwrap().as_str(),
            "Acme Corp"
        );
        assert_eq!(
            DisplayName::parse(&"\u{e9}".repeat(200))
                .unwrap()
                .as_str()
                .chars()
                .count(),
            200
        );
        assert!(DisplayName::parse(&"x".repeat(201)).is_err());
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse("Acme\r\nInjected: yes").is_err());
        assert!(DisplayName::parse("Acme\0").is_err());
    }

    proptest::proptest! {
        #[test]
        fn tenant_ids_and_names_never_panic_and_stay_clean(raw in "\\PC{0,300}") {
            if let Ok(id) = TenantId::parse(&raw) {
                proptest::prop_assert!(id.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            }
            if let Ok(name) = DisplayName::parse(&raw) {
                proptest::prop_assert!(!name.as_str().chars().any(char::is_control));
                proptest::prop_assert!(name.as_str().chars().count() <= DisplayName::MAX_CHARS);
            }
        }
    }

    #[test]
    fn retract_status_round_trips_through_storage() {
        for s in [
            RetractStatus::NotGranted,
            RetractStatus::Pending,
            RetractStatus::Granted,
            RetractStatus::Failed,
        ] {
            assert_eq!(RetractStatus::from_stored(s.as_str()), Some(s));
        }
        assert_eq!(RetractStatus::from_stored("GRANTED"), None);
    }
}
