//! Who is calling: bearer JWTs become a [`Caller`] in the request's extensions, every RPC is
//! checked against the one permission table ([`permissions::rule_for`]), and each caller's
//! request rate is limited.
//!
//! # Layout
//! - `caller`: [`Caller`], [`Permission`] and the tenant scope of a caller.
//! - `keys`: [`KeySet`], verification keys that pin their algorithm.
//! - `jwks`: [`KeySources`], loading keys from a secret, PEM files and JWKS (file or URL).
//! - `jwt`: [`JwtVerifier`], which turns a token into a `Caller` or an [`AuthError`].
//! - `permissions`: the table mapping every RPC to the permission it needs.
//! - `rate_limit`: [`RateLimiter`], a token bucket per caller.
//! - `concurrency`: [`CallerConcurrency`], the unary calls one caller may have in progress.
//! - `layer`: [`AuthLayer`], the tower layer in front of the business services (health and
//!   reflection stay open and unlimited).

mod caller;
mod concurrency;
mod jwks;
mod jwt;
mod keys;
mod layer;
pub mod permissions;
mod rate_limit;

pub use caller::{Caller, Permission, TenantScope};
pub use concurrency::{CallSlot, CallerConcurrency, StreamCaps, StreamSlot, StreamsExhausted};
pub use jwks::KeySources;
pub use jwt::{AuthError, JwtVerifier, TokenRules};
pub use keys::{KeyError, KeySet};
pub use layer::{AuthLayer, AuthRejection, Reject};
pub use rate_limit::{RateLimit, RateLimiter};
