//! Following a job: one progress bar per depth (on a terminal), a line per finished mailbox
//! and conversation step, the per-depth summary at the end, and Ctrl-C (cancel or detach).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    io::IsTerminal as _,
    time::Duration,
};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use retract_client::{Client, EventKind, EventStream, pb};

use crate::{
    Exit,
    args::OnInterrupt,
    output::{Output, short},
};

/// Counts of one depth, for its bar's message.
#[derive(Default)]
struct DepthCounts {
    targets: u64,
    done: u64,
    deleted: u64,
    not_found: u64,
    failed: u64,
    other: u64,
}

impl DepthCounts {
    fn message(&self) -> String {
        let mut parts = vec![format!("retracted {}", self.deleted)];
        if self.not_found > 0 {
            parts.push(format!("not found {}", self.not_found));
        }
        if self.failed > 0 {
            parts.push(format!("failed {}", self.failed));
        }
        if self.other > 0 {
            parts.push(format!("other {}", self.other));
        }
        parts.join(" · ")
    }
}

/// The live view of one job.
struct JobView {
    output: Output,
    multi: MultiProgress,
    bars: BTreeMap<i32, ProgressBar>,
    counts: BTreeMap<i32, DepthCounts>,
    depth_of: HashMap<String, i32>,
    done: HashSet<String>,
}

impl JobView {
    fn new(output: Output) -> Self {
        let target = if output.json() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Self {
            output,
            multi: MultiProgress::with_draw_target(target),
            bars: BTreeMap::new(),
            counts: BTreeMap::new(),
            depth_of: HashMap::new(),
            done: HashSet::new(),
        }
    }

    /// Prints a line above the bars.
    fn say(&self, line: &str) {
        self.multi.suspend(|| crate::say!("{line}"));
    }

    fn bar(&mut self, depth: i32) -> &ProgressBar {
        let multi = &self.multi;
        self.bars.entry(depth).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(0));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>8} [{bar:30.cyan/blue}] {pos:>5}/{len:<5} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("depth {depth}"));
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        })
    }

    /// A mailbox the job visits at `depth` (moving it if it was reached lower before).
    fn target(&mut self, mailbox: &str, depth: i32) {
        match self.depth_of.get(mailbox).copied() {
            Some(d) if d == depth || self.done.contains(mailbox) => return,
            Some(d) => {
                let c = self.counts.entry(d).or_default();
                c.targets = c.targets.saturating_sub(1);
                let len = c.targets;
                self.bar(d).set_length(len);
            }
            None => {}
        }
        self.depth_of.insert(mailbox.to_owned(), depth);
        let c = self.counts.entry(depth).or_default();
        c.targets += 1;
        let len = c.targets;
        self.bar(depth).set_length(len);
    }

    fn finished_mailbox(&mut self, u: &pb::RecipientUpdate) {
        self.target(&u.mailbox, u.depth);
        if !self.done.insert(u.mailbox.clone()) {
            return;
        }
        let c = self.counts.entry(u.depth).or_default();
        c.done += 1;
        match u.outcome() {
            pb::RecipientOutcome::Deleted
            | pb::RecipientOutcome::WouldDelete
            | pb::RecipientOutcome::Restored => c.deleted += 1,
            pb::RecipientOutcome::NotFound | pb::RecipientOutcome::AlreadyDeleted => {
                c.not_found += 1;
            }
            pb::RecipientOutcome::Failed => c.failed += 1,
            _ => c.other += 1,
        }
        let message = c.message();
        let bar = self.bar(u.depth);
        bar.inc(1);
        bar.set_message(message);
    }

    /// Shows `event`; the job's final event when it is the last.
    fn show(&mut self, event: &retract_client::Event) -> Option<pb::JobFinished> {
        if self.output.json() {
            self.output.line(event.as_proto(), "RetractEvent");
        }
        let seq = event.sequence();
        match event.kind() {
            EventKind::Started(s) => {
                for t in &s.targets {
                    self.target(&t.mailbox, t.depth);
                }
                if !self.output.json() {
                    self.say(&format!(
                        "#{seq} job {} started: {} mailboxes",
                        event.job_id(),
                        s.targets.len()
                    ));
                }
            }
            EventKind::Recipient(u) => {
                if u.phase() == pb::RecipientPhase::Done {
                    self.finished_mailbox(u);
                    if !self.output.json() {
                        self.say(&recipient_line(seq, u));
                    }
                } else {
                    self.target(&u.mailbox, u.depth);
                }
            }
            EventKind::Conversation(c) => {
                for d in &c.discovered {
                    self.target(&d.mailbox, d.hop);
                }
                if !self.output.json() {
                    self.say(&conversation_line(seq, c));
                }
            }
            EventKind::Finished(f) => {
                for bar in self.bars.values() {
                    bar.finish();
                }
                if !self.output.json() {
                    self.say(&format!(
                        "#{seq} finished {}: {}",
                        f.state().as_str_name(),
                        f.detail
                    ));
                    self.summary(f);
                }
                return Some(f.clone());
            }
            _ => {}
        }
        None
    }

    fn summary(&self, f: &pb::JobFinished) {
        let rows = f
            .depths
            .iter()
            .map(|d| {
                vec![
                    d.depth.to_string(),
                    d.mailbox_count.to_string(),
                    d.copies_retracted_count.to_string(),
                    d.read_before_retract_count.to_string(),
                ]
            })
            .collect();
        self.multi.suspend(|| {
            self.output
                .table(&["DEPTH", "MAILBOXES", "COPIES", "READ BEFORE"], rows);
        });
    }

    fn clear(&self) {
        for bar in self.bars.values() {
            bar.abandon();
        }
    }
}

fn recipient_line(seq: i64, u: &pb::RecipientUpdate) -> String {
    format!(
        "#{seq} {}\t{}\tcopies {}/{}{}{}",
        u.mailbox,
        u.outcome().as_str_name(),
        u.copies_deleted_count,
        u.copies_found_count,
        if u.was_read { "\tread" } else { "" },
        if u.detail.is_empty() {
            String::new()
        } else {
            format!("\t{}", u.detail)
        },
    )
}

fn conversation_line(seq: i64, c: &pb::ConversationUpdate) -> String {
    let discovered: Vec<String> = c
        .discovered
        .iter()
        .map(|d| format!("{} (hop {})", d.mailbox, d.hop))
        .collect();
    let unfollowed: Vec<String> = c
        .unfollowed
        .iter()
        .map(|u| format!("{} ({})", u.address, u.code))
        .collect();
    format!(
        "#{seq} depth {} {}\tconversation: {} found, {} retracted, {} left{}{}{}",
        c.depth,
        c.mailbox,
        c.messages_found_count,
        c.messages_retracted_count,
        c.messages_left_count,
        if discovered.is_empty() {
            String::new()
        } else {
            format!("\tnext: {}", discovered.join(", "))
        },
        if unfollowed.is_empty() {
            String::new()
        } else {
            format!("\tnot followed: {}", unfollowed.join(", "))
        },
        c.failure
            .as_ref()
            .map(|f| format!("\tfailed: {} {}", f.code, f.detail))
            .unwrap_or_default(),
    )
}

/// The exit code of a finished job.
pub fn exit_of(state: pb::JobState) -> Exit {
    match state {
        pb::JobState::Succeeded => Exit::Ok,
        pb::JobState::CompletedWithErrors => Exit::CompletedWithErrors,
        _ => Exit::FailedOrCancelled,
    }
}

/// Ctrl-C, kept registered for the whole follow so a press between two events is not lost.
pub struct Interrupts {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Interrupts {
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?,
        })
    }

    /// The next Ctrl-C.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        self.signal.recv().await;
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await.ok();
    }
}

/// What the operator chose on Ctrl-C.
enum Choice {
    Cancel,
    Detach,
}

async fn ask(view: &JobView, job_id: &str, interrupts: &mut Interrupts) -> Choice {
    if !std::io::stdin().is_terminal() {
        return Choice::Detach;
    }
    let prompt = format!(
        "\ninterrupted: cancel job {job_id} (c), or detach and leave it running (d)? [c/d] "
    );
    view.multi.suspend(|| eprint!("{prompt}"));
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    });
    tokio::select! {
        line = answer => match line {
            Ok(Ok(line)) if line.trim().eq_ignore_ascii_case("c") => Choice::Cancel,
            _ => Choice::Detach,
        },
        // A second Ctrl-C at the prompt: leave.
        () = interrupts.recv() => Choice::Detach,
    }
}

/// Follows `events` of a job of `tenant_id` to its end, showing progress; Ctrl-C cancels the
/// job or detaches by `on_interrupt`.
pub async fn follow(
    client: &Client,
    output: Output,
    tenant_id: &str,
    mut events: EventStream,
    on_interrupt: OnInterrupt,
) -> anyhow::Result<Exit> {
    let mut view = JobView::new(output);
    let mut interrupts = Interrupts::new()?;
    let mut interrupted = false;
    let mut reconnects = 0;
    loop {
        tokio::select! {
            item = events.next() => {
                let Some(item) = item else {
                    // Only for a watch after the last event of a finished job.
                    view.clear();
                    let job_id = events.job_id().unwrap_or_default().to_owned();
                    let job = client
                        .get_retract_job(pb::GetRetractJobRequest {
                            tenant_id: tenant_id.to_owned(),
                            job_id: job_id.clone(),
                        })
                        .await?
                        .job
                        .unwrap_or_default();
                    if output.json() {
                        output.line(&job, "RetractJob");
                    } else {
                        crate::say!(
                            "job {job_id} ended {} with #{}; nothing after #{}",
                            job.state().as_str_name(),
                            job.last_sequence,
                            events.last_sequence()
                        );
                    }
                    return Ok(exit_of(job.state()));
                };
                let event = match item {
                    Ok(event) => event,
                    Err(err) => {
                        view.clear();
                        return Err(err.into());
                    }
                };
                if events.reconnects() > reconnects {
                    reconnects = events.reconnects();
                    if !output.json() {
                        view.say(&format!("(reconnected; resumed after #{})", event.sequence() - 1));
                    }
                }
                if let Some(finished) = view.show(&event) {
                    return Ok(exit_of(finished.state()));
                }
            }
            () = interrupts.recv(), if !interrupted => {
                let Some(job_id) = events.job_id().map(str::to_owned) else {
                    view.clear();
                    eprintln!("interrupted before the job started; a retry with the same --request-id re-attaches");
                    return Ok(Exit::Detached);
                };
                let choice = match on_interrupt {
                    OnInterrupt::Cancel => Choice::Cancel,
                    OnInterrupt::Detach => Choice::Detach,
                    OnInterrupt::Ask => ask(&view, &job_id, &mut interrupts).await,
                };
                match choice {
                    Choice::Detach => {
                        view.clear();
                        eprintln!(
                            "detached: job {job_id} keeps running; follow it with `retractctl watch {tenant_id} {job_id} --after {}`",
                            events.last_sequence()
                        );
                        return Ok(Exit::Detached);
                    }
                    Choice::Cancel => {
                        interrupted = true;
                        client
                            .cancel_retract_job(pb::CancelRetractJobRequest {
                                tenant_id: tenant_id.to_owned(),
                                job_id: job_id.clone(),
                                reason: "cancelled with Ctrl-C in retractctl".into(),
                            })
                            .await?;
                        view.multi.suspend(|| {
                            eprintln!("cancellation asked for job {job_id}; following it to its end");
                        });
                    }
                }
            }
        }
    }
}

/// The short name of a job state.
pub fn state_name(state: pb::JobState) -> String {
    short(state.as_str_name(), "JOB_STATE_")
}
