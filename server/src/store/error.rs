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
    /// Classifies a database error: unreachable vs. anything else.
    pub(crate) fn from_db(err: DbErr) -> Self {
        match &err {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(RuntimeErr::SqlxError(_)) => {
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
