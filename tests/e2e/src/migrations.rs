//! The schema: migrations that replicas (or an operator's `retract-migrate`) may run at once.

use std::time::Duration;

use retract_migrations::Migrator;
use retract_server::store::{DatabaseOptions, Store};
use sea_orm::Database;
use sea_orm_migration::MigratorTrait as _;

use crate::{
    app::TestApp,
    db::{Backend, TestDb},
    on_both_backends,
};

on_both_backends!(replicas_starting_together_migrate_once_and_all_start);

async fn replicas_starting_together_migrate_once_and_all_start(backend: Backend) {
    let db = TestDb::empty(backend).await;
    let options = DatabaseOptions {
        url: db.url.clone(),
        max_connections: 3,
        acquire_timeout: Duration::from_secs(10),
        sqlite_busy_timeout: Duration::from_secs(10),
    };
    let replicas = (0..3).map(|_| {
        let options = options.clone();
        tokio::spawn(async move {
            let store = Store::connect(&options).await?;
            store.migrate().await?;
            store.close().await
        })
    });
    for outcome in futures::future::join_all(replicas).await {
        outcome
            .unwrap()
            .expect("every replica migrates or finds nothing to do");
    }
    let conn = Database::connect(db.url.as_str()).await.unwrap();
    let applied = Migrator::get_applied_migrations(&conn).await.unwrap();
    assert_eq!(
        applied.len(),
        Migrator::migrations().len(),
        "each migration applied once"
    );
    assert!(
        Migrator::get_pending_migrations(&conn)
            .await
            .unwrap()
            .is_empty()
    );
    conn.close().await.ok();
    db.drop_database().await;

    // And a server started on an existing, migrated database simply serves it.
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    app.stop().await;
}
