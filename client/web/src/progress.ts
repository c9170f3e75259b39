// The progress of one retract job as a plain, JSON-serialisable value, folded from its events.
//
// This file and view.ts are where the UI reads fields of the generated messages: when the
// `retract.v1` contract changes, `npm run generate` and `npm run typecheck` point here.
// Everything the page shows is built from `JobProgress`, and a page reload restores it from
// storage and follows the job from `lastSequence` on, so no event is applied twice or missed.

import { toJson, type DescEnum } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";

import {
  JobCountsSchema,
  JobStateSchema,
  RecipientOutcomeSchema,
  RecipientPhaseSchema,
  type JobCounts,
  type RetractEvent,
  type RetractJob,
} from "./gen/retract/v1/retract_service_pb.js";

/** An enum value as its proto name without the shared prefix: `RECIPIENT_PHASE_DONE` → `DONE`. */
export function enumName(desc: DescEnum, value: number): string {
  const v = desc.value[value];
  if (!v) return String(value);
  const prefix = desc.sharedPrefix?.toUpperCase() ?? "";
  return prefix && v.name.startsWith(prefix) ? v.name.slice(prefix.length) : v.name;
}

/** A 64-bit sequence number of the contract (bigint today; string with JS_STRING) as a number. */
export function toNumber(value: bigint | number | string): number {
  return typeof value === "number" ? value : Number(value);
}

/** The job's counters by their JSON names (`targets`, `done`, `deleted`, `copiesFound`, …). */
export type Counts = Record<string, number>;

function counts(c: JobCounts | undefined): Counts {
  if (!c) return {};
  const json = toJson(JobCountsSchema, c, { alwaysEmitImplicit: true }) as Record<string, unknown>;
  return Object.fromEntries(Object.entries(json).map(([k, v]) => [k, Number(v)]));
}

export interface MailboxProgress {
  readonly mailbox: string;
  readonly depth: number;
  /** `PENDING` until the first update, then RecipientPhase names: `RESOLVING` … `DONE`. */
  readonly phase: string;
  /** RecipientOutcome name once done (`DELETED`, `NOT_FOUND`, …); empty before. */
  readonly outcome: string;
  readonly copiesFound: number;
  readonly copiesDeleted: number;
  readonly wasRead: boolean;
  readonly detail: string;
  readonly graphErrorCode: string;
  /** How many updates this mailbox received. */
  readonly updates: number;
}

export interface ConversationStep {
  readonly sequence: number;
  readonly conversationId: string;
  readonly depth: number;
  readonly mailbox: string;
  readonly messagesFound: number;
  readonly messagesDeleted: number;
  readonly discoveredMailboxes: readonly string[];
}

export interface JobProgress {
  readonly version: 1;
  readonly tenantId: string;
  readonly jobId: string;
  readonly internetMessageId: string;
  readonly requestedBy: string;
  /** JobState name: `QUEUED`, `RUNNING`, `SUCCEEDED`, `COMPLETED_WITH_ERRORS`, `FAILED`, `CANCELLED`. */
  readonly state: string;
  /** The last event applied; follow the job again after it. */
  readonly lastSequence: number;
  /** Events applied (heartbeats excluded). Equals `lastSequence` when nothing was missed. */
  readonly eventsApplied: number;
  /** Sequence numbers that never arrived (should stay empty: the server has no gaps). */
  readonly missing: readonly number[];
  /** Mailboxes by `depth:address`, in the order they appeared. */
  readonly mailboxes: Readonly<Record<string, MailboxProgress>>;
  readonly conversations: readonly ConversationStep[];
  /** The counters as of the job's start, or its end once finished. */
  readonly counts: Counts;
  /** Set by JobFinished, the last event of a job. */
  readonly finished?: { readonly state: string; readonly counts: Counts; readonly detail: string };
  /** Time of the latest event, ISO 8601. */
  readonly lastEventTime?: string;
}

const mailboxKey = (depth: number, mailbox: string) => `${depth}:${mailbox}`;

function pending(mailbox: string, depth: number): MailboxProgress {
  return {
    mailbox,
    depth,
    phase: "PENDING",
    outcome: "",
    copiesFound: 0,
    copiesDeleted: 0,
    wasRead: false,
    detail: "",
    graphErrorCode: "",
    updates: 0,
  };
}

/** The progress of a job just returned by StartRetract / GetRetractJob, before any event. */
export function startProgress(job: RetractJob): JobProgress {
  return {
    version: 1,
    tenantId: job.tenantId,
    jobId: job.jobId,
    internetMessageId: job.options?.internetMessageId ?? "",
    requestedBy: job.requestedBy,
    state: enumName(JobStateSchema, job.state),
    lastSequence: 0,
    eventsApplied: 0,
    missing: [],
    mailboxes: {},
    conversations: [],
    counts: counts(job.counts),
  };
}

/** Whether the job has ended (its JobFinished event was applied). */
export function isFinished(p: JobProgress): boolean {
  return p.finished !== undefined;
}

/**
 * `p` with `event` applied. Heartbeats and events at or before `lastSequence` (a replay after
 * re-attaching) change nothing; a sequence past `lastSequence + 1` records the ones skipped.
 */
export function applyEvent(p: JobProgress, event: RetractEvent): JobProgress {
  const sequence = toNumber(event.sequence);
  if (event.kind.case === "heartbeat" || event.kind.case === undefined) return p;
  if (sequence <= p.lastSequence) return p;
  const missing = [...p.missing];
  for (let s = p.lastSequence + 1; s < sequence; s++) missing.push(s);
  const time = event.time ? timestampDate(event.time).toISOString() : p.lastEventTime;
  const next: JobProgress = {
    ...p,
    lastSequence: sequence,
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
        mailboxes[key] ??= pending(t.mailbox, t.depth);
      }
      return {
        ...next,
        mailboxes,
        ...(job
          ? {
              state: enumName(JobStateSchema, job.state),
              requestedBy: job.requestedBy,
              internetMessageId: job.options?.internetMessageId ?? next.internetMessageId,
              counts: counts(job.counts),
            }
          : {}),
      };
    }
    case "recipientUpdate": {
      const u = event.kind.value;
      const key = mailboxKey(u.depth, u.mailbox);
      const before = next.mailboxes[key] ?? pending(u.mailbox, u.depth);
      return {
        ...next,
        state: next.state === "QUEUED" ? "RUNNING" : next.state,
        mailboxes: {
          ...next.mailboxes,
          [key]: {
            ...before,
            phase: enumName(RecipientPhaseSchema, u.phase),
            outcome: u.outcome ? enumName(RecipientOutcomeSchema, u.outcome) : "",
            copiesFound: u.copiesFound,
            copiesDeleted: u.copiesDeleted,
            wasRead: u.wasRead,
            detail: u.detail,
            graphErrorCode: u.graphErrorCode,
            updates: before.updates + 1,
          },
        },
      };
    }
    case "conversationUpdate": {
      const c = event.kind.value;
      const mailboxes = { ...next.mailboxes };
      for (const m of c.discoveredMailboxes) {
        mailboxes[mailboxKey(c.depth + 1, m)] ??= pending(m, c.depth + 1);
      }
      const step: ConversationStep = {
        sequence,
        conversationId: c.conversationId,
        depth: c.depth,
        mailbox: c.mailbox,
        messagesFound: c.messagesFound,
        messagesDeleted: c.messagesDeleted,
        discoveredMailboxes: [...c.discoveredMailboxes],
      };
      return { ...next, mailboxes, conversations: [...next.conversations, step] };
    }
    case "jobFinished": {
      const f = event.kind.value;
      const state = enumName(JobStateSchema, f.state);
      const final = counts(f.counts);
      return { ...next, state, counts: final, finished: { state, counts: final, detail: f.detail } };
    }
  }
}

export interface DepthSummary {
  readonly depth: number;
  readonly mailboxes: number;
  readonly done: number;
  readonly deleted: number;
  readonly failed: number;
  readonly copiesFound: number;
  readonly copiesDeleted: number;
  readonly conversationSteps: number;
  readonly messagesFound: number;
  readonly messagesDeleted: number;
}

/** Per conversation depth (0 = the original recipients): mailboxes and how far they got. */
export function byDepth(p: JobProgress): DepthSummary[] {
  const rows = new Map<number, DepthSummary>();
  const row = (depth: number) =>
    rows.get(depth) ?? {
      depth,
      mailboxes: 0,
      done: 0,
      deleted: 0,
      failed: 0,
      copiesFound: 0,
      copiesDeleted: 0,
      conversationSteps: 0,
      messagesFound: 0,
      messagesDeleted: 0,
    };
  for (const m of Object.values(p.mailboxes)) {
    const r = row(m.depth);
    rows.set(m.depth, {
      ...r,
      mailboxes: r.mailboxes + 1,
      done: r.done + (m.phase === "DONE" ? 1 : 0),
      deleted: r.deleted + (m.outcome === "DELETED" ? 1 : 0),
      failed: r.failed + (m.outcome === "FAILED" ? 1 : 0),
      copiesFound: r.copiesFound + m.copiesFound,
      copiesDeleted: r.copiesDeleted + m.copiesDeleted,
    });
  }
  for (const c of p.conversations) {
    const r = row(c.depth);
    rows.set(c.depth, {
      ...r,
      conversationSteps: r.conversationSteps + 1,
      messagesFound: r.messagesFound + c.messagesFound,
      messagesDeleted: r.messagesDeleted + c.messagesDeleted,
    });
  }
  return [...rows.values()].sort((a, b) => a.depth - b.depth);
}

/** Where a page keeps the job it follows, so a reload re-attaches instead of starting over. */
export interface ProgressStore {
  load(): JobProgress | undefined;
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
        const value = JSON.parse(raw) as JobProgress;
        return value.version === 1 && value.jobId ? value : undefined;
      } catch {
        return undefined;
      }
    },
    save(progress) {
      storage.setItem(key, JSON.stringify(progress));
    },
    clear() {
      storage.removeItem(key);
    },
  };
}
