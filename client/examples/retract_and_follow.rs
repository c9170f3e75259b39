//! Another service's view of retract: connect with a token, record a delivery (as the gateway
//! does), look at the Retract tab, retract, and follow the job to its end — the stream resumes
//! by itself if the connection drops or the server restarts.
//!
//! ```sh
//! cargo run -p retract-demo &   # prints a token
//! RETRACT_ENDPOINT=http://127.0.0.1:50051 RETRACT_TOKEN=… \
//!   cargo run -p retract-client --example retract_and_follow -- acme '<urgent-wire-transfer@evil.example>' --dry-run
//! ```
//! `.ci/run` runs it against the quickstart's retract-demo.

use std::time::Duration;

use retract_client::{Code, ConnectOptions, EventKind, pb};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [tenant_id, message_id, rest @ ..] = args.as_slice() else {
        return Err("usage: retract_and_follow TENANT MESSAGE_ID [--dry-run]".into());
    };
    let dry_run = rest.iter().any(|a| a == "--dry-run");
    let endpoint =
        std::env::var("RETRACT_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:50051".into());
    let client = ConnectOptions::new(endpoint)
        .token(std::env::var("RETRACT_TOKEN")?)
        .deadline(Duration::from_secs(10))
        .connect()
        .await?;

    // The gateway records what it delivered; recording it again changes nothing.
    let tab = client
        .get_retract_options(pb::GetRetractOptionsRequest {
            tenant_id: tenant_id.clone(),
            internet_message_id: message_id.clone(),
            ..Default::default()
        })
        .await?;
    let delivery = tab.delivery.clone().unwrap_or_default();
    let recorded = client
        .record_delivery(pb::RecordDeliveryRequest {
            tenant_id: tenant_id.clone(),
            delivery: Some(delivery),
        })
        .await?;
    println!("recorded again: {:?}", recorded.outcome());
    for r in &tab.recipients {
        println!("{}: {:?}", r.address, r.eligibility());
    }

    // A refusal names its field, with a typed reason.
    let refused = client
        .get_retract_options(pb::GetRetractOptionsRequest {
            tenant_id: tenant_id.clone(),
            internet_message_id: "no angle brackets".into(),
            ..Default::default()
        })
        .await
        .expect_err("refused");
    let api = refused.api().ok_or("the server's answer")?;
    assert_eq!(api.code(), Code::InvalidArgument);
    println!(
        "refused: {:?} on {:?}",
        api.error_reason(),
        api.field_violations()
            .iter()
            .map(|v| &v.field)
            .collect::<Vec<_>>()
    );

    let mut events = client.retract(pb::RetractRequest {
        tenant_id: tenant_id.clone(),
        options: Some(pb::RetractOptions {
            internet_message_id: message_id.clone(),
            delete_mode: pb::DeleteMode::Soft.into(),
            dry_run,
            reason: "retract_and_follow example".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    });
    while let Some(event) = events.next().await {
        let event = event?;
        match event.kind() {
            EventKind::Started(s) => {
                println!(
                    "#{} job {} on {} mailboxes",
                    event.sequence(),
                    event.job_id(),
                    s.targets.len()
                );
            }
            EventKind::Recipient(u) if u.phase() == pb::RecipientPhase::Done => {
                println!("#{} {} {:?}", event.sequence(), u.mailbox, u.outcome());
            }
            EventKind::Finished(f) => {
                println!(
                    "#{} finished {:?} ({} reconnects)",
                    event.sequence(),
                    f.state(),
                    events.reconnects()
                );
                if f.state() != pb::JobState::Succeeded {
                    return Err(format!("the job ended {:?}", f.state()).into());
                }
            }
            _ => {}
        }
    }
    Ok(())
}
