//! The Retract tab's recipient pages, kept in memory and keyed by the version of the
//! delivery row they were read at.
//!
//! A page of 1,000 recipients costs a thousand rows read and parsed; the tab is opened by
//! many administrators at once during an incident, for the same message. Each read still
//! fetches the delivery row (one indexed row): a page cached under another `updated_at` or
//! recipient count is never served, so a change written by this replica or any other is seen
//! at once. Every change to a delivery's recipients moves its `updated_at`
//! ([`Store::record_deliveries`](super::Store::record_deliveries)); a purged delivery has no
//! row to match.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};

use super::Page;
use crate::{domain::EmailAddress, kept::Kept};

/// Pages kept at most (each up to 1,000 recipients and a sample of 100: about 100 KB).
pub const MAX_PAGES: usize = 128;

/// Which page of which version of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct PageKey {
    /// The delivery row's id: unique across tenants, so a key never matches another
    /// tenant's delivery.
    pub delivery_id: String,
    /// The row's version: any change to its recipients moves `updated_at`, and a new
    /// recipient changes the count too.
    pub updated_at: DateTime<Utc>,
    pub recipient_count: i32,
    /// The page asked for.
    pub after: Option<EmailAddress>,
    pub size: u64,
}

/// What one read of a page of a delivery's recipients found, shared by every caller while
/// the delivery does not change.
#[derive(Debug)]
pub struct RecipientPage {
    /// The delivery's first recipients (its search-result sample).
    pub sample: Vec<EmailAddress>,
    /// The page, each recipient with its latest delivery time.
    pub page: Page<(EmailAddress, Option<DateTime<Utc>>)>,
    /// Which read this is: unique in this process, so what is made from a page (the Retract
    /// tab's rows) can be kept under it and is never taken for another version's.
    read: u64,
}

impl RecipientPage {
    /// A page just read.
    pub(super) fn new(
        sample: Vec<EmailAddress>,
        page: Page<(EmailAddress, Option<DateTime<Utc>>)>,
    ) -> Self {
        static READS: AtomicU64 = AtomicU64::new(0);
        Self {
            sample,
            page,
            read: READS.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Which read of the page this is (unique in this process).
    pub fn read(&self) -> u64 {
        self.read
    }
}

/// The cache shared by every clone of a [`Store`](super::Store).
pub(super) type RecipientPages = Kept<PageKey, RecipientPage>;

/// An empty cache of [`MAX_PAGES`] pages.
pub(super) fn recipient_pages() -> RecipientPages {
    Kept::new(MAX_PAGES)
}
