// The progress of one retract job as a plain, JSON-serialisable value, folded from its events.
//
// This file and view.ts are where the UI reads fields of the generated messages: when the
// `retract.v1` contract changes, `npm run generate` and `npm run typecheck` point here.
// Everything the page shows is built from `JobProgress`. A page keeps only the job and its last
// sequence in storage; after a reload it draws the per-recipient table from ListRetractTargets
// (`snapshotProgress`) and follows the job from the listing's sequence, applying each event once
// and skipping mailbox updates a listed row already reflects.

import { type DescEnum } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";

import {
  JobCountsSchema,
  JobKindSchema,
  JobStateSchema,
  RecipientOutcomeSchema,
  RecipientPhaseSchema,
  type ConversationUpdate,
  type DepthSummary as DepthSummaryMessage,
  type JobCounts,
  type JobFailure,
  type RetractEvent,
  type RetractJob,
  type TargetStatus,
} from "./gen/retract/v1/retract_service_pb.js";

/** An enum value as its proto name without the shared prefix: `RECIPIENT_PHASE_DONE` → `DONE`. */
export function enumName(desc: DescEnum, value: number): string {
  const v = desc.value[value];
  if (!v) return String(value);
  const prefix = desc.sharedPrefix?.toUpperCase() ?? "";
  return prefix && v.name.startsWith(prefix) ? v.name.slice(prefix.length) : v.name;
}

/**
 * A sequence number of the contract (int64 with `jstype = JS_STRING`: a decimal string) as a
 * bigint, for comparing. Sequences stay far below 2^53, but comparing strings would put "10"
 * before "9".
 */
export function seq(value: string | number | bigint | undefined): bigint {
  if (value === undefined || value === "") return 0n;
  return typeof value === "bigint" ? value : BigInt(value);
}

/** `a` compared with `b` as sequence numbers: negative, 0 or positive. */
export function compareSequences(a: string | number | bigint, b: string | number | bigint): number {
  const [x, y] = [seq(a), seq(b)];
  return x < y ? -1 : x > y ? 1 : 0;
}

/** The smallest of some sequence numbers, as a string ("0" for none). */
export function minSequence(values: readonly string[]): string {
  if (values.length === 0) return "0";
  return values.reduce((a, b) => (compareSequences(a, b) <= 0 ? a : b));
}

function iso(t: Timestamp | undefined): string {
  return t ? timestampDate(t).toISOString() : "";
}

/** The names of JobCounts' counters: `targetCount`, `doneCount`, … `readBeforeRetractCount`. */
export type CountName = Exclude<keyof JobCounts, "$typeName" | "$unknown">;

/** A job's counters as plain numbers, by their field names. */
export type Counts = Readonly<Record<CountName, number>>;

/** Every counter, in the contract's order (for display). */
export const COUNT_NAMES: readonly CountName[] = JobCountsSchema.fields.map((f) => f.localName as CountName);

export function counts(c: JobCounts | undefined): Counts {
  const out = {} as Record<CountName, number>;
  for (const name of COUNT_NAMES) out[name] = c ? c[name] : 0;
  return out;
}

export interface Failure {
  readonly code: string;
  readonly detail: string;
}

function failure(f: JobFailure | undefined): Failure | undefined {
  return f && (f.code || f.detail) ? { code: f.code, detail: f.detail } : undefined;
}

export interface MailboxProgress {
  readonly mailbox: string;
  readonly depth: number;
  /**
   * `PENDING` until the first update (or, after a reload, while ListRetractTargets says the
   * mailbox is unfinished), then RecipientPhase names: `RESOLVING` … `DONE`.
   */
  readonly phase: string;
  /** RecipientOutcome name once done (`DELETED`, `NOT_FOUND`, …); empty before. */
  readonly outcome: string;
  readonly copiesFoundCount: number;
  readonly copiesDeletedCount: number;
  readonly wasRead: boolean;
  readonly detail: string;
  readonly graphErrorCode: string;
  /** For a mailbox reached through a conversation: the mailbox whose sent message reached it. */
  readonly discoveredFrom: string;
  /** How many updates this mailbox received. */
  readonly updates: number;
  /**
   * The sequence this row is as of: the event that last changed it, or the `as_of_sequence`
   * of the listing it came from. Updates at or before it are not applied again.
   */
  readonly sequence: string;
}

export interface ConversationStep {
  readonly sequence: string;
  readonly mailbox: string;
  readonly depth: number;
  readonly conversationId: string;
  readonly messagesFoundCount: number;
  readonly messagesRetractedCount: number;
  readonly messagesLeftCount: number;
  readonly discovered: readonly { readonly mailbox: string; readonly hop: number }[];
  readonly unfollowed: readonly { readonly address: string; readonly hop: number; readonly code: string }[];
  readonly failure?: Failure;
}

/** One row of JobFinished's per-depth summary. */
export interface FinishedDepth {
  readonly depth: number;
  readonly mailboxCount: number;
  readonly copiesRetractedCount: number;
  readonly readBeforeRetractCount: number;
}

export function finishedDepths(depths: readonly DepthSummaryMessage[]): FinishedDepth[] {
  return depths.map((d) => ({
    depth: d.depth,
    mailboxCount: d.mailboxCount,
    copiesRetractedCount: d.copiesRetractedCount,
    readBeforeRetractCount: d.readBeforeRetractCount,
  }));
}

export interface JobProgress {
  readonly version: 2;
  readonly tenantId: string;
  readonly jobId: string;
  /** JobKind name: `RETRACT` or `RESTORE`. */
  readonly kind: string;
  readonly internetMessageId: string;
  readonly requestedBy: string;
  /** The retract's reason as asked (RetractOptions.reason); may be empty. */
  readonly reason: string;
  /**
   * The rest of what was asked, for a page that shows the job's form after a reload:
   * conversations followed to `conversationDepth` hops (0 = not followed), the DeleteMode value.
   */
  readonly asked: { readonly conversationDepth: number; readonly deleteMode: number; readonly dryRun: boolean };
  /** The message as recorded when the job was created. */
  readonly message?: { readonly subject: string; readonly sender: string; readonly deliveryTime: string };
  /** JobState name: `QUEUED`, `RUNNING`, `SUCCEEDED`, `COMPLETED_WITH_ERRORS`, `FAILED`, `CANCELLED`. */
  readonly state: string;
  /** Set once a cancellation was asked for. */
  readonly cancellation?: { readonly requestedBy: string; readonly reason: string; readonly requestTime: string };
  /** The last event applied (or the listing's sequence): follow the job again after it. */
  readonly lastSequence: string;
  /**
   * Where the events applied here start: "0" when the progress was folded from the job's first
   * event on; after a reload, the sequence of the ListRetractTargets listing it was drawn from.
   * `fromSequence + eventsApplied == lastSequence` when no event was missed.
   */
  readonly fromSequence: string;
  /** Events applied after `fromSequence` (heartbeats excluded). */
  readonly eventsApplied: number;
  /** Sequence numbers that never arrived (should stay empty: the server has no gaps). */
  readonly missing: readonly string[];
  /** Mailboxes by `depth:address`, in the order they appeared. */
  readonly mailboxes: Readonly<Record<string, MailboxProgress>>;
  /**
   * The conversation steps applied here (ListRetractTargets does not list them: after a reload,
   * the steps since; JobFinished's `depths` are the job's own per-depth totals).
   */
  readonly conversations: readonly ConversationStep[];
  /**
   * Whether `conversations` has every step of the job so far. False after a reload until the
   * steps before the listing were replayed (`withEarlierSteps`; `resumeJob` does it for jobs
   * that follow conversations), or when that replay failed.
   */
  readonly conversationsComplete: boolean;
  /** The counters as of the job's start (or the listing), its end once finished. */
  readonly counts: Counts;
  /** Set by JobFinished, the last event of a job. */
  readonly finished?: {
    readonly state: string;
    readonly counts: Counts;
    readonly detail: string;
    readonly depths: readonly FinishedDepth[];
    readonly failure?: Failure;
  };
  /** Why the job ended FAILED. */
  readonly failure?: Failure;
  /** Time of the latest event, ISO 8601. */
  readonly lastEventTime?: string;
}

export const mailboxKey = (depth: number, mailbox: string) => `${depth}:${mailbox}`;

/**
 * A mailbox is visited once, at the lowest hop that reached it: the server may move one it
 * first reached deeper to a lower depth before its visit ends. Whether a row of `mailbox`
 * stands at a lower depth than `depth` already.
 */
function reachedLower(mailboxes: Record<string, MailboxProgress>, mailbox: string, depth: number): boolean {
  return Object.values(mailboxes).some((r) => r.mailbox === mailbox && r.depth < depth);
}

/** Drops the unfinished rows of `mailbox` deeper than `depth` (it moved up to `depth`). */
function withoutDeeper(
  mailboxes: Record<string, MailboxProgress>,
  mailbox: string,
  depth: number,
): Record<string, MailboxProgress> {
  const kept: Record<string, MailboxProgress> = {};
  for (const [key, r] of Object.entries(mailboxes)) {
    if (!(r.mailbox === mailbox && r.depth > depth && r.outcome === "")) kept[key] = r;
  }
  return kept;
}

function pending(mailbox: string, depth: number, sequence: string): MailboxProgress {
  return {
    mailbox,
    depth,
    phase: "PENDING",
    outcome: "",
    copiesFoundCount: 0,
    copiesDeletedCount: 0,
    wasRead: false,
    detail: "",
    graphErrorCode: "",
    discoveredFrom: "",
    updates: 0,
    sequence,
  };
}

/** What a RetractJob says about the job, as JobProgress fields. */
function jobFields(job: RetractJob) {
  const cancellation = job.cancellation;
  const message = job.message;
  const fail = failure(job.failure);
  return {
    tenantId: job.tenantId,
    jobId: job.jobId,
    kind: enumName(JobKindSchema, job.kind),
    internetMessageId: job.options?.internetMessageId ?? "",
    requestedBy: job.requestedBy,
    reason: job.options?.reason ?? "",
    asked: {
      conversationDepth: job.options?.includeConversations ? job.options.conversationDepth || 1 : 0,
      deleteMode: job.options?.deleteMode ?? 0,
      dryRun: job.options?.dryRun ?? false,
    },
    state: enumName(JobStateSchema, job.state),
    counts: counts(job.counts),
    ...(message
      ? { message: { subject: message.subject, sender: message.sender, deliveryTime: iso(message.deliveryTime) } }
      : {}),
    ...(cancellation
      ? {
          cancellation: {
            requestedBy: cancellation.requestedBy,
            reason: cancellation.reason,
            requestTime: iso(cancellation.requestTime),
          },
        }
      : {}),
    ...(fail ? { failure: fail } : {}),
  };
}

/** The progress of a job just returned by StartRetract / GetRetractJob, before any event. */
export function startProgress(job: RetractJob): JobProgress {
  return {
    version: 2,
    ...jobFields(job),
    lastSequence: "0",
    fromSequence: "0",
    eventsApplied: 0,
    missing: [],
    mailboxes: {},
    conversations: [],
    conversationsComplete: true,
  };
}

/** Whether a JobState name is one a job ends in. */
export function isFinalState(state: string): boolean {
  return ["SUCCEEDED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELLED"].includes(state);
}

/**
 * The progress of a job drawn from ListRetractTargets (every page) and GetRetractJob, for a
 * page that reloads: follow the job after `lastSequence` (the smallest `as_of_sequence` of the
 * pages) and apply its events; `applyEvent` skips what a row already reflects.
 *
 * For a finished job `lastSequence` is one before its last event, so following it replays
 * JobFinished (the summary's detail and per-depth totals) and ends.
 */
export function snapshotProgress(
  job: RetractJob,
  pages: readonly { readonly targets: readonly TargetStatus[]; readonly asOfSequence: string }[],
): JobProgress {
  const mailboxes: Record<string, MailboxProgress> = {};
  for (const page of pages) {
    for (const t of page.targets) {
      const done = t.outcome !== undefined;
      mailboxes[mailboxKey(t.depth, t.mailbox)] = {
        ...pending(t.mailbox, t.depth, page.asOfSequence),
        phase: done ? "DONE" : "PENDING",
        outcome: t.outcome !== undefined ? enumName(RecipientOutcomeSchema, t.outcome) : "",
        copiesFoundCount: t.copiesFoundCount,
        copiesDeletedCount: t.copiesDeletedCount,
        wasRead: t.wasRead,
        detail: t.detail,
        graphErrorCode: t.graphErrorCode,
        discoveredFrom: t.discoveredFrom,
      };
    }
  }
  let from = minSequence(pages.map((p) => p.asOfSequence));
  const fields = jobFields(job);
  if (isFinalState(fields.state) && compareSequences(from, job.lastSequence) >= 0) {
    from = String(seq(job.lastSequence) - 1n);
  }
  return {
    version: 2,
    ...fields,
    lastSequence: from,
    fromSequence: from,
    eventsApplied: 0,
    missing: [],
    mailboxes,
    conversations: [],
    // A job that follows no conversation has no step to miss.
    conversationsComplete: !job.options?.includeConversations || seq(from) === 0n,
  };
}

function conversationStep(sequence: string, c: ConversationUpdate): ConversationStep {
  const fail = failure(c.failure);
  return {
    sequence,
    mailbox: c.mailbox,
    depth: c.depth,
    conversationId: c.conversationId,
    messagesFoundCount: c.messagesFoundCount,
    messagesRetractedCount: c.messagesRetractedCount,
    messagesLeftCount: c.messagesLeftCount,
    discovered: c.discovered.map((d) => ({ mailbox: d.mailbox, hop: d.hop })),
    unfollowed: c.unfollowed.map((u) => ({ address: u.address, hop: u.hop, code: u.code })),
    ...(fail ? { failure: fail } : {}),
  };
}

/**
 * `p` (drawn from a listing after a reload) with the conversation steps among `events` that
 * happened at or before the listing (`fromSequence`): ListRetractTargets lists each mailbox with
 * who led to it (`discovered_from`) but not the steps themselves (counts, recipients not
 * followed). Only the steps are taken; the table, the counters and `eventsApplied` stay as they
 * are, so `fromSequence + eventsApplied == lastSequence` still says whether an event was missed.
 */
export function withEarlierSteps(p: JobProgress, events: readonly RetractEvent[]): JobProgress {
  const known = new Set(p.conversations.map((c) => c.sequence));
  const earlier: ConversationStep[] = [];
  for (const e of events) {
    if (e.kind.case !== "conversationUpdate") continue;
    const at = String(seq(e.sequence));
    if (seq(at) > seq(p.fromSequence) || known.has(at)) continue;
    known.add(at);
    earlier.push(conversationStep(at, e.kind.value));
  }
  const conversations = [...earlier, ...p.conversations].sort((a, b) => compareSequences(a.sequence, b.sequence));
  return { ...p, conversations, conversationsComplete: true };
}

/** Whether the job has ended (its JobFinished event was applied). */
export function isFinished(p: JobProgress): boolean {
  return p.finished !== undefined;
}

/**
 * `p` with `event` applied. Heartbeats and events at or before `lastSequence` (a replay after
 * re-attaching) change nothing; a sequence past `lastSequence + 1` records the ones skipped.
 * A mailbox update at or before the sequence its row is as of (a row listed by
 * ListRetractTargets) changes nothing either, so a replay after a listing is idempotent.
 */
export function applyEvent(p: JobProgress, event: RetractEvent): JobProgress {
  if (event.kind.case === "heartbeat" || event.kind.case === undefined) return p;
  const sequence = seq(event.sequence);
  if (sequence <= seq(p.lastSequence)) return p;
  const missing = [...p.missing];
  for (let s = seq(p.lastSequence) + 1n; s < sequence; s++) missing.push(String(s));
  const time = event.occurTime ? iso(event.occurTime) : p.lastEventTime;
  const at = String(sequence);
  const next: JobProgress = {
    ...p,
    lastSequence: at,
    eventsApplied: p.eventsApplied + 1,
    missing,
    ...(time ? { lastEventTime: time } : {}),
  };
  switch (event.kind.case) {
    case "jobStarted": {
      const { job, targets } = event.kind.value;
      const mailboxes = { ...next.mailboxes };
      for (const t of targets) {
        const key = mailboxKey(t.depth, t.mailbox);
        mailboxes[key] ??= pending(t.mailbox, t.depth, at);
      }
      return { ...next, mailboxes, ...(job ? { ...jobFields(job), state: enumName(JobStateSchema, job.state) } : {}) };
    }
    case "recipientUpdate": {
      const u = event.kind.value;
      const key = mailboxKey(u.depth, u.mailbox);
      const before = next.mailboxes[key] ?? pending(u.mailbox, u.depth, "0");
      const running = next.state === "QUEUED" ? "RUNNING" : next.state;
      if (sequence <= seq(before.sequence)) return { ...next, state: running };
      // Progress of a visit that began at a depth its mailbox has since left.
      if (u.outcome === undefined && reachedLower(next.mailboxes, u.mailbox, u.depth)) {
        return { ...next, state: running };
      }
      return {
        ...next,
        state: running,
        mailboxes: {
          ...withoutDeeper(next.mailboxes, u.mailbox, u.depth),
          [key]: {
            ...before,
            phase: enumName(RecipientPhaseSchema, u.phase),
            outcome: u.outcome !== undefined ? enumName(RecipientOutcomeSchema, u.outcome) : "",
            copiesFoundCount: u.copiesFoundCount,
            copiesDeletedCount: u.copiesDeletedCount,
            wasRead: u.wasRead,
            detail: u.detail,
            graphErrorCode: u.graphErrorCode,
            updates: before.updates + 1,
            sequence: at,
          },
        },
      };
    }
    case "conversationUpdate": {
      const c = event.kind.value;
      let mailboxes = { ...next.mailboxes };
      for (const d of c.discovered) {
        if (reachedLower(mailboxes, d.mailbox, d.hop)) continue;
        mailboxes = withoutDeeper(mailboxes, d.mailbox, d.hop);
        mailboxes[mailboxKey(d.hop, d.mailbox)] ??= { ...pending(d.mailbox, d.hop, "0"), discoveredFrom: c.mailbox };
      }
      const step = conversationStep(at, c);
      return { ...next, mailboxes, conversations: [...next.conversations, step] };
    }
    case "jobFinished": {
      const f = event.kind.value;
      const state = enumName(JobStateSchema, f.state);
      const final = counts(f.counts);
      const fail = failure(f.failure);
      return {
        ...next,
        state,
        counts: final,
        ...(fail ? { failure: fail } : {}),
        finished: { state, counts: final, detail: f.detail, depths: finishedDepths(f.depths), ...(fail ? { failure: fail } : {}) },
      };
    }
  }
}

/** A recipient a conversation step did not follow, with the visited mailbox whose message named it. */
export interface NotFollowed {
  readonly address: string;
  /** The hop of the message that named it. */
  readonly hop: number;
  /** Why: `DOMAIN_NOT_MANAGED`, `DOMAIN_NOT_GRANTED`, `NOT_A_MAILBOX`, … */
  readonly code: string;
  /** The mailbox whose conversation step reported it. */
  readonly namedBy: string;
  readonly sequence: string;
}

/** Every recipient the job's conversation steps did not follow, in the order they were reported. */
export function notFollowed(p: JobProgress): NotFollowed[] {
  return p.conversations.flatMap((c) =>
    c.unfollowed.map((u) => ({ address: u.address, hop: u.hop, code: u.code, namedBy: c.mailbox, sequence: c.sequence })),
  );
}

export interface DepthProgress {
  readonly depth: number;
  readonly mailboxes: number;
  readonly done: number;
  readonly deleted: number;
  readonly failed: number;
  readonly copiesFoundCount: number;
  readonly copiesDeletedCount: number;
  readonly conversationSteps: number;
  readonly messagesFoundCount: number;
  readonly messagesRetractedCount: number;
}

/** Per conversation depth (0 = the original recipients): mailboxes and how far they got. */
export function byDepth(p: JobProgress): DepthProgress[] {
  const rows = new Map<number, DepthProgress>();
  const row = (depth: number) =>
    rows.get(depth) ?? {
      depth,
      mailboxes: 0,
      done: 0,
      deleted: 0,
      failed: 0,
      copiesFoundCount: 0,
      copiesDeletedCount: 0,
      conversationSteps: 0,
      messagesFoundCount: 0,
      messagesRetractedCount: 0,
    };
  for (const m of Object.values(p.mailboxes)) {
    const r = row(m.depth);
    rows.set(m.depth, {
      ...r,
      mailboxes: r.mailboxes + 1,
      done: r.done + (m.phase === "DONE" ? 1 : 0),
      deleted: r.deleted + (m.outcome === "DELETED" ? 1 : 0),
      failed: r.failed + (m.outcome === "FAILED" ? 1 : 0),
      copiesFoundCount: r.copiesFoundCount + m.copiesFoundCount,
      copiesDeletedCount: r.copiesDeletedCount + m.copiesDeletedCount,
    });
  }
  for (const c of p.conversations) {
    const r = row(c.depth);
    rows.set(c.depth, {
      ...r,
      conversationSteps: r.conversationSteps + 1,
      messagesFoundCount: r.messagesFoundCount + c.messagesFoundCount,
      messagesRetractedCount: r.messagesRetractedCount + c.messagesRetractedCount,
    });
  }
  return [...rows.values()].sort((a, b) => a.depth - b.depth);
}

/**
 * What a page keeps of the job it follows, so a reload re-attaches instead of starting over:
 * the job and the last sequence seen (a decimal string, as the contract has it). The table
 * itself is not kept: after a reload ListRetractTargets draws it again (`resumeJob`).
 */
export interface FollowedJob {
  readonly version: 2;
  readonly tenantId: string;
  readonly jobId: string;
  readonly lastSequence: string;
}

export interface ProgressStore {
  load(): FollowedJob | undefined;
  save(progress: JobProgress): void;
  clear(): void;
}

/** A ProgressStore in `storage` (e.g. `sessionStorage`) under `key`. */
export function storageProgressStore(storage: Storage, key = "retract.job"): ProgressStore {
  return {
    load() {
      const raw = storage.getItem(key);
      if (!raw) return undefined;
      try {
        const value = JSON.parse(raw) as Partial<FollowedJob>;
        return value.version === 2 && value.jobId && value.tenantId && typeof value.lastSequence === "string"
          ? (value as FollowedJob)
          : undefined;
      } catch {
        return undefined;
      }
    },
    save(progress) {
      const followed: FollowedJob = {
        version: 2,
        tenantId: progress.tenantId,
        jobId: progress.jobId,
        lastSequence: progress.lastSequence,
      };
      storage.setItem(key, JSON.stringify(followed));
    },
    clear() {
      storage.removeItem(key);
    },
  };
}
