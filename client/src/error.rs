//! [`Error`]: what a call through [`crate::Client`] can fail with, with the server's
//! `google.rpc` details decoded ([`ApiError`]).

use std::{collections::HashMap, time::Duration};

use tonic_types::StatusExt as _;

use crate::pb;

/// The `ErrorInfo.domain` of every error the retract server sends.
pub const ERROR_DOMAIN: &str = "retract.email-security.internal";

/// A gRPC status code, as the server (or the transport) answered.
///
/// Our own copy of the 17 codes, so that this crate's API does not change with tonic's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// Not an error.
    Ok,
    /// The call was cancelled (usually by the caller).
    Cancelled,
    /// An error the server or the transport could not classify.
    Unknown,
    /// A request field is invalid; see [`ApiError::field_violations`].
    InvalidArgument,
    /// The deadline passed before the call finished.
    DeadlineExceeded,
    /// The resource does not exist (for this caller).
    NotFound,
    /// The resource exists already.
    AlreadyExists,
    /// The caller is not allowed to do this.
    PermissionDenied,
    /// A rate limit or quota was hit; see [`ApiError::retry_delay`].
    ResourceExhausted,
    /// The system is not in the state the call needs.
    FailedPrecondition,
    /// The call was aborted (a conflict).
    Aborted,
    /// A value lies outside its valid range.
    OutOfRange,
    /// The server does not implement this.
    Unimplemented,
    /// A bug on the server.
    Internal,
    /// The server, or something it depends on, is unavailable now: try again later.
    Unavailable,
    /// Data was lost.
    DataLoss,
    /// The caller has no valid credentials.
    Unauthenticated,
}

impl From<tonic::Code> for Code {
    fn from(code: tonic::Code) -> Self {
        match code {
            tonic::Code::Ok => Self::Ok,
            tonic::Code::Cancelled => Self::Cancelled,
            tonic::Code::Unknown => Self::Unknown,
            tonic::Code::InvalidArgument => Self::InvalidArgument,
            tonic::Code::DeadlineExceeded => Self::DeadlineExceeded,
            tonic::Code::NotFound => Self::NotFound,
            tonic::Code::AlreadyExists => Self::AlreadyExists,
            tonic::Code::PermissionDenied => Self::PermissionDenied,
            tonic::Code::ResourceExhausted => Self::ResourceExhausted,
            tonic::Code::FailedPrecondition => Self::FailedPrecondition,
            tonic::Code::Aborted => Self::Aborted,
            tonic::Code::OutOfRange => Self::OutOfRange,
            tonic::Code::Unimplemented => Self::Unimplemented,
            tonic::Code::Internal => Self::Internal,
            tonic::Code::Unavailable => Self::Unavailable,
            tonic::Code::DataLoss => Self::DataLoss,
            tonic::Code::Unauthenticated => Self::Unauthenticated,
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Self::Ok => "OK",
            Self::Cancelled => "CANCELLED",
            Self::Unknown => "UNKNOWN",
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Self::NotFound => "NOT_FOUND",
            Self::AlreadyExists => "ALREADY_EXISTS",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Self::FailedPrecondition => "FAILED_PRECONDITION",
            Self::Aborted => "ABORTED",
            Self::OutOfRange => "OUT_OF_RANGE",
            Self::Unimplemented => "UNIMPLEMENTED",
            Self::Internal => "INTERNAL",
            Self::Unavailable => "UNAVAILABLE",
            Self::DataLoss => "DATA_LOSS",
            Self::Unauthenticated => "UNAUTHENTICATED",
        };
        f.write_str(name)
    }
}

/// One invalid request field, from the error's `google.rpc.BadRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path in the request, e.g. `options.recipients[2]`.
    pub field: String,
    /// Why it is invalid.
    pub description: String,
}

/// The server's answer to a failed call: its code and message, and the `google.rpc` details
/// it attached (`ErrorInfo`, `BadRequest`, `RetryInfo`).
#[derive(Debug, Clone)]
pub struct ApiError(Box<Answer>);

/// What [`ApiError`] holds (boxed, so `Result<_, Error>` stays small).
#[derive(Debug, Clone)]
struct Answer {
    code: Code,
    message: String,
    reason: Option<String>,
    metadata: HashMap<String, String>,
    field_violations: Vec<FieldViolation>,
    retry_delay: Option<Duration>,
}

impl ApiError {
    /// The gRPC status code.
    pub fn code(&self) -> Code {
        self.0.code
    }

    /// The server's human-readable message (for people, not for branching).
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// `ErrorInfo.reason` as sent, e.g. `TENANT_NOT_LINKED`; `None` when the error carried no
    /// `ErrorInfo` of the retract domain (a proxy or transport error).
    pub fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }

    /// The reason as the contract's typed [`pb::ErrorReason`]; `None` without one, or for a
    /// reason newer than this crate.
    pub fn error_reason(&self) -> Option<pb::ErrorReason> {
        let reason = self.0.reason.as_deref()?;
        pb::ErrorReason::from_str_name(&format!("ERROR_REASON_{reason}"))
    }

    /// `ErrorInfo.metadata`: the keys each reason documents (e.g. `job_id`, `last_sequence`).
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.0.metadata
    }

    /// Every invalid field the server named (INVALID_ARGUMENT).
    pub fn field_violations(&self) -> &[FieldViolation] {
        &self.0.field_violations
    }

    /// How long the server asked the caller to wait before trying again (`RetryInfo`).
    pub fn retry_delay(&self) -> Option<Duration> {
        self.0.retry_delay
    }

    pub(crate) fn from_status(status: &tonic::Status) -> Self {
        let details = status.get_error_details();
        let info = details
            .error_info()
            .filter(|info| info.domain == ERROR_DOMAIN);
        let mut message = status.message().to_owned();
        if info.is_none()
            && let Some(source) = std::error::Error::source(status)
        {
            // A transport failure: the useful part ("Connection refused") is in the sources.
            message = format!("{message}: {}", chain(source));
        }
        Self(Box::new(Answer {
            code: client_side_code(status),
            message,
            reason: info.map(|i| i.reason.clone()),
            metadata: info.map(|i| i.metadata.clone()).unwrap_or_default(),
            field_violations: details
                .bad_request()
                .map(|b| {
                    b.field_violations
                        .iter()
                        .map(|v| FieldViolation {
                            field: v.field.clone(),
                            description: v.description.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            retry_delay: details.retry_info().and_then(|r| r.retry_delay),
        }))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.code)?;
        if let Some(reason) = &self.0.reason {
            write!(f, " ({reason})")?;
        }
        write!(f, ": {}", self.0.message)?;
        for v in &self.0.field_violations {
            write!(f, "; {}: {}", v.field, v.description)?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        Self::from_status(&status)
    }
}

/// What a call through [`crate::Client`] can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint, a certificate or a key is not usable.
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The server could not be reached (or the TLS handshake failed).
    #[error("cannot connect to {endpoint}: {detail}")]
    Connect {
        /// Where.
        endpoint: String,
        /// Why, with the transport's cause chain.
        detail: String,
    },
    /// The token source failed to give a token.
    #[error("no caller token: {0}")]
    Token(String),
    /// The server (or the transport on the way) answered with an error.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A job's event stream broke its guarantee (a gap in the sequence numbers).
    #[error("event stream of job {job_id}: expected sequence {expected}, got {got}")]
    SequenceGap {
        /// The job.
        job_id: String,
        /// The sequence that should have come next.
        expected: i64,
        /// The one that came.
        got: i64,
    },
}

impl Error {
    /// The gRPC code this error amounts to: the server's, UNAVAILABLE for a connection that
    /// failed, UNAUTHENTICATED for a token source that failed, INVALID_ARGUMENT for bad
    /// configuration, DATA_LOSS for a broken stream.
    pub fn code(&self) -> Code {
        match self {
            Self::Config(_) => Code::InvalidArgument,
            Self::Connect { .. } => Code::Unavailable,
            Self::Token(_) => Code::Unauthenticated,
            Self::Api(e) => e.code(),
            Self::SequenceGap { .. } => Code::DataLoss,
        }
    }

    /// The server's decoded answer, when it was one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(e) => Some(e),
            _ => None,
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Self::Api(status.into())
    }
}

/// The status's code, except that tonic reports the caller's own deadline passing on the
/// client side as CANCELLED ("Timeout expired"): that is DEADLINE_EXCEEDED, as when the
/// server noticed it first.
fn client_side_code(status: &tonic::Status) -> Code {
    // tonic's timeout layer answers `Status::cancelled("Timeout expired")`, with or without
    // its `TimeoutExpired` as the source.
    if status.code() == tonic::Code::Cancelled
        && status.message() == tonic::TimeoutExpired(()).to_string()
    {
        return Code::DeadlineExceeded;
    }
    let mut source = std::error::Error::source(status);
    while let Some(s) = source {
        if s.is::<tonic::TimeoutExpired>() {
            return Code::DeadlineExceeded;
        }
        source = s.source();
    }
    status.code().into()
}

/// The cause chain of `err`, joined with `: ` (tonic's transport errors hide the useful part
/// in their sources).
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
