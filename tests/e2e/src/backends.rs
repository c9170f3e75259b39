//! Running one test body on both database backends.

use std::{future::Future, io::Write as _};

use crate::db::Backend;

/// Runs `body` on `backend` and records that it ran. The PostgreSQL half is skipped (with a
/// message) only when `RETRACT_TEST_POSTGRES_URL` is unset.
pub async fn run_on<F, Fut>(backend: Backend, name: &str, body: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    if backend == Backend::Postgres && crate::db::postgres_admin_url().is_none() {
        eprintln!("skipped {name} on PostgreSQL: RETRACT_TEST_POSTGRES_URL is not set");
        return;
    }
    body(backend).await;
    record(backend.name(), name);
}

/// Runs a test that only PostgreSQL can run (SQLite cannot interleave its transactions) and
/// records it apart (`postgres-only`), outside CI's check that both backends ran the same tests.
pub async fn run_on_postgres_only<F, Fut>(name: &str, body: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    if crate::db::postgres_admin_url().is_none() {
        eprintln!("skipped {name} on PostgreSQL: RETRACT_TEST_POSTGRES_URL is not set");
        return;
    }
    body(Backend::Postgres).await;
    record("postgres-only", name);
}

/// Appends `{backend} {name}` to `RETRACT_TEST_RUN_LOG`, if set.
fn record(backend: &str, name: &str) {
    if let Ok(path) = std::env::var("RETRACT_TEST_RUN_LOG") {
        let line = format!("{backend} {name}\n");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot open RETRACT_TEST_RUN_LOG {path}: {e}"));
        file.write_all(line.as_bytes())
            .expect("append to RETRACT_TEST_RUN_LOG");
    }
}

/// Declares, for each named `async fn name(backend: Backend)`, a module `name` with two tests,
/// `sqlite` and `postgres`, that run it on each backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::backends::run_on(
                    $crate::db::Backend::Sqlite,
                    concat!(module_path!(), "::", stringify!($test)),
                    super::$test,
                )
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::backends::run_on(
                    $crate::db::Backend::Postgres,
                    concat!(module_path!(), "::", stringify!($test)),
                    super::$test,
                )
                .await;
            }
        }
    )+};
}
