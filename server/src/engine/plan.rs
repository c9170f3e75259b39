//! The first targets of a retract: the requested recipients (or every eligible one), each
//! checked against the delivery and its eligibility (which the Retract tab, `tab`, shows
//! before the click). Conversation discovery adds targets to this plan while the job runs.

use std::collections::{HashMap, HashSet};

use crate::domain::{
    Delivery, Domain, Eligibility, EmailAddress, RetractOptions, Target, TargetOutcome,
    TargetResult,
};

/// A requested recipient the plan refuses, by its position in `RetractOptions::recipients`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Index into the requested recipients.
    pub index: usize,
    /// Why it cannot be retracted, for the caller.
    pub reason: String,
}

/// Why no job could be planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// Requested recipients that are not recipients of the delivery, or not eligible (and
    /// skipping was not asked for).
    Refused(Vec<Refusal>),
    /// Nobody the delivery reached can be retracted.
    NoEligibleRecipient,
}

/// A target and, for one settled before the job runs (skipped), its result.
pub type PlannedTarget = (Target, Option<TargetResult>);

/// Plans the hop-0 targets of `options` for `delivery`. Ineligible requested recipients are
/// refused, or — when `skip_ineligible` asks for it — settled as SKIPPED; "every eligible
/// recipient" (no recipients named) leaves the others out quietly.
pub fn initial_targets(
    options: &RetractOptions,
    delivery: &Delivery,
    domains: &[Domain],
    problems: &HashMap<EmailAddress, (String, String)>,
) -> Result<Vec<PlannedTarget>, PlanError> {
    let delivered: HashSet<&EmailAddress> = delivery.recipients.iter().collect();
    let every_eligible = options.recipients.is_empty();
    let requested = if every_eligible {
        &delivery.recipients
    } else {
        &options.recipients
    };
    let mut refused = Vec::new();
    let mut targets = Vec::new();
    for (index, address) in requested.iter().enumerate() {
        if !delivered.contains(address) {
            refused.push(Refusal {
                index,
                reason: "is not a recipient of this delivery".into(),
            });
            continue;
        }
        let target = Target {
            mailbox: address.clone(),
            depth: 0,
        };
        let why_not = Eligibility::assess(address, domains, problems).why_not();
        match why_not {
            None => targets.push((target, None)),
            Some(_) if every_eligible => {}
            Some(why) if options.skip_ineligible => targets.push((
                target,
                Some(TargetResult {
                    outcome: TargetOutcome::Skipped,
                    copies_found: 0,
                    copies_deleted: 0,
                    was_read: false,
                    detail: Some(why),
                    graph_code: None,
                }),
            )),
            Some(why) => refused.push(Refusal {
                index,
                reason: format!("is not eligible: {why}"),
            }),
        }
    }
    if !refused.is_empty() {
        return Err(PlanError::Refused(refused));
    }
    // The internal sender's Sent Items copy, when asked for and the sender is a mailbox of a
    // managed, granted domain (a compromised internal account); it adds no other recipient.
    if options.include_sender_copy
        && Eligibility::assess(&delivery.sender, domains, problems) == Eligibility::Eligible
        && !targets.iter().any(|(t, _)| t.mailbox == delivery.sender)
    {
        targets.push((
            Target {
                mailbox: delivery.sender.clone(),
                depth: 0,
            },
            None,
        ));
    }
    if targets.is_empty() {
        return Err(PlanError::NoEligibleRecipient);
    }
    Ok(targets)
}
