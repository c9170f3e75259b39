//! The store's one error type.

use sea_orm::{DbErr, RuntimeErr, SqlErr};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named row does not exist (or is not visible to the tenant asking).
    #[error("{resource} {id:?} not found")]
    NotFound {
        /// The kind of thing, e.g. "tenant".
        resource: &'static str,
        /// Its id as given.
        id: String,
    },
    /// A row with this key exists already.
    #[error("{resource} {id:?} already exists")]
    AlreadyExists {
        /// The kind of thing, e.g. "domain".
        resource: &'static str,
        /// Its id as given.
        id: String,
    },
    /// A retract's request id was used before with other options.
    #[error("request id {0:?} was used before with different options")]
    RequestIdReused(String),
    /// A restore of the job is running already (creating another one).
    #[error("restore job {0} of the retract job is running")]
    RestoreRunning(crate::domain::JobId),
    /// This worker no longer holds the job's lease (or the job already ended).
    #[error("lost the lease of retract job {0}")]
    LeaseLost(String),
    /// A delivery would have more recipients than one may have (merged reports included).
    #[error("delivery {message_id} would have more than {max} recipients")]
    TooManyRecipients {
        /// The internet message id.
        message_id: String,
        /// The most a delivery may have.
        max: usize,
    },
    /// The tenant cannot be deleted while jobs of it have not ended.
    #[error("tenant {tenant} has {jobs} jobs that have not ended")]
    TenantHasActiveJobs {
        /// The tenant.
        tenant: String,
        /// How many.
        jobs: u64,
    },
    /// The tenant is linked to another Microsoft tenant (and relinking was not allowed).
    #[error("the tenant is linked to another Microsoft 365 tenant")]
    LinkedElsewhere,
    /// The database could not be reached or gave no connection in time.
    #[error("database unavailable")]
    Unavailable(#[source] DbErr),
    /// Any other database failure.
    #[error("database error")]
    Database(#[source] DbErr),
    /// A stored value this version cannot read.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Classifies a database error: unreachable vs. anything else. A statement that failed
    /// because its connection broke (the socket, or the server ending the session: SQLSTATE
    /// class 08 or 57P, as at a restart or failover) is unavailability too: a pooled
    /// connection is only pinged after it sat idle, so a busy one that died is found by the
    /// statement it was given, and that statement's caller should retry.
    pub(crate) fn from_db(err: DbErr) -> Self {
        match &err {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(RuntimeErr::SqlxError(_)) => {
                Self::Unavailable(err)
            }
            DbErr::Query(RuntimeErr::SqlxError(e)) | DbErr::Exec(RuntimeErr::SqlxError(e))
                if connection_lost(e) =>
            {
                Self::Unavailable(err)
            }
            _ => Self::Database(err),
        }
    }

    /// Maps a unique-constraint violation to `AlreadyExists`, anything else as [`Self::from_db`].
    pub(crate) fn on_insert(resource: &'static str, id: &str) -> impl FnOnce(DbErr) -> Self {
        move |err| match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => Self::AlreadyExists {
                resource,
                id: id.to_owned(),
            },
            _ => Self::from_db(err),
        }
    }
}

/// Whether a statement failed because its connection was lost rather than for what it asked.
fn connection_lost(err: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error;
    match err {
        Error::Io(_) | Error::Tls(_) | Error::PoolClosed => true,
        Error::Database(db) => db
            .code()
            // Class 08 but 08P01 (a protocol violation: this program's fault, not the
            // connection's), and 57P (the server shutting down or restarting).
            .is_some_and(|code| {
                (code.starts_with("08") && code != "08P01") || code.starts_with("57P")
            }),
        _ => false,
    }
}

/// Reads a stored text back into its domain type; a value this version cannot parse is
/// `Corrupt`, naming `what`.
pub(crate) fn parse_stored<T>(
    what: &str,
    raw: &str,
    parse: fn(&str) -> Result<T, crate::domain::ValidationError>,
) -> Result<T, StoreError> {
    parse(raw).map_err(|e| StoreError::Corrupt(format!("{what} {raw:?}: {e}")))
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        Self::from_db(err)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn failed_statement(err: sea_orm::sqlx::Error) -> DbErr {
        DbErr::Query(RuntimeErr::SqlxError(Arc::new(err)))
    }

    #[test]
    fn a_statement_whose_connection_broke_is_unavailability_not_a_database_error() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        assert!(matches!(
            StoreError::from_db(failed_statement(sea_orm::sqlx::Error::Io(reset))),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from_db(failed_statement(sea_orm::sqlx::Error::PoolClosed)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from_db(failed_statement(sea_orm::sqlx::Error::RowNotFound)),
            StoreError::Database(_)
        ));
        assert!(matches!(
            StoreError::from_db(DbErr::Query(RuntimeErr::Internal("bad SQL".into()))),
            StoreError::Database(_)
        ));
    }
}
