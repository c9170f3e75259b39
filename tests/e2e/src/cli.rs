//! `retractctl`, the operator's tool, run as a process against a running server and
//! graph-sim: the whole product walk-through (grant → domain status → find a delivery → the
//! Retract tab → retract with conversations → watch → targets → audit → restore) asserting on
//! its output and exit codes, and Ctrl-C (detach, cancel).
//!
//! The binary is the one `cargo test --workspace` builds next to this test binary
//! (`target/debug/retractctl`; the client crate's own integration test makes cargo build it),
//! or `RETRACTCTL_BIN`.

use std::{path::PathBuf, process::Stdio, time::Duration};

use retract_client::{DevToken, pb};
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::{Child, Command},
};

use crate::{
    app::TestApp,
    conversations::chain_sim,
    db::Backend,
    on_both_backends,
    scenarios::{PHISH, app_against, crowd},
};

on_both_backends!(
    an_operator_does_the_whole_workflow_with_retractctl,
    ctrl_c_detaches_or_cancels_the_job,
);

/// The built `retractctl`.
pub fn retractctl_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("RETRACTCTL_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/debug/deps/retract_e2e-… → target/debug/retractctl
    let bin = exe
        .parent()
        .and_then(std::path::Path::parent)
        .map(|dir| dir.join(format!("retractctl{}", std::env::consts::EXE_SUFFIX)))
        .expect("a target directory");
    assert!(
        bin.exists(),
        "{} is not built: `cargo build -p retract-client --bins` (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

/// What one run printed and exited with.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `retractctl` against `app` as the caller of `token` (none: no token at all), with no
/// config file and no `RETRACT_*` of the test's own environment.
pub fn command(app: &TestApp, token: Option<&DevToken>, args: &[&str]) -> Command {
    let mut cmd = Command::new(retractctl_bin());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RETRACT_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RETRACT_ENDPOINT", format!("http://{}", app.addr))
        .env(
            "XDG_CONFIG_HOME",
            std::env::temp_dir().join("retractctl-no-config"),
        )
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(token) = token {
        cmd.env("RETRACT_TOKEN", token.mint().expect("mint"));
    }
    cmd
}

/// Runs `retractctl` to its end.
pub async fn ctl(app: &TestApp, token: Option<&DevToken>, args: &[&str]) -> Run {
    let out = tokio::time::timeout(Duration::from_secs(60), command(app, token, args).output())
        .await
        .expect("retractctl finishes")
        .expect("retractctl runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn service() -> DevToken {
    DevToken::service("portal-backend").all_permissions()
}

fn admin() -> DevToken {
    DevToken::admin("admin@contoso.com", "acme").all_permissions()
}

/// Asserts `run` exited `code`, showing everything it printed if not.
fn expect(run: &Run, code: i32, what: &str) {
    assert_eq!(run.code, code, "{what}: {run:#?}");
}

/// A line of `text` that contains every one of `parts`.
fn line_with<'a>(text: &'a str, parts: &[&str]) -> Option<&'a str> {
    text.lines().find(|l| parts.iter().all(|p| l.contains(p)))
}

/// Reads `child`'s stdout lines until one satisfies `found`; returns it and the reader.
async fn read_until(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    found: impl Fn(&str) -> bool,
) -> String {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let line = lines
                .next_line()
                .await
                .expect("read retractctl's output")
                .expect("retractctl printed the line before it ended");
            if found(&line) {
                return line;
            }
        }
    })
    .await
    .expect("retractctl prints the line in time")
}

fn spawn(
    cmd: &mut Command,
) -> (
    Child,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("retractctl starts");
    let stdout = child.stdout.take().expect("piped stdout");
    (child, BufReader::new(stdout).lines())
}

async fn finish(
    mut child: Child,
    mut lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> Run {
    let mut stdout = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        tokio::io::AsyncReadExt::read_to_string(&mut err, &mut stderr)
            .await
            .ok();
    }
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("retractctl ends")
        .expect("wait for retractctl");
    Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

/// Sends SIGINT (Ctrl-C) to `child`.
async fn interrupt(child: &Child) {
    let pid = child.id().expect("still running").to_string();
    let status = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(status.success());
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Whether Bob's forward sits in Carol's `folder` (and nowhere else).
fn in_folder(sim: &graph_sim::GraphSim, folder: graph_sim::Folder) -> bool {
    let copies = sim.copies_of("carol@contoso.com", "<f1@contoso.com>");
    !copies.is_empty() && copies.iter().all(|m| m.folder == folder)
}

/// The product's story, by an operator, in `retractctl` only (the browser consent aside).
async fn an_operator_does_the_whole_workflow_with_retractctl(backend: Backend) {
    let sim = chain_sim(false).await;
    let app = app_against(backend, &sim, |_| {}).await;
    let (svc, adm) = (service(), admin());

    let run = ctl(
        &app,
        Some(&svc),
        &["tenants", "create", "acme", "Acme Corporation"],
    )
    .await;
    expect(&run, 0, "tenants create");
    assert!(
        line_with(&run.stdout, &["acme", "Acme Corporation"]).is_some(),
        "{run:#?}"
    );
    let run = ctl(&app, Some(&svc), &["domains", "add", "acme", "contoso.com"]).await;
    expect(&run, 0, "domains add");
    assert!(
        line_with(&run.stdout, &["contoso.com", "NOT_GRANTED"]).is_some(),
        "{run:#?}"
    );

    // Grant: retractctl prints the consent URL and waits; the administrator's browser
    // consents at Microsoft (graph-sim) and comes back to the callback.
    let (child, mut lines) = spawn(&mut command(&app, Some(&adm), &["grant", "acme", "--wait"]));
    let url = read_until(&mut lines, |l| l.trim_start().starts_with("http")).await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = browser.get(url.trim()).send().await.expect("authorize");
    let callback = redirect.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(reqwest::get(&callback).await.unwrap().status(), 200);
    let run = finish(child, lines).await;
    expect(&run, 0, "grant --wait");
    assert!(run.stdout.contains(": SUCCEEDED"), "{run:#?}");
    assert!(
        line_with(&run.stdout, &["contoso.com", "GRANTED"]).is_some(),
        "{run:#?}"
    );

    let run = ctl(&app, Some(&adm), &["domains", "list", "acme"]).await;
    expect(&run, 0, "domains list");
    assert!(
        line_with(&run.stdout, &["contoso.com", "GRANTED"]).is_some(),
        "{run:#?}"
    );
    let run = ctl(&app, Some(&adm), &["verify-domains", "acme"]).await;
    expect(&run, 0, "verify-domains");
    assert!(
        line_with(&run.stdout, &["contoso.com", "GRANTED"]).is_some(),
        "{run:#?}"
    );

    // The gateway records the delivery.
    app.service()
        .retract_service()
        .record_delivery(pb::RecordDeliveryRequest {
            tenant_id: "acme".into(),
            delivery: Some(pb::Delivery {
                internet_message_id: PHISH.into(),
                sender: "ceo@evil.example".into(),
                subject: "Urgent wire transfer".into(),
                delivery_time: Some(prost_types::Timestamp {
                    seconds: chrono::Utc::now().timestamp() - 7_200,
                    nanos: 0,
                }),
                recipients: vec!["alice@contoso.com".into(), "bob@contoso.com".into()],
                ..Default::default()
            }),
        })
        .await
        .expect("record delivery");

    let run = ctl(
        &app,
        Some(&adm),
        &[
            "deliveries",
            "search",
            "acme",
            "--sender",
            "ceo@evil.example",
        ],
    )
    .await;
    expect(&run, 0, "deliveries search");
    assert!(
        line_with(&run.stdout, &[PHISH, "Urgent wire transfer", "2"]).is_some(),
        "{run:#?}"
    );
    let run = ctl(
        &app,
        Some(&adm),
        &[
            "deliveries",
            "search",
            "acme",
            "--sender",
            "nobody@else.example",
        ],
    )
    .await;
    assert!(run.stdout.contains("(none)"), "{run:#?}");

    let run = ctl(&app, Some(&adm), &["options", "acme", PHISH]).await;
    expect(&run, 0, "options");
    assert!(run.stdout.contains("you can retract: yes"), "{run:#?}");
    assert!(run.stdout.contains("conversations: available"), "{run:#?}");
    for who in ["alice@contoso.com", "bob@contoso.com"] {
        assert!(
            line_with(&run.stdout, &[who, "ELIGIBLE"]).is_some(),
            "{run:#?}"
        );
    }

    // Retract with conversations two hops deep, as JSON: one event per line.
    let run = ctl(
        &app,
        Some(&adm),
        &[
            "retract",
            "acme",
            PHISH,
            "--depth",
            "2",
            "--reason",
            "phish campaign 42",
            "-o",
            "json",
        ],
    )
    .await;
    expect(&run, 0, "retract");
    let events = json_lines(&run.stdout);
    let sequences: Vec<String> = events
        .iter()
        .map(|e| e["sequence"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (1..=events.len()).map(|i| i.to_string()).collect();
    assert_eq!(sequences, expected, "every event once, in order");
    let last = events.last().unwrap();
    assert_eq!(
        last["job_finished"]["state"], "JOB_STATE_SUCCEEDED",
        "{last}"
    );
    let job_id = events[0]["job_id"].as_str().unwrap().to_owned();

    // Watch it again (human): the conversation steps and the per-depth summary.
    let run = ctl(&app, Some(&adm), &["watch", "acme", &job_id]).await;
    expect(&run, 0, "watch");
    assert!(run.stdout.contains("depth 1 carol@contoso.com"), "{run:#?}");
    assert!(run.stdout.contains("depth 2 dave@contoso.com"), "{run:#?}");
    assert!(
        run.stdout
            .contains("not followed: partner@elsewhere.example"),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains("finished JOB_STATE_SUCCEEDED"),
        "{run:#?}"
    );
    let summary: Vec<&str> = run
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("DEPTH"))
        .skip(1)
        .collect();
    assert_eq!(summary.len(), 3, "depths 0, 1 and 2: {run:#?}");
    let last = events.len().to_string();
    let run = ctl(
        &app,
        Some(&adm),
        &["watch", "acme", &job_id, "--after", &last],
    )
    .await;
    expect(&run, 0, "a watch after the last event of a finished job");
    assert!(run.stdout.contains("nothing after"), "{run:#?}");

    let run = ctl(&app, Some(&adm), &["jobs", "acme"]).await;
    expect(&run, 0, "jobs");
    assert!(
        line_with(&run.stdout, &[&job_id, "RETRACT", "SUCCEEDED", PHISH]).is_some(),
        "{run:#?}"
    );
    let run = ctl(&app, Some(&adm), &["jobs", "acme", "--state", "running"]).await;
    assert!(run.stdout.contains("(none)"), "{run:#?}");
    let run = ctl(&app, Some(&adm), &["job", "acme", &job_id]).await;
    expect(&run, 0, "job");
    assert!(
        line_with(&run.stdout, &["reason", "phish campaign 42"]).is_some(),
        "{run:#?}"
    );

    let run = ctl(&app, Some(&adm), &["targets", "acme", &job_id]).await;
    expect(&run, 0, "targets");
    assert!(
        line_with(
            &run.stdout,
            &["carol@contoso.com", "1", "DELETED", "bob@contoso.com"]
        )
        .is_some(),
        "{run:#?}"
    );
    assert!(
        line_with(
            &run.stdout,
            &["dave@contoso.com", "2", "DELETED", "carol@contoso.com"]
        )
        .is_some(),
        "{run:#?}"
    );

    let run = ctl(
        &app,
        Some(&adm),
        &["audit", "acme", "--section", "retract", "-o", "json"],
    )
    .await;
    expect(&run, 0, "audit");
    let dispatched = json_lines(&run.stdout)
        .into_iter()
        .find(|e| {
            e["action"] == "AUDIT_ACTION_RETRACT_DISPATCHED" && e["target"] == job_id.as_str()
        })
        .unwrap_or_else(|| panic!("the dispatch is audited: {run:#?}"));
    assert!(
        dispatched.to_string().contains("phish campaign 42"),
        "{dispatched}"
    );
    assert!(
        in_folder(&sim, graph_sim::Folder::RecoverableItemsDeletions),
        "Bob's forward is gone from Carol's mailbox"
    );

    // Undo it: every copy goes back; a second restore has nothing left to do.
    let run = ctl(
        &app,
        Some(&adm),
        &["restore", "acme", &job_id, "--reason", "false positive"],
    )
    .await;
    expect(&run, 0, "restore");
    assert!(
        run.stdout.contains("RECIPIENT_OUTCOME_RESTORED"),
        "{run:#?}"
    );
    assert!(
        in_folder(&sim, graph_sim::Folder::Inbox),
        "Bob's forward is back in Carol's inbox"
    );
    let run = ctl(&app, Some(&adm), &["restore", "acme", &job_id]).await;
    expect(&run, 7, "a second restore is refused in this state");
    assert!(run.stderr.contains("NOT_RESTORABLE"), "{run:#?}");

    // A dry run started detached, then followed as JSON.
    let run = ctl(
        &app,
        Some(&adm),
        &[
            "retract",
            "acme",
            PHISH,
            "--dry-run",
            "--detach",
            "-o",
            "json",
        ],
    )
    .await;
    expect(&run, 0, "retract --detach");
    let job = &json_lines(&run.stdout)[0];
    let dry_job = job["job_id"].as_str().expect("the job as JSON").to_owned();
    assert_eq!(job["options"]["dry_run"], true, "{job}");
    let run = ctl(&app, Some(&adm), &["watch", "acme", &dry_job, "-o", "json"]).await;
    expect(&run, 0, "watch the detached job");
    let last = json_lines(&run.stdout).pop().unwrap();
    assert_eq!(
        last["job_finished"]["state"], "JOB_STATE_SUCCEEDED",
        "{last}"
    );

    // Exit codes that mean something.
    let run = ctl(&app, Some(&adm), &["options", "acme", "no-brackets"]).await;
    expect(&run, 2, "an invalid field");
    assert!(
        run.stderr.contains("internet_message_id"),
        "names the field: {run:#?}"
    );
    let run = ctl(
        &app,
        Some(&adm),
        &["job", "acme", "01930000-0000-7000-8000-000000000000"],
    )
    .await;
    expect(&run, 6, "an unknown job");
    let reader = DevToken::admin("admin@contoso.com", "acme").permission("retract.read");
    let run = ctl(&app, Some(&reader), &["retract", "acme", PHISH]).await;
    expect(&run, 5, "no retract.message");
    let run = ctl(&app, None, &["domains", "list", "acme"]).await;
    expect(&run, 5, "no token");
    let run = ctl(&app, Some(&adm), &["retract", "acme"]).await;
    expect(&run, 2, "a missing argument");
    app.stop().await;
}

/// Ctrl-C while following: `--on-interrupt detach` leaves the job running (exit 9, and says
/// how to watch it); `watch` follows it again and `--on-interrupt cancel` cancels it (exit 4).
async fn ctrl_c_detaches_or_cancels_the_job(backend: Backend) {
    let w = crowd(backend, 8, |s| s.mailbox_concurrency = 1).await;
    w.sim.set_latency(graph_sim::LatencySettings {
        default: graph_sim::Latency::fixed(150),
        ..Default::default()
    });
    let adm = admin();
    let (child, mut lines) = spawn(&mut command(
        &w.app,
        Some(&adm),
        &["retract", "acme", PHISH, "--on-interrupt", "detach"],
    ));
    let started = read_until(&mut lines, |l| l.contains(" started: ")).await;
    let job_id = started
        .split_whitespace()
        .nth(2)
        .expect("#1 job <id> started")
        .to_owned();
    read_until(&mut lines, |l| l.contains("RECIPIENT_OUTCOME_DELETED")).await;
    interrupt(&child).await;
    let run = finish(child, lines).await;
    expect(&run, 9, "detached");
    assert!(
        run.stderr
            .contains(&format!("retractctl watch acme {job_id}")),
        "{run:#?}"
    );
    assert_eq!(
        w.job(&job_id).await.state(),
        pb::JobState::Running,
        "the job goes on"
    );

    let (child, mut lines) = spawn(&mut command(
        &w.app,
        Some(&adm),
        &["watch", "acme", &job_id, "--on-interrupt", "cancel"],
    ));
    read_until(&mut lines, |l| l.contains("RECIPIENT_OUTCOME_DELETED")).await;
    interrupt(&child).await;
    let run = finish(child, lines).await;
    expect(&run, 4, "cancelled");
    assert!(
        run.stdout.contains("finished JOB_STATE_CANCELLED"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("cancellation asked"), "{run:#?}");
    let job = w.job(&job_id).await;
    assert_eq!(job.state(), pb::JobState::Cancelled);
    assert!(
        job.counts.unwrap_or_default().cancelled_count > 0,
        "{job:?}"
    );
    w.app.stop().await;
}
