//! The one table that says what every RPC requires. The auth layer refuses any method of our
//! services that is missing here (fail closed); a test walks the service descriptors to prove
//! none is.

use super::Permission;

/// What a method requires of its caller, beyond a valid token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The caller must hold this permission (and, for a tenant's resources, access to it).
    Requires(Permission),
    /// Any authenticated caller with access to the named tenant.
    TenantMember,
}

/// Paths that need no token: health checks, server reflection, and the browser's consent
/// callback (authenticated by its single-use state, rate limited on its own).
pub fn is_public(path: &str) -> bool {
    [
        "/grpc.health.v1.Health/",
        "/grpc.reflection.v1.ServerReflection/",
        "/grpc.reflection.v1alpha.ServerReflection/",
        "/consent/",
    ]
    .iter()
    .any(|prefix| path.starts_with(prefix))
}

/// Paths a browser opens (no bearer token, no client certificate): the consent callback.
pub fn is_browser_page(path: &str) -> bool {
    path.starts_with("/consent/")
}

/// Whether `path` is a server-streaming method (its own caps apply, not the per-caller limit
/// of unary calls in progress).
pub fn is_server_stream(path: &str) -> bool {
    [
        "/retract.v1.RetractService/Retract",
        "/retract.v1.RetractService/WatchRetract",
        "/retract.v1.RetractService/RestoreRetractJob",
        "/retract.v1.AuditService/ExportAuditEvents",
    ]
    .contains(&path)
}

/// The rule of a gRPC method path such as `/retract.v1.TenantService/CreateTenant`; `None`
/// for a path this version does not know.
pub fn rule_for(path: &str) -> Option<Rule> {
    use Permission::*;
    use Rule::*;
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let rule = match (service, method) {
        ("retract.v1.TenantService", "CreateTenant" | "ListTenants" | "DeleteTenant") => {
            Requires(TenantsManage)
        }
        ("retract.v1.TenantService", "GetTenant") => TenantMember,
        (
            "retract.v1.TenantService",
            "AddDomain" | "RemoveDomain" | "ListDomains" | "StartGrant" | "CompleteGrant"
            | "GetGrant" | "VerifyDomains",
        ) => Requires(DomainsManage),
        ("retract.v1.RetractService", "RecordDelivery" | "RecordDeliveries") => {
            Requires(DeliveriesWrite)
        }
        (
            "retract.v1.RetractService",
            "Retract" | "StartRetract" | "CancelRetractJob" | "RestoreRetractJob",
        ) => Requires(RetractMessage),
        (
            "retract.v1.RetractService",
            "SearchDeliveries" | "GetRetractOptions" | "WatchRetract" | "GetRetractJob"
            | "ListRetractJobs" | "ListRetractTargets",
        ) => Requires(RetractRead),
        ("retract.v1.AuditService", "ListAuditEvents" | "ExportAuditEvents") => Requires(AuditRead),
        _ => return None,
    };
    Some(rule)
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn every_rpc_of_the_contract_has_a_rule() {
        let set = prost_types::FileDescriptorSet::decode(retract_proto::FILE_DESCRIPTOR_SET)
            .expect("descriptor set decodes");
        let mut checked = 0;
        for file in set.file.iter().filter(|f| f.package() == "retract.v1") {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/retract.v1.{}/{}", service.name(), method.name());
                    assert!(rule_for(&path).is_some(), "{path} has no permission rule");
                    assert!(!is_public(&path), "{path} must not be public");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 25, "the contract has 25 RPCs");
    }

    #[test]
    fn unknown_and_malformed_paths_have_no_rule() {
        for path in [
            "",
            "/",
            "/retract.v1.TenantService/DropTables",
            "/x/y/z",
            "retract.v1.AuditService/ListAuditEvents",
        ] {
            assert_eq!(rule_for(path), None, "{path}");
        }
        assert!(is_public("/grpc.health.v1.Health/Check"));
        assert!(is_public(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!is_public("/grpc.health.v1.HealthX/Check"));
        assert!(is_public("/consent/callback"));
        assert!(!is_public("/consentx/callback"));
    }
}
