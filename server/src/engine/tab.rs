//! The Retract tab: every recipient of a page of a delivery with whether it can be retracted,
//! the last job that reached it, and when the message was last delivered to it.
//!
//! During an incident many administrators open the same tab at once. Each call reads what
//! can change (the delivery row, the tenant with its domains, the page's mailbox problems,
//! the jobs of the message), but the rows made from them are kept ([`TabRows`]) while all of it is
//! the same, with their wire form, so a thousand rows are built and encoded once per change
//! instead of once per call. A change by this replica or another is seen at the next call:
//! nothing is kept on trust, only what the reads just confirmed.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

use bytes::Bytes;

use crate::{
    domain::{
        Delivery, Domain, Eligibility, EmailAddress, InternetMessageId, PageRequest, Tenant,
        TenantId,
    },
    store::{LastRetract, Page, RecipientPage, StoreError},
};

/// Tab pages kept at most: as many as the store keeps recipient pages (each up to 1,000
/// rows, their encoding, and what they were made from: a few hundred KB).
const MAX_TABS: usize = 128;

/// One row of the Retract tab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TabRow {
    /// The recipient.
    pub address: EmailAddress,
    /// Whether it can be retracted.
    pub eligibility: Eligibility,
    /// The newest retract job that reached it.
    pub last_retract: Option<LastRetract>,
    /// The latest delivery time reported for it.
    pub last_delivered_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// One page of the tab's rows as every caller in this process shares it.
#[derive(Debug)]
pub struct TabRows {
    rows: Page<TabRow>,
    wire: OnceLock<Bytes>,
}

impl TabRows {
    fn new(rows: Page<TabRow>) -> Self {
        Self {
            rows,
            wire: OnceLock::new(),
        }
    }

    /// The rows, by address.
    pub fn rows(&self) -> &Page<TabRow> {
        &self.rows
    }

    /// The rows' wire form: made by `encode` for the first caller, the same bytes for every
    /// other (so `encode` must not depend on the caller).
    pub fn wire(&self, encode: impl FnOnce(&[TabRow]) -> Bytes) -> Bytes {
        self.wire.get_or_init(|| encode(&self.rows.items)).clone()
    }
}

/// The Retract tab of one delivery: the delivery and one page of its recipients.
#[derive(Debug, Clone)]
pub struct RetractTab {
    /// The tenant, as read with its domains (for the caller's precondition).
    pub tenant: Tenant,
    /// The delivery (its first recipients).
    pub delivery: Delivery,
    /// One page of recipients, by address.
    pub recipients: Arc<TabRows>,
}

/// What a page of rows was made from: the same inputs make the same rows.
#[derive(Debug)]
struct Made {
    domains: Vec<Domain>,
    problems: HashMap<EmailAddress, (String, String)>,
    last: HashMap<EmailAddress, LastRetract>,
    rows: Arc<TabRows>,
}

/// The tab pages made in this process, by the recipient page read they were made from.
#[derive(Debug, Default)]
pub(super) struct TabCache {
    made: Mutex<HashMap<u64, Arc<Made>>>,
}

impl TabCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Made>>> {
        self.made
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The rows made from `page` with these inputs, if they were made before.
    fn find(
        &self,
        page: &RecipientPage,
        domains: &[Domain],
        problems: &HashMap<EmailAddress, (String, String)>,
        last: &HashMap<EmailAddress, LastRetract>,
    ) -> Option<Arc<TabRows>> {
        // Compared outside the lock: every tab call of every tenant takes it.
        let found = self.lock().get(&page.read())?.clone();
        (found.domains == domains && &found.problems == problems && &found.last == last)
            .then(|| found.rows.clone())
    }

    /// Keeps `made`; when full, forgets everything first (pages superseded by a change are
    /// never asked for again, so a full cache is mostly dead entries).
    fn keep(&self, page: &RecipientPage, made: Made) {
        let forgotten = {
            let mut kept = self.lock();
            let forgotten = if kept.len() >= MAX_TABS && !kept.contains_key(&page.read()) {
                std::mem::take(&mut *kept)
            } else {
                HashMap::new()
            };
            kept.insert(page.read(), Arc::new(made));
            forgotten
        };
        // Dropped after the lock is released.
        drop(forgotten);
    }
}

impl super::Engine {
    /// The Retract tab: every recipient of a page with whether it can be retracted, the last
    /// job that reached it, and when the message was last delivered to it.
    pub async fn retract_tab(
        &self,
        tenant: &TenantId,
        message: &InternetMessageId,
        page: &PageRequest<EmailAddress>,
    ) -> Result<RetractTab, StoreError> {
        let (delivery, read) = self
            .store
            .delivery_and_recipients(tenant, message, page)
            .await?;
        let addresses: Vec<&EmailAddress> = read.page.items.iter().map(|(a, _)| a).collect();
        let (tenant_row, domains) = self.store.tenant_and_domains(tenant).await?;
        let problems = self
            .store
            .mailbox_problems_of_page(tenant, &addresses)
            .await?;
        let last = self
            .store
            .last_retracts(tenant, message, &addresses)
            .await?;
        if let Some(rows) = self.tabs.find(&read, &domains, &problems, &last) {
            return Ok(RetractTab {
                tenant: tenant_row,
                delivery,
                recipients: rows,
            });
        }
        let items = read
            .page
            .items
            .iter()
            .map(|(address, last_delivered_at)| TabRow {
                eligibility: Eligibility::assess(address, domains.as_slice(), &problems),
                last_retract: last.get(address).cloned(),
                last_delivered_at: *last_delivered_at,
                address: address.clone(),
            })
            .collect();
        let rows = Arc::new(TabRows::new(Page {
            items,
            has_more: read.page.has_more,
        }));
        self.tabs.keep(
            &read,
            Made {
                domains,
                problems,
                last,
                rows: rows.clone(),
            },
        );
        Ok(RetractTab {
            tenant: tenant_row,
            delivery,
            recipients: rows,
        })
    }
}
