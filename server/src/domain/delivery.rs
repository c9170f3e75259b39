//! Delivered messages: what the gateway records and what a retract can act on.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::{EmailAddress, InternetMessageId, ValidationError};

/// A subject line: at most 998 characters, no line breaks or NUL (header injection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject(String);

impl Subject {
    /// Longest accepted subject, in characters.
    pub const MAX_CHARS: usize = 998;

    /// Parses a subject; an empty subject is allowed.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(ValidationError::new(format!(
                "must be at most {} characters",
                Self::MAX_CHARS
            )));
        }
        if raw.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ValidationError::new(
                "must not contain line breaks or control characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The subject text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A delivery as the gateway reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// The message's `Message-ID`.
    pub message_id: InternetMessageId,
    /// Its sender.
    pub sender: EmailAddress,
    /// Its subject.
    pub subject: Subject,
    /// When it was delivered.
    pub delivered_at: DateTime<Utc>,
    /// Its recipients (1 to [`NewDelivery::MAX_RECIPIENTS`]), deduplicated.
    pub recipients: BTreeSet<EmailAddress>,
}

impl NewDelivery {
    /// Most recipients one delivery may have.
    pub const MAX_RECIPIENTS: usize = 10_000;
    /// Most deliveries one RecordDeliveries call may carry.
    pub const MAX_BATCH: usize = 1_000;

    /// Folds a second report of the same message into this one: recipients are merged and
    /// the first delivery time is kept.
    pub fn absorb(&mut self, other: Self) {
        self.delivered_at = self.delivered_at.min(other.delivered_at);
        self.recipients.extend(other.recipients);
    }
}

/// Folds repeats of one message within a batch into one delivery (in first-seen order), and
/// says for each input which merged delivery it became.
pub fn merge_repeats(batch: Vec<NewDelivery>) -> (Vec<NewDelivery>, Vec<usize>) {
    let mut merged: Vec<NewDelivery> = Vec::with_capacity(batch.len());
    let mut position: HashMap<String, usize> = HashMap::new();
    let mut index_of = Vec::with_capacity(batch.len());
    for delivery in batch {
        match position.get(delivery.message_id.as_str()) {
            Some(&i) => {
                merged[i].absorb(delivery);
                index_of.push(i);
            }
            None => {
                position.insert(delivery.message_id.as_str().to_owned(), merged.len());
                index_of.push(merged.len());
                merged.push(delivery);
            }
        }
    }
    (merged, index_of)
}

/// What recording a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// It was new.
    Created,
    /// It existed; new recipients were added.
    Merged,
    /// It existed with all these recipients.
    Unchanged,
}

impl RecordOutcome {
    /// A lowercase name, for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Merged => "merged",
            Self::Unchanged => "unchanged",
        }
    }
}

/// A stored delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The message's `Message-ID`.
    pub message_id: InternetMessageId,
    /// Its sender.
    pub sender: EmailAddress,
    /// Its subject.
    pub subject: Subject,
    /// When it was first delivered.
    pub delivered_at: DateTime<Utc>,
    /// When retract first recorded it.
    pub recorded_at: DateTime<Utc>,
    /// When recipients were last merged in.
    pub updated_at: DateTime<Utc>,
    /// Its recipients (possibly only the first ones, see `recipient_count`).
    pub recipients: Vec<EmailAddress>,
    /// How many recipients it has.
    pub recipient_count: u32,
}

/// SearchDeliveries filters; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    /// Exactly this message.
    pub message_id: Option<InternetMessageId>,
    /// From this sender.
    pub sender: Option<EmailAddress>,
    /// To this recipient.
    pub recipient: Option<EmailAddress>,
    /// Subject containing this text, case-insensitively.
    pub subject_contains: Option<String>,
    /// Delivered at or after.
    pub delivered_after: Option<DateTime<Utc>>,
    /// Delivered before.
    pub delivered_before: Option<DateTime<Utc>>,
}

impl DeliveryFilter {
    /// A stable description for page-token fingerprints: every filter by name, empty
    /// when unset, times as RFC 3339.
    pub fn fingerprint(&self) -> String {
        let text = |v: Option<&str>| v.unwrap_or_default().to_owned();
        let time = crate::domain::time_field;
        super::page::fingerprint_fields(&[
            (
                "message_id",
                text(self.message_id.as_ref().map(InternetMessageId::as_str)),
            ),
            (
                "sender",
                text(self.sender.as_ref().map(EmailAddress::as_str)),
            ),
            (
                "recipient",
                text(self.recipient.as_ref().map(EmailAddress::as_str)),
            ),
            ("subject_contains", text(self.subject_contains.as_deref())),
            ("delivered_after", time(self.delivered_after)),
            ("delivered_before", time(self.delivered_before)),
        ])
    }
}

/// Whether one recipient can be retracted, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eligibility {
    /// Managed, granted, no known permission problem.
    Eligible,
    /// The recipient's domain is not registered to the tenant.
    DomainNotManaged,
    /// The domain is registered but not GRANTED; carries its status and reason.
    DomainNotGranted(String),
    /// Graph's last answer for the mailbox was a permission problem; carries it.
    PermissionIssue(String),
}

impl Eligibility {
    /// Whether `address` can be retracted, given the tenant's domains and the known mailbox
    /// problems (address → Graph code and detail).
    pub fn assess(
        address: &EmailAddress,
        domains: &[super::Domain],
        problems: &std::collections::HashMap<EmailAddress, (String, String)>,
    ) -> Self {
        let domain_part = address.domain();
        let Some(domain) = domains.iter().find(|d| d.name.as_str() == domain_part) else {
            return Self::DomainNotManaged;
        };
        if domain.retract_status != super::RetractStatus::Granted {
            let status = domain.retract_status.as_str().to_ascii_uppercase();
            return Self::DomainNotGranted(match &domain.status_reason {
                Some(reason) => format!("{domain_part} is {status}: {reason}"),
                None => format!("{domain_part} is {status}"),
            });
        }
        match problems.get(address) {
            Some((code, detail)) => Self::PermissionIssue(format!("{code}: {detail}")),
            None => Self::Eligible,
        }
    }

    /// Why the recipient cannot be retracted; `None` when it can.
    pub fn why_not(&self) -> Option<String> {
        match self {
            Self::Eligible => None,
            Self::DomainNotManaged => {
                Some("the recipient's domain is not a registered domain of this tenant".to_owned())
            }
            Self::DomainNotGranted(why) | Self::PermissionIssue(why) => Some(why.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_refuse_header_injection_but_keep_unicode() {
        assert_eq!(
            Subject::parse("Rechnung f\u{fc}r M\u{e4}rz\t\u{1f4e7}")
                .unwrap()
                .as_str(),
            "Rechnung f\u{fc}r M\u{e4}rz\t\u{1f4e7}"
        );
        assert!(Subject::parse("").is_ok());
        assert!(Subject::parse("Hi\r\nBcc: everyone@example.com").is_err());
        assert!(Subject::parse("nul\0").is_err());
        assert!(Subject::parse(&"x".repeat(999)).is_err());
    }

    #[test]
    fn a_second_report_merges_recipients_and_keeps_the_first_time() {
        let at = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
        let addr = |a: &str| EmailAddress::parse(a).unwrap();
        let mut first = NewDelivery {
            message_id: InternetMessageId::parse("<m@x>").unwrap(),
            sender: addr("s@x.example"),
            subject: Subject::parse("s").unwrap(),
            delivered_at: at(200),
            recipients: [addr("a@x.example")].into(),
        };
        first.absorb(NewDelivery {
            delivered_at: at(100),
            recipients: [addr("b@x.example"), addr("a@x.example")].into(),
            ..first.clone()
        });
        assert_eq!(first.delivered_at, at(100));
        assert_eq!(first.recipients.len(), 2);
    }
}
