//! A fresh database per test.
//!
//! SQLite: a file in a temporary folder (not `:memory:`, which locks differently from the
//! production file). PostgreSQL: `CREATE DATABASE … TEMPLATE` a database this process migrated
//! once; databases are named after the process id, and those of processes that no longer run
//! (crashed runs) are swept at the start.

use std::{
    path::Path,
    sync::atomic::{AtomicU32, Ordering},
};

use sea_orm::{
    Database,
    sqlx::{AssertSqlSafe, Connection as _, Executor as _, PgConnection, SqliteConnection},
};
use tokio::sync::OnceCell;

/// Where a test's data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// The PostgreSQL maintenance URL the tests create databases through, if configured.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("RETRACT_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

const PREFIX: &str = "retract_t_";

static NEXT: AtomicU32 = AtomicU32::new(0);
static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// A database for one test. Call [`TestDb::drop_database`] at the end; a test that panics
/// leaves it for the sweep of the next run.
pub struct TestDb {
    /// The URL the server connects with.
    pub url: String,
    backend: Backend,
    place: Place,
}

enum Place {
    Sqlite(tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    /// A migrated, empty database.
    pub async fn migrated(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::sqlite(),
            Backend::Postgres => {
                let admin_url = admin_url();
                let template = TEMPLATE
                    .get_or_init(|| make_template(admin_url.clone()))
                    .await
                    .clone();
                let name = next_name();
                admin(
                    &admin_url,
                    &format!("CREATE DATABASE {name} TEMPLATE {template}"),
                )
                .await;
                Self::postgres(admin_url, name)
            }
        }
    }

    /// A database with no tables at all (for migration tests).
    pub async fn empty(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::sqlite(),
            Backend::Postgres => {
                let admin_url = admin_url();
                let name = next_name();
                admin(&admin_url, &format!("CREATE DATABASE {name}")).await;
                Self::postgres(admin_url, name)
            }
        }
    }

    fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("retract.db").display()
        );
        Self {
            url,
            backend: Backend::Sqlite,
            place: Place::Sqlite(dir),
        }
    }

    fn postgres(admin_url: String, name: String) -> Self {
        Self {
            url: with_database(&admin_url, &name),
            backend: Backend::Postgres,
            place: Place::Postgres { admin_url, name },
        }
    }

    /// Which backend it is on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Makes the database unusable for the server until the returned outage ends: PostgreSQL
    /// refuses connections and drops the open ones; SQLite's write lock is held by another
    /// connection, so nothing can write.
    pub async fn outage(&self) -> Outage {
        match &self.place {
            Place::Sqlite(dir) => {
                let url = format!("sqlite://{}", dir.path().join("retract.db").display());
                let mut conn = SqliteConnection::connect(&url).await.expect("open SQLite");
                conn.execute("BEGIN IMMEDIATE")
                    .await
                    .expect("take the write lock");
                Outage::Sqlite(conn)
            }
            Place::Postgres { admin_url, name } => {
                admin(
                    admin_url,
                    &format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"),
                )
                .await;
                admin(
                    admin_url,
                    &format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
                    ),
                )
                .await;
                Outage::Postgres {
                    admin_url: admin_url.clone(),
                    name: name.clone(),
                }
            }
        }
    }

    /// Removes the database.
    pub async fn drop_database(self) {
        match self.place {
            Place::Sqlite(dir) => drop(dir),
            Place::Postgres { admin_url, name } => {
                admin(
                    &admin_url,
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                )
                .await;
            }
        }
    }
}

/// A database outage in progress; [`Outage::end`] restores service.
pub enum Outage {
    /// Holding SQLite's write lock.
    Sqlite(SqliteConnection),
    /// Connections to this PostgreSQL database are refused.
    Postgres {
        /// The maintenance URL.
        admin_url: String,
        /// The database.
        name: String,
    },
}

impl Outage {
    /// Ends the outage.
    pub async fn end(self) {
        match self {
            Self::Sqlite(mut conn) => {
                conn.execute("ROLLBACK")
                    .await
                    .expect("release the write lock");
                conn.close().await.ok();
            }
            Self::Postgres { admin_url, name } => {
                admin(
                    &admin_url,
                    &format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"),
                )
                .await;
            }
        }
    }
}

fn admin_url() -> String {
    postgres_admin_url().expect("RETRACT_TEST_POSTGRES_URL is set for PostgreSQL tests")
}

fn next_name() -> String {
    format!(
        "{PREFIX}{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `postgres://host/db` with another database name.
fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = admin_url
        .split_once('?')
        .map_or((admin_url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Runs one maintenance statement. An unreachable server fails the test: with
/// `RETRACT_TEST_POSTGRES_URL` set, PostgreSQL tests never skip silently.
async fn admin(admin_url: &str, sql: &str) {
    let mut conn = PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at RETRACT_TEST_POSTGRES_URL is unreachable: {e}"));
    // Test-only maintenance statements over names this module generates.
    sea_orm::sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await.ok();
}

/// Sweeps databases of dead test processes, then creates and migrates this process's template.
async fn make_template(admin_url: String) -> String {
    sweep_leftovers(&admin_url).await;
    let template = format!("{PREFIX}{}_template", std::process::id());
    admin(
        &admin_url,
        &format!("DROP DATABASE IF EXISTS {template} WITH (FORCE)"),
    )
    .await;
    admin(&admin_url, &format!("CREATE DATABASE {template}")).await;
    let db = Database::connect(with_database(&admin_url, &template))
        .await
        .expect("connect to the template database");
    retract_migrations::migrate(&db)
        .await
        .expect("migrate the template database");
    db.close().await.ok();
    template
}

async fn sweep_leftovers(admin_url: &str) {
    let mut conn = PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at RETRACT_TEST_POSTGRES_URL is unreachable: {e}"));
    let names: Vec<(String,)> = sea_orm::sqlx::query_as(
        "SELECT datname FROM pg_database WHERE datname LIKE 'retract\\_t\\_%'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("list databases");
    for (name,) in names {
        let pid = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            sea_orm::sqlx::raw_sql(AssertSqlSafe(drop))
                .execute(&mut conn)
                .await
                .ok();
        }
    }
    conn.close().await.ok();
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_urls_swap_only_the_database_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://h/db?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
