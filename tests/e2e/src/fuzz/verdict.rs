//! What an answer to a hostile request may be: success, a clear refusal of the request
//! (`INVALID_ARGUMENT` with a `BadRequest` naming fields of the request), or a well-formed
//! request's honest `NOT_FOUND` / `FAILED_PRECONDITION` / … with a reason. Never `INTERNAL`,
//! `UNKNOWN` (a panic or a dropped stream), `UNAVAILABLE` or a hang.

use std::collections::{BTreeSet, HashMap};

use prost::Message as _;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

/// The field names of each method's request message, from the contract's descriptors,
/// keyed by gRPC path (`/retract.v1.TenantService/AddDomain`).
pub struct RequestFields(HashMap<String, BTreeSet<String>>);

impl RequestFields {
    /// Reads them from `retract-proto`'s embedded descriptor set.
    pub fn from_contract() -> Self {
        let set = prost_types::FileDescriptorSet::decode(retract_proto::FILE_DESCRIPTOR_SET)
            .expect("the embedded descriptor set decodes");
        let files: Vec<_> = set
            .file
            .iter()
            .filter(|f| f.package() == "retract.v1")
            .collect();
        let messages: HashMap<String, BTreeSet<String>> = files
            .iter()
            .flat_map(|f| f.message_type.iter())
            .map(|m| {
                let fields = m.field.iter().map(|f| f.name().to_owned()).collect();
                (format!(".retract.v1.{}", m.name()), fields)
            })
            .collect();
        let mut methods = HashMap::new();
        for file in &files {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/retract.v1.{}/{}", service.name(), method.name());
                    let fields = messages
                        .get(method.input_type())
                        .cloned()
                        .unwrap_or_default();
                    methods.insert(path, fields);
                }
            }
        }
        Self(methods)
    }

    /// Every method's gRPC path.
    pub fn methods(&self) -> BTreeSet<String> {
        self.0.keys().cloned().collect()
    }

    fn of(&self, method: &str) -> &BTreeSet<String> {
        self.0
            .get(method)
            .unwrap_or_else(|| panic!("{method} is not a method of retract.v1"))
    }
}

/// The field a violation names, without nested parts or indexes: `deliveries[3].sender` →
/// `deliveries`.
fn root_field(path: &str) -> &str {
    path.split(['.', '[']).next().unwrap_or(path)
}

/// Why `status`, the answer of `method` to a generated request, is not acceptable; `None`
/// when it is.
pub fn refusal_problem(fields: &RequestFields, method: &str, status: &Status) -> Option<String> {
    let details = status.get_error_details();
    let reason = details.error_info().map(|i| i.reason.clone());
    match status.code() {
        Code::InvalidArgument => {
            let Some(bad) = details.bad_request() else {
                return Some(format!("INVALID_ARGUMENT without a BadRequest: {status:?}"));
            };
            if bad.field_violations.is_empty() {
                return Some(format!("BadRequest without violations: {status:?}"));
            }
            let known = fields.of(method);
            for v in &bad.field_violations {
                // `(request)`: a body that does not decode, broken before any field.
                if v.field != "(request)" && !known.contains(root_field(&v.field)) {
                    return Some(format!(
                        "violation names {:?}, not a field of the request ({known:?}): {status:?}",
                        v.field
                    ));
                }
                if v.description.trim().is_empty() {
                    return Some(format!("violation of {:?} says nothing", v.field));
                }
            }
            (reason.as_deref() != Some("INVALID_ARGUMENT"))
                .then(|| format!("INVALID_ARGUMENT with reason {reason:?}"))
        }
        Code::NotFound
        | Code::AlreadyExists
        | Code::FailedPrecondition
        | Code::PermissionDenied
        | Code::OutOfRange => {
            if status.message().trim().is_empty() {
                return Some(format!("{:?} without a message", status.code()));
            }
            reason.is_none().then(|| {
                format!(
                    "{:?} without an ErrorInfo reason: {status:?}",
                    status.code()
                )
            })
        }
        _ => Some(format!("not an acceptable answer: {status:?}")),
    }
}
