//! "A USS administrator user that matches a registered mailbox email address": whether an
//! administrator's address is a mailbox of the tenant's Microsoft 365, remembered for a while
//! so that a busy Retract tab does not ask Microsoft at every click.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use super::{GraphClient, GraphError};
use crate::domain::{EmailAddress, MicrosoftTenantId};

/// Most answers kept; past that the cache starts over (it only saves lookups).
const MAX_ENTRIES: usize = 10_000;

/// The administrator-mailbox check with its cache.
pub struct AdminMailboxes {
    graph: GraphClient,
    ttl: Duration,
    known: Mutex<HashMap<(MicrosoftTenantId, EmailAddress), (bool, Instant)>>,
}

impl AdminMailboxes {
    /// Checks through `graph`, keeping answers for `ttl`.
    pub fn new(graph: GraphClient, ttl: Duration) -> Self {
        Self {
            graph,
            ttl,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `email` is a mailbox of `microsoft_tenant`.
    pub async fn exists(
        &self,
        microsoft_tenant: &MicrosoftTenantId,
        email: &EmailAddress,
    ) -> Result<bool, GraphError> {
        let key = (microsoft_tenant.clone(), email.clone());
        if let Some((answer, at)) = self.lock().get(&key)
            && at.elapsed() < self.ttl
        {
            return Ok(*answer);
        }
        let answer = self
            .graph
            .resolve_mailbox(microsoft_tenant, email)
            .await?
            .is_some();
        let mut known = self.lock();
        if known.len() >= MAX_ENTRIES {
            known.clear();
        }
        known.insert(key, (answer, Instant::now()));
        Ok(answer)
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(MicrosoftTenantId, EmailAddress), (bool, Instant)>>
    {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
