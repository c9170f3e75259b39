//! What a job run learned from the directory about addresses Graph does not know directly
//! (`/users/{address}` answers an unknown user): the mailbox behind an alias or secondary
//! SMTP address, or that there is none. Looked up once per run, however many of the run's
//! visits meet the address again (a parked mailbox visited again, one reached again at a
//! lower depth); directory reads draw on a tight per-tenant budget of their own.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::OnceCell;

use crate::{
    domain::EmailAddress,
    graph::{GraphError, MailboxRef},
};

/// The directory's answers of one job run, by the address asked for: `Some(mailbox)`, or
/// `None` for no mailbox with that address.
#[derive(Default)]
pub struct Aliases {
    found: Mutex<HashMap<EmailAddress, Arc<OnceCell<Option<MailboxRef>>>>>,
}

impl Aliases {
    /// What the directory answered for `address` already in this run, if it was asked.
    pub fn known(&self, address: &EmailAddress) -> Option<Option<MailboxRef>> {
        self.found
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(address)
            .and_then(|cell| cell.get().cloned())
    }

    /// The directory's answer for `address`: `lookup` asks it the first time only. Visits
    /// meeting the address at once share one lookup; a lookup that fails is not remembered
    /// (the next visit asks again).
    pub async fn resolve<F, Fut>(
        &self,
        address: &EmailAddress,
        lookup: F,
    ) -> Result<Option<MailboxRef>, GraphError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<MailboxRef>, GraphError>>,
    {
        self.cell(address).get_or_try_init(lookup).await.cloned()
    }

    fn cell(&self, address: &EmailAddress) -> Arc<OnceCell<Option<MailboxRef>>> {
        self.found
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(address.clone())
            .or_default()
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn an_address_is_looked_up_once_and_a_failed_lookup_is_not_remembered() {
        let aliases = Aliases::default();
        let alias = EmailAddress::parse("d.vader@contoso.com").unwrap();
        let nobody = EmailAddress::parse("nobody@contoso.com").unwrap();
        let lookups = AtomicU32::new(0);
        let dave = MailboxRef {
            id: "u-dave".into(),
            address: alias.to_string(),
        };
        let lookup = |answer: Result<Option<MailboxRef>, GraphError>| {
            lookups.fetch_add(1, Ordering::Relaxed);
            async move { answer }
        };
        assert_eq!(aliases.known(&alias), None);
        let outage = GraphError::Transport("reset".into());
        assert!(
            aliases
                .resolve(&alias, || lookup(Err(outage)))
                .await
                .is_err()
        );
        assert_eq!(aliases.known(&alias), None, "a failure is not an answer");
        for _ in 0..3 {
            let found = aliases
                .resolve(&alias, || lookup(Ok(Some(dave.clone()))))
                .await;
            assert_eq!(found, Ok(Some(dave.clone())));
        }
        assert_eq!(aliases.known(&alias), Some(Some(dave.clone())));
        assert_eq!(
            aliases.resolve(&nobody, || lookup(Ok(None))).await,
            Ok(None)
        );
        assert_eq!(
            aliases.resolve(&nobody, || lookup(Ok(None))).await,
            Ok(None)
        );
        assert_eq!(
            aliases.known(&nobody),
            Some(None),
            "no mailbox is an answer too"
        );
        assert_eq!(
            lookups.load(Ordering::Relaxed),
            3,
            "the failure, Dave, nobody"
        );
    }
}
