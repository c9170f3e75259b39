//! retract's schema history.
//!
//! # Layout
//! - [`Migrator`]: every migration in order. A migration never changes after it lands on
//!   `main`; each capability adds its tables in a new one. Migrations name their own tables and
//!   columns (`Iden` enums) instead of importing the server's entities, so history stays fixed
//!   while the entities evolve.
//! - [`migrate`]: applies pending migrations, under a PostgreSQL advisory lock so replicas
//!   starting together do not race. The server calls it on start (unless told not to) and the
//!   `retract-migrate` binary calls it for operators who migrate separately.
//! - [`pending`]: the migrations this build knows that a database has not applied (the
//!   server's readiness reads it, without writing anything).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};

mod m20261127_000001_tenants_domains_audit;
mod m20261127_000002_grants;
mod m20261127_000003_deliveries;
mod m20261127_000004_retract_jobs;
mod m20261201_000005_job_read_model;
mod m20261201_000006_conversation_targets;
mod m20261201_000007_removed_copies;
mod m20261201_000008_job_runs;
mod m20261201_000009_deleted_tenants;
mod m20261202_000010_audit_purge_times;

/// The ordered list of retract's migrations.
pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_tenants_domains_audit::Migration),
            Box::new(m20261127_000002_grants::Migration),
            Box::new(m20261127_000003_deliveries::Migration),
            Box::new(m20261127_000004_retract_jobs::Migration),
            Box::new(m20261201_000005_job_read_model::Migration),
            Box::new(m20261201_000006_conversation_targets::Migration),
            Box::new(m20261201_000007_removed_copies::Migration),
            Box::new(m20261201_000008_job_runs::Migration),
            Box::new(m20261201_000009_deleted_tenants::Migration),
            Box::new(m20261202_000010_audit_purge_times::Migration),
        ]
    }
}

/// Key of the PostgreSQL advisory lock held while migrating ("retract" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x0072_6574_7261_6374;

/// Applies every pending migration.
///
/// Concurrent callers (replicas starting together, an operator's `retract-migrate` beside a
/// starting server) wait for the first and then find nothing to do:
/// - on PostgreSQL a transaction-scoped advisory lock is held on one pooled connection while
///   the migrations run on others (each in its own transaction), so the pool needs at least
///   two connections;
/// - on SQLite every migration runs inside one `BEGIN IMMEDIATE` transaction, which holds the
///   database's write lock from its first statement.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() == DatabaseBackend::Sqlite {
        let txn = db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await?;
        Migrator::up(&txn, None).await?;
        return txn.commit().await;
    }
    let lock = db.begin().await?;
    lock.execute_unprepared(&format!(
        "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
    ))
    .await?;
    let result = Migrator::up(db, None).await;
    lock.commit().await?;
    result
}

/// The names of the migrations this build knows that `db` has not applied, read without
/// creating anything (a database never migrated lists them all). Migrations applied that
/// this build does not know (a newer version migrated the database first, as the upgrade
/// procedure does) are not pending: sea-orm's own check refuses such a database, which would
/// take every replica of the older version out of service during an upgrade.
pub async fn pending(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    let backend = db.get_database_backend();
    let exists = match backend {
        DatabaseBackend::Sqlite => {
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'seaql_migrations'"
        }
        _ => {
            "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_name = 'seaql_migrations' AND table_schema = current_schema()"
        }
    };
    let tables: i64 = db
        .query_one_raw(sea_orm_migration::sea_orm::Statement::from_string(
            backend, exists,
        ))
        .await?
        .map(|row| row.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0);
    let applied: std::collections::HashSet<String> = if tables == 0 {
        std::collections::HashSet::new()
    } else {
        db.query_all_raw(sea_orm_migration::sea_orm::Statement::from_string(
            backend,
            "SELECT version FROM seaql_migrations",
        ))
        .await?
        .iter()
        .map(|row| row.try_get::<String>("", "version"))
        .collect::<Result<_, _>>()?
    };
    Ok(Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .filter(|name| !applied.contains(name))
        .collect())
}
