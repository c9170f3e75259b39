//! Validating a whole request at once: every field is checked, and all violations come back
//! together in one `INVALID_ARGUMENT` with a `BadRequest` naming each field.

use super::{ApiError, FieldViolation, context::CallContext};
use crate::domain::{TenantId, ValidationError};

/// Names the field a parse result belongs to.
pub fn field<T>(name: &str, result: Result<T, ValidationError>) -> Result<T, FieldViolation> {
    result.map_err(|e| FieldViolation {
        field: name.to_owned(),
        description: e.0,
    })
}

/// What a field's check can refuse: one violation, or several (a nested message, a list).
pub trait IntoViolations {
    /// Adds the violations to `all`.
    fn into_violations(self, all: &mut Vec<FieldViolation>);
}

impl IntoViolations for FieldViolation {
    fn into_violations(self, all: &mut Vec<FieldViolation>) {
        all.push(self);
    }
}

impl From<FieldViolation> for Violations {
    fn from(violation: FieldViolation) -> Self {
        Self(vec![violation])
    }
}

impl IntoViolations for Violations {
    fn into_violations(self, all: &mut Vec<FieldViolation>) {
        all.extend(self.0);
    }
}

/// A tuple of per-field results that becomes the tuple of values, or every violation.
pub trait Validated: Sized {
    /// The values when every field is valid.
    type Output;
    /// All values, or `INVALID_ARGUMENT` listing every violation.
    fn validated(self) -> Result<Self::Output, ApiError>;

    /// All values of a request whose first field is its tenant, once the caller is allowed
    /// on that tenant: `INVALID_ARGUMENT` first, then `PERMISSION_DENIED` before any lookup.
    fn validated_for(self, ctx: &CallContext) -> Result<Self::Output, ApiError>
    where
        Self::Output: TenantFirst,
    {
        let values = self.validated()?;
        ctx.check_tenant(values.tenant())?;
        Ok(values)
    }
}

/// A tuple of request values that starts with the tenant the request acts on.
pub trait TenantFirst {
    /// That tenant.
    fn tenant(&self) -> &TenantId;
}

macro_rules! impl_tenant_first {
    ($($t:ident),*) => {
        impl<$($t),*> TenantFirst for (TenantId, $($t,)*) {
            fn tenant(&self) -> &TenantId {
                &self.0
            }
        }
    };
}

impl_tenant_first!();
impl_tenant_first!(B);
impl_tenant_first!(B, C);
impl_tenant_first!(B, C, D);
impl_tenant_first!(B, C, D, E);
impl_tenant_first!(B, C, D, E, F);
impl_tenant_first!(B, C, D, E, F, G);
impl_tenant_first!(B, C, D, E, F, G, H);
impl_tenant_first!(B, C, D, E, F, G, H, I);

macro_rules! impl_validated {
    ($($t:ident $e:ident),+) => {
        impl<$($t, $e: IntoViolations),+> Validated for ($(Result<$t, $e>,)+) {
            type Output = ($($t,)+);

            #[allow(non_snake_case)]
            fn validated(self) -> Result<Self::Output, ApiError> {
                let ($($t,)+) = self;
                let mut violations = Vec::new();
                $( let $t = $t.map_err(|v| v.into_violations(&mut violations)); )+
                match ($($t,)+) {
                    ($(Ok($t),)+) => Ok(($($t,)+)),
                    _ => Err(ApiError::InvalidArgument(violations)),
                }
            }
        }
    };
}

impl_validated!(A EA);
impl_validated!(A EA, B EB);
impl_validated!(A EA, B EB, C EC);
impl_validated!(A EA, B EB, C EC, D ED);
impl_validated!(A EA, B EB, C EC, D ED, E EE);
impl_validated!(A EA, B EB, C EC, D ED, E EE, F EF);
impl_validated!(A EA, B EB, C EC, D ED, E EE, F EF, G EG);
impl_validated!(A EA, B EB, C EC, D ED, E EE, F EF, G EG, H EH);
impl_validated!(A EA, B EB, C EC, D ED, E EE, F EF, G EG, H EH, I EI);

/// Collects violations of a request whose shape is not a fixed tuple (nested and repeated
/// fields); at most [`Violations::MAX`] are kept so an error stays readable.
#[derive(Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Most violations reported at once.
    pub const MAX: usize = 100;

    /// Records a violation.
    pub fn push(&mut self, field: &str, description: &str) {
        if self.0.len() < Self::MAX {
            self.0.push(FieldViolation {
                field: field.to_owned(),
                description: description.to_owned(),
            });
        }
    }

    /// The value, or `None` after recording why not.
    pub fn check<T>(&mut self, field: &str, result: Result<T, ValidationError>) -> Option<T> {
        result.map_err(|e| self.push(field, &e.0)).ok()
    }

    /// `value` when nothing was refused, else these violations (for [`Validated`] tuples).
    pub fn or_value<T>(self, value: Option<T>) -> Result<T, Self> {
        match value {
            Some(value) if self.0.is_empty() => Ok(value),
            _ => Err(self),
        }
    }
}

/// An id that is a UUID (grants, request ids), in its canonical hyphenated form.
pub fn uuid(raw: &str, what: &str) -> Result<String, ValidationError> {
    crate::domain::canonical_uuid(raw, &format!("{what} (a UUID)"))
}

/// An optional free-text filter: empty means "no filter"; otherwise at most `max` characters
/// and no control characters.
pub fn optional_text(raw: &str, max: usize) -> Result<Option<String>, ValidationError> {
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.chars().count() > max {
        return Err(ValidationError(format!("must be at most {max} characters")));
    }
    if raw.chars().any(char::is_control) {
        return Err(ValidationError(
            "must not contain control characters".into(),
        ));
    }
    Ok(Some(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_violation_is_reported_not_just_the_first() {
        let bad = |m: &str| Err::<u8, _>(ValidationError(m.into()));
        let err = (
            field("a", bad("one")),
            field("b", Ok::<_, ValidationError>(2u8)),
            field("c", bad("three")),
        )
            .validated()
            .unwrap_err();
        let ApiError::InvalidArgument(violations) = err else {
            panic!("expected InvalidArgument, got {err:?}")
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["a", "c"]);
    }

    #[test]
    fn valid_fields_come_back_in_order() {
        let ok = (
            field("a", Ok::<_, ValidationError>(1)),
            field("b", Ok::<_, ValidationError>("x")),
        )
            .validated()
            .unwrap();
        assert_eq!(ok, (1, "x"));
    }
}
