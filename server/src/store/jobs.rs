//! Retract jobs, their targets and their event log. Every event takes the job's next
//! sequence number in the transaction that writes it (the job row's counter), so sequences
//! have no gaps; workers claim jobs through a lease.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::FutureExt as _;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
    sea_query::{Expr, ExprTrait as _},
};

use super::{
    Page, Store, StoreError, audit,
    entities::{removed_copy, retract_event, retract_job, retract_target},
    in_transaction, parse_stored,
};
use crate::domain::{
    AuditEntry, Cancellation, ConversationIndex, DepthSummary, Discovered, EmailAddress, EventKind,
    InternetMessageId, JobCounts, JobEvent, JobFailure, JobId, JobKind, JobState, MessageSnapshot,
    NewDelivery, PageRequest, Phase, RemovedCopy, RetractJob, RetractOptions, Target,
    TargetOutcome, TargetRecord, TargetResult, TargetWork, TenantId, Unfollowed, now,
};

/// One write of a running job's journal (see [`Store::write_journal`]): an event, or what
/// removing copies needs recorded, batched with the events of other mailboxes.
#[derive(Debug, Clone)]
pub enum JobWrite {
    /// An event of the job.
    Event(EventKind),
    /// Copies about to be removed (recorded before Graph removes them).
    Removing(Vec<RemovedCopy>),
    /// How removing copies of `mailbox` went, once Graph answered: where it moved some
    /// (`(item id before, item id now)`), and which it did not remove after all (Graph
    /// failed, or they were gone) — a restore must not move those.
    Removed {
        /// The mailbox.
        mailbox: EmailAddress,
        /// Each moved copy's id before and after.
        moved: Vec<(String, String)>,
        /// The ids of the copies not removed.
        not_removed: Vec<String>,
    },
    /// Graph answered for this mailbox: whatever problem was recorded for it is over.
    Reachable {
        /// Its tenant.
        tenant: TenantId,
        /// The mailbox.
        address: EmailAddress,
    },
}

/// A job to create.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Its id.
    pub id: JobId,
    /// The caller's idempotency key.
    pub request_id: String,
    /// What it does.
    pub options: RetractOptions,
    /// Who asked.
    pub requested_by: String,
    /// The mailboxes to visit, with a result for those settled up front (skipped).
    pub targets: Vec<(Target, Option<TargetResult>)>,
    /// The message as recorded now (a restore copies its retract's, which jobs made before
    /// snapshots were kept lack).
    pub message: Option<MessageSnapshot>,
    /// The correlation id of the dispatching call.
    pub correlation_id: String,
    /// For a RESTORE job: the retract job it undoes (`None`: a retract job).
    pub restores: Option<JobId>,
}

impl NewJob {
    /// What the job does.
    pub fn kind(&self) -> JobKind {
        if self.restores.is_some() {
            JobKind::Restore
        } else {
            JobKind::Retract
        }
    }

    /// The fingerprint that tells a repeated request id with another request: the options,
    /// and for a restore the job it undoes.
    pub fn fingerprint(&self) -> String {
        job_fingerprint(&self.options, self.restores.as_ref())
    }
}

/// See [`NewJob::fingerprint`]: a retract's is its options' fingerprint (as stored since the
/// first release); a restore's also names the job it undoes.
pub fn job_fingerprint(options: &RetractOptions, restores: Option<&JobId>) -> String {
    match restores {
        None => options.fingerprint(),
        Some(job) => {
            use sha2::Digest as _;
            hex::encode(sha2::Sha256::digest(format!(
                "restore|{job}|{}",
                options.fingerprint()
            )))
        }
    }
}

/// How a job ends.
#[derive(Debug, Clone)]
pub struct JobEnd {
    /// The final state.
    pub state: JobState,
    /// A one-line summary.
    pub detail: String,
    /// Why it failed, when FAILED.
    pub failure: Option<JobFailure>,
    /// The counters by depth.
    pub depths: Vec<DepthSummary>,
}

/// A cancellation to record.
#[derive(Debug, Clone)]
pub struct CancelRequest {
    /// Who asks.
    pub requested_by: String,
    /// Why.
    pub reason: Option<String>,
}

/// ListRetractTargets filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetFilter {
    /// Only these outcomes (`None`: unfinished); empty = any.
    pub outcomes: Vec<Option<TargetOutcome>>,
    /// Only this depth.
    pub depth: Option<u8>,
}

impl TargetFilter {
    /// A stable description for page-token fingerprints.
    pub fn fingerprint(&self) -> String {
        let outcomes: Vec<&str> = self
            .outcomes
            .iter()
            .map(|o| o.map_or("unfinished", TargetOutcome::as_str))
            .collect();
        crate::domain::fingerprint_fields(&[
            ("outcomes", outcomes.join(",")),
            (
                "depth",
                self.depth.map(|d| d.to_string()).unwrap_or_default(),
            ),
        ])
    }
}

/// The newest retract job that reached a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastRetract {
    /// The job.
    pub job_id: JobId,
    /// How the recipient's mailbox ended in it; `None` while unfinished.
    pub outcome: Option<TargetOutcome>,
    /// When the job was created.
    pub created_at: DateTime<Utc>,
}

/// The keyset cursor of ListRetractTargets: by depth, then mailbox.
pub type TargetCursor = (u8, String);

/// ListRetractJobs filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only in one of these states; empty = any.
    pub states: Vec<JobState>,
    /// Only requested by this caller.
    pub requested_by: Option<String>,
    /// Only for this message.
    pub message_id: Option<InternetMessageId>,
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before.
    pub created_before: Option<DateTime<Utc>>,
}

/// The keyset cursor of ListRetractJobs: newest first.
pub type JobCursor = (DateTime<Utc>, String);

impl JobFilter {
    /// A stable description for page-token fingerprints: every filter by name, empty when
    /// unset, times as RFC 3339.
    pub fn fingerprint(&self) -> String {
        let time = crate::domain::time_field;
        crate::domain::fingerprint_fields(&[
            (
                "states",
                self.states
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "requested_by",
                self.requested_by.clone().unwrap_or_default(),
            ),
            (
                "message_id",
                self.message_id
                    .as_ref()
                    .map(|m| m.as_str().to_owned())
                    .unwrap_or_default(),
            ),
            ("created_after", time(self.created_after)),
            ("created_before", time(self.created_before)),
        ])
    }
}

impl Store {
    /// Creates a job with its targets, its JobStarted event (and one event per target
    /// settled up front) and the audit entry, or returns the job this request id already
    /// made (`false`). The same request id with other options is `RequestIdReused`; a tenant
    /// that does not exist (deleted since the dispatch checks) is `NotFound`.
    pub async fn create_job(
        &self,
        tenant: &TenantId,
        new: NewJob,
        audit: AuditEntry,
    ) -> Result<(RetractJob, bool), StoreError> {
        let fingerprint = new.fingerprint();
        if let Some(found) = self
            .job_by_request_id(tenant, &new.request_id, &fingerprint)
            .await?
        {
            return Ok((found, false));
        }
        let created = self.insert_job(tenant, new.clone(), audit).await;
        match created {
            Err(StoreError::AlreadyExists { .. }) => match self
                .job_by_request_id(tenant, &new.request_id, &fingerprint)
                .await?
            {
                Some(found) => Ok((found, false)),
                None => Err(StoreError::Corrupt(
                    "job vanished after a request-id conflict".into(),
                )),
            },
            other => other.map(|job| (job, true)),
        }
    }

    /// The job a request id already made, if any (`RequestIdReused` when it was made for
    /// another request: see [`NewJob::fingerprint`]).
    pub async fn job_by_request_id(
        &self,
        tenant: &TenantId,
        request_id: &str,
        fingerprint: &str,
    ) -> Result<Option<RetractJob>, StoreError> {
        let row = retract_job::Entity::find()
            .filter(retract_job::Column::TenantId.eq(tenant.as_str()))
            .filter(retract_job::Column::RequestId.eq(request_id))
            .one(&self.db)
            .await?;
        match row {
            Some(row) if row.options_hash == fingerprint => Ok(Some(job_from_row(row)?)),
            Some(_) => Err(StoreError::RequestIdReused(request_id.to_owned())),
            None => Ok(None),
        }
    }

    async fn insert_job(
        &self,
        tenant: &TenantId,
        new: NewJob,
        audit: AuditEntry,
    ) -> Result<RetractJob, StoreError> {
        let tenant = tenant.clone();
        in_transaction(&self.db, move |txn| {
            async move {
                // The dispatch checks ran outside this transaction: a tenant deleted since
                // (or being deleted now) gets no job.
                if !super::tenants::lock_tenant(txn, &tenant).await? {
                    return Err(StoreError::NotFound {
                        resource: "tenant",
                        id: tenant.to_string(),
                    });
                }
                let at = now();
                let mut counts = JobCounts {
                    targets: u32::try_from(new.targets.len()).unwrap_or(u32::MAX),
                    ..JobCounts::default()
                };
                let mut events = Vec::new();
                let mut target_rows = Vec::new();
                for (target, settled) in &new.targets {
                    if let Some(result) = settled {
                        counts.record(result);
                        events.push(EventKind::Recipient {
                            target: target.clone(),
                            phase: Phase::Done,
                            result: Some(result.clone()),
                        });
                    }
                    target_rows.push(target_row(&new.id, target, settled.as_ref()));
                }
                // The job as created: its targets, none settled yet (the settled ones' DONE
                // events follow it).
                events.insert(
                    0,
                    EventKind::JobStarted {
                        targets: new.targets.iter().map(|(t, _)| t.clone()).collect(),
                        counts: JobCounts {
                            targets: counts.targets,
                            ..JobCounts::default()
                        },
                    },
                );
                let row = retract_job::ActiveModel {
                    id: Set(new.id.to_string()),
                    tenant_id: Set(tenant.as_str().to_owned()),
                    request_id: Set(new.request_id.clone()),
                    internet_message_id: Set(new.options.message_id.to_string()),
                    options_hash: Set(new.fingerprint()),
                    options: Set(to_json(&new.options)?),
                    requested_by: Set(new.requested_by.clone()),
                    state: Set(JobState::Queued.as_str().to_owned()),
                    counts: Set(to_json(&counts)?),
                    detail: Set(None),
                    cancel_requested: Set(false),
                    last_sequence: Set(i64::try_from(events.len()).unwrap_or(i64::MAX)),
                    lease_owner: Set(None),
                    lease_expires_at: Set(None),
                    created_at: Set(at),
                    started_at: Set(None),
                    finished_at: Set(None),
                    kind: Set(new.kind().as_str().to_owned()),
                    restores_job_id: Set(new.restores.as_ref().map(ToString::to_string)),
                    failure_code: Set(None),
                    cancel_requested_by: Set(None),
                    cancel_reason: Set(None),
                    cancel_requested_at: Set(None),
                    message_subject: Set(new.message.as_ref().map(|m| m.subject.clone())),
                    message_sender: Set(new.message.as_ref().map(|m| m.sender.clone())),
                    message_delivered_at: Set(new.message.as_ref().map(|m| m.delivered_at)),
                    correlation_id: Set(Some(new.correlation_id.clone())),
                    runs: Set(0),
                    last_run_error: Set(None),
                };
                if let Some(retract) = &new.restores {
                    // One restore of a retract at a time: the retract's row is locked (a
                    // no-op update) while the check and the insert run, so two restores
                    // dispatched at once cannot both pass.
                    retract_job::Entity::update_many()
                        .col_expr(
                            retract_job::Column::LastSequence,
                            Expr::col(retract_job::Column::LastSequence),
                        )
                        .filter(retract_job::Column::Id.eq(retract.as_str()))
                        .exec(txn)
                        .await?;
                    if let Some(running) = super::restores::running_restore_of(txn, retract).await?
                    {
                        return Err(StoreError::RestoreRunning(running));
                    }
                }
                let row = retract_job::Entity::insert(row)
                    .exec_with_returning(txn)
                    .await
                    .map_err(StoreError::on_insert("retract job", &new.request_id))?;
                for chunk in target_rows.chunks(1_000) {
                    retract_target::Entity::insert_many(chunk.to_vec())
                        .exec_without_returning(txn)
                        .await?;
                }
                for (i, kind) in events.iter().enumerate() {
                    insert_event(
                        txn,
                        &new.id,
                        i64::try_from(i + 1).unwrap_or(i64::MAX),
                        at,
                        kind,
                    )
                    .await?;
                }
                audit::insert(txn, audit).await?;
                job_from_row(row)
            }
            .boxed()
        })
        .await
    }

    /// One of `tenant`'s jobs: what callers may see (another tenant's job is `NotFound`).
    pub async fn tenant_job(
        &self,
        tenant: &TenantId,
        id: &JobId,
    ) -> Result<RetractJob, StoreError> {
        retract_job::Entity::find_by_id(id.as_str())
            .filter(retract_job::Column::TenantId.eq(tenant.as_str()))
            .one(&self.reads)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                resource: "retract job",
                id: id.to_string(),
            })
            .and_then(job_from_row)
    }

    /// A job by id alone, whatever its tenant: for the engine and watchers, which hold a job
    /// id the store or a tenant check gave them.
    pub async fn job_for_worker(&self, id: &JobId) -> Result<RetractJob, StoreError> {
        retract_job::Entity::find_by_id(id.as_str())
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                resource: "retract job",
                id: id.to_string(),
            })
            .and_then(job_from_row)
    }

    /// A tenant's jobs, newest first.
    pub async fn list_jobs(
        &self,
        tenant: &TenantId,
        filter: &JobFilter,
        page: &PageRequest<JobCursor>,
    ) -> Result<Page<RetractJob>, StoreError> {
        use retract_job::Column;
        let mut query = retract_job::Entity::find().filter(Column::TenantId.eq(tenant.as_str()));
        if !filter.states.is_empty() {
            query = query.filter(Column::State.is_in(filter.states.iter().map(|s| s.as_str())));
        }
        if let Some(requested_by) = &filter.requested_by {
            query = query.filter(Column::RequestedBy.eq(requested_by.as_str()));
        }
        if let Some(id) = &filter.message_id {
            query = query.filter(Column::InternetMessageId.eq(id.as_str()));
        }
        if let Some(after) = filter.created_after {
            query = query.filter(Column::CreatedAt.gte(after));
        }
        if let Some(before) = filter.created_before {
            query = query.filter(Column::CreatedAt.lt(before));
        }
        if let Some((at, id)) = &page.after {
            query = query.filter(
                Condition::any().add(Column::CreatedAt.lt(*at)).add(
                    Condition::all()
                        .add(Column::CreatedAt.eq(*at))
                        .add(Column::Id.lt(id.as_str())),
                ),
            );
        }
        let rows = query
            .order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::Id)
            .limit(page.size.get() + 1)
            .all(&self.reads)
            .await?;
        let jobs = rows
            .into_iter()
            .map(job_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(jobs, page.size.get()))
    }

    /// Claims the oldest unfinished job whose lease is free or expired, for `lease` — a job of
    /// a tenant not in `busy` (those the caller runs already) before any of theirs, so one
    /// tenant's many jobs do not queue another tenant's behind them — and never one of
    /// `running`, those the caller runs now. `FOR UPDATE SKIP LOCKED`
    /// on PostgreSQL, one atomic `UPDATE … RETURNING` on SQLite. The job and its tenant.
    pub async fn claim_job(
        &self,
        owner: &str,
        lease: Duration,
        busy: &[TenantId],
        running: &[JobId],
    ) -> Result<Option<(JobId, TenantId)>, StoreError> {
        let at = now();
        let until = at + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(30));
        let backend = self.db.get_database_backend();
        let postgres = backend == DatabaseBackend::Postgres;
        let skip_locked = if postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let p = |n: usize| {
            if postgres {
                format!("${n}")
            } else {
                "?".to_owned()
            }
        };
        let (p1, p2, p3, p4) = (p(1), p(2), p(3), p(4));
        let busy_first = if busy.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = (0..busy.len()).map(|i| p(5 + running.len() + i)).collect();
            format!(
                "CASE WHEN tenant_id IN ({}) THEN 1 ELSE 0 END, ",
                list.join(", ")
            )
        };
        // Never a job the caller runs already, even if its lease lapsed meanwhile (a paused
        // process, renewals failing): the owner name is the caller's, so nothing else would
        // fence the old run out.
        let not_running = if running.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = (0..running.len()).map(|i| p(5 + i)).collect();
            format!("AND id NOT IN ({}) ", list.join(", "))
        };
        let sql = format!(
            "UPDATE retract_jobs SET lease_owner = {p1}, lease_expires_at = {p2}, state = 'running', \
             started_at = COALESCE(started_at, {p3}), runs = runs + 1 \
             WHERE id = (SELECT id FROM retract_jobs WHERE state IN ('queued', 'running') \
             AND (lease_expires_at IS NULL OR lease_expires_at < {p4}) {not_running}\
             ORDER BY {busy_first}created_at LIMIT 1{skip_locked}) \
             RETURNING id, tenant_id, started_at"
        );
        let mut values: Vec<sea_orm::Value> =
            vec![owner.into(), until.into(), at.into(), at.into()];
        // In the order the text names them (SQLite's `?` are positional): the jobs running,
        // then the busy tenants.
        values.extend(running.iter().map(|j| j.as_str().into()));
        values.extend(busy.iter().map(|t| t.as_str().into()));
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        if let Some(row) = &row
            && row
                .try_get::<Option<DateTime<Utc>>>("", "started_at")?
                .is_some_and(|started| started < at - chrono::Duration::milliseconds(1))
        {
            // Started before this claim: taken over from a replica whose lease lapsed (or
            // that gave the job back).
            crate::telemetry::metrics::lease_taken_over();
        }
        Ok(match row {
            Some(row) => Some((
                parse_stored("job id", &row.try_get::<String>("", "id")?, JobId::parse)?,
                parse_stored(
                    "job tenant",
                    &row.try_get::<String>("", "tenant_id")?,
                    TenantId::parse,
                )?,
            )),
            None => None,
        })
    }

    /// Extends the lease `owner` holds on a job; `false` when it lost it.
    pub async fn renew_lease(
        &self,
        job_id: &JobId,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let until =
            now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(30));
        let updated = retract_job::Entity::update_many()
            .col_expr(
                retract_job::Column::LeaseExpiresAt,
                Expr::value(Some(until)),
            )
            .filter(retract_job::Column::Id.eq(job_id.as_str()))
            .filter(retract_job::Column::LeaseOwner.eq(owner))
            .exec(&self.db)
            .await?;
        Ok(updated.rows_affected == 1)
    }

    /// Removes, in one short transaction, at most `max_rows` rows belonging to the oldest
    /// job that ended before `cutoff` (and has no restore under way): the copies it recorded
    /// for a restore first, then its events, then its targets, then the job row
    /// once nothing else is left. Returns the rows removed; 0 when no such job remains. Called
    /// in a loop, so that no transaction holds SQLite's one writing connection (or PostgreSQL's
    /// locks) for a whole job's history.
    pub async fn purge_jobs_finished_before(
        &self,
        cutoff: DateTime<Utc>,
        max_rows: u64,
    ) -> Result<u64, StoreError> {
        let max_rows = Ord::max(max_rows, 1);
        in_transaction(&self.db, move |txn| {
            async move {
                // A retract whose restore has not ended is kept until it has.
                let restoring = sea_orm::sea_query::Query::select()
                    .column(retract_job::Column::RestoresJobId)
                    .from(retract_job::Entity)
                    .and_where(retract_job::Column::RestoresJobId.is_not_null())
                    .and_where(
                        retract_job::Column::State
                            .is_in([JobState::Queued.as_str(), JobState::Running.as_str()]),
                    )
                    .to_owned();
                let oldest: Option<String> = retract_job::Entity::find()
                    .select_only()
                    .column(retract_job::Column::Id)
                    .filter(retract_job::Column::FinishedAt.lt(cutoff))
                    .filter(retract_job::Column::Id.not_in_subquery(restoring))
                    .order_by_asc(retract_job::Column::FinishedAt)
                    .limit(1)
                    .into_tuple()
                    .one(txn)
                    .await?;
                let Some(job) = oldest else {
                    return Ok(0);
                };
                purge_job_slice(txn, &job, max_rows).await
            }
            .boxed()
        })
        .await
    }

    /// How many runs claimed a job, and why the last one stopped short (see
    /// [`Self::record_run_error`]).
    pub async fn job_runs(&self, job_id: &JobId) -> Result<(u32, Option<String>), StoreError> {
        let row: Option<(i32, Option<String>)> = retract_job::Entity::find_by_id(job_id.as_str())
            .select_only()
            .column(retract_job::Column::Runs)
            .column(retract_job::Column::LastRunError)
            .into_tuple()
            .one(&self.db)
            .await?;
        let (runs, error) = row.ok_or_else(|| StoreError::NotFound {
            resource: "retract job",
            id: job_id.to_string(),
        })?;
        Ok((u32::try_from(runs).unwrap_or(0), error))
    }

    /// Remembers why `owner`'s run of a job stopped short (kept for the job's failure when
    /// its runs are used up).
    pub async fn record_run_error(
        &self,
        job_id: &JobId,
        owner: &str,
        error: &str,
    ) -> Result<(), StoreError> {
        let error: String = error.chars().take(1_000).collect();
        retract_job::Entity::update_many()
            .col_expr(retract_job::Column::LastRunError, Expr::value(Some(error)))
            .filter(retract_job::Column::Id.eq(job_id.as_str()))
            .filter(retract_job::Column::LeaseOwner.eq(owner))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Forgets the runs that stopped short before: `owner`'s run made progress (this claim
    /// counts as the first).
    pub async fn reset_runs(&self, job_id: &JobId, owner: &str) -> Result<(), StoreError> {
        retract_job::Entity::update_many()
            .col_expr(retract_job::Column::Runs, Expr::value(1))
            .col_expr(
                retract_job::Column::LastRunError,
                Expr::value(Option::<String>::None),
            )
            .filter(retract_job::Column::Id.eq(job_id.as_str()))
            .filter(retract_job::Column::LeaseOwner.eq(owner))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Gives a job back (a worker stopping): the next claim may take it at once, and the run
    /// does not count against the job's budget (it did not fail).
    pub async fn release_lease(&self, job_id: &JobId, owner: &str) -> Result<(), StoreError> {
        retract_job::Entity::update_many()
            .col_expr(
                retract_job::Column::Runs,
                Expr::col(retract_job::Column::Runs).sub(1),
            )
            .col_expr(
                retract_job::Column::LeaseExpiresAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                retract_job::Column::LeaseOwner,
                Expr::value(Option::<String>::None),
            )
            .filter(retract_job::Column::Id.eq(job_id.as_str()))
            .filter(retract_job::Column::LeaseOwner.eq(owner))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The targets of a job not finished yet.
    pub async fn unfinished_targets(&self, job_id: &JobId) -> Result<Vec<TargetWork>, StoreError> {
        let rows = retract_target::Entity::find()
            .filter(retract_target::Column::JobId.eq(job_id.as_str()))
            .filter(retract_target::Column::Done.eq(false))
            .order_by_asc(retract_target::Column::Depth)
            .order_by_asc(retract_target::Column::Mailbox)
            .all(&self.db)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(TargetWork {
                    target: target_from_row(row)?,
                    reached_by: row
                        .reached_by
                        .as_deref()
                        .map(|m| parse_stored("reaching message", m, InternetMessageId::parse))
                        .transpose()?,
                    root: match row.root_index.as_deref() {
                        Some(raw) => Some(ConversationIndex::decode(raw).ok_or_else(|| {
                            StoreError::Corrupt(format!("conversation index {raw:?}"))
                        })?),
                        None => None,
                    },
                })
            })
            .collect()
    }

    /// Makes the mailboxes a conversation step discovered targets of the job — before that
    /// step deletes anything, so a crash cannot lose them — unless the job visits them already
    /// (a mailbox is visited once; one reached by a lower hop before its visit ended moves to
    /// that depth and is answered again, to be visited there). The target count
    /// grows. Answers the discoveries added as targets, and those refused because the job
    /// reached its limit. Only `owner`, the lease holder, may write.
    pub async fn add_discovered_targets(
        &self,
        job_id: &JobId,
        owner: &str,
        discovered: Vec<Discovered>,
    ) -> Result<(Vec<Discovered>, Vec<Unfollowed>), StoreError> {
        if discovered.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let (job_id, owner) = (job_id.clone(), owner.to_owned());
        in_transaction(&self.db, move |txn| {
            async move {
                let (_, mut counts) = lock_job(txn, &job_id, &owner).await?;
                let mailboxes: Vec<String> = discovered
                    .iter()
                    .map(|d| d.target.mailbox.to_string())
                    .collect();
                // Each known mailbox with its depth and whether it is finished.
                let mut known: HashMap<String, (i32, bool)> = HashMap::new();
                for chunk in mailboxes.chunks(500) {
                    let rows: Vec<(String, i32, bool)> = retract_target::Entity::find()
                        .select_only()
                        .column(retract_target::Column::Mailbox)
                        .column(retract_target::Column::Depth)
                        .column(retract_target::Column::Done)
                        .filter(retract_target::Column::JobId.eq(job_id.as_str()))
                        .filter(
                            retract_target::Column::Mailbox.is_in(chunk.iter().map(String::as_str)),
                        )
                        .into_tuple()
                        .all(txn)
                        .await?;
                    known.extend(rows.into_iter().map(|(m, d, done)| (m, (d, done))));
                }
                let (mut rows, mut added, mut refused) = (Vec::new(), Vec::new(), Vec::new());
                for d in discovered {
                    let mailbox = d.target.mailbox.to_string();
                    let hop = i32::from(d.target.depth);
                    match known.get(&mailbox).copied() {
                        // Reached by a lower hop before its visit ended: it moves to that
                        // depth (a mailbox's depth is the lowest hop that reached it) and is
                        // visited there; the visit at the deeper depth records nothing.
                        Some((depth, false)) if depth > hop => {
                            use retract_target::Column;
                            retract_target::Entity::update_many()
                                .col_expr(Column::Depth, Expr::value(hop))
                                .col_expr(
                                    Column::DiscoveredFrom,
                                    Expr::value(Some(d.discovered_from.to_string())),
                                )
                                .col_expr(
                                    Column::ReachedBy,
                                    Expr::value(Some(d.reached_by.to_string())),
                                )
                                .col_expr(Column::RootIndex, Expr::value(Some(d.root.encode())))
                                .filter(Column::JobId.eq(job_id.as_str()))
                                .filter(Column::Mailbox.eq(mailbox.as_str()))
                                .filter(Column::Depth.eq(depth))
                                .filter(Column::Done.eq(false))
                                .exec(txn)
                                .await?;
                            known.insert(mailbox, (hop, false));
                            added.push(d);
                            continue;
                        }
                        Some(_) => continue,
                        None => {}
                    }
                    known.insert(mailbox, (hop, false));
                    // A job visits at most as many mailboxes as a delivery may have
                    // recipients; beyond that the step reports the overflow.
                    if counts.targets as usize + rows.len() >= NewDelivery::MAX_RECIPIENTS {
                        refused.push(Unfollowed {
                            address: d.target.mailbox.to_string(),
                            hop: d.target.depth,
                            code: "TARGET_LIMIT_REACHED".to_owned(),
                        });
                        continue;
                    }
                    let mut row = target_row(&job_id, &d.target, None);
                    row.discovered_from = Set(Some(d.discovered_from.to_string()));
                    row.reached_by = Set(Some(d.reached_by.to_string()));
                    row.root_index = Set(Some(d.root.encode()));
                    rows.push(row);
                    added.push(d);
                }
                counts.targets = counts
                    .targets
                    .saturating_add(u32::try_from(rows.len()).unwrap_or(u32::MAX));
                for chunk in rows.chunks(1_000) {
                    retract_target::Entity::insert_many(chunk.to_vec())
                        .exec_without_returning(txn)
                        .await?;
                }
                retract_job::Entity::update_many()
                    .col_expr(retract_job::Column::Counts, Expr::value(to_json(&counts)?))
                    .filter(retract_job::Column::Id.eq(job_id.as_str()))
                    .exec(txn)
                    .await?;
                Ok((added, refused))
            }
            .boxed()
        })
        .await
    }

    /// Appends an event (see [`Self::append_events`]).
    pub async fn append_event(
        &self,
        job_id: &JobId,
        owner: &str,
        kind: EventKind,
    ) -> Result<Option<JobEvent>, StoreError> {
        let mut written = self.append_events(job_id, owner, vec![kind]).await?;
        Ok(written.pop().flatten())
    }

    /// Appends events in one transaction (see [`Self::write_journal`]).
    pub async fn append_events(
        &self,
        job_id: &JobId,
        owner: &str,
        kinds: Vec<EventKind>,
    ) -> Result<Vec<Option<JobEvent>>, StoreError> {
        self.write_journal(
            job_id,
            owner,
            kinds.into_iter().map(JobWrite::Event).collect(),
        )
        .await
    }

    /// Writes a batch of a running job's journal in one transaction (a group commit: the
    /// job's row is locked and updated once, whatever the number of writes): the removal
    /// records first, then the events, numbered in the order given, gapless. A `Recipient`
    /// event with a result also finishes its target and counts it. Only `owner`, the lease
    /// holder, may write (`LeaseLost` otherwise, and nothing is written); a result for a
    /// target already finished writes nothing and answers `None` in its place (a redo never
    /// counts twice). Answers one entry per write: the event, or `None`.
    ///
    /// The removal writes of one batch come from different mailboxes (each visit waits for
    /// its write before the next), so recording them all before updating or forgetting any
    /// keeps each mailbox's order.
    pub async fn write_journal(
        &self,
        job_id: &JobId,
        owner: &str,
        writes: Vec<JobWrite>,
    ) -> Result<Vec<Option<JobEvent>>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let (job_id, owner) = (job_id.clone(), owner.to_owned());
        in_transaction(&self.db, move |txn| {
            async move {
                // Locks in one order: the job row first (fenced by the lease), then the
                // targets.
                let (last, mut counts) = lock_job(txn, &job_id, &owner).await?;
                let mut removing: Vec<RemovedCopy> = Vec::new();
                // Where Graph put moved copies, and copies not removed after all: every
                // mailbox's of the batch in one statement each, after the batch's inserts.
                let mut moved: Vec<super::restores::Moved<'_>> = Vec::new();
                let mut not_removed: Vec<(&EmailAddress, &str)> = Vec::new();
                // By tenant: the mailboxes Graph answered for.
                let mut reachable: HashMap<TenantId, Vec<EmailAddress>> = HashMap::new();
                for write in &writes {
                    match write {
                        JobWrite::Removing(copies) => removing.extend(copies.iter().cloned()),
                        JobWrite::Removed {
                            mailbox,
                            moved: ids,
                            not_removed: items,
                        } => {
                            moved.extend(
                                ids.iter().map(|(item, now_at)| {
                                    (mailbox, item.as_str(), now_at.as_str())
                                }),
                            );
                            not_removed.extend(items.iter().map(|item| (mailbox, item.as_str())));
                        }
                        JobWrite::Reachable { tenant, address } => reachable
                            .entry(tenant.clone())
                            .or_default()
                            .push(address.clone()),
                        JobWrite::Event(_) => {}
                    }
                }
                if !removing.is_empty() {
                    super::restores::insert_removals(txn, &job_id, &removing).await?;
                }
                super::restores::update_removed_ids(txn, &job_id, &moved).await?;
                if !not_removed.is_empty() {
                    super::restores::delete_removals(txn, &job_id, &not_removed).await?;
                }
                for (tenant, addresses) in &reachable {
                    super::deliveries::clear_mailbox_problems(txn, tenant, addresses).await?;
                }
                // The batch's results finish their targets in one statement: the depth each
                // finished at, by mailbox (a target finished before is not there).
                let results: Vec<(&Target, &TargetResult)> = writes
                    .iter()
                    .filter_map(|write| match write {
                        JobWrite::Event(EventKind::Recipient {
                            target,
                            result: Some(result),
                            ..
                        }) => Some((target, result)),
                        _ => None,
                    })
                    .collect();
                let mut finished = finish_targets(txn, &job_id, &results).await?;
                let (mut sequence, mut counted) = (last, false);
                let mut written: Vec<Option<JobEvent>> = vec![None; writes.len()];
                let mut rows = Vec::with_capacity(writes.len());
                for (i, write) in writes.into_iter().enumerate() {
                    let mut kind = match write {
                        JobWrite::Event(kind) => kind,
                        JobWrite::Removing(_)
                        | JobWrite::Removed { .. }
                        | JobWrite::Reachable { .. } => continue,
                    };
                    // A result finishes its target; a target finished before (a redo) takes
                    // no sequence number and changes nothing. The event names the depth the
                    // target finished at.
                    if let EventKind::Recipient {
                        target,
                        result: Some(result),
                        ..
                    } = &mut kind
                    {
                        // Taken: a second result for the same mailbox is a redo.
                        let Some(depth) = finished.remove(&target.mailbox) else {
                            continue;
                        };
                        target.depth = depth;
                        counts.record(result);
                        counted = true;
                    }
                    sequence += 1;
                    let at = now();
                    rows.push((sequence, at, to_json_text(&kind)?));
                    written[i] = Some(JobEvent {
                        job_id: job_id.clone(),
                        sequence,
                        at,
                        kind,
                    });
                }
                if sequence != last || counted {
                    let mut update = retract_job::Entity::update_many()
                        .col_expr(retract_job::Column::LastSequence, Expr::value(sequence));
                    if counted {
                        update = update
                            .col_expr(retract_job::Column::Counts, Expr::value(to_json(&counts)?));
                    }
                    update
                        .filter(retract_job::Column::Id.eq(job_id.as_str()))
                        .exec(txn)
                        .await?;
                }
                insert_events(txn, &job_id, rows).await?;
                Ok(written)
            }
            .boxed()
        })
        .await
    }

    /// Ends a job: its final state, the JobFinished event and the audit entry, together.
    pub async fn finish_job(
        &self,
        job_id: &JobId,
        owner: &str,
        end: JobEnd,
        audit: impl FnOnce(&JobCounts) -> AuditEntry + Send + 'static,
    ) -> Result<JobEvent, StoreError> {
        let JobEnd {
            state,
            detail,
            failure,
            depths,
        } = end;
        let (job_id, owner) = (job_id.clone(), owner.to_owned());
        in_transaction(&self.db, move |txn| {
            async move {
                let (sequence, counts) = next_sequence(txn, &job_id, &owner).await?;
                let at = now();
                retract_job::Entity::update_many()
                    .col_expr(retract_job::Column::State, Expr::value(state.as_str()))
                    .col_expr(
                        retract_job::Column::Detail,
                        Expr::value(Some(detail.clone())),
                    )
                    .col_expr(retract_job::Column::FinishedAt, Expr::value(Some(at)))
                    .col_expr(
                        retract_job::Column::FailureCode,
                        Expr::value(failure.as_ref().map(|f| f.code.clone())),
                    )
                    .col_expr(
                        retract_job::Column::LeaseOwner,
                        Expr::value(Option::<String>::None),
                    )
                    .col_expr(
                        retract_job::Column::LeaseExpiresAt,
                        Expr::value(Option::<DateTime<Utc>>::None),
                    )
                    .filter(retract_job::Column::Id.eq(job_id.as_str()))
                    .exec(txn)
                    .await?;
                let kind = EventKind::JobFinished {
                    state,
                    counts,
                    detail,
                    depths,
                    failure,
                };
                insert_event(txn, &job_id, sequence, at, &kind).await?;
                audit::insert(txn, audit(&counts)).await?;
                Ok(JobEvent {
                    job_id,
                    sequence,
                    at,
                    kind,
                })
            }
            .boxed()
        })
        .await
    }

    /// A job's events after `after`, in order, at most `limit`. Read where they are written
    /// (SQLite's one writing connection, not its readers): bench (c) side by side, 500
    /// watchers of a 1,000-mailbox job cost 10.9-13.2 µs of server CPU per delivered event
    /// through the readers (p99 persist→deliver 3.3-5.0 s), 3.9-4.5 µs (p99 243-416 ms) read
    /// here; why the readers cost more there is not yet known.
    pub async fn events_after(
        &self,
        job_id: &JobId,
        after: i64,
        limit: u64,
    ) -> Result<Vec<JobEvent>, StoreError> {
        let rows = retract_event::Entity::find()
            .filter(retract_event::Column::JobId.eq(job_id.as_str()))
            .filter(retract_event::Column::Sequence.gt(after))
            .order_by_asc(retract_event::Column::Sequence)
            .limit(limit)
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(JobEvent {
                    kind: serde_json::from_value(r.payload)
                        .map_err(|e| StoreError::Corrupt(format!("event payload: {e}")))?,
                    job_id: job_id.clone(),
                    sequence: r.sequence,
                    at: r.occurred_at,
                })
            })
            .collect()
    }

    /// Asks a job to stop, with who asked and why, and writes `audit` with it. `false` (and
    /// nothing written) when the job had already ended. A second request is recorded in the
    /// audit trail; the job keeps the first requester.
    pub async fn request_cancel(
        &self,
        tenant: &TenantId,
        job_id: &JobId,
        request: CancelRequest,
        audit: AuditEntry,
    ) -> Result<bool, StoreError> {
        let (tenant, job_id) = (tenant.clone(), job_id.clone());
        in_transaction(&self.db, move |txn| {
            async move {
                use retract_job::Column;
                let live = || {
                    Condition::all()
                        .add(Column::Id.eq(job_id.as_str()))
                        .add(Column::TenantId.eq(tenant.as_str()))
                        .add(
                            Column::State
                                .is_in([JobState::Queued.as_str(), JobState::Running.as_str()]),
                        )
                };
                let updated = retract_job::Entity::update_many()
                    .col_expr(Column::CancelRequested, Expr::value(true))
                    .filter(live())
                    .exec(txn)
                    .await?;
                if updated.rows_affected != 1 {
                    return Ok(false);
                }
                retract_job::Entity::update_many()
                    .col_expr(
                        Column::CancelRequestedBy,
                        Expr::value(Some(request.requested_by)),
                    )
                    .col_expr(Column::CancelReason, Expr::value(request.reason))
                    .col_expr(Column::CancelRequestedAt, Expr::value(Some(now())))
                    .filter(live())
                    .filter(Column::CancelRequestedAt.is_null())
                    .exec(txn)
                    .await?;
                audit::insert(txn, audit).await?;
                Ok(true)
            }
            .boxed()
        })
        .await
    }
}

/// Locks the job's row until the transaction ends (fenced: only the lease holder of a live
/// job), and reads its latest sequence number and counters.
async fn lock_job<C: ConnectionTrait>(
    conn: &C,
    job_id: &JobId,
    owner: &str,
) -> Result<(i64, JobCounts), StoreError> {
    fenced_job(conn, job_id, owner, 0).await
}

/// Takes the job's next sequence number (locking its row until the transaction ends) and
/// reads its counters.
async fn next_sequence<C: ConnectionTrait>(
    conn: &C,
    job_id: &JobId,
    owner: &str,
) -> Result<(i64, JobCounts), StoreError> {
    fenced_job(conn, job_id, owner, 1).await
}

/// The one fenced write on a job's row: only the lease holder of a live job gets it (else
/// `LeaseLost`); it advances the last sequence by `advance` and answers it with the counters.
async fn fenced_job<C: ConnectionTrait>(
    conn: &C,
    job_id: &JobId,
    owner: &str,
    advance: i64,
) -> Result<(i64, JobCounts), StoreError> {
    let rows = retract_job::Entity::update_many()
        .col_expr(
            retract_job::Column::LastSequence,
            Expr::col(retract_job::Column::LastSequence).add(advance),
        )
        .filter(retract_job::Column::Id.eq(job_id.as_str()))
        .filter(retract_job::Column::LeaseOwner.eq(owner))
        .filter(
            retract_job::Column::State
                .is_in([JobState::Queued.as_str(), JobState::Running.as_str()]),
        )
        .exec_with_returning(conn)
        .await?;
    let row = rows
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::LeaseLost(job_id.to_string()))?;
    let counts = serde_json::from_value(row.counts)
        .map_err(|e| StoreError::Corrupt(format!("job counts: {e}")))?;
    Ok((row.last_sequence, counts))
}

/// Finishes the targets of `results` (each mailbox's unfinished row, whatever its depth) in
/// one statement per chunk rather than one per target; answers the depth each finished at,
/// by mailbox. A mailbox finished before, or named again in `results`, finishes once: the
/// first result given for it counts.
async fn finish_targets<C: ConnectionTrait>(
    conn: &C,
    job_id: &JobId,
    results: &[(&Target, &TargetResult)],
) -> Result<HashMap<EmailAddress, u8>, StoreError> {
    const COLUMNS: usize = 7;
    let clamp = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    let mut seen = std::collections::HashSet::new();
    let first: Vec<&(&Target, &TargetResult)> = results
        .iter()
        .filter(|(target, _)| seen.insert(&target.mailbox))
        .collect();
    let backend = conn.get_database_backend();
    let mut finished = HashMap::with_capacity(first.len());
    let mut read = |rows: Vec<sea_orm::QueryResult>| -> Result<(), StoreError> {
        for row in rows {
            let mailbox = parse_stored(
                "target mailbox",
                &row.try_get::<String>("", "mailbox")?,
                EmailAddress::parse,
            )?;
            let depth: i32 = row.try_get("", "depth")?;
            let depth = u8::try_from(depth)
                .map_err(|_| StoreError::Corrupt(format!("target depth {depth}")))?;
            finished.entry(mailbox).or_insert(depth);
        }
        Ok(())
    };
    if backend == DatabaseBackend::Postgres {
        // One array per column: the same statement text (and plan) whatever the batch size.
        for chunk in first.chunks(1_000) {
            let values: Vec<sea_orm::Value> = vec![
                chunk
                    .iter()
                    .map(|(t, _)| t.mailbox.to_string())
                    .collect::<Vec<_>>()
                    .into(),
                super::text_array(
                    chunk
                        .iter()
                        .map(|(_, r)| Some(r.outcome.as_str().to_owned())),
                ),
                chunk
                    .iter()
                    .map(|(_, r)| clamp(r.copies_found))
                    .collect::<Vec<_>>()
                    .into(),
                chunk
                    .iter()
                    .map(|(_, r)| clamp(r.copies_deleted))
                    .collect::<Vec<_>>()
                    .into(),
                chunk
                    .iter()
                    .map(|(_, r)| r.was_read)
                    .collect::<Vec<_>>()
                    .into(),
                super::text_array(chunk.iter().map(|(_, r)| r.detail.clone())),
                super::text_array(chunk.iter().map(|(_, r)| r.graph_code.clone())),
                vec![job_id.to_string(); chunk.len()].into(),
            ];
            // The job's id is a column of the batch, not a parameter of its own: after five
            // runs PostgreSQL plans the statement generically, and a generic `job_id = $8`
            // looked like a few rows, so it hashed the job's every target for each batch
            // (quadratic: 7 CPU-s of PostgreSQL's at N = 10,000). Joined on both key columns
            // it looks each result's row up by primary key, whatever the plan.
            let sql = "UPDATE retract_targets SET done = TRUE, outcome = v.outcome, \
                       copies_found = v.copies_found, copies_deleted = v.copies_deleted, \
                       was_read = v.was_read, detail = NULLIF(v.detail, ''), \
                       graph_code = NULLIF(v.graph_code, '') \
                       FROM UNNEST($1::text[], $2::text[], $3::int4[], $4::int4[], $5::bool[], \
                       $6::text[], $7::text[], $8::text[]) \
                       AS v (mailbox, outcome, copies_found, copies_deleted, was_read, detail, \
                       graph_code, job_id) \
                       WHERE retract_targets.job_id = v.job_id \
                       AND retract_targets.mailbox = v.mailbox AND retract_targets.done = FALSE \
                       RETURNING retract_targets.mailbox, retract_targets.depth";
            read(
                conn.query_all_raw(Statement::from_sql_and_values(backend, sql, values))
                    .await?,
            )?;
        }
        return Ok(finished);
    }
    for chunk in first.chunks(super::SQLITE_MAX_ROWS) {
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * COLUMNS + 1);
        for (target, result) in chunk {
            values.extend([
                target.mailbox.as_str().into(),
                result.outcome.as_str().into(),
                clamp(result.copies_found).into(),
                clamp(result.copies_deleted).into(),
                result.was_read.into(),
                result.detail.clone().into(),
                result.graph_code.clone().into(),
            ]);
        }
        let tuples = super::sqlite_padded_rows(chunk.len(), COLUMNS, &mut values);
        values.push(job_id.as_str().into());
        // Not `UPDATE … FROM v`: without statistics SQLite's planner puts the job's targets
        // in the outer loop and scans the batch for each of them (every batch then costs the
        // whole job, and a job costs N²; at N = 10,000 that was 2.2 s of a 4-second run).
        // Here the batch's rows find their targets by primary key (`w`, batch outside,
        // CROSS JOIN keeping it there), and the UPDATE touches those rows by rowid only.
        let sql = format!(
            "WITH v (mailbox, outcome, copies_found, copies_deleted, was_read, detail, graph_code) \
             AS (VALUES {tuples}), \
             w AS MATERIALIZED (SELECT t.rowid AS rid, v.* FROM v CROSS JOIN retract_targets AS t \
             WHERE t.job_id = ? AND t.mailbox = v.mailbox AND t.done = FALSE) \
             UPDATE retract_targets SET (done, outcome, copies_found, copies_deleted, was_read, \
             detail, graph_code) = (SELECT TRUE, outcome, copies_found, copies_deleted, \
             was_read, detail, graph_code FROM w WHERE w.rid = retract_targets.rowid) \
             WHERE retract_targets.rowid IN (SELECT rid FROM w) \
             RETURNING retract_targets.mailbox, retract_targets.depth"
        );
        read(
            conn.query_all_raw(Statement::from_sql_and_values(backend, sql, values))
                .await?,
        )?;
    }
    Ok(finished)
}

/// Inserts a batch's events: one UNNEST statement per chunk on PostgreSQL (the same text,
/// and plan, whatever the batch size), multi-row INSERTs on SQLite.
async fn insert_events<C: ConnectionTrait>(
    conn: &C,
    job_id: &JobId,
    rows: Vec<(i64, DateTime<Utc>, String)>,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let backend = conn.get_database_backend();
    if backend != DatabaseBackend::Postgres {
        // A few padded statement texts, each prepared once (see `sqlite_padded_rows`); the
        // padding's all-NULL rows are not inserted.
        for chunk in rows.chunks(super::SQLITE_MAX_ROWS) {
            let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 3 + 1);
            for (sequence, at, payload) in chunk {
                values.extend([
                    (*sequence).into(),
                    sea_orm::Value::ChronoDateTimeUtc(Some(*at)),
                    // JSON text, as sea-orm stores a JSON column on SQLite.
                    payload.as_str().into(),
                ]);
            }
            let tuples = super::sqlite_padded_rows(chunk.len(), 3, &mut values);
            values.push(job_id.as_str().into());
            let sql = format!(
                "WITH v (sequence, occurred_at, payload) AS (VALUES {tuples}) \
                 INSERT INTO retract_events (job_id, sequence, occurred_at, payload) \
                 SELECT ?, sequence, occurred_at, payload FROM v WHERE sequence IS NOT NULL"
            );
            conn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
                .await?;
        }
        return Ok(());
    }
    for chunk in rows.chunks(1_000) {
        let sequences: Vec<i64> = chunk.iter().map(|(s, _, _)| *s).collect();
        let at: Vec<sea_orm::Value> = chunk
            .iter()
            .map(|(_, a, _)| sea_orm::Value::ChronoDateTimeUtc(Some(*a)))
            .collect();
        let payloads: Vec<String> = chunk.iter().map(|(_, _, p)| p.clone()).collect();
        let sql = "INSERT INTO retract_events (job_id, sequence, occurred_at, payload) \
                   SELECT $1, s, a, p::jsonb \
                   FROM UNNEST($2::int8[], $3::timestamptz[], $4::text[]) AS u (s, a, p)";
        let values: Vec<sea_orm::Value> = vec![
            job_id.as_str().into(),
            sequences.into(),
            sea_orm::Value::Array(
                sea_orm::sea_query::ArrayType::ChronoDateTimeUtc,
                Some(Box::new(at)),
            ),
            payloads.into(),
        ];
        conn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    Ok(())
}

async fn insert_event<C: ConnectionTrait>(
    conn: &C,
    job_id: &JobId,
    sequence: i64,
    at: DateTime<Utc>,
    kind: &EventKind,
) -> Result<(), StoreError> {
    retract_event::Entity::insert(retract_event::ActiveModel {
        job_id: Set(job_id.to_string()),
        sequence: Set(sequence),
        occurred_at: Set(at),
        payload: Set(to_json(kind)?),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

fn target_row(
    job_id: &JobId,
    target: &Target,
    settled: Option<&TargetResult>,
) -> retract_target::ActiveModel {
    retract_target::ActiveModel {
        job_id: Set(job_id.to_string()),
        mailbox: Set(target.mailbox.to_string()),
        discovered_from: Set(None),
        reached_by: Set(None),
        root_index: Set(None),
        depth: Set(i32::from(target.depth)),
        done: Set(settled.is_some()),
        outcome: Set(settled.map(|r| r.outcome.as_str().to_owned())),
        copies_found: Set(0),
        copies_deleted: Set(0),
        was_read: Set(false),
        detail: Set(settled.and_then(|r| r.detail.clone())),
        graph_code: Set(None),
    }
}

/// `value` as JSON text, for a statement of our own (no `serde_json::Value` in between).
fn to_json_text<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("cannot serialise: {e}")))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(value).map_err(|e| StoreError::Corrupt(format!("cannot serialise: {e}")))
}

fn job_from_row(row: retract_job::Model) -> Result<RetractJob, StoreError> {
    Ok(RetractJob {
        options: serde_json::from_value(row.options)
            .map_err(|e| StoreError::Corrupt(format!("job options: {e}")))?,
        counts: serde_json::from_value(row.counts)
            .map_err(|e| StoreError::Corrupt(format!("job counts: {e}")))?,
        state: JobState::from_stored(&row.state)
            .ok_or_else(|| StoreError::Corrupt(format!("job state {:?}", row.state)))?,
        id: parse_stored("job id", &row.id, JobId::parse)?,
        tenant_id: parse_stored("job tenant", &row.tenant_id, TenantId::parse)?,
        request_id: row.request_id,
        requested_by: row.requested_by,
        created_at: row.created_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
        last_sequence: row.last_sequence,
        cancel_requested: row.cancel_requested,
        kind: JobKind::from_stored(&row.kind)
            .ok_or_else(|| StoreError::Corrupt(format!("job kind {:?}", row.kind)))?,
        restores_job_id: row
            .restores_job_id
            .as_deref()
            .map(|id| parse_stored("restored job id", id, JobId::parse))
            .transpose()?,
        failure: match (row.state.as_str(), row.failure_code) {
            ("failed", code) => Some(JobFailure {
                code: code.unwrap_or_else(|| "FAILED".to_owned()),
                detail: row.detail.clone().unwrap_or_default(),
            }),
            _ => None,
        },
        cancellation: row.cancel_requested.then(|| Cancellation {
            requested_by: row.cancel_requested_by.unwrap_or_default(),
            reason: row.cancel_reason,
            requested_at: row.cancel_requested_at.unwrap_or(row.created_at),
        }),
        message: match (
            row.message_subject,
            row.message_sender,
            row.message_delivered_at,
        ) {
            (Some(subject), Some(sender), Some(delivered_at)) => Some(MessageSnapshot {
                subject,
                sender,
                delivered_at,
            }),
            _ => None,
        },
        correlation_id: row.correlation_id.unwrap_or_default(),
    })
}

fn target_from_row(row: &retract_target::Model) -> Result<Target, StoreError> {
    Ok(Target {
        mailbox: parse_stored("target mailbox", &row.mailbox, EmailAddress::parse)?,
        depth: u8::try_from(row.depth)
            .map_err(|_| StoreError::Corrupt(format!("target depth {}", row.depth)))?,
    })
}

fn record_from_row(row: &retract_target::Model) -> Result<TargetRecord, StoreError> {
    let result = match (&row.outcome, row.done) {
        (Some(outcome), true) => Some(TargetResult {
            outcome: TargetOutcome::from_stored(outcome)
                .ok_or_else(|| StoreError::Corrupt(format!("target outcome {outcome:?}")))?,
            copies_found: u32::try_from(row.copies_found).unwrap_or(0),
            copies_deleted: u32::try_from(row.copies_deleted).unwrap_or(0),
            was_read: row.was_read,
            detail: row.detail.clone(),
            graph_code: row.graph_code.clone(),
        }),
        _ => None,
    };
    Ok(TargetRecord {
        target: target_from_row(row)?,
        result,
        discovered_from: row
            .discovered_from
            .as_deref()
            .map(|a| parse_stored("discovered-from mailbox", a, EmailAddress::parse))
            .transpose()?,
    })
}

impl Store {
    /// One page of a job's targets matching `filter`, by depth then mailbox, with the
    /// job's latest sequence read before them (so the page reflects at least that much).
    pub async fn list_targets(
        &self,
        job_id: &JobId,
        filter: &TargetFilter,
        page: &PageRequest<TargetCursor>,
    ) -> Result<(Page<TargetRecord>, i64), StoreError> {
        use retract_target::Column;
        let as_of = self.job_for_worker(job_id).await?.last_sequence;
        let mut query = retract_target::Entity::find().filter(Column::JobId.eq(job_id.as_str()));
        if !filter.outcomes.is_empty() {
            let mut any = Condition::any();
            let finished: Vec<&str> = filter
                .outcomes
                .iter()
                .flatten()
                .map(|o| o.as_str())
                .collect();
            if !finished.is_empty() {
                any = any.add(
                    Condition::all()
                        .add(Column::Done.eq(true))
                        .add(Column::Outcome.is_in(finished)),
                );
            }
            if filter.outcomes.iter().any(Option::is_none) {
                any = any.add(Column::Done.eq(false));
            }
            query = query.filter(any);
        }
        if let Some(depth) = filter.depth {
            query = query.filter(Column::Depth.eq(i32::from(depth)));
        }
        if let Some((depth, mailbox)) = &page.after {
            let depth = i32::from(*depth);
            query = query.filter(
                Condition::any().add(Column::Depth.gt(depth)).add(
                    Condition::all()
                        .add(Column::Depth.eq(depth))
                        .add(Column::Mailbox.gt(mailbox.as_str())),
                ),
            );
        }
        let rows = query
            .order_by_asc(Column::Depth)
            .order_by_asc(Column::Mailbox)
            .limit(page.size.get() + 1)
            .all(&self.reads)
            .await?;
        let records = rows
            .iter()
            .map(record_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((Page::from_overfetch(records, page.size.get()), as_of))
    }

    /// For each of `addresses` that a retract job of `tenant` for `message` reached at
    /// depth 0: the newest such job (of the last 100), how the mailbox ended in it (`None`
    /// while unfinished), and when the job was created. `addresses` is a page of recipients
    /// in the order the store listed it ([`Store::delivery_and_recipients`]): each job's
    /// targets are read as one range of its primary key, between the first and the last
    /// address still unanswered, without a parameter per address.
    pub async fn last_retracts(
        &self,
        tenant: &TenantId,
        message: &InternetMessageId,
        addresses: &[&EmailAddress],
    ) -> Result<HashMap<EmailAddress, LastRetract>, StoreError> {
        let jobs = retract_job::Entity::find()
            .filter(retract_job::Column::TenantId.eq(tenant.as_str()))
            .filter(retract_job::Column::InternetMessageId.eq(message.as_str()))
            .filter(retract_job::Column::Kind.eq(JobKind::Retract.as_str()))
            .order_by_desc(retract_job::Column::CreatedAt)
            .order_by_desc(retract_job::Column::Id)
            .limit(100)
            .all(&self.reads)
            .await?;
        let mut last = HashMap::new();
        for job in jobs {
            // A dry run retracted nothing.
            let dry_run = serde_json::from_value::<RetractOptions>(job.options.clone())
                .map_err(|e| StoreError::Corrupt(format!("job options: {e}")))?
                .dry_run;
            if dry_run {
                continue;
            }
            // Still in the store's order: the first and last bound the range to read.
            let pending: HashSet<&EmailAddress> = addresses
                .iter()
                .copied()
                .filter(|a| !last.contains_key(*a))
                .collect();
            let (Some(first), Some(last_pending)) = (
                addresses.iter().find(|a| pending.contains(**a)),
                addresses.iter().rev().find(|a| pending.contains(**a)),
            ) else {
                break;
            };
            let id = parse_stored("job id", &job.id, JobId::parse)?;
            let rows = retract_target::Entity::find()
                .filter(retract_target::Column::JobId.eq(job.id.as_str()))
                .filter(
                    retract_target::Column::Mailbox.between(first.as_str(), last_pending.as_str()),
                )
                .filter(retract_target::Column::Depth.eq(0))
                .all(&self.reads)
                .await?;
            for row in rows {
                let record = record_from_row(&row)?;
                if pending.contains(&record.target.mailbox) {
                    last.insert(
                        record.target.mailbox,
                        LastRetract {
                            job_id: id.clone(),
                            outcome: record.result.map(|r| r.outcome),
                            created_at: job.created_at,
                        },
                    );
                }
            }
        }
        Ok(last)
    }

    /// Every target of a job with where it stands, by depth then mailbox.
    pub async fn job_targets(&self, job_id: &JobId) -> Result<Vec<TargetRecord>, StoreError> {
        let rows = retract_target::Entity::find()
            .filter(retract_target::Column::JobId.eq(job_id.as_str()))
            .order_by_asc(retract_target::Column::Depth)
            .order_by_asc(retract_target::Column::Mailbox)
            .all(&self.reads)
            .await?;
        rows.iter().map(record_from_row).collect()
    }
}

/// Removes up to `max_rows` rows of one job in `txn`: what a restore would need first (a job
/// half purged has nothing to restore rather than a part of it), then its events, its
/// targets, and last the job itself. Answers how many rows went (0: the job is gone).
pub(super) async fn purge_job_slice(
    txn: &sea_orm::DatabaseTransaction,
    job: &str,
    max_rows: u64,
) -> Result<u64, StoreError> {
    let copies: Vec<(String, String)> = removed_copy::Entity::find()
        .select_only()
        .column(removed_copy::Column::Mailbox)
        .column(removed_copy::Column::ItemId)
        .filter(removed_copy::Column::JobId.eq(job))
        .order_by_asc(removed_copy::Column::Mailbox)
        .order_by_asc(removed_copy::Column::ItemId)
        .limit(max_rows)
        .into_tuple()
        .all(txn)
        .await?;
    if !copies.is_empty() {
        let keys = copies.into_iter().fold(Condition::any(), |any, (m, i)| {
            any.add(
                Condition::all()
                    .add(removed_copy::Column::Mailbox.eq(m))
                    .add(removed_copy::Column::ItemId.eq(i)),
            )
        });
        return Ok(removed_copy::Entity::delete_many()
            .filter(removed_copy::Column::JobId.eq(job))
            .filter(keys)
            .exec(txn)
            .await?
            .rows_affected);
    }
    let sequences: Vec<i64> = retract_event::Entity::find()
        .select_only()
        .column(retract_event::Column::Sequence)
        .filter(retract_event::Column::JobId.eq(job))
        .order_by_asc(retract_event::Column::Sequence)
        .limit(max_rows)
        .into_tuple()
        .all(txn)
        .await?;
    if let Some(last) = sequences.last() {
        return Ok(retract_event::Entity::delete_many()
            .filter(retract_event::Column::JobId.eq(job))
            .filter(retract_event::Column::Sequence.lte(*last))
            .exec(txn)
            .await?
            .rows_affected);
    }
    let targets: Vec<(String, i32)> = retract_target::Entity::find()
        .select_only()
        .column(retract_target::Column::Mailbox)
        .column(retract_target::Column::Depth)
        .filter(retract_target::Column::JobId.eq(job))
        .order_by_asc(retract_target::Column::Mailbox)
        .order_by_asc(retract_target::Column::Depth)
        .limit(max_rows)
        .into_tuple()
        .all(txn)
        .await?;
    if !targets.is_empty() {
        let keys = targets.into_iter().fold(Condition::any(), |any, (m, d)| {
            any.add(
                Condition::all()
                    .add(retract_target::Column::Mailbox.eq(m))
                    .add(retract_target::Column::Depth.eq(d)),
            )
        });
        return Ok(retract_target::Entity::delete_many()
            .filter(retract_target::Column::JobId.eq(job))
            .filter(keys)
            .exec(txn)
            .await?
            .rows_affected);
    }
    Ok(retract_job::Entity::delete_many()
        .filter(retract_job::Column::Id.eq(job))
        .exec(txn)
        .await?
        .rows_affected)
}
