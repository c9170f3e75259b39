// Following a retract job: WatchRetract from the last sequence seen, again and again, until its
// JobFinished event. A dropped connection, a server restart, a stream cut by a proxy or a
// reloaded page all end the same way: the helper re-attaches from the last event it delivered,
// the server replays what happened meanwhile, and every event reaches `onEvent` exactly once
// and in order. After a reload, `resumeJob` draws the job's table from ListRetractTargets and
// says where to follow it from, instead of replaying the job from its first event.
//
// Sequence numbers are int64 with `jstype = JS_STRING` in the contract: decimal strings here,
// compared as numbers (`seq`).

import { Code, ConnectError, type Client } from "@connectrpc/connect";

import { describeError, isRetryable, type RetractError } from "./errors.js";
import {
  RetractService,
  type JobFinished,
  type ListRetractTargetsResponse,
  type RetractEvent,
} from "./gen/retract/v1/retract_service_pb.js";
import { seq, snapshotProgress, withEarlierSteps, type JobProgress } from "./progress.js";

export type FollowStatus =
  | { readonly kind: "connecting"; readonly afterSequence: string; readonly attempt: number }
  | { readonly kind: "live"; readonly lastSequence: string }
  | {
      readonly kind: "reconnecting";
      readonly afterSequence: string;
      readonly attempt: number;
      readonly delayMs: number;
      /** Why the previous stream ended; undefined when it ended without JobFinished. */
      readonly error: RetractError | undefined;
    }
  | { readonly kind: "finished"; readonly lastSequence: string };

export interface FollowOptions {
  readonly tenantId: string;
  readonly jobId: string;
  /** Events up to this sequence were already seen ("0" or unset = follow from the start). */
  readonly afterSequence?: string;
  /** Each event after `afterSequence`, once, in sequence order (no heartbeats). */
  readonly onEvent: (event: RetractEvent) => void;
  /** Connection state changes, for a "live / reconnecting" indicator. */
  readonly onStatus?: (status: FollowStatus) => void;
  /** Stops following (the job itself goes on). */
  readonly signal?: AbortSignal;
  /** First reconnect delay in ms (doubles up to `maxDelayMs`); default 250. */
  readonly baseDelayMs?: number;
  /** Longest reconnect delay in ms; default 5000. */
  readonly maxDelayMs?: number;
  /** Give up after this many reconnects in a row without an event; default: never. */
  readonly maxAttempts?: number;
  /** Deadline of each WatchRetract call in ms (the server ends the stream there); default none. */
  readonly streamTimeoutMs?: number;
}

export interface FollowResult {
  readonly lastSequence: string;
  readonly finished: JobFinished;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** A stream that skipped a sequence number: re-attach, the server replays from the last one. */
class SequenceGap extends Error {}

/**
 * Follows job `jobId` until its JobFinished event and resolves with it. Rejects with the
 * ConnectError of a refused request (the job does not exist, the token lacks `retract.read`, …;
 * `describeError` decodes it), after `maxAttempts` failed reconnects, or with the abort reason
 * when `signal` fires.
 */
export async function followJob(
  client: Client<typeof RetractService>,
  options: FollowOptions,
): Promise<FollowResult> {
  const { tenantId, jobId, onEvent, signal } = options;
  const status = options.onStatus ?? (() => {});
  const base = options.baseDelayMs ?? 250;
  const max = options.maxDelayMs ?? 5000;
  let last = seq(options.afterSequence);
  let attempt = 0;
  for (;;) {
    let error: RetractError | undefined;
    try {
      status({ kind: "connecting", afterSequence: String(last), attempt });
      const from = String(last);
      const stream = client.watchRetract({ tenantId, jobId, afterSequence: String(last) }, {
        ...(signal ? { signal } : {}),
        ...(options.streamTimeoutMs ? { timeoutMs: options.streamTimeoutMs } : {}),
        // The server accepted the watch (response headers): live, even before the first event.
        onHeader: () => status({ kind: "live", lastSequence: from }),
      });
      for await (const response of stream) {
        const event = response.event;
        if (!event) continue;
        if (event.kind.case === "heartbeat" || event.kind.case === undefined) continue;
        const sequence = seq(event.sequence);
        if (sequence <= last) continue;
        if (sequence !== last + 1n) throw new SequenceGap(`expected ${last + 1n}, got ${sequence}`);
        attempt = 0;
        last = sequence;
        onEvent(event);
        if (event.kind.case === "jobFinished") {
          status({ kind: "finished", lastSequence: String(last) });
          return { lastSequence: String(last), finished: event.kind.value };
        }
      }
      // The stream ended before the job did (deadline, server shutdown, proxy): re-attach.
    } catch (thrown) {
      if (signal?.aborted) throw signal.reason;
      if (!(thrown instanceof SequenceGap)) {
        error = describeError(thrown);
        if (!isRetryable(error)) throw error.cause;
      }
    }
    attempt += 1;
    if (options.maxAttempts !== undefined && attempt > options.maxAttempts) {
      throw error?.cause ?? new ConnectError("the stream kept ending early", Code.Unavailable);
    }
    const delayMs = Math.max(error?.retryAfterMs ?? 0, Math.min(max, base * 2 ** (attempt - 1)));
    status({ kind: "reconnecting", afterSequence: String(last), attempt, delayMs, error });
    await sleep(delayMs, signal);
  }
}

export interface ResumeOptions {
  readonly tenantId: string;
  readonly jobId: string;
  readonly signal?: AbortSignal;
  /** Targets per ListRetractTargets page; default 1000 (the most the server returns). */
  readonly pageSize?: number;
  /**
   * For a job that follows conversations, also replay its events up to the listing (one
   * WatchRetract from the start, stopped there) to keep the conversation steps the listing
   * does not have; default true. When that replay fails the progress says
   * `conversationsComplete: false` and the resume goes on.
   */
  readonly conversationSteps?: boolean;
}

/** The conversation steps of job `jobId` up to and including `untilSequence`, from a replay. */
async function conversationStepsUntil(
  client: Client<typeof RetractService>,
  options: { tenantId: string; jobId: string; untilSequence: string; signal: AbortSignal | undefined },
): Promise<RetractEvent[]> {
  const until = seq(options.untilSequence);
  const steps: RetractEvent[] = [];
  if (until === 0n) return steps;
  const stream = client.watchRetract(
    { tenantId: options.tenantId, jobId: options.jobId, afterSequence: "0" },
    options.signal ? { signal: options.signal } : {},
  );
  for await (const response of stream) {
    const event = response.event;
    if (!event || event.kind.case === "heartbeat" || event.kind.case === undefined) continue;
    const sequence = seq(event.sequence);
    if (sequence > until) break;
    if (event.kind.case === "conversationUpdate") steps.push(event);
    if (sequence === until) break;
  }
  return steps;
}

/**
 * A job's progress as the server has it now, for a page that was reloaded: every page of
 * ListRetractTargets, then GetRetractJob. Follow it with `followJob` from the result's `lastSequence`
 * (the smallest `as_of_sequence` of the pages) and fold the events with `applyEvent`, which
 * skips the updates a listed row already reflects. Rejects with the ConnectError of a failed call.
 */
export async function resumeJob(
  client: Client<typeof RetractService>,
  options: ResumeOptions,
): Promise<JobProgress> {
  const { tenantId, jobId, signal } = options;
  const call = signal ? { signal } : {};
  const pages: ListRetractTargetsResponse[] = [];
  let pageToken = "";
  do {
    const page = await client.listRetractTargets(
      { tenantId, jobId, pageSize: options.pageSize ?? 1000, pageToken },
      call,
    );
    pages.push(page);
    pageToken = page.nextPageToken;
  } while (pageToken);
  // After the listing: a job that finished meanwhile shows here with its last sequence, and
  // snapshotProgress then follows from just before JobFinished instead of after it.
  const { job } = await client.getRetractJob({ tenantId, jobId }, call);
  if (!job) throw new ConnectError("GetRetractJob returned no job", Code.Internal);
  const progress = snapshotProgress(job, pages);
  if (progress.conversationsComplete || options.conversationSteps === false) return progress;
  try {
    const steps = await conversationStepsUntil(client, { tenantId, jobId, untilSequence: progress.fromSequence, signal });
    return withEarlierSteps(progress, steps);
  } catch (e) {
    if (signal?.aborted) throw e;
    return progress;
  }
}
