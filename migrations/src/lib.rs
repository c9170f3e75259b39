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

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, TransactionTrait,
};

mod m20261127_000001_tenants_domains_audit;

/// The ordered list of retract's migrations.
pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261127_000001_tenants_domains_audit::Migration)]
    }
}

/// Key of the PostgreSQL advisory lock held while migrating ("retract" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x7265_7472_6163_74;

/// Applies every pending migration.
///
/// On PostgreSQL a transaction-scoped advisory lock is held on one pooled connection while the
/// migrations run on others, so concurrent callers wait for the first and then find nothing to
/// do. The pool therefore needs at least two connections. SQLite databases are embedded and
/// owned by one process, so no lock is taken there.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return Migrator::up(db, None).await;
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
