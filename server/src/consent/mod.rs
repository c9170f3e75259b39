//! "Grant Permissions": the admin-consent flow and domain verification.
//!
//! # Layout
//! - [`Consent`]: start an attempt (state + PKCE, expiring), complete it from the redirect,
//!   re-verify a tenant's domains with the app token, and re-verify periodically.
//! - `microsoft`: the authorize URL, code redemption, and `/me`.
//! - `verification`: which of our domains the Microsoft tenant backs, and why not.
//! - `callback`: the HTTP GET endpoint the administrator's browser lands on, and its page.
//!
//! A consent URL forwarded to another organisation's administrator cannot link their
//! Microsoft tenant to ours: the signed-in user's address must be in one of our tenant's
//! registered domains, and the Microsoft tenant comes from the tokens, never the redirect.

mod callback;
mod microsoft;
pub mod verification;

use std::time::Duration;

use chrono::Utc;
use sha2::{Digest as _, Sha256};

pub use callback::{CallbackService, CompletionParams};

use crate::{
    domain::{
        AuditAction, AuditDetails, AuditEntry, AuditOutcome, DomainName, DomainOutcome,
        EmailAddress, Grant, GrantEnd, GrantState, MicrosoftTenantId, NewGrant, RetractStatus,
        TenantId,
    },
    graph::{GraphClient, GraphError, GraphSettings},
    store::{Store, StoreError},
};

/// Why a consent operation could not be carried out (a declined consent is not an error: it
/// is a FAILED attempt).
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// No attempt awaits this state: never issued, or already used.
    #[error("unknown or already used consent state")]
    UnknownState,
    /// The attempt expired before the administrator came back.
    #[error("this consent attempt expired; press Grant Permissions again")]
    Expired(Box<Grant>),
    /// The tenant is linked to another Microsoft tenant and the attempt did not allow relinking.
    #[error("{message}")]
    RelinkRefused {
        /// The attempt, recorded FAILED.
        grant: Box<Grant>,
        /// What happened.
        message: String,
    },
    /// The tenant has no linked Microsoft tenant to verify against.
    #[error("tenant {0} is not linked to a Microsoft 365 tenant yet; grant permissions first")]
    NotLinked(TenantId),
    /// No app registration (client id and secret) is configured.
    #[error(
        "the Microsoft Graph app registration is not configured (graph_client_id, graph_client_secret)"
    )]
    NotConfigured,
    /// Microsoft could not be reached.
    #[error("Microsoft 365 is unreachable: {0}")]
    Unreachable(GraphError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The completion task ended abnormally.
    #[error("consent completion interrupted: {0}")]
    Interrupted(String),
}

/// How the consent flow is configured.
#[derive(Clone)]
pub struct ConsentSettings {
    /// Microsoft endpoints and the app registration; `None` when not configured.
    pub graph: Option<GraphSettings>,
    /// Where Microsoft sends the administrator back (our callback).
    pub redirect_uri: String,
    /// How long a consent URL stays usable.
    pub ttl: Duration,
}

/// Who is acting, for the audit trail.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The authenticated caller (or, for the browser callback, the one who started).
    pub name: String,
    /// The request id.
    pub request_id: String,
}

/// The consent flow.
#[derive(Clone)]
pub struct Consent {
    store: Store,
    settings: ConsentSettings,
    http: reqwest::Client,
    graph: Option<GraphClient>,
}

fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

impl Consent {
    /// The flow over `store`, calling the identity platform with `http` and Graph with
    /// `graph` (the process's one Graph client; `None` without an app registration).
    pub fn new(
        store: Store,
        settings: ConsentSettings,
        http: reqwest::Client,
        graph: Option<GraphClient>,
    ) -> Self {
        Self {
            store,
            settings,
            http,
            graph,
        }
    }

    fn graph_settings(&self) -> Result<&GraphSettings, ConsentError> {
        self.settings
            .graph
            .as_ref()
            .ok_or(ConsentError::NotConfigured)
    }

    fn graph(&self) -> Result<&GraphClient, ConsentError> {
        self.graph.as_ref().ok_or(ConsentError::NotConfigured)
    }

    /// Starts an attempt for `tenant`: returns it and the URL for the administrator's browser.
    pub async fn start(
        &self,
        tenant: &TenantId,
        allow_relink: bool,
        actor: &Actor,
    ) -> Result<(Grant, String), ConsentError> {
        let authorization =
            microsoft::authorization(self.graph_settings()?, &self.settings.redirect_uri)
                .map_err(ConsentError::Unreachable)?;
        let ttl =
            chrono::Duration::from_std(self.settings.ttl).unwrap_or(chrono::Duration::minutes(10));
        let new = NewGrant {
            id: uuid::Uuid::new_v4().to_string(),
            tenant_id: tenant.clone(),
            state_hash: state_hash(&authorization.state),
            pkce_verifier: authorization.pkce_verifier,
            allow_relink,
            requested_by: actor.name.clone(),
            request_id: actor.request_id.clone(),
            expires_at: crate::domain::now() + ttl,
        };
        let audit = AuditEntry {
            tenant_id: tenant.clone(),
            actor: actor.name.clone(),
            action: AuditAction::GrantStarted,
            target: new.id.clone(),
            outcome: AuditOutcome::Succeeded,
            correlation_id: actor.request_id.clone(),
            details: AuditDetails::GrantStarted {
                grant_id: new.id.clone(),
                allow_relink,
                expires_at: new.expires_at,
            },
        };
        let grant = self.store.create_grant(new, audit).await?;
        Ok((grant, authorization.url))
    }

    /// The tenant whose attempt `state` names, if one awaits it (for callers that must be
    /// checked against that tenant before completing).
    pub async fn tenant_of_state(&self, state: &str) -> Result<Option<TenantId>, ConsentError> {
        Ok(self
            .store
            .grant_tenant_by_state_hash(&state_hash(state))
            .await?)
    }

    /// Completes the attempt the redirect's `state` names. Declines, Microsoft errors and
    /// unprovable consents end the attempt FAILED (returned as `Ok`); an unknown, reused or
    /// expired state changes nothing the tenant relies on.
    ///
    /// The work runs on its own task: once the state is spent, a caller that gives up (a
    /// closed tab, a deadline) cannot leave the attempt half done.
    pub async fn complete(&self, params: &CompletionParams) -> Result<Grant, ConsentError> {
        let this = self.clone();
        let params = params.sanitized();
        tokio::spawn(async move { this.complete_spent(&params).await })
            .await
            .map_err(|e| ConsentError::Interrupted(e.to_string()))?
    }

    async fn complete_spent(&self, params: &CompletionParams) -> Result<Grant, ConsentError> {
        let claimed = self
            .store
            .claim_grant(&state_hash(&params.state))
            .await?
            .ok_or(ConsentError::UnknownState)?;
        let grant = claimed.grant;
        let all = self.store.all_domains(&grant.tenant_id).await?;
        let domains: Vec<DomainName> = all.iter().map(|d| d.name.clone()).collect();
        // A failed attempt does not undo what an earlier consent still grants.
        let unsettled: Vec<DomainName> = all
            .iter()
            .filter(|d| d.retract_status != RetractStatus::Granted)
            .map(|d| d.name.clone())
            .collect();
        if Utc::now() > grant.expires_at {
            let end = failure(
                GrantState::Expired,
                "expired",
                "consent attempt expired; press Grant Permissions again",
                &unsettled,
            );
            let grant = self.finish(&grant, end, None).await?;
            return Err(ConsentError::Expired(Box::new(grant)));
        }
        if let Some(error) = params.error.as_deref().filter(|e| !e.is_empty()) {
            let description = params
                .error_description
                .clone()
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| format!("Microsoft answered {error}"));
            let end = failure(GrantState::Failed, error, &description, &unsettled);
            return self.finish(&grant, end, None).await;
        }
        let code = params.code.as_deref().filter(|c| !c.is_empty());
        let Some(code) = code else {
            let end = failure(
                GrantState::Failed,
                "invalid_request",
                "the redirect carried neither a code nor an error",
                &unsettled,
            );
            return self.finish(&grant, end, None).await;
        };
        match self.prove(&domains, code, &claimed.pkce_verifier).await {
            Ok((end, signed_in)) => {
                let relink = self.relink_refusal(&grant, &end).await?;
                match relink {
                    None => match self.finish(&grant, end, Some(signed_in.clone())).await {
                        // Another consent linked the tenant elsewhere in the meantime.
                        Err(ConsentError::Store(StoreError::LinkedElsewhere)) => {
                            let message = format!(
                                "tenant {} was linked to another Microsoft 365 tenant while this consent completed; start the grant with allow_relink to link it here instead",
                                grant.tenant_id
                            );
                            let end =
                                failure(GrantState::Failed, "relink_refused", &message, &unsettled);
                            let grant = self.finish(&grant, end, Some(signed_in)).await?;
                            Err(ConsentError::RelinkRefused {
                                grant: Box::new(grant),
                                message,
                            })
                        }
                        other => other,
                    },
                    Some(message) => {
                        let end =
                            failure(GrantState::Failed, "relink_refused", &message, &unsettled);
                        let grant = self.finish(&grant, end, Some(signed_in)).await?;
                        Err(ConsentError::RelinkRefused {
                            grant: Box::new(grant),
                            message,
                        })
                    }
                }
            }
            Err(Proof::Refused(error, description)) => {
                self.finish(
                    &grant,
                    failure(GrantState::Failed, &error, &description, &unsettled),
                    None,
                )
                .await
            }
            Err(Proof::Unreachable(err)) => {
                let end = failure(
                    GrantState::Failed,
                    "unreachable",
                    &format!("Microsoft 365 could not be reached: {err}"),
                    &unsettled,
                );
                self.finish(&grant, end, None).await
            }
        }
    }

    /// Redeems the code and establishes, from what the tokens prove, the Microsoft tenant and
    /// the signed-in administrator; then verifies the domains with the app token.
    async fn prove(
        &self,
        domains: &[DomainName],
        code: &str,
        verifier: &str,
    ) -> Result<(GrantEnd, String), Proof> {
        let settings = self.graph_settings().map_err(|_| {
            Proof::Refused(
                "not_configured".into(),
                ConsentError::NotConfigured.to_string(),
            )
        })?;
        let signed_in = microsoft::redeem(
            settings,
            &self.http,
            &self.settings.redirect_uri,
            code,
            verifier,
        )
        .await
        .map_err(Proof::from)?;
        let microsoft = MicrosoftTenantId::parse(&signed_in.microsoft_tenant_id).map_err(|_| {
            Proof::Refused(
                "invalid_token".into(),
                "the id token names no valid Microsoft 365 tenant".into(),
            )
        })?;
        let me = microsoft::me(settings, &self.http, &signed_in.access_token)
            .await
            .map_err(Proof::from)?;
        if signed_in
            .object_id
            .as_deref()
            .is_some_and(|oid| oid != me.id)
        {
            return Err(Proof::Refused(
                "user_mismatch".into(),
                "Graph's /me does not match the signed-in user".into(),
            ));
        }
        // The sign-in name, not `mail` (which an administrator can set to anything): Entra
        // only allows a UPN suffix that is a verified domain of the user's own tenant.
        let upn = me.user_principal_name.as_deref().unwrap_or_default();
        let admin_domain = EmailAddress::parse(upn).ok().map(|a| a.domain().to_owned());
        let foreign = || {
            Proof::Refused(
                "foreign_administrator".into(),
                format!(
                    "the administrator who consented ({upn}) does not sign in with a domain of this tenant that the Microsoft 365 tenant has verified for Email"
                ),
            )
        };
        let Some(admin_domain) = admin_domain.filter(|d| domains.iter().any(|x| x.as_str() == d))
        else {
            return Err(foreign());
        };
        let outcomes = self
            .verify_against(&microsoft, domains)
            .await
            .map_err(Proof::from)?;
        let admin_domain_granted = outcomes
            .iter()
            .any(|o| o.domain == admin_domain && o.retract_status() == RetractStatus::Granted);
        if !admin_domain_granted {
            return Err(foreign());
        }
        let granted = outcomes
            .iter()
            .filter(|o| o.retract_status() == RetractStatus::Granted)
            .count();
        let state = if granted == outcomes.len() {
            GrantState::Succeeded
        } else {
            GrantState::PartiallySucceeded
        };
        let end = GrantEnd {
            state,
            error: None,
            error_description: None,
            microsoft_tenant_id: Some(microsoft),
            link: true,
            domain_outcomes: outcomes,
        };
        Ok((end, upn.to_owned()))
    }

    /// The domain outcomes for `microsoft_tenant` with the app token. Only the tenant's own
    /// refusal of the app (consent withdrawn or never given, app or tenant gone) fails every
    /// domain as revoked; an outage or our own rejected credential changes no domain.
    async fn verify_against(
        &self,
        microsoft_tenant: &MicrosoftTenantId,
        domains: &[DomainName],
    ) -> Result<Vec<DomainOutcome>, GraphError> {
        let graph = self
            .graph()
            .map_err(|e| GraphError::Transport(e.to_string()))?;
        match graph.list_domains(microsoft_tenant).await {
            Ok(theirs) => Ok(verification::outcomes(domains, &theirs)),
            Err(GraphError::ConsentMissing { .. }) => {
                Ok(verification::all_failed(domains, verification::REVOKED))
            }
            Err(err) => Err(err),
        }
    }

    async fn relink_refusal(
        &self,
        grant: &Grant,
        end: &GrantEnd,
    ) -> Result<Option<String>, ConsentError> {
        let tenant = self.store.get_tenant(&grant.tenant_id).await?;
        let proven = end.microsoft_tenant_id.as_ref();
        Ok(match (tenant.microsoft_tenant_id.as_ref(), proven) {
            (Some(linked), Some(proven)) if linked != proven && !grant.allow_relink => {
                Some(format!(
                    "tenant {} is linked to Microsoft 365 tenant {linked}; this consent came from {proven}. Start the grant with allow_relink to link it there instead",
                    grant.tenant_id
                ))
            }
            _ => None,
        })
    }

    async fn finish(
        &self,
        grant: &Grant,
        end: GrantEnd,
        signed_in: Option<String>,
    ) -> Result<Grant, ConsentError> {
        let (action, outcome) = match end.state {
            GrantState::Succeeded => (AuditAction::GrantCompleted, AuditOutcome::Succeeded),
            GrantState::PartiallySucceeded => (
                AuditAction::GrantCompleted,
                AuditOutcome::PartiallySucceeded,
            ),
            GrantState::Expired => (AuditAction::GrantExpired, AuditOutcome::Failed),
            _ => (AuditAction::GrantFailed, AuditOutcome::Failed),
        };
        let audit = AuditEntry {
            tenant_id: grant.tenant_id.clone(),
            // The browser carries no token: the administrator who started the attempt acts.
            actor: grant.requested_by.clone(),
            action,
            target: grant.id.clone(),
            outcome,
            correlation_id: grant.request_id.clone(),
            details: AuditDetails::GrantFinished {
                grant_id: grant.id.clone(),
                microsoft_tenant_id: end.microsoft_tenant_id.as_ref().map(ToString::to_string),
                signed_in_administrator: signed_in,
                error: end.error.clone(),
                error_description: end.error_description.clone(),
                domain_outcomes: end.domain_outcomes.clone(),
            },
        };
        Ok(self.store.finish_grant(grant, end, audit).await?)
    }

    /// Re-checks every domain of `tenant` against its linked Microsoft tenant.
    pub async fn verify(
        &self,
        tenant: &TenantId,
        actor: &Actor,
    ) -> Result<Vec<DomainOutcome>, ConsentError> {
        self.graph()?;
        let linked = self
            .store
            .get_tenant(tenant)
            .await?
            .microsoft_tenant_id
            .ok_or_else(|| ConsentError::NotLinked(tenant.clone()))?;
        let domains = self.tenant_domains(tenant).await?;
        let outcomes = self
            .verify_against(&linked, &domains)
            .await
            .map_err(ConsentError::Unreachable)?;
        let granted = outcomes
            .iter()
            .filter(|o| o.retract_status() == RetractStatus::Granted)
            .count();
        let audit = AuditEntry {
            tenant_id: tenant.clone(),
            actor: actor.name.clone(),
            action: AuditAction::DomainsVerified,
            target: tenant.to_string(),
            outcome: match granted {
                0 if !outcomes.is_empty() => AuditOutcome::Failed,
                n if n == outcomes.len() => AuditOutcome::Succeeded,
                _ => AuditOutcome::PartiallySucceeded,
            },
            correlation_id: actor.request_id.clone(),
            details: AuditDetails::DomainsVerified {
                microsoft_tenant_id: linked.to_string(),
                domain_outcomes: outcomes.clone(),
            },
        };
        self.store
            .record_verification(tenant, outcomes.clone(), audit)
            .await?;
        Ok(outcomes)
    }

    /// Re-verifies every linked tenant every `interval` until `stop` (catches consent revoked
    /// in Microsoft 365 without anyone pressing a button).
    pub async fn reverify_periodically(
        self,
        interval: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            let tenants = match self.store.linked_tenants().await {
                Ok(t) => t,
                Err(err) => {
                    tracing::warn!(error = %err, "periodic re-verification: cannot list tenants");
                    continue;
                }
            };
            for (tenant, _) in tenants {
                let actor = Actor {
                    name: "retract:periodic-verification".to_owned(),
                    request_id: uuid::Uuid::now_v7().to_string(),
                };
                if let Err(err) = self.verify(&tenant, &actor).await {
                    tracing::warn!(%tenant, error = %err, "periodic re-verification failed");
                }
            }
        }
    }

    async fn tenant_domains(&self, tenant: &TenantId) -> Result<Vec<DomainName>, StoreError> {
        Ok(self
            .store
            .all_domains(tenant)
            .await?
            .into_iter()
            .map(|d| d.name)
            .collect())
    }
}

/// Why the consent could not be proven.
enum Proof {
    /// Microsoft or our checks refused: (error code, description).
    Refused(String, String),
    /// Microsoft was unreachable.
    Unreachable(GraphError),
}

impl From<GraphError> for Proof {
    fn from(err: GraphError) -> Self {
        match err {
            GraphError::TokenRefused { error, description }
            | GraphError::ConsentMissing { error, description }
            | GraphError::CredentialRejected { error, description } => {
                Self::Refused(error, description)
            }
            GraphError::Api { code, message, .. } => Self::Refused(code, message),
            other @ GraphError::Transport(_) => Self::Unreachable(other),
        }
    }
}

fn failure(state: GrantState, error: &str, description: &str, domains: &[DomainName]) -> GrantEnd {
    GrantEnd {
        state,
        microsoft_tenant_id: None,
        link: false,
        error: Some(error.to_owned()),
        error_description: Some(description.to_owned()),
        domain_outcomes: verification::all_failed(domains, description),
    }
}
