//! Delivered messages: recording (merging repeats), searching, retention, and the mailbox
//! status the Retract tab reads.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use chrono::{DateTime, Utc};
use futures::FutureExt as _;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect, Statement, Value,
    sea_query::{Expr, ExprTrait as _, LikeExpr, OnConflict, Query, extension::postgres::PgFunc},
};

use super::{
    Page, Store, StoreError,
    entities::{delivery, delivery_recipient, mailbox_status},
    in_transaction, parse_stored,
    recipient_pages::{PageKey, RecipientPage},
};
use crate::domain::{
    Delivery, DeliveryFilter, EmailAddress, InternetMessageId, NewDelivery, PageRequest,
    RecordOutcome, Subject, TenantId, now,
};

/// Rows per multi-row INSERT (SQLite allows 32,766 bound values per statement).
const INSERT_CHUNK: usize = 2_000;
/// Values per `IN (…)` list.
const IN_CHUNK: usize = 500;
/// Recipients a search result carries at most.
pub const SEARCH_RECIPIENTS: u64 = 100;

/// The keyset cursor of SearchDeliveries: newest first by delivery time, then id.
pub type DeliveryCursor = (DateTime<Utc>, String);

impl Store {
    /// Records a batch of deliveries (distinct message ids) in one transaction: new messages
    /// are created, known ones gain the recipients they lacked and keep their first delivery
    /// time. Returns each delivery's outcome in order. A concurrent writer recording the same
    /// new message makes this retry once, then merge.
    pub async fn record_deliveries(
        &self,
        tenant: &TenantId,
        batch: Vec<NewDelivery>,
    ) -> Result<Vec<RecordOutcome>, StoreError> {
        let outcomes = match self.try_record(tenant, batch.clone()).await {
            Err(StoreError::AlreadyExists { .. }) => self.try_record(tenant, batch).await,
            other => other,
        }?;
        for outcome in [
            RecordOutcome::Created,
            RecordOutcome::Merged,
            RecordOutcome::Unchanged,
        ] {
            let n = outcomes.iter().filter(|o| **o == outcome).count();
            crate::telemetry::metrics::deliveries_recorded(
                tenant.as_str(),
                outcome.as_str(),
                n as u64,
            );
        }
        Ok(outcomes)
    }

    async fn try_record(
        &self,
        tenant: &TenantId,
        batch: Vec<NewDelivery>,
    ) -> Result<Vec<RecordOutcome>, StoreError> {
        let tenant = tenant.clone();
        in_transaction(&self.db, move |txn| {
            async move {
                // An offboarded tenant records nothing more. The row is locked first, so a
                // deletion in flight is waited for and its tombstone then seen; without a
                // row, only a tombstone refuses (as before the lock).
                if !super::tenants::lock_tenant(txn, &tenant).await?
                    && Store::is_deleted_tenant(txn, tenant.as_str()).await?
                {
                    return Err(StoreError::NotFound {
                        resource: "tenant",
                        id: tenant.to_string(),
                    });
                }
                let existing = existing_deliveries(txn, &tenant, &batch).await?;
                let known_ids: Vec<String> = existing.values().map(|d| d.id.clone()).collect();
                let mut known_recipients = recipients_of(txn, &known_ids).await?;
                let at = now();
                let mut new_rows = Vec::new();
                let mut recipient_rows = Vec::new();
                let mut merges = Vec::new();
                let mut redelivered = Vec::new();
                let mut outcomes = Vec::with_capacity(batch.len());
                for item in batch {
                    let too_many = || StoreError::TooManyRecipients {
                        message_id: item.message_id.to_string(),
                        max: NewDelivery::MAX_RECIPIENTS,
                    };
                    let Some(row) = existing.get(item.message_id.as_str()) else {
                        if item.recipients.len() > NewDelivery::MAX_RECIPIENTS {
                            return Err(too_many());
                        }
                        let id = uuid::Uuid::now_v7().to_string();
                        recipient_rows.extend(
                            item.recipients
                                .iter()
                                .map(|r| recipient(&id, &tenant, r.as_str(), item.delivered_at)),
                        );
                        new_rows.push(delivery::Model {
                            id,
                            tenant_id: tenant.as_str().to_owned(),
                            internet_message_id: item.message_id.as_str().to_owned(),
                            sender: item.sender.as_str().to_owned(),
                            subject: item.subject.as_str().to_owned(),
                            subject_folded: item.subject.as_str().to_lowercase(),
                            delivered_at: item.delivered_at,
                            recorded_at: at,
                            updated_at: at,
                            recipient_count: i32::try_from(item.recipients.len())
                                .unwrap_or(i32::MAX),
                        });
                        outcomes.push(RecordOutcome::Created);
                        continue;
                    };
                    let have = known_recipients.entry(row.id.clone()).or_default();
                    let added: Vec<&str> = item
                        .recipients
                        .iter()
                        .map(|r| r.as_str())
                        .filter(|r| !have.contains(*r))
                        .collect();
                    if have.len() + added.len() > NewDelivery::MAX_RECIPIENTS {
                        return Err(too_many());
                    }
                    // Known recipients the message reached again later (a quarantine
                    // re-release): their latest delivery time moves on.
                    if item.delivered_at > row.delivered_at {
                        redelivered.extend(
                            item.recipients
                                .iter()
                                .filter(|r| have.contains(r.as_str()))
                                .map(|r| Redelivery {
                                    delivery_id: row.id.clone(),
                                    address: r.as_str().to_owned(),
                                    at: item.delivered_at,
                                }),
                        );
                    }
                    let earlier = item.delivered_at < row.delivered_at;
                    if added.is_empty() && !earlier {
                        outcomes.push(RecordOutcome::Unchanged);
                        continue;
                    }
                    recipient_rows.extend(
                        added
                            .iter()
                            .map(|r| recipient(&row.id, &tenant, r, item.delivered_at)),
                    );
                    have.extend(added.iter().map(|r| (*r).to_owned()));
                    merges.push(Merge {
                        id: row.id.clone(),
                        recipient_count: i32::try_from(have.len()).unwrap_or(i32::MAX),
                        delivered_at: std::cmp::min(row.delivered_at, item.delivered_at),
                    });
                    outcomes.push(RecordOutcome::Merged);
                }
                insert_deliveries(txn, new_rows)
                    .await
                    .map_err(StoreError::on_insert("delivery", "of this batch"))?;
                insert_recipients(txn, recipient_rows).await?;
                // A delivery whose recipients' latest delivery times moved has changed too
                // (the Retract tab's cache is keyed by `updated_at`), though it reports
                // Unchanged.
                let mut touched = update_redelivered(txn, redelivered).await?;
                for merge in &merges {
                    touched.remove(&merge.id);
                }
                let by_id: HashMap<&str, &delivery::Model> =
                    existing.values().map(|d| (d.id.as_str(), d)).collect();
                merges.extend(touched.into_iter().filter_map(|id| {
                    let row = by_id.get(id.as_str())?;
                    Some(Merge {
                        recipient_count: row.recipient_count,
                        delivered_at: row.delivered_at,
                        id,
                    })
                }));
                update_merged(txn, merges, at).await?;
                Ok(outcomes)
            }
            .boxed()
        })
        .await
    }

    /// One delivery with every recipient, or `NotFound`.
    pub async fn get_delivery(
        &self,
        tenant: &TenantId,
        message_id: &InternetMessageId,
    ) -> Result<Delivery, StoreError> {
        let row = self.delivery_row(tenant, message_id).await?;
        let recipients = recipient_addresses(&self.reads, &row.id, None).await?;
        delivery_from_row(&row, &recipients)
    }

    /// A delivery with at most [`SEARCH_RECIPIENTS`] of its recipients, and one page of its
    /// recipients by address, each with the latest delivery time reported for it (`None` for
    /// recipients recorded before that was kept): the Retract tab.
    pub async fn delivery_and_recipients(
        &self,
        tenant: &TenantId,
        message_id: &InternetMessageId,
        page: &PageRequest<EmailAddress>,
    ) -> Result<(Delivery, Arc<RecipientPage>), StoreError> {
        let row = self.delivery_row(tenant, message_id).await?;
        let key = PageKey {
            delivery_id: row.id.clone(),
            updated_at: row.updated_at,
            recipient_count: row.recipient_count,
            after: page.after.clone(),
            size: page.size.get(),
        };
        let found = match self.recipient_pages.get(&key) {
            Some(found) => found,
            None => {
                let found = Arc::new(self.read_recipient_page(&row.id, page).await?);
                self.recipient_pages.keep(key, found.clone());
                found
            }
        };
        let mut delivery = delivery_from_row(&row, &[])?;
        delivery.recipients.clone_from(&found.sample);
        Ok((delivery, found))
    }

    /// The sample and one page of a delivery's recipients, from the database.
    async fn read_recipient_page(
        &self,
        delivery_id: &str,
        page: &PageRequest<EmailAddress>,
    ) -> Result<RecipientPage, StoreError> {
        let sample = recipient_addresses(&self.reads, delivery_id, Some(SEARCH_RECIPIENTS))
            .await?
            .iter()
            .map(|r| parse_stored("delivery recipient", r, EmailAddress::parse))
            .collect::<Result<_, _>>()?;
        let mut query = delivery_recipient::Entity::find()
            .select_only()
            .column(delivery_recipient::Column::Address)
            .column(delivery_recipient::Column::LastDeliveredAt)
            .filter(delivery_recipient::Column::DeliveryId.eq(delivery_id));
        if let Some(after) = &page.after {
            query = query.filter(delivery_recipient::Column::Address.gt(after.as_str()));
        }
        let rows: Vec<(String, Option<DateTime<Utc>>)> = query
            .order_by_asc(delivery_recipient::Column::Address)
            .limit(page.size.get() + 1)
            .into_tuple()
            .all(&self.reads)
            .await?;
        let recipients = rows
            .into_iter()
            .map(|(address, last_delivered_at)| {
                let address = parse_stored("delivery recipient", &address, EmailAddress::parse)?;
                Ok((address, last_delivered_at))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(RecipientPage::new(
            sample,
            Page::from_overfetch(recipients, page.size.get()),
        ))
    }

    async fn delivery_row(
        &self,
        tenant: &TenantId,
        message_id: &InternetMessageId,
    ) -> Result<delivery::Model, StoreError> {
        delivery::Entity::find()
            .filter(delivery::Column::TenantId.eq(tenant.as_str()))
            .filter(delivery::Column::InternetMessageId.eq(message_id.as_str()))
            .one(&self.reads)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                resource: "delivery",
                id: message_id.to_string(),
            })
    }

    /// A tenant's deliveries matching `filter`, newest first, each with at most
    /// [`SEARCH_RECIPIENTS`] recipients.
    pub async fn search_deliveries(
        &self,
        tenant: &TenantId,
        filter: &DeliveryFilter,
        page: &PageRequest<DeliveryCursor>,
    ) -> Result<Page<(Delivery, String)>, StoreError> {
        use delivery::Column;
        let mut query = delivery::Entity::find().filter(Column::TenantId.eq(tenant.as_str()));
        if let Some(id) = &filter.message_id {
            query = query.filter(Column::InternetMessageId.eq(id.as_str()));
        }
        if let Some(sender) = &filter.sender {
            query = query.filter(Column::Sender.eq(sender.as_str()));
        }
        if let Some(text) = &filter.subject_contains {
            // Both sides lowercased in Rust: SQLite's lower() knows only ASCII.
            let pattern = format!("%{}%", escape_like(&text.to_lowercase()));
            query = query
                .filter(Expr::col(Column::SubjectFolded).like(LikeExpr::new(pattern).escape('\\')));
        }
        if let Some(after) = filter.delivered_after {
            query = query.filter(Column::DeliveredAt.gte(after));
        }
        if let Some(before) = filter.delivered_before {
            query = query.filter(Column::DeliveredAt.lt(before));
        }
        if let Some(recipient) = &filter.recipient {
            query = query.filter(
                Column::Id.in_subquery(
                    Query::select()
                        .column(delivery_recipient::Column::DeliveryId)
                        .from(delivery_recipient::Entity)
                        .and_where(delivery_recipient::Column::TenantId.eq(tenant.as_str()))
                        .and_where(delivery_recipient::Column::Address.eq(recipient.as_str()))
                        .to_owned(),
                ),
            );
        }
        if let Some((at, id)) = &page.after {
            query = query.filter(
                Condition::any().add(Column::DeliveredAt.lt(*at)).add(
                    Condition::all()
                        .add(Column::DeliveredAt.eq(*at))
                        .add(Column::Id.lt(id.as_str())),
                ),
            );
        }
        let rows = query
            .order_by_desc(Column::DeliveredAt)
            .order_by_desc(Column::Id)
            .limit(page.size.get() + 1)
            .all(&self.reads)
            .await?;
        let page = Page::from_overfetch(rows, page.size.get());
        let mut items = Vec::with_capacity(page.items.len());
        for row in page.items {
            let recipients: Vec<String> = delivery_recipient::Entity::find()
                .filter(delivery_recipient::Column::DeliveryId.eq(row.id.as_str()))
                .order_by_asc(delivery_recipient::Column::Address)
                .limit(SEARCH_RECIPIENTS)
                .all(&self.reads)
                .await?
                .into_iter()
                .map(|r| r.address)
                .collect();
            let id = row.id.clone();
            items.push((delivery_from_row(&row, &recipients)?, id));
        }
        Ok(Page {
            items,
            has_more: page.has_more,
        })
    }

    /// Deletes deliveries (and their recipients) delivered before `cutoff`; returns how many.
    pub async fn purge_deliveries_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let old: Vec<String> = delivery::Entity::find()
            .select_only()
            .column(delivery::Column::Id)
            .filter(delivery::Column::DeliveredAt.lt(cutoff))
            .limit(10_000)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut removed = 0;
        for chunk in old.chunks(IN_CHUNK) {
            delivery_recipient::Entity::delete_many()
                .filter(
                    delivery_recipient::Column::DeliveryId.is_in(chunk.iter().map(String::as_str)),
                )
                .exec(&self.db)
                .await?;
            removed += delivery::Entity::delete_many()
                .filter(delivery::Column::Id.is_in(chunk.iter().map(String::as_str)))
                .exec(&self.db)
                .await?
                .rows_affected;
        }
        Ok(removed)
    }

    /// Remembers Graph's last permission-relevant answer for a mailbox (`ErrorAccessDenied`,
    /// `MailboxNotEnabledForRESTAPI`), or forgets it (`None`) once the mailbox works again.
    pub async fn record_mailbox_status(
        &self,
        tenant: &TenantId,
        address: &EmailAddress,
        problem: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        match problem {
            Some((code, detail)) => {
                let row = mailbox_status::ActiveModel {
                    tenant_id: Set(tenant.as_str().to_owned()),
                    address: Set(address.to_string()),
                    graph_code: Set(code.to_owned()),
                    detail: Set(detail.to_owned()),
                    observed_at: Set(now()),
                };
                mailbox_status::Entity::insert(row)
                    .on_conflict(
                        OnConflict::columns([
                            mailbox_status::Column::TenantId,
                            mailbox_status::Column::Address,
                        ])
                        .update_columns([
                            mailbox_status::Column::GraphCode,
                            mailbox_status::Column::Detail,
                            mailbox_status::Column::ObservedAt,
                        ])
                        .to_owned(),
                    )
                    .exec_without_returning(&self.db)
                    .await?;
            }
            None => {
                clear_mailbox_problems(&self.db, tenant, std::slice::from_ref(address)).await?;
            }
        }
        Ok(())
    }

    /// The known permission problems among `addresses`: address → (Graph code, detail).
    pub async fn mailbox_problems(
        &self,
        tenant: &TenantId,
        addresses: &[EmailAddress],
    ) -> Result<HashMap<EmailAddress, (String, String)>, StoreError> {
        let mut problems = HashMap::new();
        for chunk in addresses.chunks(IN_CHUNK) {
            let rows = mailbox_status::Entity::find()
                .filter(mailbox_status::Column::TenantId.eq(tenant.as_str()))
                .filter(
                    mailbox_status::Column::Address.is_in(chunk.iter().map(EmailAddress::as_str)),
                )
                .all(&self.db)
                .await?;
            for r in rows {
                let address = parse_stored("mailbox address", &r.address, EmailAddress::parse)?;
                problems.insert(address, (r.graph_code, r.detail));
            }
        }
        Ok(problems)
    }

    /// The known permission problems of one page of recipients, `page` in the order the
    /// store listed it ([`Store::delivery_and_recipients`]): one read of the tenant's
    /// problems between the page's first and last address (a range of the primary key, in
    /// the database's own order, without a parameter per address), keeping the page's.
    pub async fn mailbox_problems_of_page(
        &self,
        tenant: &TenantId,
        page: &[&EmailAddress],
    ) -> Result<HashMap<EmailAddress, (String, String)>, StoreError> {
        let (Some(first), Some(last)) = (page.first(), page.last()) else {
            return Ok(HashMap::new());
        };
        let rows: Vec<(String, String, String)> = mailbox_status::Entity::find()
            .select_only()
            .column(mailbox_status::Column::Address)
            .column(mailbox_status::Column::GraphCode)
            .column(mailbox_status::Column::Detail)
            .filter(mailbox_status::Column::TenantId.eq(tenant.as_str()))
            .filter(mailbox_status::Column::Address.between(first.as_str(), last.as_str()))
            .into_tuple()
            .all(&self.reads)
            .await?;
        let mut problems = HashMap::new();
        if rows.is_empty() {
            return Ok(problems);
        }
        let wanted: HashSet<&EmailAddress> = page.iter().copied().collect();
        for (address, code, detail) in rows {
            let address = parse_stored("mailbox address", &address, EmailAddress::parse)?;
            if wanted.contains(&address) {
                problems.insert(address, (code, detail));
            }
        }
        Ok(problems)
    }
}

async fn existing_deliveries<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    batch: &[NewDelivery],
) -> Result<HashMap<String, delivery::Model>, StoreError> {
    let mut ids: Vec<String> = batch
        .iter()
        .map(|d| d.message_id.as_str().to_owned())
        .collect();
    let mut found = HashMap::new();
    if conn.get_database_backend() == DbBackend::Postgres {
        // The ids as array parameters (one statement text and plan), each id looked up by
        // the (tenant, message id) unique index whatever the planner's statistics say (a
        // plain `= ANY($2)` on a table not yet analysed is planned as a filter over all the
        // tenant's rows). Locked so concurrent merges of one message apply one after the
        // other, counts and earliest time intact; in sorted order, so two batches sharing
        // messages cannot deadlock.
        ids.sort_unstable();
        let sql = "SELECT d.* FROM UNNEST($2::text[]) AS m(id), LATERAL (SELECT * FROM \
                   deliveries WHERE tenant_id = $1 AND internet_message_id = m.id LIMIT 1 \
                   FOR UPDATE) d";
        for chunk in byte_chunks(ids, |id| id.len() + PG_ELEMENT_OVERHEAD) {
            let rows = delivery::Entity::find()
                .from_raw_sql(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    sql,
                    [Value::from(tenant.as_str()), Value::from(chunk)],
                ))
                .all(conn)
                .await?;
            found.extend(rows.into_iter().map(|r| (r.internet_message_id.clone(), r)));
        }
        return Ok(found);
    }
    // SQLite writes one transaction at a time: no lock needed.
    for chunk in ids.chunks(IN_CHUNK) {
        let rows = delivery::Entity::find()
            .filter(delivery::Column::TenantId.eq(tenant.as_str()))
            .filter(delivery::Column::InternetMessageId.is_in(chunk.iter().map(String::as_str)))
            .lock_exclusive()
            .all(conn)
            .await?;
        found.extend(rows.into_iter().map(|r| (r.internet_message_id.clone(), r)));
    }
    Ok(found)
}

async fn recipients_of<C: ConnectionTrait>(
    conn: &C,
    delivery_ids: &[String],
) -> Result<HashMap<String, HashSet<String>>, StoreError> {
    let mut found: HashMap<String, HashSet<String>> = HashMap::new();
    let chunks = match conn.get_database_backend() {
        DbBackend::Postgres => {
            byte_chunks(delivery_ids.to_vec(), |id| id.len() + PG_ELEMENT_OVERHEAD)
        }
        _ => delivery_ids
            .chunks(IN_CHUNK)
            .map(<[String]>::to_vec)
            .collect(),
    };
    for chunk in chunks {
        let rows = delivery_recipient::Entity::find()
            .filter(one_of(conn, delivery_recipient::Column::DeliveryId, chunk))
            .all(conn)
            .await?;
        for row in rows {
            found
                .entry(row.delivery_id)
                .or_default()
                .insert(row.address);
        }
    }
    Ok(found)
}

fn recipient(
    delivery_id: &str,
    tenant: &TenantId,
    address: &str,
    delivered_at: DateTime<Utc>,
) -> delivery_recipient::Model {
    delivery_recipient::Model {
        delivery_id: delivery_id.to_owned(),
        tenant_id: tenant.as_str().to_owned(),
        address: address.to_owned(),
        last_delivered_at: Some(delivered_at),
    }
}

/// Inserts new deliveries. PostgreSQL: `INSERT … SELECT FROM UNNEST` of one array per
/// column — one statement text and plan for every batch size, where a multi-row VALUES list
/// is parsed and planned row by row (and prepared anew for each size) — sent in messages of
/// at most [`PG_MESSAGE_BYTES`]. SQLite: multi-row INSERTs within its bound-value limit.
async fn insert_deliveries<C: ConnectionTrait>(
    conn: &C,
    rows: Vec<delivery::Model>,
) -> Result<(), sea_orm::DbErr> {
    if conn.get_database_backend() != DbBackend::Postgres {
        for chunk in chunks(rows, INSERT_CHUNK) {
            delivery::Entity::insert_many(
                chunk.into_iter().map(IntoActiveModel::into_active_model),
            )
            .exec_without_returning(conn)
            .await?;
        }
        return Ok(());
    }
    let size = |r: &delivery::Model| {
        r.id.len()
            + r.tenant_id.len()
            + r.internet_message_id.len()
            + r.sender.len()
            + r.subject.len()
            + r.subject_folded.len()
            + 10 * PG_ELEMENT_OVERHEAD
            + 3 * 8
            + 4
    };
    for chunk in byte_chunks(rows, size) {
        let mut columns = DeliveryColumns::default();
        for row in chunk {
            columns.id.push(row.id);
            columns.tenant_id.push(row.tenant_id);
            columns.message_id.push(row.internet_message_id);
            columns.sender.push(row.sender);
            columns.subject.push(row.subject);
            columns.subject_folded.push(row.subject_folded);
            columns.delivered_at.push(row.delivered_at);
            columns.recorded_at.push(row.recorded_at);
            columns.updated_at.push(row.updated_at);
            columns.recipient_count.push(row.recipient_count);
        }
        let sql = "INSERT INTO deliveries (id, tenant_id, internet_message_id, sender, subject, \
                   subject_folded, delivered_at, recorded_at, updated_at, recipient_count) \
                   SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
                   $5::text[], $6::text[], $7::timestamptz[], $8::timestamptz[], \
                   $9::timestamptz[], $10::int4[])";
        let values: Vec<Value> = vec![
            columns.id.into(),
            columns.tenant_id.into(),
            columns.message_id.into(),
            columns.sender.into(),
            columns.subject.into(),
            columns.subject_folded.into(),
            columns.delivered_at.into(),
            columns.recorded_at.into(),
            columns.updated_at.into(),
            columns.recipient_count.into(),
        ];
        conn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await?;
    }
    Ok(())
}

/// A known delivery's row after a merge.
struct Merge {
    id: String,
    recipient_count: i32,
    /// The earliest delivery time reported.
    delivered_at: DateTime<Utc>,
}

/// A known recipient the message reached again at `at`.
struct Redelivery {
    delivery_id: String,
    address: String,
    at: DateTime<Utc>,
}

/// Rows per multi-row UPDATE on SQLite (three bound values a row).
const UPDATE_CHUNK: usize = 5_000;

/// Writes the merged deliveries' counts, earliest times and `updated_at`, a statement per
/// chunk (UNNEST arrays on PostgreSQL, a VALUES list on SQLite) rather than one per row.
async fn update_merged<C: ConnectionTrait>(
    conn: &C,
    merges: Vec<Merge>,
    at: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    if conn.get_database_backend() == DbBackend::Postgres {
        let size = |m: &Merge| m.id.len() + 3 * PG_ELEMENT_OVERHEAD + 4 + 8;
        for chunk in byte_chunks(merges, size) {
            let (mut ids, mut counts, mut times) = (Vec::new(), Vec::new(), Vec::new());
            for m in chunk {
                ids.push(m.id);
                counts.push(m.recipient_count);
                times.push(m.delivered_at);
            }
            let sql = "UPDATE deliveries AS d SET recipient_count = u.n, delivered_at = u.at, \
                       updated_at = $4 \
                       FROM UNNEST($1::text[], $2::int4[], $3::timestamptz[]) AS u(id, n, at) \
                       WHERE d.id = u.id";
            conn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                [ids.into(), counts.into(), times.into(), Value::from(at)],
            ))
            .await?;
        }
        return Ok(());
    }
    for chunk in chunks(merges, UPDATE_CHUNK) {
        let rows = vec!["(?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "UPDATE deliveries SET recipient_count = u.column2, delivered_at = u.column3, \
             updated_at = ? FROM (VALUES {rows}) AS u WHERE deliveries.id = u.column1"
        );
        let mut values = vec![Value::from(at)];
        for m in chunk {
            values.extend([
                Value::from(m.id),
                Value::from(m.recipient_count),
                Value::from(m.delivered_at),
            ]);
        }
        conn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            sql,
            values,
        ))
        .await?;
    }
    Ok(())
}

/// Moves the latest delivery time of recipients reached again (never backwards); answers
/// the deliveries whose recipients changed.
async fn update_redelivered<C: ConnectionTrait>(
    conn: &C,
    rows: Vec<Redelivery>,
) -> Result<HashSet<String>, sea_orm::DbErr> {
    let mut touched = HashSet::new();
    if conn.get_database_backend() == DbBackend::Postgres {
        let size =
            |r: &Redelivery| r.delivery_id.len() + r.address.len() + 3 * PG_ELEMENT_OVERHEAD + 8;
        for chunk in byte_chunks(rows, size) {
            let (mut ids, mut addresses, mut times) = (Vec::new(), Vec::new(), Vec::new());
            for r in chunk {
                ids.push(r.delivery_id);
                addresses.push(r.address);
                times.push(r.at);
            }
            let sql = "UPDATE delivery_recipients AS r SET last_delivered_at = u.at \
                       FROM UNNEST($1::text[], $2::text[], $3::timestamptz[]) AS u(id, address, at) \
                       WHERE r.delivery_id = u.id AND r.address = u.address \
                       AND (r.last_delivered_at IS NULL OR r.last_delivered_at < u.at) \
                       RETURNING r.delivery_id";
            let changed = conn
                .query_all_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    sql,
                    [ids.into(), addresses.into(), times.into()],
                ))
                .await?;
            for row in changed {
                touched.insert(row.try_get_by_index::<String>(0)?);
            }
        }
        return Ok(touched);
    }
    for chunk in chunks(rows, UPDATE_CHUNK) {
        let values_sql = vec!["(?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "UPDATE delivery_recipients SET last_delivered_at = u.column3 \
             FROM (VALUES {values_sql}) AS u \
             WHERE delivery_recipients.delivery_id = u.column1 \
             AND delivery_recipients.address = u.column2 \
             AND (delivery_recipients.last_delivered_at IS NULL \
             OR delivery_recipients.last_delivered_at < u.column3) \
             RETURNING delivery_recipients.delivery_id"
        );
        let mut values = Vec::with_capacity(3 * chunk.len());
        for r in chunk {
            values.extend([
                Value::from(r.delivery_id),
                Value::from(r.address),
                Value::from(r.at),
            ]);
        }
        let changed = conn
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                sql,
                values,
            ))
            .await?;
        for row in changed {
            touched.insert(row.try_get_by_index::<String>(0)?);
        }
    }
    Ok(touched)
}

/// The most bytes of parameters one PostgreSQL statement carries. sqlx 0.9.0 leaves Nagle's
/// algorithm on (it no longer sets TCP_NODELAY: transact-rs/sqlx#4335, fixed upstream after
/// 0.9.0), so a message larger than the socket's first send buffer (16 KiB on Linux) leaves
/// its tail waiting for the server's delayed ACK: 40 ms a statement, measured here on
/// loopback (15.5 KB: 0.1 ms; 16.9 KB: 41 ms). Below it a statement takes well under a
/// millisecond to send; a batch goes in a few such statements, each of the same text and
/// plan. 14 KiB leaves room for the message's headers and the other parameters.
const PG_MESSAGE_BYTES: usize = 14 * 1024;
/// Bytes an array element costs besides its data (its length word).
const PG_ELEMENT_OVERHEAD: usize = 4;

/// `rows` in order, cut into chunks of at most [`PG_MESSAGE_BYTES`] by `size` (a row larger
/// than that goes alone).
fn byte_chunks<T>(rows: Vec<T>, size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut bytes = 0;
    for row in rows {
        let n = size(&row);
        match out.last_mut() {
            Some(chunk) if bytes + n <= PG_MESSAGE_BYTES => {
                bytes += n;
                chunk.push(row);
            }
            _ => {
                bytes = n;
                out.push(vec![row]);
            }
        }
    }
    out
}

/// One array per column of `deliveries`, for UNNEST.
#[derive(Default)]
struct DeliveryColumns {
    id: Vec<String>,
    tenant_id: Vec<String>,
    message_id: Vec<String>,
    sender: Vec<String>,
    subject: Vec<String>,
    subject_folded: Vec<String>,
    delivered_at: Vec<DateTime<Utc>>,
    recorded_at: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
    recipient_count: Vec<i32>,
}

/// Inserts recipients, leaving those already recorded as they are (as
/// [`insert_deliveries`]: UNNEST statements on PostgreSQL).
async fn insert_recipients<C: ConnectionTrait>(
    conn: &C,
    rows: Vec<delivery_recipient::Model>,
) -> Result<(), sea_orm::DbErr> {
    if conn.get_database_backend() != DbBackend::Postgres {
        for chunk in chunks(rows, INSERT_CHUNK) {
            delivery_recipient::Entity::insert_many(
                chunk.into_iter().map(IntoActiveModel::into_active_model),
            )
            .on_conflict(
                OnConflict::columns([
                    delivery_recipient::Column::DeliveryId,
                    delivery_recipient::Column::Address,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
        }
        return Ok(());
    }
    let size = |r: &delivery_recipient::Model| {
        r.delivery_id.len() + r.tenant_id.len() + r.address.len() + 4 * PG_ELEMENT_OVERHEAD + 8
    };
    for chunk in byte_chunks(rows, size) {
        let mut delivery_ids = Vec::with_capacity(chunk.len());
        let mut tenant_ids = Vec::with_capacity(chunk.len());
        let mut addresses = Vec::with_capacity(chunk.len());
        let mut last_delivered = Vec::with_capacity(chunk.len());
        for row in chunk {
            delivery_ids.push(row.delivery_id);
            tenant_ids.push(row.tenant_id);
            addresses.push(row.address);
            last_delivered.push(Value::ChronoDateTimeUtc(row.last_delivered_at));
        }
        let sql = "INSERT INTO delivery_recipients (delivery_id, tenant_id, address, \
                   last_delivered_at) \
                   SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[]) \
                   ON CONFLICT (delivery_id, address) DO NOTHING";
        let values: Vec<Value> = vec![
            delivery_ids.into(),
            tenant_ids.into(),
            addresses.into(),
            Value::Array(
                sea_orm::sea_query::ArrayType::ChronoDateTimeUtc,
                Some(Box::new(last_delivered)),
            ),
        ];
        conn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await?;
    }
    Ok(())
}

/// `column` is one of `values`: `= ANY($n)` with one array parameter on PostgreSQL (one plan
/// whatever the count), `IN (…)` elsewhere.
fn one_of<C: ConnectionTrait>(
    conn: &C,
    column: impl sea_orm::ColumnTrait,
    values: Vec<String>,
) -> sea_orm::sea_query::SimpleExpr {
    match conn.get_database_backend() {
        DbBackend::Postgres => Expr::col(column).eq(PgFunc::any(Expr::val(values))),
        _ => column.is_in(values),
    }
}

fn chunks<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut iter = items.into_iter().peekable();
    while iter.peek().is_some() {
        out.push(iter.by_ref().take(size).collect());
    }
    out
}

/// Escapes LIKE's wildcards so a subject search matches the text literally.
fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn delivery_from_row(row: &delivery::Model, recipients: &[String]) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        message_id: parse_stored(
            "delivery message id",
            &row.internet_message_id,
            InternetMessageId::parse,
        )?,
        sender: parse_stored("delivery sender", &row.sender, EmailAddress::parse)?,
        subject: parse_stored("delivery subject", &row.subject, Subject::parse)?,
        delivered_at: row.delivered_at,
        recorded_at: row.recorded_at,
        updated_at: row.updated_at,
        recipients: recipients
            .iter()
            .map(|r| parse_stored("delivery recipient", r, EmailAddress::parse))
            .collect::<Result<_, _>>()?,
        recipient_count: u32::try_from(row.recipient_count).unwrap_or(0),
    })
}

/// A delivery's recipient addresses in order, at most `limit` of them.
async fn recipient_addresses<C: ConnectionTrait>(
    conn: &C,
    delivery_id: &str,
    limit: Option<u64>,
) -> Result<Vec<String>, StoreError> {
    let mut query = delivery_recipient::Entity::find()
        .filter(delivery_recipient::Column::DeliveryId.eq(delivery_id))
        .order_by_asc(delivery_recipient::Column::Address);
    if let Some(limit) = limit {
        query = query.limit(limit);
    }
    Ok(query
        .all(conn)
        .await?
        .into_iter()
        .map(|r| r.address)
        .collect())
}

/// Forgets the problems recorded for `addresses` of `tenant` (Graph answered for them).
pub(super) async fn clear_mailbox_problems<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    addresses: &[EmailAddress],
) -> Result<(), StoreError> {
    // A journal batch clears its mailboxes' problems each time: one statement text whatever
    // the count (an array on PostgreSQL, a few padded lists on SQLite), prepared once.
    let backend = conn.get_database_backend();
    for chunk in addresses.chunks(super::SQLITE_MAX_ROWS) {
        let statement = if backend == DbBackend::Postgres {
            Statement::from_sql_and_values(
                backend,
                "DELETE FROM mailbox_status WHERE tenant_id = $1 AND address = ANY($2::text[])",
                [
                    tenant.as_str().into(),
                    chunk
                        .iter()
                        .map(|a| a.as_str().to_owned())
                        .collect::<Vec<String>>()
                        .into(),
                ],
            )
        } else {
            let mut values: Vec<Value> = chunk.iter().map(|a| a.as_str().into()).collect();
            let tuples = super::sqlite_padded_rows(chunk.len(), 1, &mut values);
            values.push(tenant.as_str().into());
            Statement::from_sql_and_values(
                backend,
                format!(
                    "WITH v (address) AS (VALUES {tuples}) DELETE FROM mailbox_status \
                     WHERE tenant_id = ? AND address IN (SELECT address FROM v)"
                ),
                values,
            )
        };
        conn.execute_raw(statement).await?;
    }
    Ok(())
}
