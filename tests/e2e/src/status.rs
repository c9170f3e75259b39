//! Reading the `google.rpc` details of an error status, as a caller would.

use tonic::{Code, Status};
use tonic_types::StatusExt as _;

/// What a test wants to know about a failed call.
#[derive(Debug)]
pub struct Failure {
    /// The status code.
    pub code: Code,
    /// The human-readable message.
    pub message: String,
    /// `ErrorInfo.reason` (every error carries one).
    pub reason: String,
    /// `ErrorInfo.domain`.
    pub domain: String,
    /// The fields named by `BadRequest`.
    pub fields: Vec<String>,
    /// `ErrorInfo.metadata`.
    pub metadata: std::collections::HashMap<String, String>,
}

/// Unpacks a status; panics if it lacks the ErrorInfo every error must carry.
pub fn failure(status: &Status) -> Failure {
    let details = status
        .check_error_details()
        .unwrap_or_else(|e| panic!("undecodable error details on {status:?}: {e}"));
    let info = details
        .error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo on {status:?}"));
    Failure {
        code: status.code(),
        message: status.message().to_owned(),
        reason: info.reason.clone(),
        domain: info.domain.clone(),
        metadata: info.metadata.clone().into_iter().collect(),
        fields: details
            .bad_request()
            .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
            .unwrap_or_default(),
    }
}

/// Unwraps the error of a call that must fail.
pub fn expect_failure<T: std::fmt::Debug>(result: Result<T, Status>) -> Failure {
    match result {
        Ok(ok) => panic!("expected the call to fail, it returned {ok:?}"),
        Err(status) => failure(&status),
    }
}
