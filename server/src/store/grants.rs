//! Consent attempts, and the domain statuses and tenant link they decide.

use futures::FutureExt as _;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, sea_query::Expr,
};

use super::{
    Store, StoreError, audit,
    bounds::{FREE_TEXT, GRANT_ERROR, bounded},
    entities::{domain, grant, tenant},
    in_transaction, parse_stored,
};
use crate::domain::{
    AuditAction, AuditDetails, AuditEntry, AuditOutcome, DomainOutcome, Grant, GrantEnd,
    GrantState, MicrosoftTenantId, NewGrant, RetractStatus, TenantId, now,
};

/// A consent attempt claimed by its redirect, with the verifier needed to redeem its code.
pub struct ClaimedGrant {
    /// The attempt (state COMPLETING).
    pub grant: Grant,
    /// The PKCE code verifier.
    pub pkce_verifier: String,
}

impl Store {
    /// Stores a consent attempt, puts the tenant's domains to PENDING, and writes `audit`.
    pub async fn create_grant(
        &self,
        new: NewGrant,
        audit: AuditEntry,
    ) -> Result<Grant, StoreError> {
        in_transaction(&self.db, move |txn| {
            async move {
                if !super::tenants::lock_tenant(txn, &new.tenant_id).await? {
                    return Err(StoreError::NotFound {
                        resource: "tenant",
                        id: new.tenant_id.to_string(),
                    });
                }
                let at = now();
                let row = grant::ActiveModel {
                    id: Set(new.id),
                    tenant_id: Set(new.tenant_id.as_str().to_owned()),
                    state_hash: Set(new.state_hash),
                    pkce_verifier: Set(new.pkce_verifier),
                    allow_relink: Set(new.allow_relink),
                    status: Set(GrantState::AwaitingConsent.as_str().to_owned()),
                    started_by: Set(new.requested_by),
                    request_id: Set(new.request_id),
                    created_at: Set(at),
                    expires_at: Set(new.expires_at),
                    completed_at: Set(None),
                    microsoft_tenant_id: Set(None),
                    error: Set(None),
                    error_description: Set(None),
                    domain_outcomes: Set(serde_json::json!([])),
                };
                let row = grant::Entity::insert(row).exec_with_returning(txn).await?;
                domain::Entity::update_many()
                    .col_expr(
                        domain::Column::RetractStatus,
                        Expr::value(RetractStatus::Pending.as_str()),
                    )
                    .col_expr(
                        domain::Column::StatusReason,
                        Expr::value(Option::<String>::None),
                    )
                    .col_expr(domain::Column::UpdatedAt, Expr::value(at))
                    .filter(domain::Column::TenantId.eq(new.tenant_id.as_str()))
                    .filter(domain::Column::RetractStatus.ne(RetractStatus::Granted.as_str()))
                    .exec(txn)
                    .await?;
                audit::insert(txn, audit).await?;
                grant_from_row(row)
            }
            .boxed()
        })
        .await
    }

    /// Spends the state with this hash: atomically moves its attempt from AWAITING_CONSENT to
    /// COMPLETING, so a replayed or concurrent redirect finds nothing, and clears the stored
    /// PKCE verifier (handed back once, here: nothing is left behind if the completion is
    /// interrupted). `None` when no attempt awaits this state (unknown, or already used).
    pub async fn claim_grant(&self, state_hash: &str) -> Result<Option<ClaimedGrant>, StoreError> {
        let Some(row) = grant::Entity::find()
            .filter(grant::Column::StateHash.eq(state_hash))
            .filter(grant::Column::Status.eq(GrantState::AwaitingConsent.as_str()))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let claimed = grant::Entity::update_many()
            .col_expr(
                grant::Column::Status,
                Expr::value(GrantState::Completing.as_str()),
            )
            .col_expr(grant::Column::PkceVerifier, Expr::value(""))
            .filter(grant::Column::Id.eq(row.id.as_str()))
            .filter(grant::Column::Status.eq(GrantState::AwaitingConsent.as_str()))
            .exec(&self.db)
            .await?;
        if claimed.rows_affected == 0 {
            // A concurrent redirect spent it between the read and the claim.
            return Ok(None);
        }
        let pkce_verifier = row.pkce_verifier.clone();
        let mut grant = grant_from_row(row)?;
        grant.state = GrantState::Completing;
        Ok(Some(ClaimedGrant {
            grant,
            pkce_verifier,
        }))
    }

    /// Ends attempts whose completion was interrupted (a crash or redeploy while Microsoft
    /// was being asked, or an error that never reached `finish_grant`): COMPLETING attempts
    /// whose consent URL expired more than `grace` ago become FAILED with `reason`, their
    /// tenants' PENDING domains FAILED too (unless another attempt of that tenant is still
    /// running), each with a `grant_failed` audit entry. Returns how many were ended.
    pub async fn fail_interrupted_grants(
        &self,
        grace: std::time::Duration,
        reason: &str,
    ) -> Result<u64, StoreError> {
        let reason = bounded(reason, FREE_TEXT);
        let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        in_transaction(&self.db, move |txn| {
            async move {
                let at = now();
                let Some(cutoff) = at.checked_sub_signed(grace) else {
                    return Ok(0);
                };
                let failed = grant::Entity::update_many()
                    .col_expr(
                        grant::Column::Status,
                        Expr::value(GrantState::Failed.as_str()),
                    )
                    .col_expr(grant::Column::CompletedAt, Expr::value(Some(at)))
                    .col_expr(grant::Column::PkceVerifier, Expr::value(""))
                    .col_expr(grant::Column::Error, Expr::value(Some("interrupted")))
                    .col_expr(
                        grant::Column::ErrorDescription,
                        Expr::value(Some(reason.clone())),
                    )
                    .filter(grant::Column::Status.eq(GrantState::Completing.as_str()))
                    .filter(grant::Column::ExpiresAt.lt(cutoff))
                    .exec_with_returning(txn)
                    .await?;
                for row in &failed {
                    let tenant = parse_stored("grant tenant id", &row.tenant_id, TenantId::parse)?;
                    audit::insert(
                        txn,
                        AuditEntry {
                            tenant_id: tenant,
                            actor: row.started_by.clone(),
                            action: AuditAction::GrantFailed,
                            target: row.id.clone(),
                            outcome: AuditOutcome::Failed,
                            correlation_id: row.request_id.clone(),
                            details: AuditDetails::GrantFinished {
                                grant_id: row.id.clone(),
                                microsoft_tenant_id: None,
                                signed_in_administrator: None,
                                error: Some("interrupted".to_owned()),
                                error_description: Some(reason.clone()),
                                domain_outcomes: Vec::new(),
                            },
                        },
                    )
                    .await?;
                }
                let tenants = failed.iter().map(|g| g.tenant_id.clone()).collect();
                fail_pending_domains(txn, tenants, &reason).await?;
                Ok(failed.len() as u64)
            }
            .boxed()
        })
        .await
    }

    /// Ends a claimed attempt: records its outcome, applies each domain outcome to the tenant's
    /// domains (still PENDING ones with no outcome go back to NOT_GRANTED), links the tenant to
    /// the proven Microsoft tenant when asked, and writes `audit` — all in one transaction.
    pub async fn finish_grant(
        &self,
        grant: &Grant,
        end: GrantEnd,
        audit: AuditEntry,
    ) -> Result<Grant, StoreError> {
        let (id, tenant, allow_relink) = (
            grant.id.clone(),
            grant.tenant_id.clone(),
            grant.allow_relink,
        );
        in_transaction(&self.db, move |txn| {
            async move {
                let at = now();
                let outcomes = serde_json::to_value(&end.domain_outcomes)
                    .map_err(|e| StoreError::Corrupt(format!("domain outcomes: {e}")))?;
                let row = grant::ActiveModel {
                    status: Set(end.state.as_str().to_owned()),
                    // Spent: the verifier is never needed again.
                    pkce_verifier: Set(String::new()),
                    completed_at: Set(Some(at)),
                    microsoft_tenant_id: Set(end
                        .microsoft_tenant_id
                        .as_ref()
                        .map(ToString::to_string)),
                    error: Set(end.error.as_deref().map(|e| bounded(e, GRANT_ERROR))),
                    error_description: Set(end
                        .error_description
                        .as_deref()
                        .map(|d| bounded(d, FREE_TEXT))),
                    domain_outcomes: Set(outcomes),
                    ..Default::default()
                };
                // Only a COMPLETING attempt ends here: one the sweep already failed stays so.
                let row = grant::Entity::update_many()
                    .set(row)
                    .filter(grant::Column::Id.eq(id.as_str()))
                    .filter(grant::Column::Status.eq(GrantState::Completing.as_str()))
                    .exec_with_returning(txn)
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(|| StoreError::NotFound {
                        resource: "completing grant",
                        id: id.clone(),
                    })?;
                apply_outcomes(txn, &tenant, &end.domain_outcomes).await?;
                domain::Entity::update_many()
                    .col_expr(
                        domain::Column::RetractStatus,
                        Expr::value(RetractStatus::NotGranted.as_str()),
                    )
                    .col_expr(domain::Column::UpdatedAt, Expr::value(at))
                    .filter(domain::Column::TenantId.eq(tenant.as_str()))
                    .filter(domain::Column::RetractStatus.eq(RetractStatus::Pending.as_str()))
                    .exec(txn)
                    .await?;
                if let (true, Some(microsoft)) = (end.link, &end.microsoft_tenant_id) {
                    let mut link = tenant::Entity::update_many()
                        .col_expr(
                            tenant::Column::MicrosoftTenantId,
                            Expr::value(microsoft.as_str()),
                        )
                        .col_expr(tenant::Column::UpdatedAt, Expr::value(at))
                        .filter(tenant::Column::TenantId.eq(tenant.as_str()));
                    if !allow_relink {
                        // Decided here, in the transaction: a concurrent consent from another
                        // Microsoft tenant cannot slip in between check and write.
                        link = link.filter(
                            sea_orm::Condition::any()
                                .add(tenant::Column::MicrosoftTenantId.is_null())
                                .add(tenant::Column::MicrosoftTenantId.eq(microsoft.as_str())),
                        );
                    }
                    if link.exec(txn).await?.rows_affected == 0 {
                        return Err(StoreError::LinkedElsewhere);
                    }
                }
                audit::insert(txn, audit).await?;
                grant_from_row(row)
            }
            .boxed()
        })
        .await
    }

    /// The tenant of the attempt awaiting this state, if any.
    pub async fn grant_tenant_by_state_hash(
        &self,
        state_hash: &str,
    ) -> Result<Option<TenantId>, StoreError> {
        let row = grant::Entity::find()
            .filter(grant::Column::StateHash.eq(state_hash))
            .filter(grant::Column::Status.eq(GrantState::AwaitingConsent.as_str()))
            .one(&self.db)
            .await?;
        row.map(|r| {
            TenantId::parse(&r.tenant_id)
                .map_err(|e| StoreError::Corrupt(format!("grant tenant id: {e}")))
        })
        .transpose()
    }

    /// Ends attempts nobody came back to: AWAITING_CONSENT past their expiry become EXPIRED,
    /// and their tenants' PENDING domains FAILED with `reason`, unless another attempt of
    /// that tenant is still running. Returns how many attempts expired.
    pub async fn expire_stale_grants(&self, reason: &str) -> Result<u64, StoreError> {
        let reason = reason.to_owned();
        in_transaction(&self.db, move |txn| {
            async move {
                let at = now();
                let expired = grant::Entity::update_many()
                    .col_expr(
                        grant::Column::Status,
                        Expr::value(GrantState::Expired.as_str()),
                    )
                    .col_expr(grant::Column::CompletedAt, Expr::value(Some(at)))
                    .col_expr(grant::Column::PkceVerifier, Expr::value(""))
                    .filter(grant::Column::Status.eq(GrantState::AwaitingConsent.as_str()))
                    .filter(grant::Column::ExpiresAt.lt(at))
                    .exec_with_returning(txn)
                    .await?;
                let tenants = expired.iter().map(|g| g.tenant_id.clone()).collect();
                fail_pending_domains(txn, tenants, &reason).await?;
                Ok(expired.len() as u64)
            }
            .boxed()
        })
        .await
    }

    /// One of a tenant's consent attempts.
    pub async fn get_grant(&self, tenant: &TenantId, id: &str) -> Result<Grant, StoreError> {
        grant::Entity::find_by_id(id)
            .filter(grant::Column::TenantId.eq(tenant.as_str()))
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                resource: "grant",
                id: id.to_owned(),
            })
            .and_then(grant_from_row)
    }

    /// Records a re-verification: each outcome applied to the tenant's domains, with `audit`.
    pub async fn record_verification(
        &self,
        tenant: &TenantId,
        outcomes: Vec<DomainOutcome>,
        audit: AuditEntry,
    ) -> Result<(), StoreError> {
        let tenant = tenant.clone();
        in_transaction(&self.db, move |txn| {
            async move {
                apply_outcomes(txn, &tenant, &outcomes).await?;
                audit::insert(txn, audit).await
            }
            .boxed()
        })
        .await
    }

    /// Tenants linked to a Microsoft tenant, with the link (for periodic re-verification).
    pub async fn linked_tenants(&self) -> Result<Vec<(TenantId, String)>, StoreError> {
        let rows = tenant::Entity::find()
            .filter(tenant::Column::MicrosoftTenantId.is_not_null())
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|t| Some((TenantId::parse(&t.tenant_id).ok()?, t.microsoft_tenant_id?)))
            .collect())
    }
}

/// Puts the PENDING domains of `tenants` to FAILED with `reason`, except for tenants with an
/// attempt still running.
async fn fail_pending_domains<C: ConnectionTrait>(
    txn: &C,
    mut tenants: Vec<String>,
    reason: &str,
) -> Result<(), StoreError> {
    let at = now();
    tenants.sort();
    tenants.dedup();
    for tenant in tenants {
        let running = grant::Entity::find()
            .filter(grant::Column::TenantId.eq(tenant.as_str()))
            .filter(grant::Column::Status.is_in([
                GrantState::AwaitingConsent.as_str(),
                GrantState::Completing.as_str(),
            ]))
            .one(txn)
            .await?;
        if running.is_some() {
            continue;
        }
        domain::Entity::update_many()
            .col_expr(
                domain::Column::RetractStatus,
                Expr::value(RetractStatus::Failed.as_str()),
            )
            .col_expr(
                domain::Column::StatusReason,
                Expr::value(Some(reason.to_owned())),
            )
            .col_expr(domain::Column::UpdatedAt, Expr::value(at))
            .filter(domain::Column::TenantId.eq(tenant.as_str()))
            .filter(domain::Column::RetractStatus.eq(RetractStatus::Pending.as_str()))
            .exec(txn)
            .await?;
    }
    Ok(())
}

async fn apply_outcomes<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    outcomes: &[DomainOutcome],
) -> Result<(), StoreError> {
    let at = now();
    for outcome in outcomes {
        domain::Entity::update_many()
            .col_expr(
                domain::Column::RetractStatus,
                Expr::value(outcome.retract_status().as_str()),
            )
            .col_expr(
                domain::Column::StatusReason,
                Expr::value(outcome.reason.as_deref().map(|r| bounded(r, FREE_TEXT))),
            )
            .col_expr(domain::Column::LastCheckedAt, Expr::value(Some(at)))
            .col_expr(domain::Column::UpdatedAt, Expr::value(at))
            .filter(domain::Column::TenantId.eq(tenant.as_str()))
            .filter(domain::Column::Name.eq(outcome.domain.as_str()))
            .exec(conn)
            .await?;
    }
    Ok(())
}

fn grant_from_row(row: grant::Model) -> Result<Grant, StoreError> {
    Ok(Grant {
        tenant_id: TenantId::parse(&row.tenant_id)
            .map_err(|e| StoreError::Corrupt(format!("grant tenant id: {e}")))?,
        state: GrantState::from_stored(&row.status)
            .ok_or_else(|| StoreError::Corrupt(format!("grant status {:?}", row.status)))?,
        domain_outcomes: serde_json::from_value(row.domain_outcomes)
            .map_err(|e| StoreError::Corrupt(format!("grant domain outcomes: {e}")))?,
        id: row.id,
        allow_relink: row.allow_relink,
        requested_by: row.started_by,
        request_id: row.request_id,
        created_at: row.created_at,
        expires_at: row.expires_at,
        completed_at: row.completed_at,
        microsoft_tenant_id: row
            .microsoft_tenant_id
            .as_deref()
            .map(|id| parse_stored("Microsoft tenant id", id, MicrosoftTenantId::parse))
            .transpose()?,
        error: row.error,
        error_description: row.error_description,
    })
}
