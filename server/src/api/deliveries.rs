//! Reading delivered messages out of requests.

use std::collections::BTreeSet;

use retract_proto::v1 as pb;

use super::{convert, validate::Violations};
use crate::domain::{EmailAddress, InternetMessageId, NewDelivery, Subject};

/// Invalid recipients named individually before the rest are summarised.
const NAMED_RECIPIENT_ERRORS: usize = 20;

/// Parses one delivery, recording each violation under `prefix` (e.g. `deliveries[3]`).
pub fn parse(violations: &mut Violations, prefix: &str, d: &pb::Delivery) -> Option<NewDelivery> {
    let at = |field: &str| format!("{prefix}.{field}");
    let message_id = violations.check(
        &at("internet_message_id"),
        InternetMessageId::parse(&d.internet_message_id),
    );
    let sender = violations.check(&at("sender"), EmailAddress::parse(&d.sender));
    let subject = violations.check(&at("subject"), Subject::parse(&d.subject));
    let delivered_at = match convert::optional_time(d.delivery_time.as_ref()) {
        Ok(Some(t)) if !plausible(t) => {
            violations.push(
                &at("delivery_time"),
                "must be between 1990 and one day from now",
            );
            None
        }
        Ok(Some(t)) => Some(t),
        Ok(None) => {
            violations.push(&at("delivery_time"), "is required");
            None
        }
        Err(e) => {
            violations.push(&at("delivery_time"), &e.0);
            None
        }
    };
    let mut recipients = BTreeSet::new();
    if d.recipients.is_empty() || d.recipients.len() > NewDelivery::MAX_RECIPIENTS {
        violations.push(
            &at("recipients"),
            &format!("must hold 1 to {} addresses", NewDelivery::MAX_RECIPIENTS),
        );
    }
    let mut bad = 0;
    for (i, raw) in d
        .recipients
        .iter()
        .take(NewDelivery::MAX_RECIPIENTS)
        .enumerate()
    {
        match EmailAddress::parse(raw) {
            Ok(address) => {
                recipients.insert(address);
            }
            Err(e) => {
                bad += 1;
                if bad <= NAMED_RECIPIENT_ERRORS {
                    violations.push(&format!("{prefix}.recipients[{i}]"), &e.0);
                }
            }
        }
    }
    if bad > NAMED_RECIPIENT_ERRORS {
        violations.push(
            &at("recipients"),
            &format!("{} more invalid addresses", bad - NAMED_RECIPIENT_ERRORS),
        );
    }
    if bad > 0 || d.recipients.is_empty() || d.recipients.len() > NewDelivery::MAX_RECIPIENTS {
        return None;
    }
    Some(NewDelivery {
        message_id: message_id?,
        sender: sender?,
        subject: subject?,
        delivered_at: delivered_at?,
        recipients,
    })
}

/// A delivery time the stores keep and order correctly (and retention treats sanely).
fn plausible(t: chrono::DateTime<chrono::Utc>) -> bool {
    let earliest = chrono::DateTime::from_timestamp(631_152_000, 0).unwrap_or_default(); // 1990-01-01
    t >= earliest && t <= chrono::Utc::now() + chrono::Duration::days(1)
}
