//! What the metrics endpoint reads from the database when scraped: jobs by state, and the
//! connection pool's use.

use sea_orm::{ConnectionTrait as _, Statement};

use super::{Store, StoreError};
use crate::domain::JobState;

/// The connection pool now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Connections open (idle or in use).
    pub open: u32,
    /// Open connections waiting for a query.
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}

impl Store {
    /// How many jobs (retracts and restores) are in each state.
    pub async fn jobs_by_state(&self) -> Result<Vec<(JobState, u64)>, StoreError> {
        let backend = self.db.get_database_backend();
        let rows = self
            .db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT state, COUNT(*) AS n FROM retract_jobs GROUP BY state",
            ))
            .await?;
        let mut counts = Vec::with_capacity(rows.len());
        for row in rows {
            let state: String = row.try_get("", "state")?;
            let n: i64 = row.try_get("", "n")?;
            if let Some(state) = JobState::from_stored(&state) {
                counts.push((state, u64::try_from(n).unwrap_or(0)));
            }
        }
        Ok(counts)
    }

    /// The connection pool's use.
    pub fn pool_usage(&self) -> Option<PoolUsage> {
        let usage = |size: u32, idle: usize, max: u32| PoolUsage {
            open: size,
            idle: u32::try_from(idle).unwrap_or(u32::MAX),
            max,
        };
        match self.db.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                Some(usage(
                    pool.size(),
                    pool.num_idle(),
                    pool.options().get_max_connections(),
                ))
            }
            sea_orm::DatabaseBackend::Sqlite => {
                let pool = self.db.get_sqlite_connection_pool();
                Some(usage(
                    pool.size(),
                    pool.num_idle(),
                    pool.options().get_max_connections(),
                ))
            }
            _ => None,
        }
    }
}
