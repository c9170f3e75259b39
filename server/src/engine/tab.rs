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
    sync::{Arc, OnceLock},
};

use bytes::Bytes;

use crate::{
    domain::{
        Delivery, Domain, Eligibility, EmailAddress, InternetMessageId, PageRequest, Tenant,
        TenantId,
    },
    kept::Kept,
    store::{LastRetract, Page, RECIPIENT_PAGES_KEPT, RecipientPage, StoreError},
};

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

/// The tab pages made in this process, by the recipient page read they were made from: as
/// many as the store keeps pages (each up to 1,000 rows, their encoding, and what they were
/// made from: a few hundred KB).
#[derive(Debug, Clone)]
pub(super) struct TabCache {
    made: Kept<u64, Made>,
}

impl Default for TabCache {
    fn default() -> Self {
        Self {
            made: Kept::new(RECIPIENT_PAGES_KEPT),
        }
    }
}

impl TabCache {
    /// The rows made from `page` with these inputs, if they were made before.
    fn find(
        &self,
        page: &RecipientPage,
        domains: &[Domain],
        problems: &HashMap<EmailAddress, (String, String)>,
        last: &HashMap<EmailAddress, LastRetract>,
    ) -> Option<Arc<TabRows>> {
        let found = self.made.get(&page.read())?;
        (found.domains == domains && &found.problems == problems && &found.last == last)
            .then(|| found.rows.clone())
    }

    fn keep(&self, page: &RecipientPage, made: Made) {
        self.made.keep(page.read(), Arc::new(made));
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
