//! The API's one error type and the one place it becomes a `tonic::Status`: every
//! `ErrorInfo.reason` is a `retract.v1.ErrorReason` (so the contract documents each one),
//! with the metadata keys its documentation names.

use std::collections::HashMap;

pub use retract_proto::v1::ErrorReason as Reason;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::{
    auth::{AuthError, AuthRejection},
    consent::ConsentError,
    graph::GraphError,
    store::StoreError,
};

/// `google.rpc.ErrorInfo.domain` of every error this service sends.
pub const ERROR_DOMAIN: &str = "retract.email-security.internal";

/// One invalid request field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path in the request, e.g. `domain` or `deliveries[3].recipients[0]`.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

/// `ErrorInfo.metadata` of one error: the keys its reason documents.
pub type Metadata = Vec<(&'static str, String)>;

/// Why a call failed, as the caller should learn it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// One or more fields are invalid; every violation is listed.
    #[error("invalid request: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// A value is valid but outside what the resource holds (a sequence beyond a job's last).
    #[error("{message}")]
    OutOfRange {
        /// ErrorInfo reason.
        reason: Reason,
        /// Human-readable explanation.
        message: String,
        /// ErrorInfo metadata.
        metadata: Metadata,
    },
    /// No valid credentials.
    #[error("{0}")]
    Unauthenticated(AuthError),
    /// Valid credentials, but not allowed to do this.
    #[error("{message}")]
    PermissionDenied {
        /// ErrorInfo reason.
        reason: Reason,
        /// Human-readable explanation.
        message: String,
        /// ErrorInfo metadata.
        metadata: Metadata,
    },
    /// The named resource does not exist.
    #[error("{resource} {id:?} not found")]
    NotFound {
        /// The kind of resource, as the store names it.
        resource: &'static str,
        /// Its id.
        id: String,
    },
    /// The resource exists already.
    #[error("{resource} {id:?} already exists")]
    AlreadyExists {
        /// The kind of resource, as the store names it.
        resource: &'static str,
        /// Its id.
        id: String,
    },
    /// The caller is over its rate limit.
    #[error("too many requests from this caller; retry after {retry_after:?}")]
    RateLimited {
        /// How long until a call would be accepted.
        retry_after: std::time::Duration,
    },
    /// The caller already has its most unary calls in progress.
    #[error("this caller already has {limit} calls in progress; wait for one to finish")]
    TooManyCallsInProgress {
        /// How many one caller may have.
        limit: usize,
    },
    /// The caller (or the server) has its most streams open.
    #[error("{}", streams_message(.0))]
    TooManyStreams(crate::auth::StreamsExhausted),
    /// The system is not in the state the call needs.
    #[error("{message}")]
    FailedPrecondition {
        /// ErrorInfo reason.
        reason: Reason,
        /// Human-readable explanation.
        message: String,
        /// ErrorInfo metadata.
        metadata: Metadata,
    },
    /// A retract request id was used before with other options.
    #[error("request id {0:?} was used before with different options")]
    RequestIdReused(String),
    /// The capability is not built yet.
    #[error("{0} is not implemented yet")]
    Unimplemented(&'static str),
    /// The caller's deadline passed before the call (a watch) ended.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The server is shutting down; the same call to another replica, or later, works.
    #[error("{0}")]
    ShuttingDown(String),
    /// A dependency (the database, Microsoft 365) is unavailable; retrying later may work.
    /// Carries the reason naming which.
    #[error("service temporarily unavailable; retry later")]
    Unavailable(Reason),
    /// A bug or unexpected failure; the cause is logged, not sent.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ApiError {
    /// FAILED_PRECONDITION with `reason`.
    pub fn precondition(reason: Reason, message: impl Into<String>, metadata: Metadata) -> Self {
        Self::FailedPrecondition {
            reason,
            message: message.into(),
            metadata,
        }
    }

    /// PERMISSION_DENIED with `reason`.
    pub fn denied(reason: Reason, message: impl Into<String>, metadata: Metadata) -> Self {
        Self::PermissionDenied {
            reason,
            message: message.into(),
            metadata,
        }
    }
}

/// What a store resource is called on the wire: its NOT_FOUND and ALREADY_EXISTS reasons and
/// its message type (`ResourceInfo.resource_type`).
pub fn resource_kind(resource: &str) -> (Reason, Reason, &'static str) {
    match resource {
        "tenant" => (
            Reason::TenantNotFound,
            Reason::TenantAlreadyExists,
            "retract.v1.Tenant",
        ),
        "domain" => (
            Reason::DomainNotFound,
            Reason::DomainAlreadyExists,
            "retract.v1.Domain",
        ),
        "delivery" => (
            Reason::DeliveryNotFound,
            Reason::Internal,
            "retract.v1.Delivery",
        ),
        "grant" | "completing grant" => {
            (Reason::GrantNotFound, Reason::Internal, "retract.v1.Grant")
        }
        "retract job" => (
            Reason::RetractJobNotFound,
            Reason::RetractJobAlreadyExists,
            "retract.v1.RetractJob",
        ),
        _ => (Reason::Internal, Reason::Internal, "retract.v1.Unknown"),
    }
}

/// The reason of an authentication failure.
pub fn auth_reason(err: AuthError) -> Reason {
    match err {
        AuthError::MissingToken => Reason::MissingCredentials,
        AuthError::MalformedHeader | AuthError::MalformedToken => Reason::MalformedCredentials,
        AuthError::InvalidSignature => Reason::InvalidSignature,
        AuthError::Expired => Reason::TokenExpired,
        AuthError::NotYetValid => Reason::TokenNotYetValid,
        AuthError::WrongIssuer => Reason::WrongIssuer,
        AuthError::WrongAudience => Reason::WrongAudience,
        AuthError::MissingClaim => Reason::MissingClaim,
        AuthError::MissingClientCertificate => Reason::ClientCertificateRequired,
    }
}

/// A reason's name in `ErrorInfo.reason`: the enum value without its `ERROR_REASON_` prefix.
pub fn reason_name(reason: Reason) -> &'static str {
    let name = reason.as_str_name();
    name.strip_prefix("ERROR_REASON_").unwrap_or(name)
}

impl From<ConsentError> for ApiError {
    fn from(err: ConsentError) -> Self {
        let message = err.to_string();
        match err {
            ConsentError::UnknownState => Self::InvalidArgument(vec![FieldViolation {
                field: "state".to_owned(),
                description: "is unknown or was already used".to_owned(),
            }]),
            ConsentError::Expired(grant) => Self::precondition(
                Reason::ConsentExpired,
                message,
                vec![("grant_id", grant.id.clone())],
            ),
            ConsentError::RelinkRefused { grant, .. } => Self::precondition(
                Reason::RelinkRefused,
                message,
                vec![("tenant_id", grant.tenant_id.to_string())],
            ),
            ConsentError::NotLinked(tenant) => Self::precondition(
                Reason::TenantNotLinked,
                message,
                vec![("tenant_id", tenant.to_string())],
            ),
            ConsentError::NotConfigured => {
                Self::precondition(Reason::GraphNotConfigured, message, Vec::new())
            }
            ConsentError::Unreachable(cause) => cause.into(),
            ConsentError::Store(store) => store.into(),
            ConsentError::Interrupted(why) => Self::Internal(why.into()),
        }
    }
}

impl From<GraphError> for ApiError {
    fn from(err: GraphError) -> Self {
        if let GraphError::CredentialRejected { .. } = err {
            // The service's own configuration, already logged loudly where it was seen.
            return Self::precondition(
                Reason::GraphNotConfigured,
                "Microsoft rejects this service's Graph app credential (secret or certificate); an operator must renew it. No tenant's permissions were changed.".to_owned(),
                Vec::new(),
            );
        }
        tracing::warn!(error = %err, "Microsoft 365 did not answer as needed");
        Self::Unavailable(Reason::MicrosoftUnavailable)
    }
}

impl From<AuthRejection> for ApiError {
    fn from(rejection: AuthRejection) -> Self {
        match rejection {
            AuthRejection::Unauthenticated(err) => Self::Unauthenticated(err),
            AuthRejection::RateLimited { retry_after } => Self::RateLimited { retry_after },
            AuthRejection::TooManyCallsInProgress { limit } => {
                Self::TooManyCallsInProgress { limit }
            }
            AuthRejection::MissingPermission { permission } => Self::denied(
                Reason::MissingPermission,
                format!("this call requires the `{permission}` permission"),
                vec![("permission", permission.to_owned())],
            ),
            AuthRejection::UnknownMethod { method } => Self::denied(
                Reason::UnknownMethod,
                format!("no permission rule covers {method}"),
                vec![("method", method)],
            ),
        }
    }
}

/// The auth layer's answer to a call it turns away (see [`crate::auth::Reject`]).
pub fn rejection_status(rejection: AuthRejection) -> Status {
    ApiError::from(rejection).into()
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound { resource, id } => Self::NotFound { resource, id },
            StoreError::AlreadyExists { resource, id } => Self::AlreadyExists { resource, id },
            StoreError::RequestIdReused(id) => Self::RequestIdReused(id),
            StoreError::TooManyRecipients { message_id, max } => Self::precondition(
                Reason::TooManyRecipients,
                format!("delivery {message_id} would have more than {max} recipients"),
                vec![("internet_message_id", message_id)],
            ),
            StoreError::TenantHasActiveJobs { tenant, jobs } => Self::precondition(
                Reason::TenantHasActiveJobs,
                format!(
                    "tenant {tenant} has {jobs} retract or restore jobs that have not ended: cancel them or wait for them first"
                ),
                vec![("tenant_id", tenant), ("job_count", jobs.to_string())],
            ),
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                Self::Unavailable(Reason::DatabaseUnavailable)
            }
            other => Self::Internal(Box::new(other)),
        }
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Self {
        let message = err.to_string();
        let mut details = ErrorDetails::new();
        let mut info = |reason: Reason, metadata: Metadata| {
            let metadata: HashMap<String, String> = metadata
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            details.set_error_info(reason_name(reason), ERROR_DOMAIN, metadata);
        };
        let (code, retry_after) = match err {
            ApiError::InvalidArgument(violations) => {
                info(
                    Reason::InvalidArgument,
                    vec![("field_count", violations.len().to_string())],
                );
                let mut budget = MAX_VIOLATION_BYTES;
                for (i, v) in violations
                    .into_iter()
                    .take(super::validate::Violations::MAX)
                    .enumerate()
                {
                    let size = v.field.len() + v.description.len();
                    if size > budget && i > 0 {
                        break;
                    }
                    // The first violation is always sent, cut to fit if it must be.
                    let field = cut(v.field, budget / 2);
                    let description = cut(v.description, budget - field.len());
                    budget = budget.saturating_sub(field.len() + description.len());
                    details.add_bad_request_violation(field, description);
                }
                (Code::InvalidArgument, None)
            }
            ApiError::OutOfRange {
                reason, metadata, ..
            } => {
                info(reason, metadata);
                (Code::OutOfRange, None)
            }
            ApiError::Unauthenticated(auth) => {
                info(auth_reason(auth), Vec::new());
                (Code::Unauthenticated, None)
            }
            ApiError::PermissionDenied {
                reason, metadata, ..
            } => {
                info(reason, metadata);
                (Code::PermissionDenied, None)
            }
            ApiError::NotFound { resource, id } => {
                let (reason, _, resource_type) = resource_kind(resource);
                info(
                    reason,
                    vec![
                        ("resource_type", resource_type.to_owned()),
                        ("resource_name", id.clone()),
                    ],
                );
                details.set_resource_info(resource_type, id, "", "not found");
                (Code::NotFound, None)
            }
            ApiError::AlreadyExists { resource, id } => {
                let (_, reason, resource_type) = resource_kind(resource);
                info(
                    reason,
                    vec![
                        ("resource_type", resource_type.to_owned()),
                        ("resource_name", id.clone()),
                    ],
                );
                details.set_resource_info(resource_type, id, "", "already exists");
                (Code::AlreadyExists, None)
            }
            ApiError::FailedPrecondition {
                reason, metadata, ..
            } => {
                info(reason, metadata);
                (Code::FailedPrecondition, None)
            }
            ApiError::RequestIdReused(id) => {
                info(Reason::RequestIdReused, vec![("request_id", id)]);
                (Code::AlreadyExists, None)
            }
            ApiError::RateLimited { retry_after } => {
                info(Reason::RateLimited, Vec::new());
                (Code::ResourceExhausted, Some(retry_after))
            }
            ApiError::TooManyCallsInProgress { .. } | ApiError::TooManyStreams(_) => {
                info(Reason::RateLimited, Vec::new());
                (Code::ResourceExhausted, None)
            }
            ApiError::Unimplemented(capability) => {
                info(
                    Reason::NotImplemented,
                    vec![("capability", capability.to_owned())],
                );
                (Code::Unimplemented, None)
            }
            ApiError::DeadlineExceeded(_) => {
                info(Reason::DeadlineExceeded, Vec::new());
                (Code::DeadlineExceeded, None)
            }
            ApiError::ShuttingDown(_) => {
                info(Reason::ServerStopping, Vec::new());
                (Code::Unavailable, Some(std::time::Duration::from_secs(1)))
            }
            ApiError::Unavailable(reason) => {
                info(reason, Vec::new());
                (Code::Unavailable, Some(std::time::Duration::from_secs(1)))
            }
            ApiError::Internal(cause) => {
                tracing::error!(error = %cause, cause = ?cause, "internal error");
                info(Reason::Internal, Vec::new());
                (Code::Internal, None)
            }
        };
        if let Some(after) = retry_after {
            details.set_retry_info(Some(after));
        }
        Status::with_error_details(code, bounded_message(message), details)
    }
}

/// What prost's decode errors start with (`prost::DecodeError`'s `Display`); tonic sends
/// that text as an INTERNAL status when a request body does not decode.
pub const PROST_DECODE_ERROR: &str = "failed to decode Protobuf message: ";

/// The field name of a request body that does not decode before any field is reached
/// (a broken key or length of the request message itself).
pub const WHOLE_REQUEST: &str = "(request)";

/// The answer to a request body that does not decode as the method's request message: the
/// caller's mistake, so INVALID_ARGUMENT (not tonic's INTERNAL, which would also log an
/// ERROR for every hostile call). `detail` is prost's text after [`PROST_DECODE_ERROR`]:
/// `Inner.field: Outer.field: description`, innermost first; the violation names the field
/// path outermost first (`delivery.recipients`), or [`WHOLE_REQUEST`].
pub fn undecodable_request_status(detail: &str) -> Status {
    let mut path = Vec::new();
    let mut rest = detail;
    while let Some((step, after)) = rest.split_once(": ")
        && let Some((message, field)) = step.split_once('.')
        && [message, field].iter().all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    {
        path.push(field);
        rest = after;
    }
    path.reverse();
    let field = if path.is_empty() {
        WHOLE_REQUEST.to_owned()
    } else {
        path.join(".")
    };
    ApiError::InvalidArgument(vec![FieldViolation {
        field,
        description: format!("is not a valid protobuf encoding: {rest}"),
    }])
    .into()
}

/// The longest `grpc-message` sent (proxies refuse headers of tens of kilobytes).
pub const MAX_STATUS_MESSAGE: usize = 2_048;

/// Most bytes of `BadRequest` field paths and descriptions sent in one status: base64 in
/// `grpc-status-details-bin` (4/3), beside a `grpc-message` of at most
/// [`MAX_STATUS_MESSAGE`] bytes that percent-encoding can triple, they stay under the
/// 16 KiB of headers HTTP/2 clients (h2, hence tonic; grpc-go) accept by default. A client
/// that cannot read the error's headers sees only a protocol error, not the refusal.
pub const MAX_VIOLATION_BYTES: usize = 4 * 1024;

/// `text` cut to at most `max` bytes at a character boundary.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// `message` cut to [`MAX_STATUS_MESSAGE`] bytes at a character boundary, marked when cut.
fn bounded_message(message: String) -> String {
    if message.len() <= MAX_STATUS_MESSAGE {
        return message;
    }
    let mut end = MAX_STATUS_MESSAGE - 3;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

fn streams_message(exhausted: &crate::auth::StreamsExhausted) -> String {
    match exhausted {
        crate::auth::StreamsExhausted::Caller { limit } => format!(
            "this caller already has {limit} streams open; close one (or watch fewer jobs at once)"
        ),
        crate::auth::StreamsExhausted::Server { limit } => {
            format!("the server has {limit} streams open; retry shortly or on another replica")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use prost::Message as _;
    use tonic_types::StatusExt as _;

    use super::*;

    /// Each ErrorReason value with the metadata keys its comment in `errors.proto` documents
    /// (`Metadata: \`a\`, \`b\`.` or `Metadata: none.`).
    fn documented() -> HashMap<String, BTreeSet<String>> {
        let set = prost_types::FileDescriptorSet::decode(retract_proto::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set decodes");
        let file = set
            .file
            .iter()
            .find(|f| f.name() == "retract/v1/errors.proto")
            .expect("errors.proto is in the descriptor set");
        let info = file
            .source_code_info
            .as_ref()
            .expect("the descriptor set keeps comments");
        let reasons = file
            .enum_type
            .iter()
            .position(|e| e.name() == "ErrorReason")
            .expect("ErrorReason is declared");
        let mut out = HashMap::new();
        for (i, value) in file.enum_type[reasons].value.iter().enumerate() {
            // Path of an enum value: [5 (enum_type), enum index, 2 (value), value index].
            let path = [
                5,
                i32::try_from(reasons).unwrap(),
                2,
                i32::try_from(i).unwrap(),
            ];
            let comment = info
                .location
                .iter()
                .find(|l| l.path == path)
                .and_then(|l| l.leading_comments.clone())
                .unwrap_or_default()
                .replace('\n', " ");
            let keys = comment
                .split_once("Metadata:")
                .map(|(_, rest)| {
                    rest.split('`')
                        .skip(1)
                        .step_by(2)
                        .map(str::to_owned)
                        .collect::<BTreeSet<_>>()
                })
                .unwrap_or_else(|| panic!("{} documents no metadata: {comment:?}", value.name()));
            out.insert(
                value
                    .name()
                    .strip_prefix("ERROR_REASON_")
                    .unwrap_or(value.name())
                    .to_owned(),
                keys,
            );
        }
        out
    }

    /// One error of every kind the server can send, every resource and every auth failure.
    fn every_error() -> Vec<ApiError> {
        let mut errors = vec![
            ApiError::InvalidArgument(vec![FieldViolation {
                field: "tenant_id".into(),
                description: "x".into(),
            }]),
            ApiError::OutOfRange {
                reason: Reason::SequenceOutOfRange,
                message: "x".into(),
                metadata: vec![("job_id", "j".into()), ("last_sequence", "3".into())],
            },
            ApiError::RateLimited {
                retry_after: std::time::Duration::from_secs(1),
            },
            ApiError::RequestIdReused("r".into()),
            ApiError::Unimplemented("x"),
            ApiError::DeadlineExceeded("x".into()),
            ApiError::ShuttingDown("x".into()),
            ApiError::Unavailable(Reason::DatabaseUnavailable),
            ApiError::Unavailable(Reason::MicrosoftUnavailable),
            ApiError::Internal("x".into()),
            ApiError::from(AuthRejection::MissingPermission {
                permission: "retract.message",
            }),
            ApiError::from(AuthRejection::UnknownMethod {
                method: "/x.Y/Z".into(),
            }),
            ApiError::from(ConsentError::NotConfigured),
            ApiError::from(ConsentError::NotLinked(
                crate::domain::TenantId::parse("acme").unwrap(),
            )),
        ];
        for resource in ["tenant", "domain", "delivery", "grant", "retract job"] {
            errors.push(ApiError::NotFound {
                resource,
                id: "x".into(),
            });
        }
        for resource in ["tenant", "domain", "retract job"] {
            errors.push(ApiError::AlreadyExists {
                resource,
                id: "x".into(),
            });
        }
        for auth in [
            AuthError::MissingToken,
            AuthError::MalformedHeader,
            AuthError::InvalidSignature,
            AuthError::Expired,
            AuthError::NotYetValid,
            AuthError::WrongIssuer,
            AuthError::WrongAudience,
            AuthError::MissingClaim,
            AuthError::MissingClientCertificate,
        ] {
            errors.push(ApiError::Unauthenticated(auth));
        }
        errors.extend(crate::api::jobs::every_dispatch_error());
        let grant = Box::new(crate::domain::Grant {
            id: "0190a1b2-0000-7000-8000-000000000001".into(),
            tenant_id: crate::domain::TenantId::parse("acme").unwrap(),
            state: crate::domain::GrantState::Failed,
            allow_relink: false,
            requested_by: "a@acme.example".into(),
            request_id: "r".into(),
            created_at: crate::domain::now(),
            expires_at: crate::domain::now(),
            completed_at: None,
            microsoft_tenant_id: None,
            error: None,
            error_description: None,
            domain_outcomes: Vec::new(),
        });
        errors.push(ApiError::from(ConsentError::Expired(grant.clone())));
        errors.push(ApiError::from(ConsentError::RelinkRefused {
            grant,
            message: "x".into(),
        }));
        errors.push(ApiError::from(StoreError::TooManyRecipients {
            message_id: "<m@x.example>".into(),
            max: 10_000,
        }));
        errors.push(ApiError::from(StoreError::TenantHasActiveJobs {
            tenant: "acme".into(),
            jobs: 2,
        }));
        errors.push(crate::api::context::tenant_not_allowed(
            &crate::domain::TenantId::parse("acme").unwrap(),
        ));
        errors
    }

    #[test]
    fn every_reason_the_server_sends_is_documented_with_its_metadata() {
        let documented = documented();
        let mut sent_reasons = BTreeSet::new();
        for err in every_error() {
            let what = format!("{err:?}");
            let status = Status::from(err);
            let info = status
                .get_error_details()
                .error_info()
                .cloned()
                .unwrap_or_else(|| panic!("{what}: no ErrorInfo"));
            assert_eq!(info.domain, ERROR_DOMAIN, "{what}");
            let keys = documented
                .get(&info.reason)
                .unwrap_or_else(|| panic!("{what}: reason {} is not in errors.proto", info.reason));
            let sent: BTreeSet<String> = info.metadata.keys().cloned().collect();
            assert_eq!(&sent, keys, "{what}: metadata keys");
            assert_ne!(info.reason, "UNSPECIFIED", "{what}");
            sent_reasons.insert(info.reason);
        }
        // The samples cover every documented reason: a new reason needs a sample here.
        let all: BTreeSet<String> = documented
            .keys()
            .filter(|r| r.as_str() != "UNSPECIFIED")
            .cloned()
            .collect();
        assert_eq!(sent_reasons, all, "a documented reason without a sample");
    }

    #[test]
    fn missing_resources_name_their_message_type() {
        let status = Status::from(ApiError::NotFound {
            resource: "retract job",
            id: "0190".into(),
        });
        let resource = status.get_error_details().resource_info().cloned().unwrap();
        assert_eq!(resource.resource_type, "retract.v1.RetractJob");
        assert_eq!(resource.resource_name, "0190");
    }

    #[test]
    fn an_undecodable_request_names_the_field_the_decoder_was_in() {
        let cases = [
            (
                "Delivery.recipients: RecordDeliveryRequest.delivery: invalid string value: data is not UTF-8 encoded",
                "delivery.recipients",
                "is not a valid protobuf encoding: invalid string value: data is not UTF-8 encoded",
            ),
            (
                "invalid wire type value: 7",
                WHOLE_REQUEST,
                "is not a valid protobuf encoding: invalid wire type value: 7",
            ),
            ("", WHOLE_REQUEST, "is not a valid protobuf encoding: "),
        ];
        for (detail, field, description) in cases {
            let status = undecodable_request_status(detail);
            assert_eq!(status.code(), Code::InvalidArgument);
            let details = status.get_error_details();
            let violations = &details.bad_request().unwrap().field_violations;
            assert_eq!(violations.len(), 1, "{detail}");
            assert_eq!(
                (
                    violations[0].field.as_str(),
                    violations[0].description.as_str()
                ),
                (field, description),
                "{detail}"
            );
            assert_eq!(details.error_info().unwrap().reason, "INVALID_ARGUMENT");
        }
    }

    /// What a status costs in headers, as an HTTP/2 peer counts them (name, value, 32).
    fn header_bytes(status: &Status) -> usize {
        let mut headers = http::HeaderMap::new();
        status.add_header(&mut headers).unwrap();
        headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 32)
            .sum()
    }

    #[test]
    fn an_error_with_long_violations_fits_in_a_clients_header_limit() {
        // A retract naming a thousand mailboxes the delivery does not list, each explained.
        let violations: Vec<FieldViolation> = (0..1_000)
            .map(|i| FieldViolation {
                field: format!("options.recipients[{i}]"),
                description: format!(
                    "user{i}@contoso.example is not a recipient of this delivery, and its domain is not registered to this tenant"
                ),
            })
            .collect();
        let status = Status::from(ApiError::InvalidArgument(violations));
        assert!(
            header_bytes(&status) < 16 * 1024,
            "{}",
            header_bytes(&status)
        );
        let details = status.get_error_details();
        let sent = &details.bad_request().unwrap().field_violations;
        assert!(!sent.is_empty());
        assert_eq!(sent[0].field, "options.recipients[0]");
        assert_eq!(
            details.error_info().unwrap().metadata["field_count"],
            "1000"
        );

        let one_huge = vec![FieldViolation {
            field: "reason".to_owned(),
            description: "é".repeat(50_000),
        }];
        let status = Status::from(ApiError::InvalidArgument(one_huge));
        assert!(
            header_bytes(&status) < 16 * 1024,
            "{}",
            header_bytes(&status)
        );
        assert_eq!(
            status
                .get_error_details()
                .bad_request()
                .unwrap()
                .field_violations[0]
                .field,
            "reason"
        );
    }

    #[test]
    fn an_error_with_thousands_of_violations_stays_small_enough_for_proxies() {
        let violations: Vec<FieldViolation> = (0..10_000)
            .map(|i| FieldViolation {
                field: format!("delivery.recipients[{i}]"),
                description: "is not an email address (e.g. someone@example.com)".to_owned(),
            })
            .collect();
        let status = Status::from(ApiError::InvalidArgument(violations));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().len() <= MAX_STATUS_MESSAGE,
            "{}",
            status.message().len()
        );
        assert!(
            status.details().len() < 16 * 1024,
            "{}",
            status.details().len()
        );
    }
}
