//! Which of our domains a Microsoft 365 tenant backs: the rule of the Retract column.

use crate::{
    domain::{DomainName, DomainOutcome},
    graph::GraphDomain,
};

/// The domain is absent from the Microsoft tenant.
pub const NOT_CONFIGURED: &str = "domain is not configured in the Microsoft 365 tenant";
/// The domain is in the tenant but its ownership is not proven.
pub const NOT_VERIFIED: &str = "domain is not verified in Microsoft 365";
/// The domain is verified but not set up for mail.
pub const NO_EMAIL: &str = "domain does not support Email in Microsoft 365";
/// The identity platform no longer issues tokens for the app in that tenant.
pub const REVOKED: &str = "permissions revoked in Microsoft 365";

/// Each of `ours` GRANTED when `theirs` has it verified with Email, FAILED with the reason
/// otherwise. Names compare case-insensitively (Graph may answer in mixed case).
pub fn outcomes(ours: &[DomainName], theirs: &[GraphDomain]) -> Vec<DomainOutcome> {
    ours.iter()
        .map(|domain| {
            let found = theirs
                .iter()
                .find(|d| d.id.eq_ignore_ascii_case(domain.as_str()));
            match found {
                None => DomainOutcome::failed(domain, NOT_CONFIGURED),
                Some(d) if !d.is_verified => DomainOutcome::failed(domain, NOT_VERIFIED),
                Some(d)
                    if !d
                        .supported_services
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case("Email")) =>
                {
                    DomainOutcome::failed(domain, NO_EMAIL)
                }
                Some(_) => DomainOutcome::granted(domain),
            }
        })
        .collect()
}

/// Every one of `ours` FAILED for `reason`.
pub fn all_failed(ours: &[DomainName], reason: &str) -> Vec<DomainOutcome> {
    ours.iter()
        .map(|d| DomainOutcome::failed(d, reason))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RetractStatus;

    fn graph(id: &str, verified: bool, services: &[&str]) -> GraphDomain {
        GraphDomain {
            id: id.to_owned(),
            is_verified: verified,
            supported_services: services.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn partial_success_is_normal() {
        let ours: Vec<DomainName> = [
            "acme.example",
            "lab.acme.example",
            "old.acme.example",
            "web.acme.example",
        ]
        .iter()
        .map(|d| DomainName::parse(d).unwrap())
        .collect();
        let theirs = [
            graph(
                "ACME.example",
                true,
                &["Email", "OfficeCommunicationsOnline"],
            ),
            graph("lab.acme.example", false, &["Email"]),
            graph("web.acme.example", true, &["Sharepoint"]),
            graph("unrelated.example", true, &["Email"]),
        ];
        let got: Vec<_> = outcomes(&ours, &theirs)
            .into_iter()
            .map(|o| (o.domain.clone(), o.retract_status(), o.reason))
            .collect();
        assert_eq!(
            got,
            [
                ("acme.example".into(), RetractStatus::Granted, None),
                (
                    "lab.acme.example".into(),
                    RetractStatus::Failed,
                    Some(NOT_VERIFIED.into())
                ),
                (
                    "old.acme.example".into(),
                    RetractStatus::Failed,
                    Some(NOT_CONFIGURED.into())
                ),
                (
                    "web.acme.example".into(),
                    RetractStatus::Failed,
                    Some(NO_EMAIL.into())
                ),
            ]
        );
    }
}
