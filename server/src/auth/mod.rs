//! Who is calling: bearer JWTs become a [`Caller`] in the request's extensions, and every RPC
//! is checked against the one permission table ([`permissions::rule_for`]).
//!
//! # Layout
//! - `caller`: [`Caller`], [`Permission`] and the tenant scope of a caller.
//! - `jwt`: [`JwtVerifier`], which turns a token into a `Caller` or an [`AuthError`].
//! - `permissions`: the table mapping every RPC to the permission it needs.
//! - `layer`: [`AuthLayer`], the tower layer in front of the business services (health and
//!   reflection stay open).

mod caller;
mod jwt;
mod layer;
pub mod permissions;

pub use caller::{Caller, Permission, TenantScope};
pub use jwt::{AuthError, AuthSettings, JwtVerifier};
pub use layer::AuthLayer;
