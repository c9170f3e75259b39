//! Consent attempts ("Grant Permissions") and what they found per domain.

use std::fmt;

use chrono::{DateTime, Utc};

use super::{DomainName, RetractStatus, TenantId, ValidationError};

/// A Microsoft 365 tenant id: a GUID, lowercase and hyphenated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MicrosoftTenantId(String);

impl MicrosoftTenantId {
    /// Parses a GUID in any of its usual spellings.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        super::canonical_uuid(raw, "a Microsoft 365 tenant id (a GUID)").map(Self)
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MicrosoftTenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a consent attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantState {
    /// The consent URL is out; the administrator has not come back.
    AwaitingConsent,
    /// The redirect arrived and is being processed (the state is spent).
    Completing,
    /// Consent given, every domain granted.
    Succeeded,
    /// Consent given, some domains failed.
    PartiallySucceeded,
    /// Declined, errored, or not provable.
    Failed,
    /// The administrator came back too late.
    Expired,
}

impl GrantState {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingConsent => "awaiting_consent",
            Self::Completing => "completing",
            Self::Succeeded => "succeeded",
            Self::PartiallySucceeded => "partially_succeeded",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }

    /// Reads a stored value back.
    pub fn from_stored(value: &str) -> Option<Self> {
        Some(match value {
            "awaiting_consent" => Self::AwaitingConsent,
            "completing" => Self::Completing,
            "succeeded" => Self::Succeeded,
            "partially_succeeded" => Self::PartiallySucceeded,
            "failed" => Self::Failed,
            "expired" => Self::Expired,
            _ => return None,
        })
    }
}

/// What a grant or verification decided for one domain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DomainOutcome {
    /// The domain.
    pub domain: String,
    /// `granted` or `failed` (stored form of [`RetractStatus`]).
    pub status: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl DomainOutcome {
    /// A granted domain.
    pub fn granted(domain: &DomainName) -> Self {
        Self {
            domain: domain.to_string(),
            status: RetractStatus::Granted.as_str().to_owned(),
            reason: None,
        }
    }

    /// A failed domain and why.
    pub fn failed(domain: &DomainName, reason: &str) -> Self {
        Self {
            domain: domain.to_string(),
            status: RetractStatus::Failed.as_str().to_owned(),
            reason: Some(reason.to_owned()),
        }
    }

    /// The status as a domain type.
    pub fn retract_status(&self) -> RetractStatus {
        RetractStatus::from_stored(&self.status).unwrap_or(RetractStatus::Failed)
    }
}

/// A consent attempt to store.
#[derive(Clone)]
pub struct NewGrant {
    /// Its id.
    pub id: String,
    /// The tenant it grants for.
    pub tenant_id: TenantId,
    /// SHA-256 (hex) of the single-use state; the state itself is never stored.
    pub state_hash: String,
    /// The PKCE code verifier, needed once to redeem the code.
    pub pkce_verifier: String,
    /// Whether a different Microsoft tenant may replace the linked one.
    pub allow_relink: bool,
    /// The authenticated caller who pressed the button.
    pub requested_by: String,
    /// The request id of that call.
    pub request_id: String,
    /// When the state stops being accepted.
    pub expires_at: DateTime<Utc>,
}

/// Redacted: the verifier redeems the attempt's code.
impl std::fmt::Debug for NewGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewGrant")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("state_hash", &self.state_hash)
            .field("pkce_verifier", &"[REDACTED]")
            .field("allow_relink", &self.allow_relink)
            .field("requested_by", &self.requested_by)
            .field("request_id", &self.request_id)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A stored consent attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// Its id.
    pub id: String,
    /// The tenant it grants for.
    pub tenant_id: TenantId,
    /// Where it stands.
    pub state: GrantState,
    /// Whether relinking was allowed.
    pub allow_relink: bool,
    /// Who started it.
    pub requested_by: String,
    /// The request id of the start.
    pub request_id: String,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When its state stops being accepted.
    pub expires_at: DateTime<Utc>,
    /// When it finished.
    pub completed_at: Option<DateTime<Utc>>,
    /// The Microsoft tenant the consent proved.
    pub microsoft_tenant_id: Option<MicrosoftTenantId>,
    /// Error code when it failed.
    pub error: Option<String>,
    /// Human-readable failure.
    pub error_description: Option<String>,
    /// Each domain's outcome.
    pub domain_outcomes: Vec<DomainOutcome>,
}

impl Grant {
    /// The attempt's state as of `now`: one nobody came back to before it expired reads as
    /// expired, whatever the sweep has got round to.
    pub fn state_at(&self, now: DateTime<Utc>) -> GrantState {
        match self.state {
            GrantState::AwaitingConsent if now > self.expires_at => GrantState::Expired,
            state => state,
        }
    }
}

/// How an attempt ends.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantEnd {
    /// The final state.
    pub state: GrantState,
    /// The proven Microsoft tenant, if any.
    pub microsoft_tenant_id: Option<MicrosoftTenantId>,
    /// Link our tenant to it (on success).
    pub link: bool,
    /// Error code on failure.
    pub error: Option<String>,
    /// Human-readable failure.
    pub error_description: Option<String>,
    /// Per-domain outcomes to record (also applied to the domains).
    pub domain_outcomes: Vec<DomainOutcome>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkce_verifier_does_not_appear_in_debug_output() {
        let grant = NewGrant {
            id: "g".into(),
            tenant_id: TenantId::parse("acme").unwrap(),
            state_hash: "h".into(),
            pkce_verifier: "verifier-secret".into(),
            allow_relink: false,
            requested_by: "a@b.example".into(),
            request_id: "r".into(),
            expires_at: chrono::Utc::now(),
        };
        assert!(!format!("{grant:?}").contains("verifier-secret"));
    }

    #[test]
    fn microsoft_tenant_ids_are_canonical_guids() {
        let id = MicrosoftTenantId::parse("72F988BF-86F1-41AF-91AB-2D7CD011DB47").unwrap();
        assert_eq!(id.as_str(), "72f988bf-86f1-41af-91ab-2d7cd011db47");
        for bad in [
            "",
            "contoso.onmicrosoft.com",
            "72f988bf",
            "'; drop table x; --",
        ] {
            assert!(MicrosoftTenantId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn grant_states_round_trip_through_storage() {
        for s in [
            GrantState::AwaitingConsent,
            GrantState::Completing,
            GrantState::Succeeded,
            GrantState::PartiallySucceeded,
            GrantState::Failed,
            GrantState::Expired,
        ] {
            assert_eq!(GrantState::from_stored(s.as_str()), Some(s));
        }
    }
}
