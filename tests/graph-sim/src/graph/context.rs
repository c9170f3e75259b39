//! Every Graph call's preamble: bearer token, tenant scoping, permission and mailbox checks,
//! throttling, injected latency and faults.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequestParts, MatchedPath};
use http::request::Parts;
use http::{Method, StatusCode, header};

use super::error::GraphError;
use crate::core::Sim;
use crate::identity::tokens::{AccessClaims, TokenRejection};
use crate::middleware::current_request_id;
use crate::pipeline::{delay_and_draw, drop_connection};
use crate::record::{CallSlot, Fault, ThrottleEvent};
use crate::seed::MailboxKind;
use crate::server::ConnKill;
use crate::settings::Endpoint;
use crate::throttle::{Admission, Target, ThrottleReason, Throttled};

/// The mailbox a mail call addresses.
#[derive(Debug, Clone)]
pub struct MailboxTarget {
    pub user_id: String,
    /// Primary SMTP address, lower case (the throttling and logging key).
    pub mail: String,
}

/// An authenticated Graph call.
pub struct GraphCx {
    pub sim: Arc<Sim>,
    pub claims: Arc<AccessClaims>,
    pub endpoint: Endpoint,
    slot: CallSlot,
    kill: Option<ConnKill>,
}

/// Which endpoint a matched route is.
fn endpoint_of(method: &Method, route: &str) -> Endpoint {
    match route {
        "/v1.0/organization" => Endpoint::Organization,
        "/v1.0/domains" => Endpoint::Domains,
        "/v1.0/me" => Endpoint::Me,
        "/v1.0/users" => Endpoint::UserQuery,
        "/v1.0/users/{user}" => Endpoint::UserGet,
        "/v1.0/users/{user}/messages" => Endpoint::MessageList,
        "/v1.0/users/{user}/mailFolders/{folder}/messages" => Endpoint::FolderMessages,
        "/v1.0/users/{user}/messages/{message}" if method == Method::DELETE => {
            Endpoint::MessageDelete
        }
        "/v1.0/users/{user}/messages/{message}" => Endpoint::MessageGet,
        "/v1.0/users/{user}/messages/{message}/permanentDelete" => Endpoint::PermanentDelete,
        "/v1.0/users/{user}/messages/{message}/move" => Endpoint::Move,
        "/v1.0/$batch" => Endpoint::Batch,
        _ => Endpoint::Unknown,
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

impl FromRequestParts<Arc<Sim>> for GraphCx {
    type Rejection = GraphError;

    async fn from_request_parts(parts: &mut Parts, sim: &Arc<Sim>) -> Result<Self, GraphError> {
        let slot = parts
            .extensions
            .get::<CallSlot>()
            .cloned()
            .unwrap_or_default();
        let endpoint = parts
            .extensions
            .get::<MatchedPath>()
            .map_or(Endpoint::Unknown, |p| {
                endpoint_of(&parts.method, p.as_str())
            });
        slot.lock().endpoint = Some(endpoint);
        let token = bearer(parts).ok_or(GraphError::unauthenticated(TokenRejection::Missing))?;
        let claims = sim
            .tokens
            .validate_access(token, sim.now_unix())
            .map_err(GraphError::unauthenticated)?;
        {
            let mut info = slot.lock();
            info.tenant = Some(claims.tid.clone());
            info.app = Some(claims.appid.clone());
        }
        Ok(GraphCx {
            sim: sim.clone(),
            claims,
            endpoint,
            slot,
            kill: parts.extensions.get::<ConnKill>().cloned(),
        })
    }
}

impl GraphCx {
    /// A call that addresses no mailbox: app-wide limits, latency, faults.
    pub async fn enter(&self) -> Result<Admission, GraphError> {
        let admission = self.admit(Target::App)?;
        self.inject().await?;
        Ok(admission)
    }

    /// A directory read (`/users…`, `/me`): app-wide limits and the tenant's directory budget.
    pub async fn enter_directory(&self) -> Result<Admission, GraphError> {
        let admission = self.admit(Target::Directory(&self.claims.tid))?;
        self.inject().await?;
        Ok(admission)
    }

    /// A mail call: the user must exist in the token's tenant and have a mailbox this caller may
    /// use; then per-mailbox throttling, latency, faults.
    pub async fn enter_mailbox(
        &self,
        user_key: &str,
        write: bool,
    ) -> Result<(MailboxTarget, Admission), GraphError> {
        let target = self.resolve_mailbox(user_key, write)?;
        self.slot.lock().mailbox = Some(target.mail.clone());
        let admission = self.admit(Target::Mailbox(&target.mail))?;
        self.inject().await?;
        Ok((target, admission))
    }

    fn resolve_mailbox(&self, user_key: &str, write: bool) -> Result<MailboxTarget, GraphError> {
        let world = self.sim.world.read();
        let user = world
            .directory
            .user_in_tenant(&self.claims.tid, user_key)
            .ok_or_else(|| GraphError::invalid_user(user_key))?;
        let permitted = if self.claims.is_app_only() {
            self.claims.has_role("Mail.ReadWrite") || (!write && self.claims.has_role("Mail.Read"))
        } else {
            let scopes = self.claims.scp.as_deref().unwrap_or_default();
            let has = |s: &str| scopes.split(' ').any(|x| x.eq_ignore_ascii_case(s));
            self.claims.oid.eq_ignore_ascii_case(&user.id)
                && (has("Mail.ReadWrite") || (!write && has("Mail.Read")))
        };
        if !permitted {
            return Err(GraphError::mail_access_denied());
        }
        if user.mailbox == MailboxKind::NotEnabled {
            return Err(GraphError::new(
                StatusCode::NOT_FOUND,
                "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            ));
        }
        if user.access_policy_excluded && self.claims.is_app_only() {
            return Err(GraphError::new(
                StatusCode::FORBIDDEN,
                "ErrorAccessDenied",
                "Access to OData is disabled.",
            ));
        }
        Ok(MailboxTarget {
            user_id: user.id.clone(),
            mail: user.mail.to_ascii_lowercase(),
        })
    }

    /// Storms and throttling limits.
    fn admit(&self, target: Target<'_>) -> Result<Admission, GraphError> {
        let mailbox = match target {
            Target::Mailbox(mailbox) => Some(mailbox),
            _ => None,
        };
        let now = Instant::now();
        let settings = self.sim.settings.read();
        let retry_after_secs = settings.limits.retry_after_secs;
        let mailbox_throttle = mailbox.and_then(|m| self.sim.chaos.mailbox_throttled(m, now));
        if let Some(retry_after_secs) = mailbox_throttle {
            drop(settings);
            self.slot.lock().fault = Some(Fault::Storm);
            return Err(self.throttled(
                Throttled {
                    reason: ThrottleReason::Storm,
                    retry_after_secs,
                },
                mailbox,
            ));
        }
        if self.sim.chaos.storm_active(now) {
            drop(settings);
            self.slot.lock().fault = Some(Fault::Storm);
            return Err(self.throttled(
                Throttled {
                    reason: ThrottleReason::Storm,
                    retry_after_secs,
                },
                mailbox,
            ));
        }
        let verdict = self
            .sim
            .throttle
            .admit(&settings.limits, &self.claims.appid, target, now);
        drop(settings);
        verdict.map_err(|throttled| self.throttled(throttled, mailbox))
    }

    fn throttled(&self, throttled: Throttled, mailbox: Option<&str>) -> GraphError {
        let at = Instant::now();
        self.sim.recorder.push_throttle(ThrottleEvent {
            request_id: current_request_id(),
            app: self.claims.appid.clone(),
            tenant: Some(self.claims.tid.clone()),
            mailbox: mailbox.map(str::to_owned),
            reason: throttled.reason,
            retry_after_secs: throttled.retry_after_secs,
            at_us: self.sim.micros_since_start(at),
            at,
        });
        GraphError::throttled(throttled)
    }

    /// The test gate, then injected latency and faults.
    pub async fn inject(&self) -> Result<(), GraphError> {
        self.sim.gate.pass().await;
        self.inject_faults().await
    }

    /// Injected latency and faults only: all a `$batch` envelope gets (it is neither throttled
    /// nor held; its sub-requests are).
    pub async fn inject_faults(&self) -> Result<(), GraphError> {
        let Some(fault) = delay_and_draw(&self.sim, self.endpoint, &self.slot).await else {
            return Ok(());
        };
        let retry_after_secs = self.sim.settings.read().limits.retry_after_secs;
        let mailbox = self.slot.lock().mailbox.clone();
        match fault {
            Fault::DropConnection => {
                drop_connection(self.kill.as_ref()).await;
                Err(GraphError::server_fault(StatusCode::INTERNAL_SERVER_ERROR))
            }
            Fault::Error500 => Err(GraphError::server_fault(StatusCode::INTERNAL_SERVER_ERROR)),
            Fault::Error502 => Err(GraphError::server_fault(StatusCode::BAD_GATEWAY)),
            Fault::Error503 => Err(GraphError::server_fault(StatusCode::SERVICE_UNAVAILABLE)
                .with_retry_after(retry_after_secs)),
            Fault::Error504 => Err(GraphError::server_fault(StatusCode::GATEWAY_TIMEOUT)),
            Fault::Throttle429 => Err(self.throttled(
                Throttled {
                    reason: ThrottleReason::Injected,
                    retry_after_secs,
                },
                mailbox.as_deref(),
            )),
            Fault::Storm | Fault::SlowBody => Ok(()),
        }
    }

    /// Whether the caller may read users: any of them (`target == None`) or one.
    pub fn may_read_users(&self, target_user_id: Option<&str>) -> bool {
        if self.claims.is_app_only() {
            [
                "User.Read.All",
                "User.ReadBasic.All",
                "User.ReadWrite.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ]
            .iter()
            .any(|r| self.claims.has_role(r))
        } else {
            target_user_id.is_some_and(|id| id.eq_ignore_ascii_case(&self.claims.oid))
        }
    }
}
