//! The conversation fan-out of issue #11's bench, seeded into graph-sim: one phishing message
//! delivered to [`RECIPIENTS`] mailboxes of Contoso; every fifth recipient forwarded it once
//! inside the domain to a mailbox of its own that was not a recipient (hop 1), and every
//! second of those forwards was forwarded again to one more new mailbox (hop 2). Forwards are
//! `createForward`-style: same thread, a child `conversationIndex`, the sender's copy in Sent
//! Items.

use graph_sim::{
    Folder, GraphSim, SignIn,
    seed::{App, Domain, Mail, Tenant, User},
};

use crate::scenarios::{CLIENT_ID, CLIENT_SECRET, PHISH};

/// Original recipients (hop 0).
pub const RECIPIENTS: usize = 1_000;
/// Recipients who forwarded the message (20 %), each to a new mailbox at hop 1.
pub const FIRST_FORWARDS: usize = RECIPIENTS / 5;
/// Hop-1 mailboxes that forwarded it again (half), each to a new mailbox at hop 2.
pub const SECOND_FORWARDS: usize = FIRST_FORWARDS / 2;
/// Every mailbox the fan-out reaches.
pub const MAILBOXES: usize = RECIPIENTS + FIRST_FORWARDS + SECOND_FORWARDS;
/// Copies of hop ≤ 2 in the whole tenant: the phish in each recipient's inbox, and each
/// forward in its sender's Sent Items and its recipient's inbox.
pub const COPIES: usize = RECIPIENTS + 2 * FIRST_FORWARDS + 2 * SECOND_FORWARDS;

/// The original recipient `i`.
pub fn recipient(i: usize) -> String {
    format!("user{i}@contoso.com")
}

/// The mailbox that hop-1 forward `j` reached.
pub fn first_hop(j: usize) -> String {
    format!("fwd1-{j}@contoso.com")
}

/// The mailbox that hop-2 forward `k` reached.
pub fn second_hop(k: usize) -> String {
    format!("fwd2-{k}@contoso.com")
}

/// Every mailbox of the fan-out with the hop that reaches it.
pub fn mailboxes() -> Vec<(String, u8)> {
    let hop0 = (0..RECIPIENTS).map(|i| (recipient(i), 0));
    let hop1 = (0..FIRST_FORWARDS).map(|j| (first_hop(j), 1));
    let hop2 = (0..SECOND_FORWARDS).map(|k| (second_hop(k), 2));
    hop0.chain(hop1).chain(hop2).collect()
}

/// The hop of the mailbox at `address` (lower case), if it is one of the fan-out's.
pub fn hop_of(address: &str) -> Option<u8> {
    if address.starts_with("fwd2-") {
        Some(2)
    } else if address.starts_with("fwd1-") {
        Some(1)
    } else if address.starts_with("user") {
        Some(0)
    } else {
        None
    }
}

/// The internet message ids of the retracted thread (hop ≤ 2).
fn thread_ids() -> std::collections::HashSet<String> {
    let mut ids: std::collections::HashSet<String> = std::collections::HashSet::new();
    ids.insert(PHISH.to_owned());
    ids.extend((0..FIRST_FORWARDS).map(first_forward_id));
    ids.extend((0..SECOND_FORWARDS).map(second_forward_id));
    ids
}

fn first_forward_id(j: usize) -> String {
    format!("<fwd1-{j}@contoso.com>")
}

fn second_forward_id(k: usize) -> String {
    format!("<fwd2-{k}@contoso.com>")
}

/// graph-sim seeded with the fan-out (per-mailbox conversation ids, Graph's throttling limits
/// on). `consented`: the tenant has already consented to the app, for a client that takes an
/// app-only token without going through the grant flow.
pub async fn simulator(consented: bool) -> GraphSim {
    let at = chrono::Utc::now() - chrono::Duration::hours(2);
    let phish = Mail::new(PHISH, "ceo@evil.example")
        .subject("Urgent wire transfer")
        .to((0..RECIPIENTS).map(recipient))
        .sent_at(at);
    let mut tenant = Tenant::new("Contoso")
        .domain(Domain::verified("contoso.com").default_domain())
        .user(User::new("admin@contoso.com").admin());
    if consented {
        tenant = tenant.consent(CLIENT_ID);
    }
    for (address, _) in mailboxes() {
        tenant = tenant.user(User::new(address));
    }
    let mut sim = GraphSim::builder()
        .app(App::new(CLIENT_ID, CLIENT_SECRET))
        .tenant(tenant)
        .sign_in(SignIn::approve_as("admin@contoso.com"))
        .mail(phish.clone());
    for j in 0..FIRST_FORWARDS {
        let first = phish
            .forward(first_forward_id(j), recipient(j * 5))
            .to([first_hop(j)])
            .sent_at(at + chrono::Duration::minutes(10));
        if j % 2 == 0 {
            sim = sim.mail(
                first
                    .forward(second_forward_id(j / 2), first_hop(j))
                    .to([second_hop(j / 2)])
                    .sent_at(at + chrono::Duration::minutes(20)),
            );
        }
        sim = sim.mail(first);
    }
    sim.start().await.expect("graph-sim starts")
}

/// Copies of the thread's messages (hop ≤ 2) a user can still see in the fan-out's
/// mailboxes, and those in Recoverable Items\Deletions (where a SOFT delete puts them).
pub fn copies_left(sim: &GraphSim) -> (usize, usize) {
    let ids = thread_ids();
    let (mut visible, mut recoverable) = (0, 0);
    for (address, _) in mailboxes() {
        for (folder, messages) in sim.mailbox(&address).unwrap_or_default() {
            let n = messages
                .iter()
                .filter(|m| ids.contains(&m.internet_message_id))
                .count();
            if folder.is_user_visible() {
                visible += n;
            } else if folder == Folder::RecoverableItemsDeletions {
                recoverable += n;
            }
        }
    }
    (visible, recoverable)
}
