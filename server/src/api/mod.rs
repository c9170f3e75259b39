//! The gRPC services. Proto types are converted to domain types here and nowhere else, and
//! every failure leaves through [`ApiError`] → `tonic::Status` (the one error table).
//!
//! # Layout
//! - `error`: [`ApiError`] and its mapping to `tonic::Status` with `google.rpc` details.
//! - `validate`: collecting every field violation of a request into one `INVALID_ARGUMENT`.
//! - `context`: the caller and request id of a call, tenant checks, audit entries.
//! - `convert`: domain → proto conversions (timestamps, JSON details).
//! - `deliveries`: reading delivered messages out of requests.
//! - `jobs`: retract options, jobs and events on the wire, and the engine's errors as
//!   `ApiError` (the engine itself plans, dispatches and watches).
//! - `tenant_service`, `retract_service`, `audit_service`: one file per service; each RPC is
//!   an inner function answering `Result<_, ApiError>` and a one-line trait method.

mod audit_service;
mod context;
mod convert;
mod deliveries;
mod error;
mod jobs;
mod retract_service;
mod tenant_service;
mod validate;

pub use audit_service::AuditApi;
pub use error::{
    ApiError, FieldViolation, PROST_DECODE_ERROR, WHOLE_REQUEST, rejection_status,
    undecodable_request_status,
};
pub use retract_service::RetractApi;
pub use tenant_service::TenantApi;
