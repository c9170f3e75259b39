//! The gateway records what it delivered; administrators find it again and open the Retract
//! tab to see which recipients can be retracted.

use chrono::{Duration, Utc};
use prost_types::Timestamp;
use retract_client::{Client, DevToken, pb};
use retract_server::domain::{
    AuditAction, AuditDetails, AuditEntry, AuditOutcome, DomainName, DomainOutcome, EmailAddress,
    TenantId,
};
use tonic::Code;

use crate::{app::TestApp, db::Backend, on_both_backends, status::expect_failure};

on_both_backends!(
    a_delivery_is_recorded_normalised_and_read_back,
    a_quarantine_release_merges_recipients_and_keeps_the_first_time,
    a_batch_reports_each_outcome_and_merges_repeats_within_it,
    bad_deliveries_name_every_field_and_store_nothing,
    batches_and_recipient_lists_are_bounded,
    deliveries_are_found_by_every_filter_newest_first_across_pages,
    the_retract_tab_says_who_can_be_retracted_and_why_not,
    deliveries_past_retention_are_removed,
    a_merged_recipient_list_stops_at_ten_thousand,
    filter_times_outside_1970_to_9999_are_invalid_arguments,
    ten_thousand_bad_recipients_give_an_error_a_proxy_accepts,
    one_batch_merges_many_known_deliveries_each_by_its_own_report,
    the_retract_tab_shows_a_merge_at_once_and_each_tenant_its_own_recipients,
);

fn ts(at: chrono::DateTime<Utc>) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    })
}

fn delivery(id: &str, recipients: &[&str], at: chrono::DateTime<Utc>) -> pb::Delivery {
    pb::Delivery {
        internet_message_id: id.into(),
        sender: "billing@vendor.example".into(),
        subject: "Invoice 42".into(),
        delivery_time: ts(at),
        recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
        ..Default::default()
    }
}

fn gateway(app: &TestApp) -> Client {
    app.with_token(
        &DevToken::service("gateway")
            .permission("deliveries.write")
            .permission("retract.read"),
    )
}

async fn record(app: &TestApp, d: pb::Delivery) -> pb::RecordDeliveryResponse {
    gateway(app)
        .retract_service()
        .record_delivery(pb::RecordDeliveryRequest {
            tenant_id: "acme".into(),
            delivery: Some(d),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn search(
    app: &TestApp,
    request: pb::SearchDeliveriesRequest,
) -> Result<pb::SearchDeliveriesResponse, tonic::Status> {
    gateway(app)
        .retract_service()
        .search_deliveries(pb::SearchDeliveriesRequest {
            tenant_id: "acme".into(),
            ..request
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn a_delivery_is_recorded_normalised_and_read_back(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    let at = Utc::now() - Duration::hours(1);
    let r = record(
        &app,
        delivery(
            "<a1@vendor.example>",
            &[
                "Alice@ACME.example",
                "bob@acme.example",
                "alice@acme.example",
            ],
            at,
        ),
    )
    .await;
    assert_eq!(r.outcome(), pb::RecordOutcome::Created);
    let d = r.delivery.unwrap();
    assert_eq!(
        d.recipients,
        ["alice@acme.example", "bob@acme.example"],
        "lowercased, deduplicated"
    );
    assert_eq!(d.recipient_count, 2);
    assert_eq!(d.delivery_time, ts(at));
    assert!(d.record_time.is_some());
    app.stop().await;
}

async fn a_quarantine_release_merges_recipients_and_keeps_the_first_time(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    let first = Utc::now() - Duration::hours(3);
    record(
        &app,
        delivery("<q@vendor.example>", &["alice@acme.example"], first),
    )
    .await;
    let released = record(
        &app,
        delivery(
            "<q@vendor.example>",
            &["bob@acme.example", "alice@acme.example"],
            first + Duration::hours(2),
        ),
    )
    .await;
    assert_eq!(released.outcome(), pb::RecordOutcome::Merged);
    let d = released.delivery.unwrap();
    assert_eq!(d.recipients, ["alice@acme.example", "bob@acme.example"]);
    assert_eq!(
        d.delivery_time,
        ts(first),
        "the first delivery time is kept"
    );
    let again = record(
        &app,
        delivery(
            "<q@vendor.example>",
            &["bob@acme.example"],
            first + Duration::hours(2),
        ),
    )
    .await;
    assert_eq!(
        again.outcome(),
        pb::RecordOutcome::Unchanged,
        "an identical record changes nothing"
    );
    assert_eq!(again.delivery.unwrap().update_time, d.update_time);
    app.stop().await;
}

async fn a_batch_reports_each_outcome_and_merges_repeats_within_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    let at = Utc::now();
    record(&app, delivery("<old@v.example>", &["a@acme.example"], at)).await;
    let r = gateway(&app)
        .retract_service()
        .record_deliveries(pb::RecordDeliveriesRequest {
            tenant_id: "acme".into(),
            deliveries: vec![
                delivery("<new@v.example>", &["a@acme.example"], at),
                delivery("<old@v.example>", &["a@acme.example"], at),
                delivery("<new@v.example>", &["b@acme.example"], at),
                delivery("<old2@v.example>", &["c@acme.example"], at),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.outcomes().collect::<Vec<_>>(),
        [
            pb::RecordOutcome::Created,
            pb::RecordOutcome::Unchanged,
            pb::RecordOutcome::Created,
            pb::RecordOutcome::Created
        ]
    );
    assert_eq!(
        (r.created_count, r.merged_count, r.unchanged_count),
        (2, 0, 1)
    );
    let found = search(
        &app,
        pb::SearchDeliveriesRequest {
            internet_message_id: "<new@v.example>".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        found.deliveries[0].recipients,
        ["a@acme.example", "b@acme.example"]
    );
    app.stop().await;
}

async fn bad_deliveries_name_every_field_and_store_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    let at = Utc::now();
    let mut no_time = delivery("<ok@v.example>", &["a@acme.example"], at);
    no_time.delivery_time = None;
    let f = expect_failure(
        gateway(&app)
            .retract_service()
            .record_deliveries(pb::RecordDeliveriesRequest {
                tenant_id: "acme".into(),
                deliveries: vec![
                    no_time,
                    delivery("not-bracketed@v.example", &["a@acme.example"], at),
                    delivery(
                        "<x@v.example>",
                        &[
                            "a@acme.example",
                            "eve@acme.example\r\nBcc: all@acme.example",
                        ],
                        at,
                    ),
                    pb::Delivery {
                        subject: "Hi\r\nX-Evil: 1".into(),
                        ..delivery("<y@v.example>", &["a@acme.example"], at)
                    },
                    pb::Delivery {
                        sender: "not an address".into(),
                        ..delivery("<z@v.example>", &[], at)
                    },
                    delivery(
                        "<future@v.example>",
                        &["a@acme.example"],
                        at + Duration::days(400 * 365),
                    ),
                ],
            })
            .await,
    );
    assert_eq!(f.code, Code::InvalidArgument);
    assert_eq!(
        f.fields,
        [
            "deliveries[0].delivery_time",
            "deliveries[1].internet_message_id",
            "deliveries[2].recipients[1]",
            "deliveries[3].subject",
            "deliveries[4].sender",
            "deliveries[4].recipients",
            "deliveries[5].delivery_time",
        ]
    );
    let found = search(&app, pb::SearchDeliveriesRequest::default())
        .await
        .unwrap();
    assert!(found.deliveries.is_empty(), "the batch is all or nothing");
    app.stop().await;
}

async fn batches_and_recipient_lists_are_bounded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    let at = Utc::now();
    let too_many: Vec<_> = (0..1001)
        .map(|i| delivery(&format!("<m{i}@v.example>"), &["a@acme.example"], at))
        .collect();
    let f = expect_failure(
        gateway(&app)
            .retract_service()
            .record_deliveries(pb::RecordDeliveriesRequest {
                tenant_id: "acme".into(),
                deliveries: too_many,
            })
            .await,
    );
    assert_eq!(f.fields, ["deliveries"]);
    let addresses: Vec<String> = (0..10_001)
        .map(|i| format!("user{i}@acme.example"))
        .collect();
    let huge = pb::Delivery {
        recipients: addresses.clone(),
        ..delivery("<big@v.example>", &[], at)
    };
    let f = expect_failure(
        gateway(&app)
            .retract_service()
            .record_delivery(pb::RecordDeliveryRequest {
                tenant_id: "acme".into(),
                delivery: Some(huge),
            })
            .await,
    );
    assert_eq!(f.fields, ["delivery.recipients"]);
    let largest = pb::Delivery {
        recipients: addresses[..10_000].to_vec(),
        ..delivery("<big@v.example>", &[], at)
    };
    let r = record(&app, largest).await;
    assert_eq!(r.delivery.unwrap().recipient_count, 10_000);
    let found = search(&app, pb::SearchDeliveriesRequest::default())
        .await
        .unwrap();
    assert_eq!(
        found.deliveries[0].recipients.len(),
        100,
        "search carries the first 100"
    );
    assert_eq!(found.deliveries[0].recipient_count, 10_000);
    app.stop().await;
}

async fn deliveries_are_found_by_every_filter_newest_first_across_pages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    app.create_tenant("globex").await;
    let base = Utc::now() - Duration::days(1);
    for i in 0..7 {
        let mut d = delivery(
            &format!("<m{i}@v.example>"),
            &[&format!("user{i}@acme.example"), "all@acme.example"],
            base + Duration::minutes(i),
        );
        d.subject = if i == 3 {
            "Quarterly 100%_report".into()
        } else {
            format!("Newsletter {i}")
        };
        if i == 5 {
            d.sender = "ceo@partner.example".into();
        }
        record(&app, d).await;
    }
    gateway(&app)
        .retract_service()
        .record_delivery(pb::RecordDeliveryRequest {
            tenant_id: "globex".into(),
            delivery: Some(delivery("<g@v.example>", &["all@acme.example"], base)),
        })
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = search(
            &app,
            pb::SearchDeliveriesRequest {
                recipient: "ALL@acme.example".into(),
                page_size: 3,
                page_token,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        seen.extend(page.deliveries.into_iter().map(|d| d.internet_message_id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let expected: Vec<String> = (0..7).rev().map(|i| format!("<m{i}@v.example>")).collect();
    assert_eq!(seen, expected, "newest first, each once, only acme's");

    let ids = |r: pb::SearchDeliveriesResponse| {
        r.deliveries
            .into_iter()
            .map(|d| d.internet_message_id)
            .collect::<Vec<_>>()
    };
    let by = |req: pb::SearchDeliveriesRequest| search(&app, req);
    assert_eq!(
        ids(by(pb::SearchDeliveriesRequest {
            sender: "ceo@partner.example".into(),
            ..Default::default()
        })
        .await
        .unwrap()),
        ["<m5@v.example>"]
    );
    assert_eq!(
        ids(by(pb::SearchDeliveriesRequest {
            recipient: "user2@acme.example".into(),
            ..Default::default()
        })
        .await
        .unwrap()),
        ["<m2@v.example>"]
    );
    assert_eq!(
        ids(by(pb::SearchDeliveriesRequest {
            subject_contains: "100%_REP".into(),
            ..Default::default()
        })
        .await
        .unwrap()),
        ["<m3@v.example>"]
    );
    assert!(
        ids(by(pb::SearchDeliveriesRequest {
            subject_contains: "%".into(),
            ..Default::default()
        })
        .await
        .unwrap())
        .len()
            == 1,
        "% is literal"
    );
    assert_eq!(
        ids(by(pb::SearchDeliveriesRequest {
            internet_message_id: "<m4@v.example>".into(),
            ..Default::default()
        })
        .await
        .unwrap()),
        ["<m4@v.example>"]
    );
    let window = by(pb::SearchDeliveriesRequest {
        delivery_after: ts(base + Duration::minutes(2)),
        delivery_before: ts(base + Duration::minutes(4)),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(ids(window), ["<m3@v.example>", "<m2@v.example>"]);

    let f = expect_failure(
        by(pb::SearchDeliveriesRequest {
            sender: "nope".into(),
            internet_message_id: "x".into(),
            page_size: -1,
            ..Default::default()
        })
        .await,
    );
    assert_eq!(f.fields, ["internet_message_id", "sender", "page_size"]);
    app.stop().await;
}

/// `domain` of `tenant` verified as granted, as a consent's verification records it.
async fn granted(store: &retract_server::store::Store, tenant: &TenantId, domain: &str) {
    store
        .record_verification(
            tenant,
            vec![DomainOutcome::granted(&DomainName::parse(domain).unwrap())],
            AuditEntry {
                tenant_id: tenant.clone(),
                actor: "test".into(),
                action: AuditAction::DomainsVerified,
                target: tenant.to_string(),
                outcome: AuditOutcome::Succeeded,
                correlation_id: "t".into(),
                details: AuditDetails::DomainsVerified {
                    microsoft_tenant_id: "0b7c2a5e-0000-4000-8000-000000000001".into(),
                    domain_outcomes: Vec::new(),
                },
            },
        )
        .await
        .unwrap();
}

/// The Retract tab of `message` in tenant acme, as `caller` sees it.
async fn tab_of(caller: &Client, message: &str) -> pb::GetRetractOptionsResponse {
    caller
        .retract_service()
        .get_retract_options(pb::GetRetractOptionsRequest {
            tenant_id: "acme".into(),
            internet_message_id: message.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn the_retract_tab_says_who_can_be_retracted_and_why_not(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    app.add_domain("acme", "acme.example").await;
    app.add_domain("acme", "pending.example").await;
    let tenant = TenantId::parse("acme").unwrap();
    let store = app.store().await;
    granted(&store, &tenant, "acme.example").await;
    store
        .record_mailbox_status(
            &tenant,
            &EmailAddress::parse("locked@acme.example").unwrap(),
            Some(("ErrorAccessDenied", "Access to OData is disabled.")),
        )
        .await
        .unwrap();
    record(
        &app,
        delivery(
            "<phish@evil.example>",
            &[
                "alice@acme.example",
                "locked@acme.example",
                "carol@pending.example",
                "dave@gmail.example",
            ],
            Utc::now(),
        ),
    )
    .await;

    let reader =
        app.with_token(&DevToken::admin("analyst@acme.example", "acme").permission("retract.read"));
    let options = tab_of(&reader, "<phish@evil.example>").await;
    let rows: Vec<_> = options
        .recipients
        .iter()
        .map(|r| (r.address.as_str(), r.eligibility(), r.detail.as_str()))
        .collect();
    assert_eq!(
        rows[0],
        ("alice@acme.example", pb::Eligibility::Eligible, "")
    );
    assert_eq!(rows[1].0, "carol@pending.example");
    assert_eq!(rows[1].1, pb::Eligibility::DomainNotGranted);
    assert!(rows[1].2.contains("NOT_GRANTED"), "{}", rows[1].2);
    assert_eq!(rows[2].1, pb::Eligibility::DomainNotManaged);
    assert_eq!(
        rows[3],
        (
            "locked@acme.example",
            pb::Eligibility::PermissionIssue,
            "ErrorAccessDenied: Access to OData is disabled."
        )
    );

    store
        .record_mailbox_status(
            &tenant,
            &EmailAddress::parse("locked@acme.example").unwrap(),
            None,
        )
        .await
        .unwrap();
    let options = tab_of(&reader, "<phish@evil.example>").await;
    assert_eq!(
        options.recipients[3].eligibility(),
        pb::Eligibility::Eligible,
        "a mailbox that works again is eligible"
    );

    // The page is the same, its domain is not: carol's row follows the domain at once.
    granted(&store, &tenant, "pending.example").await;
    let options = tab_of(&reader, "<phish@evil.example>").await;
    assert_eq!(
        (
            options.recipients[1].address.as_str(),
            options.recipients[1].eligibility()
        ),
        ("carol@pending.example", pb::Eligibility::Eligible),
        "a domain granted since the last look is eligible"
    );

    let missing = expect_failure(
        reader
            .retract_service()
            .get_retract_options(pb::GetRetractOptionsRequest {
                tenant_id: "acme".into(),
                internet_message_id: "<nope@x>".into(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(
        (missing.code, missing.reason.as_str()),
        (Code::NotFound, "DELIVERY_NOT_FOUND")
    );
    store.close().await.ok();
    app.stop().await;
}

async fn deliveries_past_retention_are_removed(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.delivery_retention_days = 30;
        s.retention_sweep_interval_ms = 50;
    })
    .await;
    app.create_tenant("acme").await;
    record(
        &app,
        delivery(
            "<old@v.example>",
            &["a@acme.example"],
            Utc::now() - Duration::days(31),
        ),
    )
    .await;
    record(
        &app,
        delivery(
            "<recent@v.example>",
            &["a@acme.example"],
            Utc::now() - Duration::days(29),
        ),
    )
    .await;
    let gone = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            let found = search(&app, pb::SearchDeliveriesRequest::default())
                .await
                .unwrap();
            let ids: Vec<_> = found
                .deliveries
                .into_iter()
                .map(|d| d.internet_message_id)
                .collect();
            if ids == ["<recent@v.example>"] {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    })
    .await;
    assert!(
        gone.is_ok(),
        "the old delivery is swept, the recent one kept"
    );
    app.stop().await;
}

async fn a_merged_recipient_list_stops_at_ten_thousand(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    let at = Utc::now();
    let first: Vec<String> = (0..10_000)
        .map(|i| format!("user{i}@acme.example"))
        .collect();
    let r = record(
        &app,
        pb::Delivery {
            recipients: first,
            ..delivery("<released@v.example>", &[], at)
        },
    )
    .await;
    assert_eq!(r.delivery.unwrap().recipient_count, 10_000);
    // The quarantine releases the same message to one more recipient.
    let f = expect_failure(
        gateway(&app)
            .retract_service()
            .record_delivery(pb::RecordDeliveryRequest {
                tenant_id: "acme".into(),
                delivery: Some(delivery(
                    "<released@v.example>",
                    &["one-more@acme.example"],
                    at,
                )),
            })
            .await,
    );
    assert_eq!(f.code, Code::FailedPrecondition, "{f:?}");
    assert_eq!(f.reason, "TOO_MANY_RECIPIENTS");
    let found = search(&app, pb::SearchDeliveriesRequest::default())
        .await
        .unwrap();
    assert_eq!(
        found.deliveries[0].recipient_count, 10_000,
        "nothing merged"
    );
    app.stop().await;
}

async fn filter_times_outside_1970_to_9999_are_invalid_arguments(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    record(
        &app,
        delivery("<m@v.example>", &["a@acme.example"], Utc::now()),
    )
    .await;
    let year_10000 = Some(Timestamp {
        seconds: 253_402_300_800,
        nanos: 0,
    });
    let before_1970 = Some(Timestamp {
        seconds: -1,
        nanos: 0,
    });
    let f = expect_failure(
        search(
            &app,
            pb::SearchDeliveriesRequest {
                delivery_after: year_10000,
                ..Default::default()
            },
        )
        .await,
    );
    assert_eq!(
        (f.code, f.fields.as_slice()),
        (Code::InvalidArgument, &["delivery_after".to_owned()][..])
    );
    let f = expect_failure(
        search(
            &app,
            pb::SearchDeliveriesRequest {
                delivery_before: before_1970,
                ..Default::default()
            },
        )
        .await,
    );
    assert_eq!(
        (f.code, f.fields.as_slice()),
        (Code::InvalidArgument, &["delivery_before".to_owned()][..])
    );
    let f = expect_failure(
        app.service()
            .retract_service()
            .list_retract_jobs(pb::ListRetractJobsRequest {
                tenant_id: "acme".into(),
                create_before: year_10000,
                ..Default::default()
            })
            .await,
    );
    assert_eq!(f.code, Code::InvalidArgument, "{f:?}");
    app.stop().await;
}

async fn ten_thousand_bad_recipients_give_an_error_a_proxy_accepts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    let bad: Vec<String> = (0..10_000).map(|i| format!("not an address {i}")).collect();
    let status = gateway(&app)
        .retract_service()
        .record_delivery(pb::RecordDeliveryRequest {
            tenant_id: "acme".into(),
            delivery: Some(pb::Delivery {
                recipients: bad,
                ..delivery("<m@v.example>", &[], Utc::now())
            }),
        })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().len() <= 2_048,
        "{} bytes",
        status.message().len()
    );
    assert!(
        status.details().len() <= 16 * 1024,
        "{} bytes of details",
        status.details().len()
    );
    app.stop().await;
}

async fn record_batch(
    app: &TestApp,
    tenant: &str,
    deliveries: Vec<pb::Delivery>,
) -> pb::RecordDeliveriesResponse {
    gateway(app)
        .retract_service()
        .record_deliveries(pb::RecordDeliveriesRequest {
            tenant_id: tenant.into(),
            deliveries,
        })
        .await
        .unwrap()
        .into_inner()
}

async fn found(app: &TestApp, id: &str) -> pb::Delivery {
    let mut page = search(
        app,
        pb::SearchDeliveriesRequest {
            internet_message_id: id.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(page.deliveries.len(), 1, "{id} is recorded once");
    page.deliveries.remove(0)
}

async fn one_batch_merges_many_known_deliveries_each_by_its_own_report(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    let at = Utc::now() - Duration::hours(5);
    record_batch(
        &app,
        "acme",
        vec![
            delivery("<grows@v.example>", &["a@acme.example"], at),
            delivery("<earlier@v.example>", &["b@acme.example"], at),
            delivery("<again@v.example>", &["c@acme.example"], at),
        ],
    )
    .await;
    let again_before = found(&app, "<again@v.example>").await;
    let r = record_batch(
        &app,
        "acme",
        vec![
            delivery(
                "<grows@v.example>",
                &["d@acme.example"],
                at + Duration::hours(1),
            ),
            delivery(
                "<earlier@v.example>",
                &["b@acme.example"],
                at - Duration::hours(1),
            ),
            delivery("<fresh@v.example>", &["e@acme.example"], at),
            delivery(
                "<again@v.example>",
                &["c@acme.example"],
                at + Duration::hours(2),
            ),
            // A repeat inside the batch merges with its first report before the store.
            delivery(
                "<grows@v.example>",
                &["f@acme.example", "a@acme.example"],
                at + Duration::hours(1),
            ),
        ],
    )
    .await;
    assert_eq!(
        r.outcomes().collect::<Vec<_>>(),
        [
            pb::RecordOutcome::Merged,
            pb::RecordOutcome::Merged,
            pb::RecordOutcome::Created,
            pb::RecordOutcome::Unchanged,
            pb::RecordOutcome::Merged,
        ]
    );
    assert_eq!(
        (r.created_count, r.merged_count, r.unchanged_count),
        (1, 2, 1)
    );
    let grows = found(&app, "<grows@v.example>").await;
    assert_eq!(
        grows.recipients,
        ["a@acme.example", "d@acme.example", "f@acme.example"]
    );
    assert_eq!(grows.recipient_count, 3);
    assert_eq!(
        grows.delivery_time,
        ts(at),
        "a later report keeps the first time"
    );
    let earlier = found(&app, "<earlier@v.example>").await;
    assert_eq!(
        (earlier.recipient_count, earlier.delivery_time),
        (1, ts(at - Duration::hours(1)))
    );
    assert_eq!(found(&app, "<fresh@v.example>").await.recipient_count, 1);
    let again = found(&app, "<again@v.example>").await;
    assert_eq!(
        (again.recipient_count, again.delivery_time),
        (1, ts(at)),
        "a known recipient reached again adds nobody"
    );
    assert_ne!(
        again.update_time, again_before.update_time,
        "its latest delivery time moved, so the record changed"
    );
    app.stop().await;
}

async fn the_retract_tab_shows_a_merge_at_once_and_each_tenant_its_own_recipients(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    app.create_tenant("globex").await;
    let at = Utc::now();
    let id = "<shared@v.example>";
    record_batch(&app, "acme", vec![delivery(id, &["a@acme.example"], at)]).await;
    record_batch(
        &app,
        "globex",
        vec![delivery(id, &["g@globex.example"], at)],
    )
    .await;
    let tab = |tenant: &'static str| {
        let reader = app.with_token(
            &DevToken::admin(&format!("analyst@{tenant}.example"), tenant)
                .permission("retract.read"),
        );
        async move {
            let options = reader
                .retract_service()
                .get_retract_options(pb::GetRetractOptionsRequest {
                    tenant_id: tenant.into(),
                    internet_message_id: id.into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let delivery = options.delivery.unwrap();
            let listed: Vec<String> = options.recipients.into_iter().map(|r| r.address).collect();
            assert_eq!(listed, delivery.recipients, "the sample and the page agree");
            (delivery.recipient_count, listed)
        }
    };
    assert_eq!(tab("acme").await, (1, vec!["a@acme.example".to_owned()]));
    assert_eq!(
        tab("globex").await,
        (1, vec!["g@globex.example".to_owned()])
    );
    // Asked again (now from memory), then after a merge into acme's delivery only.
    assert_eq!(tab("acme").await, (1, vec!["a@acme.example".to_owned()]));
    record_batch(&app, "acme", vec![delivery(id, &["b@acme.example"], at)]).await;
    assert_eq!(
        tab("acme").await,
        (
            2,
            vec!["a@acme.example".to_owned(), "b@acme.example".to_owned()]
        ),
        "the merge shows at once"
    );
    assert_eq!(
        tab("globex").await,
        (1, vec!["g@globex.example".to_owned()]),
        "another tenant's delivery of the same message is its own"
    );
    app.stop().await;
}
