//! What a retract removed, copy by copy, so that a restore can put each back (and a resumed
//! job knows what it removed itself): written before
//! Graph removes the copies (a crash between the two cannot lose them), completed with the new
//! id Graph gives a moved copy, and marked with the restore job that put it back.

use std::collections::HashSet;

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
};

use super::{Store, StoreError, entities::removed_copy, entities::retract_job, parse_stored};
use crate::domain::{EmailAddress, JobId, JobKind, JobState, RemovedCopy};

/// Longest Graph item or folder id kept (Graph's are about 150 characters).
const MAX_ID_CHARS: usize = 512;

impl Store {
    /// Records where Graph put removed copies: `(item id before, item id now)`.
    pub async fn record_removed_ids(
        &self,
        job: &JobId,
        mailbox: &EmailAddress,
        moved: &[(String, String)],
    ) -> Result<(), StoreError> {
        let moved: Vec<Moved<'_>> = moved
            .iter()
            .map(|(item, now_at)| (mailbox, item.as_str(), now_at.as_str()))
            .collect();
        update_removed_ids(&self.db, job, &moved).await
    }

    /// Forgets copies `job` recorded but did not remove from `mailbox` (Graph failed, or the
    /// copy was gone already): a restore must not move them.
    pub async fn forget_removals(
        &self,
        job: &JobId,
        mailbox: &EmailAddress,
        items: &[String],
    ) -> Result<(), StoreError> {
        let items: Vec<(&EmailAddress, &str)> =
            items.iter().map(|item| (mailbox, item.as_str())).collect();
        delete_removals(&self.db, job, &items).await
    }

    /// The copies `job` removed from `mailbox` that no restore has put back yet.
    pub async fn unrestored_copies(
        &self,
        job: &JobId,
        mailbox: &EmailAddress,
    ) -> Result<Vec<RemovedCopy>, StoreError> {
        let rows = removed_copy::Entity::find()
            .filter(removed_copy::Column::JobId.eq(job.as_str()))
            .filter(removed_copy::Column::Mailbox.eq(mailbox.as_str()))
            .filter(removed_copy::Column::RestoredBy.is_null())
            .order_by_asc(removed_copy::Column::Hop)
            .order_by_asc(removed_copy::Column::ItemId)
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|row| {
                Ok(RemovedCopy {
                    mailbox: parse_stored(
                        "removed copy's mailbox",
                        &row.mailbox,
                        EmailAddress::parse,
                    )?,
                    item_id: row.item_id,
                    hop: u8::try_from(row.hop).map_err(|_| {
                        StoreError::Corrupt(format!("removed copy hop {}", row.hop))
                    })?,
                    internet_message_id: row.internet_message_id,
                    original_folder_id: row.original_folder_id,
                    removed_id: row.removed_id,
                })
            })
            .collect()
    }

    /// Marks copies of `job` in `mailbox` (by their item id before the retract) as put back
    /// by `restore`.
    pub async fn mark_restored(
        &self,
        job: &JobId,
        mailbox: &EmailAddress,
        restore: &JobId,
        items: &[String],
    ) -> Result<(), StoreError> {
        for chunk in items.chunks(500) {
            removed_copy::Entity::update_many()
                .col_expr(
                    removed_copy::Column::RestoredBy,
                    Expr::value(Some(restore.to_string())),
                )
                .filter(removed_copy::Column::JobId.eq(job.as_str()))
                .filter(removed_copy::Column::Mailbox.eq(mailbox.as_str()))
                .filter(removed_copy::Column::ItemId.is_in(chunk.iter().map(String::as_str)))
                .filter(removed_copy::Column::RestoredBy.is_null())
                .exec(&self.db)
                .await?;
        }
        Ok(())
    }

    /// How many copies of hop `hop` `job` recorded removing from `mailbox`.
    pub async fn recorded_removals(
        &self,
        job: &JobId,
        mailbox: &EmailAddress,
        hop: u8,
    ) -> Result<u32, StoreError> {
        use sea_orm::PaginatorTrait as _;
        let n = removed_copy::Entity::find()
            .filter(removed_copy::Column::JobId.eq(job.as_str()))
            .filter(removed_copy::Column::Mailbox.eq(mailbox.as_str()))
            .filter(removed_copy::Column::Hop.eq(i32::from(hop)))
            .count(&self.db)
            .await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The mailboxes where `job` removed copies that no restore has put back yet.
    pub async fn mailboxes_to_restore(&self, job: &JobId) -> Result<Vec<EmailAddress>, StoreError> {
        let rows: Vec<String> = removed_copy::Entity::find()
            .select_only()
            .column(removed_copy::Column::Mailbox)
            .distinct()
            .filter(removed_copy::Column::JobId.eq(job.as_str()))
            .filter(removed_copy::Column::RestoredBy.is_null())
            .order_by_asc(removed_copy::Column::Mailbox)
            .into_tuple()
            .all(&self.db)
            .await?;
        rows.iter()
            .map(|m| parse_stored("removed copy's mailbox", m, EmailAddress::parse))
            .collect()
    }

    /// A restore of `job` that has not ended, if any.
    pub async fn running_restore(&self, job: &JobId) -> Result<Option<JobId>, StoreError> {
        running_restore_of(&self.db, job).await
    }
}

/// A restore of `job` that has not ended, if any, read on `conn` (also inside the
/// transaction that creates a restore).
pub(super) async fn running_restore_of<C: ConnectionTrait>(
    conn: &C,
    job: &JobId,
) -> Result<Option<JobId>, StoreError> {
    let row: Option<String> = retract_job::Entity::find()
        .select_only()
        .column(retract_job::Column::Id)
        .filter(retract_job::Column::RestoresJobId.eq(job.as_str()))
        .filter(retract_job::Column::Kind.eq(JobKind::Restore.as_str()))
        .filter(
            retract_job::Column::State
                .is_in([JobState::Queued.as_str(), JobState::Running.as_str()]),
        )
        .into_tuple()
        .one(conn)
        .await?;
    row.map(|id| parse_stored("restore job id", &id, JobId::parse))
        .transpose()
}

/// Inserts `copies` as removed by `job` (a copy recorded before keeps its row).
pub(super) async fn insert_removals<C: ConnectionTrait>(
    conn: &C,
    job: &JobId,
    copies: &[RemovedCopy],
) -> Result<(), StoreError> {
    // What is kept: a copy whose id is longer than Graph's never are is not recorded, an
    // over-long Message-ID or folder id is dropped.
    let kept: Vec<RemovedCopy> = copies
        .iter()
        .filter(|c| c.item_id.chars().count() <= MAX_ID_CHARS)
        .map(|c| RemovedCopy {
            internet_message_id: c.internet_message_id.clone().filter(|m| m.len() <= 998),
            original_folder_id: c
                .original_folder_id
                .clone()
                .filter(|f| f.chars().count() <= MAX_ID_CHARS),
            removed_id: None,
            ..c.clone()
        })
        .collect();
    if kept.is_empty() {
        return Ok(());
    }
    let backend = conn.get_database_backend();
    if backend == sea_orm::DatabaseBackend::Postgres {
        // One array per column: the same statement text (and plan) whatever the count.
        let values: Vec<sea_orm::Value> = vec![
            job.as_str().into(),
            super::text_array(kept.iter().map(|c| Some(c.mailbox.to_string()))),
            super::text_array(kept.iter().map(|c| Some(c.item_id.clone()))),
            kept.iter()
                .map(|c| i32::from(c.hop))
                .collect::<Vec<_>>()
                .into(),
            super::text_array(kept.iter().map(|c| c.internet_message_id.clone())),
            super::text_array(kept.iter().map(|c| c.original_folder_id.clone())),
        ];
        let sql = "INSERT INTO retract_removed_copies (job_id, mailbox, item_id, hop, \
                   internet_message_id, original_folder_id) \
                   SELECT $1, m, i, h, NULLIF(mid, ''), NULLIF(f, '') \
                   FROM UNNEST($2::text[], $3::text[], $4::int4[], $5::text[], $6::text[]) \
                   AS u (m, i, h, mid, f) \
                   ON CONFLICT (job_id, mailbox, item_id) DO NOTHING";
        conn.execute_raw(sea_orm::Statement::from_sql_and_values(
            backend, sql, values,
        ))
        .await?;
        return Ok(());
    }
    // A few padded statement texts, each prepared once (see `sqlite_padded_rows`); the
    // padding's all-NULL rows are not inserted.
    for chunk in kept.chunks(super::SQLITE_MAX_ROWS) {
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 5 + 1);
        for c in chunk {
            values.extend([
                c.mailbox.as_str().into(),
                c.item_id.as_str().into(),
                i32::from(c.hop).into(),
                c.internet_message_id.as_deref().into(),
                c.original_folder_id.as_deref().into(),
            ]);
        }
        let tuples = super::sqlite_padded_rows(chunk.len(), 5, &mut values);
        values.push(job.as_str().into());
        let sql = format!(
            "WITH v (mailbox, item_id, hop, internet_message_id, original_folder_id) \
             AS (VALUES {tuples}) \
             INSERT INTO retract_removed_copies (job_id, mailbox, item_id, hop, \
             internet_message_id, original_folder_id) \
             SELECT ?, mailbox, item_id, hop, internet_message_id, original_folder_id \
             FROM v WHERE mailbox IS NOT NULL \
             ON CONFLICT (job_id, mailbox, item_id) DO NOTHING"
        );
        conn.execute_raw(sea_orm::Statement::from_sql_and_values(
            backend, sql, values,
        ))
        .await?;
    }
    Ok(())
}

/// A copy Graph moved: `(mailbox, item id before, item id now)`.
pub(super) type Moved<'a> = (&'a EmailAddress, &'a str, &'a str);

/// Records where Graph put moved copies, many mailboxes' at once: one statement per chunk
/// (a journal batch writes every mailbox's in one round trip, not one per copy).
pub(super) async fn update_removed_ids<C: ConnectionTrait>(
    conn: &C,
    job: &JobId,
    moved: &[Moved<'_>],
) -> Result<(), StoreError> {
    // A copy moved twice in one batch: where it went last (read from the end, first seen).
    let mut seen = HashSet::new();
    let kept: Vec<&Moved<'_>> = moved
        .iter()
        .rev()
        .filter(|(mailbox, item, now_at)| {
            seen.insert((*mailbox, *item)) && now_at.chars().count() <= MAX_ID_CHARS
        })
        .collect();
    let backend = conn.get_database_backend();
    for chunk in kept.chunks(super::SQLITE_MAX_ROWS) {
        let (sql, values) = if backend == sea_orm::DatabaseBackend::Postgres {
            let column = |pick: usize| -> sea_orm::Value {
                chunk
                    .iter()
                    .map(|(mailbox, item, now_at)| {
                        [mailbox.as_str(), item, now_at][pick].to_owned()
                    })
                    .collect::<Vec<String>>()
                    .into()
            };
            (
                // The job's id a column of the batch: by primary key whatever the plan
                // (see `finish_targets`).
                "UPDATE retract_removed_copies AS c SET removed_id = u.now_at \
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) \
                 AS u (job_id, mailbox, item_id, now_at) \
                 WHERE c.job_id = u.job_id AND c.mailbox = u.mailbox AND c.item_id = u.item_id"
                    .to_owned(),
                vec![
                    vec![job.to_string(); chunk.len()].into(),
                    column(0),
                    column(1),
                    column(2),
                ],
            )
        } else {
            // By primary key with the batch outside (see `finish_targets`), then by rowid.
            let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 3 + 1);
            for (mailbox, item, now_at) in chunk {
                values.extend([mailbox.as_str().into(), (*item).into(), (*now_at).into()]);
            }
            let tuples = super::sqlite_padded_rows(chunk.len(), 3, &mut values);
            values.push(job.as_str().into());
            (
                format!(
                    "WITH v (mailbox, item_id, now_at) AS (VALUES {tuples}), \
                     w AS MATERIALIZED (SELECT c.rowid AS rid, v.now_at FROM v \
                     CROSS JOIN retract_removed_copies AS c WHERE c.job_id = ? \
                     AND c.mailbox = v.mailbox AND c.item_id = v.item_id) \
                     UPDATE retract_removed_copies SET removed_id = \
                     (SELECT now_at FROM w WHERE w.rid = retract_removed_copies.rowid) \
                     WHERE retract_removed_copies.rowid IN (SELECT rid FROM w)"
                ),
                values,
            )
        };
        conn.execute_raw(sea_orm::Statement::from_sql_and_values(
            backend, sql, values,
        ))
        .await?;
    }
    Ok(())
}

/// Deletes the records of copies `job` did not remove after all: `(mailbox, item id)`.
pub(super) async fn delete_removals<C: ConnectionTrait>(
    conn: &C,
    job: &JobId,
    items: &[(&EmailAddress, &str)],
) -> Result<(), StoreError> {
    let mut by_mailbox: std::collections::BTreeMap<&EmailAddress, Vec<&str>> =
        std::collections::BTreeMap::new();
    for (mailbox, item) in items {
        by_mailbox.entry(mailbox).or_default().push(item);
    }
    for (mailbox, items) in by_mailbox {
        for chunk in items.chunks(500) {
            removed_copy::Entity::delete_many()
                .filter(removed_copy::Column::JobId.eq(job.as_str()))
                .filter(removed_copy::Column::Mailbox.eq(mailbox.as_str()))
                .filter(removed_copy::Column::ItemId.is_in(chunk.iter().copied()))
                .exec(conn)
                .await?;
        }
    }
    Ok(())
}
