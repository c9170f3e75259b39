//! The ideal client (the local floor): exactly the Graph requests a retract of one message
//! from N inboxes needs — per mailbox, find the copy by `internetMessageId`, then DELETE it
//! (SOFT) — with an app-only token taken beforehand, `concurrency` mailboxes in flight, at most
//! 4 requests per mailbox, `Retry-After` honoured. No database, no events, no gRPC.

use std::time::{Duration, Instant};

use futures::{StreamExt as _, stream};
use graph_sim::GraphSim;
use reqwest::{Method, StatusCode};
use retract_e2e::scenarios::{CLIENT_ID, CLIENT_SECRET};
use serde_json::Value;

/// Attempts per request (429/503 retried after `Retry-After`).
const ATTEMPTS: usize = 8;

pub struct Ideal {
    http: reqwest::Client,
    /// `{graph}/v1.0`.
    graph: String,
    token: String,
}

/// What one run did.
pub struct Outcome {
    pub wall: Duration,
    pub deleted: usize,
    pub errors: Vec<String>,
}

impl Ideal {
    /// An app-only token for `tenant` (client credentials), as the server takes one.
    pub async fn connect(sim: &GraphSim, tenant: &str) -> Result<Self, String> {
        let http = reqwest::Client::new();
        let answer: Value = http
            .post(format!(
                "{}/{tenant}/oauth2/v2.0/token",
                sim.login_base_url()
            ))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let token = answer["access_token"]
            .as_str()
            .ok_or_else(|| format!("token endpoint answered {answer}"))?
            .to_owned();
        Ok(Self {
            http,
            graph: format!("{}/v1.0", sim.graph_base_url()),
            token,
        })
    }

    /// Retracts `message` from every one of `mailboxes`, `concurrency` at once.
    pub async fn retract(
        &self,
        mailboxes: &[String],
        message: &str,
        concurrency: usize,
    ) -> Outcome {
        let started = Instant::now();
        let answers: Vec<Result<usize, String>> = stream::iter(mailboxes)
            .map(|mailbox| self.mailbox(mailbox, message))
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let wall = started.elapsed();
        let mut outcome = Outcome {
            wall,
            deleted: 0,
            errors: Vec::new(),
        };
        for answer in answers {
            match answer {
                Ok(n) => outcome.deleted += n,
                Err(e) => outcome.errors.push(e),
            }
        }
        outcome
    }

    /// Find, then delete every copy found (at most 4 at once).
    async fn mailbox(&self, mailbox: &str, message: &str) -> Result<usize, String> {
        let user = encode(mailbox);
        let filter = format!("internetMessageId eq '{}'", message.replace('\'', "''"));
        let url = format!(
            "{}/users/{user}/messages?$filter={}&$select=id,isRead,parentFolderId,conversationId,conversationIndex,internetMessageId",
            self.graph,
            encode(&filter)
        );
        let (status, page) = self.send(Method::GET, &url).await?;
        if status != StatusCode::OK {
            return Err(format!("GET {url}: {status} {page}"));
        }
        let ids: Vec<String> = page["value"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str().map(str::to_owned))
            .collect();
        let user = user.as_str();
        let deletes = stream::iter(ids)
            .map(|id| async move {
                let url = format!("{}/users/{user}/messages/{}", self.graph, encode(&id));
                match self.send(Method::DELETE, &url).await? {
                    (StatusCode::NO_CONTENT, _) => Ok(1),
                    (StatusCode::NOT_FOUND, _) => Ok(0),
                    (status, body) => Err(format!("DELETE {url}: {status} {body}")),
                }
            })
            .buffer_unordered(4)
            .collect::<Vec<Result<usize, String>>>()
            .await;
        deletes.into_iter().sum()
    }

    /// One request; 429 and 503 retried after `Retry-After`.
    async fn send(&self, method: Method, url: &str) -> Result<(StatusCode, Value), String> {
        for _ in 0..ATTEMPTS {
            let response = self
                .http
                .request(method.clone(), url)
                .bearer_auth(&self.token)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let body = response.bytes().await.map_err(|e| e.to_string())?;
            if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
            {
                tokio::time::sleep(Duration::from_secs(retry_after.unwrap_or(1))).await;
                continue;
            }
            return Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)));
        }
        Err(format!(
            "{method} {url}: still throttled after {ATTEMPTS} attempts"
        ))
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
