//! Bounds of stored text columns: Microsoft's text goes through
//! [`crate::text::printable`] with its column's bound (PostgreSQL refuses an over-long
//! VARCHAR; SQLite would keep it).

pub(crate) use crate::text::printable as bounded;

/// `grants.error` is a VARCHAR(128).
pub(crate) const GRANT_ERROR: usize = 128;
/// Free text kept in TEXT columns (descriptions, reasons): bounded all the same.
pub(crate) const FREE_TEXT: usize = 2_000;
