//! Persistence: the queries the rest of the server needs, over sea-orm, on SQLite (embedded
//! default) or PostgreSQL (replicas). Domain types go in and come out; sea-orm models stay here.
//!
//! Every mutation that an administrator can see writes its audit event in the same transaction
//! as the change ([`audit::insert`]).

mod audit;
mod bounds;
mod deliveries;
mod domains;
mod entities;
mod error;
mod grants;
mod jobs;
mod offboarding;
mod recipient_pages;
mod restores;
mod stats;
mod tenants;

use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, DbErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
    sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
};

pub use deliveries::{DeliveryCursor, SEARCH_RECIPIENTS};
pub use error::StoreError;
use error::parse_stored;
pub use grants::ClaimedGrant;
pub use jobs::{
    CancelRequest, JobCursor, JobEnd, JobFilter, JobWrite, LastRetract, NewJob, TargetCursor,
    TargetFilter, job_fingerprint,
};
pub use offboarding::PURGE_ROWS;
pub use recipient_pages::{MAX_PAGES as RECIPIENT_PAGES_KEPT, RecipientPage};
pub use stats::PoolUsage;

/// A PostgreSQL text array for `UNNEST`, `None` as an empty text: sea-query cannot bind NULL
/// inside a text array (it panics), so the statement reads each back with `NULLIF(x, '')`.
fn text_array(items: impl Iterator<Item = Option<String>>) -> sea_orm::Value {
    items
        .map(Option::unwrap_or_default)
        .collect::<Vec<String>>()
        .into()
}

/// Most rows one padded SQLite statement carries (a power of two, so a full chunk needs no
/// padding; 512 rows of 7 values stay far under SQLite's 32,766 variables).
const SQLITE_MAX_ROWS: usize = 512;

/// The `(?, …), …` rows of an SQLite VALUES list of `rows` rows of `columns` values each,
/// padded to a power of two (at least 8) with all-NULL rows, which match nothing: a few
/// statement texts, each prepared once and cached, instead of one per batch size. `values`
/// gets the padding's NULLs.
fn sqlite_padded_rows(rows: usize, columns: usize, values: &mut Vec<sea_orm::Value>) -> String {
    let padded = rows.next_power_of_two().max(8);
    values.extend(std::iter::repeat_n(
        sea_orm::Value::String(None),
        (padded - rows) * columns,
    ));
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; padded].join(", ")
}

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct DatabaseOptions {
    /// `sqlite://file.db?mode=rwc` or `postgres://user@host:port/db`.
    pub url: String,
    /// Pool size on PostgreSQL (SQLite writes through one connection, so no `SQLITE_BUSY`, and
    /// reads through a few read-only ones beside it).
    pub max_connections: u32,
    /// How long a query waits for a pooled connection before the database counts as unavailable.
    pub acquire_timeout: Duration,
    /// How long SQLite waits for a lock held by another process.
    pub sqlite_busy_timeout: Duration,
}

/// A page of a keyset-paginated listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, in listing order.
    pub items: Vec<T>,
    /// Whether more items follow the last one.
    pub has_more: bool,
}

impl<T> Page<T> {
    /// The page token of the page after this one (keyed by `cursor` of the last item), or an
    /// empty string when this is the last page.
    pub fn next_page_token<C: serde::Serialize>(
        &self,
        query: &str,
        cursor: impl Fn(&T) -> C,
    ) -> String {
        match self.items.last() {
            Some(last) if self.has_more => crate::domain::PageToken::encode(query, &cursor(last)),
            _ => String::new(),
        }
    }

    /// Builds a page from up to `limit + 1` fetched rows.
    fn from_overfetch(mut items: Vec<T>, limit: u64) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_more = items.len() > limit;
        items.truncate(limit);
        Self { items, has_more }
    }
}

/// How long a pooled connection may sit idle before it is pinged on its next acquire (a
/// server restart, a proxy or a firewall drops idle connections; a busy one is known alive).
const IDLE_BEFORE_PING: Duration = Duration::from_secs(5);

/// Connections SQLite reads through beside its one writer (WAL: readers never wait for the
/// writer, nor it for them), so that the Retract tab and listings do not queue one statement
/// at a time behind every other call on the writer's connection.
const SQLITE_READERS: u32 = 4;

/// The database handle shared by every request.
#[derive(Debug, Clone)]
pub struct Store {
    /// Every write, and every read inside a transaction.
    db: DatabaseConnection,
    /// Reads of committed state that stand alone (a statement, not part of a transaction):
    /// on SQLite a pool of read-only connections, so they run beside the writer and each
    /// other; on PostgreSQL the same pool as `db`. A write committed on `db` is seen here.
    reads: DatabaseConnection,
    /// The Retract tab's recipient pages, by delivery version.
    recipient_pages: recipient_pages::RecipientPages,
}

impl Store {
    /// Connects (creating an SQLite file if missing). Does not migrate.
    pub async fn connect(options: &DatabaseOptions) -> Result<Self, StoreError> {
        let mut connect = ConnectOptions::new(options.url.clone());
        connect
            .acquire_timeout(options.acquire_timeout)
            .connect_timeout(options.acquire_timeout)
            // A connection in use is known to be alive: ping only one that sat idle (sqlx
            // pings on every acquire by default, a round trip before each statement).
            .test_before_acquire_if_idle_for(IDLE_BEFORE_PING)
            .sqlx_logging(false);
        let sqlite = options.url.starts_with("sqlite:");
        if !sqlite {
            // Migrations hold an advisory lock on one connection while running on another.
            connect.max_connections(options.max_connections.max(2));
            let db = Database::connect(connect).await?;
            return Ok(Self::over(db.clone(), db));
        }
        let busy = options.sqlite_busy_timeout;
        let mut writer = connect.clone();
        writer
            .max_connections(1)
            .min_connections(1)
            .map_sqlx_sqlite_opts(move |o| {
                sqlite_pragmas(o.create_if_missing(true), busy)
                    .synchronous(SqliteSynchronous::Normal)
            });
        let db = connect_sqlite(writer, busy).await?;
        // An in-memory or temporary SQLite database is one connection's own: it reads where
        // it writes.
        if !sqlite_file(&options.url) {
            return Ok(Self::over(db.clone(), db));
        }
        connect
            .max_connections(SQLITE_READERS)
            .min_connections(0)
            .map_sqlx_sqlite_opts(move |o| sqlite_pragmas(o.read_only(true), busy));
        let reads = Database::connect(connect).await?;
        Ok(Self::over(db, reads))
    }

    fn over(db: DatabaseConnection, reads: DatabaseConnection) -> Self {
        Self {
            db,
            reads,
            recipient_pages: recipient_pages::recipient_pages(),
        }
    }

    /// Applies pending migrations (under an advisory lock on PostgreSQL).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        retract_migrations::migrate(&self.db)
            .await
            .map_err(StoreError::from_db)
    }

    /// The migrations this build knows that the database has not applied (empty once
    /// migrated; read only).
    pub async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        retract_migrations::pending(&self.db)
            .await
            .map_err(StoreError::from_db)
    }

    /// Checks that the database can serve requests: on PostgreSQL a round trip; on SQLite that
    /// the write lock can be taken within the busy timeout (another process holding it would
    /// block every mutation, and every change here writes an audit event).
    pub async fn probe(&self) -> Result<(), StoreError> {
        match self.db.get_database_backend() {
            DatabaseBackend::Sqlite => {
                let txn = self.db.begin().await?;
                txn.execute_unprepared("DELETE FROM tenants WHERE 1 = 0")
                    .await?;
                txn.rollback().await?;
                Ok(())
            }
            _ => self.db.ping().await.map_err(StoreError::from_db),
        }
    }

    /// Closes the pools.
    pub async fn close(self) -> Result<(), StoreError> {
        if self.db.get_database_backend() == DatabaseBackend::Sqlite {
            self.reads.close().await.map_err(StoreError::from_db)?;
        }
        self.db.close().await.map_err(StoreError::from_db)
    }
}

/// What every SQLite connection here sets: WAL (readers beside the writer), foreign keys, and
/// how long to wait on a lock another process holds.
fn sqlite_pragmas(options: SqliteConnectOptions, busy: Duration) -> SqliteConnectOptions {
    options
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .busy_timeout(busy)
}

/// Whether an SQLite URL names a file other connections can open too (not `:memory:`,
/// `mode=memory`, or an empty path: a temporary database private to its connection).
fn sqlite_file(url: &str) -> bool {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    !path.is_empty() && path != ":memory:" && !query.split('&').any(|pair| pair == "mode=memory")
}

/// Connects to SQLite, retrying while another connection holds the lock that switching a new
/// file to WAL needs (SQLite answers `SQLITE_BUSY` there without waiting on the busy timeout).
async fn connect_sqlite(
    options: ConnectOptions,
    busy_timeout: Duration,
) -> Result<DatabaseConnection, StoreError> {
    let deadline = tokio::time::Instant::now() + busy_timeout;
    loop {
        match Database::connect(options.clone()).await {
            Err(err) if is_sqlite_busy(&err) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other.map_err(StoreError::from_db),
        }
    }
}

fn is_sqlite_busy(err: &DbErr) -> bool {
    use sea_orm::{RuntimeErr, sqlx};
    let sqlx_err = match err {
        DbErr::Conn(RuntimeErr::SqlxError(e)) | DbErr::Exec(RuntimeErr::SqlxError(e)) => e,
        _ => return false,
    };
    matches!(&**sqlx_err, sqlx::Error::Database(db) if db.code().as_deref() == Some("5"))
}

/// Begins a write transaction. On SQLite it is `BEGIN IMMEDIATE`: the write lock is taken
/// up front (waiting up to the busy timeout), so a transaction that reads before it writes
/// cannot fail with `SQLITE_BUSY` halfway when another process writes too.
async fn begin(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    if db.get_database_backend() == DatabaseBackend::Sqlite {
        db.begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await
    } else {
        db.begin().await
    }
}

/// Runs `f` in a transaction, committing on success and rolling back on error.
async fn in_transaction<T, F>(db: &DatabaseConnection, f: F) -> Result<T, StoreError>
where
    F: for<'t> FnOnce(
            &'t DatabaseTransaction,
        ) -> futures::future::BoxFuture<'t, Result<T, StoreError>>
        + Send,
    T: Send,
{
    let txn = begin(db).await?;
    match f(&txn).await {
        Ok(value) => {
            txn.commit().await?;
            Ok(value)
        }
        Err(err) => {
            txn.rollback().await.map_err(|e: DbErr| {
                tracing::warn!(error = %e, "rollback failed after {err}");
                StoreError::from_db(e)
            })?;
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sqlite_file;

    #[test]
    fn only_a_named_sqlite_file_gets_readers_of_its_own() {
        assert!(sqlite_file("sqlite://retract.db?mode=rwc"));
        assert!(sqlite_file("sqlite:///var/lib/memory-dumps/retract.db"));
        assert!(sqlite_file("sqlite:retract.db"));
        assert!(!sqlite_file("sqlite::memory:"));
        assert!(!sqlite_file("sqlite://:memory:"));
        assert!(!sqlite_file("sqlite://shared?mode=memory&cache=shared"));
        assert!(!sqlite_file("sqlite:"));
        assert!(!sqlite_file("sqlite://"));
        assert!(!sqlite_file("sqlite://?mode=rwc"));
    }
}
