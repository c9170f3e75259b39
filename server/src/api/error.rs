//! The API's one error type and the one place it becomes a `tonic::Status`.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::{
    auth::{AuthError, AuthRejection},
    consent::ConsentError,
    graph::GraphError,
    store::StoreError,
};

/// `google.rpc.ErrorInfo.domain` of every error this service sends.
pub const ERROR_DOMAIN: &str = "retract";

/// One invalid request field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path in the request, e.g. `domain` or `deliveries[3].recipients[0]`.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

/// Why a call failed, as the caller should learn it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// One or more fields are invalid; every violation is listed.
    #[error("invalid request: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// No valid credentials.
    #[error("{0}")]
    Unauthenticated(AuthError),
    /// Valid credentials, but not allowed to do this.
    #[error("{message}")]
    PermissionDenied {
        /// ErrorInfo reason, UPPER_SNAKE.
        reason: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// The named resource does not exist.
    #[error("{resource} {id:?} not found")]
    NotFound {
        /// The kind of resource.
        resource: &'static str,
        /// Its id.
        id: String,
    },
    /// The resource exists already.
    #[error("{resource} {id:?} already exists")]
    AlreadyExists {
        /// The kind of resource.
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
    /// The system is not in the state the call needs.
    #[error("{message}")]
    FailedPrecondition {
        /// ErrorInfo reason, UPPER_SNAKE.
        reason: &'static str,
        /// Human-readable explanation.
        message: String,
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
    /// Carries the ErrorInfo reason naming which.
    #[error("service temporarily unavailable; retry later")]
    Unavailable(&'static str),
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

impl From<ConsentError> for ApiError {
    fn from(err: ConsentError) -> Self {
        let precondition = |reason, err: &ConsentError| Self::FailedPrecondition {
            reason,
            message: err.to_string(),
        };
        match err {
            ConsentError::UnknownState => Self::InvalidArgument(vec![FieldViolation {
                field: "state".to_owned(),
                description: "is unknown or was already used".to_owned(),
            }]),
            ConsentError::Expired(_) => precondition("CONSENT_EXPIRED", &err),
            ConsentError::RelinkRefused { .. } => precondition("RELINK_REFUSED", &err),
            ConsentError::NotLinked(_) => precondition("TENANT_NOT_LINKED", &err),
            ConsentError::NotConfigured => precondition("GRAPH_NOT_CONFIGURED", &err),
            ConsentError::Unreachable(cause) => cause.into(),
            ConsentError::Store(store) => store.into(),
            ConsentError::Interrupted(why) => Self::Internal(why.into()),
        }
    }
}

impl From<GraphError> for ApiError {
    fn from(err: GraphError) -> Self {
        tracing::warn!(error = %err, "Microsoft 365 did not answer as needed");
        Self::Unavailable("MICROSOFT_UNAVAILABLE")
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        Self::Unauthenticated(err)
    }
}

impl From<AuthRejection> for ApiError {
    fn from(rejection: AuthRejection) -> Self {
        match rejection {
            AuthRejection::Unauthenticated(err) => Self::Unauthenticated(err),
            AuthRejection::RateLimited { retry_after } => Self::RateLimited { retry_after },
            AuthRejection::PermissionDenied { reason, message } => {
                Self::PermissionDenied { reason, message }
            }
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
            too_many @ StoreError::TooManyRecipients { .. } => Self::FailedPrecondition {
                reason: "TOO_MANY_RECIPIENTS",
                message: too_many.to_string(),
            },
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                Self::Unavailable("DATABASE_UNAVAILABLE")
            }
            other => Self::Internal(Box::new(other)),
        }
    }
}

fn upper_snake(resource: &str) -> String {
    resource.to_ascii_uppercase().replace([' ', '-'], "_")
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Self {
        let message = err.to_string();
        let info = |details: &mut ErrorDetails, reason: &str| {
            details.set_error_info(reason, ERROR_DOMAIN, HashMap::new());
        };
        let mut details = ErrorDetails::new();
        let code = match &err {
            ApiError::InvalidArgument(violations) => {
                info(&mut details, "INVALID_ARGUMENT");
                for v in violations.iter().take(super::validate::Violations::MAX) {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                Code::InvalidArgument
            }
            ApiError::Unauthenticated(auth) => {
                info(&mut details, auth.reason());
                Code::Unauthenticated
            }
            ApiError::PermissionDenied { reason, .. } => {
                info(&mut details, reason);
                Code::PermissionDenied
            }
            ApiError::NotFound { resource, id } => {
                info(
                    &mut details,
                    &format!("{}_NOT_FOUND", upper_snake(resource)),
                );
                details.set_resource_info(*resource, id.clone(), "", "not found");
                Code::NotFound
            }
            ApiError::AlreadyExists { resource, id } => {
                info(
                    &mut details,
                    &format!("{}_ALREADY_EXISTS", upper_snake(resource)),
                );
                details.set_resource_info(*resource, id.clone(), "", "already exists");
                Code::AlreadyExists
            }
            ApiError::FailedPrecondition { reason, .. } => {
                info(&mut details, reason);
                Code::FailedPrecondition
            }
            ApiError::RequestIdReused(_) => {
                info(&mut details, "REQUEST_ID_REUSED");
                Code::AlreadyExists
            }
            ApiError::RateLimited { retry_after } => {
                info(&mut details, "RATE_LIMITED");
                details.set_retry_info(Some(*retry_after));
                Code::ResourceExhausted
            }
            ApiError::Unimplemented(_) => {
                info(&mut details, "NOT_IMPLEMENTED");
                Code::Unimplemented
            }
            ApiError::DeadlineExceeded(_) => {
                info(&mut details, "DEADLINE_EXCEEDED");
                Code::DeadlineExceeded
            }
            ApiError::ShuttingDown(_) => {
                info(&mut details, "SERVER_STOPPING");
                details.set_retry_info(Some(std::time::Duration::from_secs(1)));
                Code::Unavailable
            }
            ApiError::Unavailable(reason) => {
                info(&mut details, reason);
                details.set_retry_info(Some(std::time::Duration::from_secs(1)));
                Code::Unavailable
            }
            ApiError::Internal(cause) => {
                tracing::error!(error = %cause, cause = ?cause, "internal error");
                info(&mut details, "INTERNAL");
                Code::Internal
            }
        };
        Status::with_error_details(code, bounded_message(message), details)
    }
}

/// The longest `grpc-message` sent (proxies refuse headers of tens of kilobytes).
pub const MAX_STATUS_MESSAGE: usize = 2_048;

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

#[cfg(test)]
mod tests {
    use super::*;

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
