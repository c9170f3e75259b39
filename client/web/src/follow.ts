// Following a retract job: WatchRetract from the last sequence seen, again and again, until its
// JobFinished event. A dropped connection, a server restart, a stream cut by a proxy or a
// reloaded page (pass the stored `afterSequence`) all end the same way: the helper re-attaches
// from the last event it delivered, the server replays what happened meanwhile, and every
// event reaches `onEvent` exactly once and in order.

import { create, ScalarType, type DescField } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";

import { describeError, isRetryable, type RetractError } from "./errors.js";
import {
  RetractService,
  WatchRetractRequestSchema,
  type JobFinished,
  type RetractEvent,
  type WatchRetractRequest,
} from "./gen/retract/v1/retract_service_pb.js";
import { toNumber } from "./progress.js";

export type FollowStatus =
  | { readonly kind: "connecting"; readonly afterSequence: number; readonly attempt: number }
  | { readonly kind: "live"; readonly lastSequence: number }
  | {
      readonly kind: "reconnecting";
      readonly afterSequence: number;
      readonly attempt: number;
      readonly delayMs: number;
      /** Why the previous stream ended; undefined when it ended without JobFinished. */
      readonly error: RetractError | undefined;
    }
  | { readonly kind: "finished"; readonly lastSequence: number };

export interface FollowOptions {
  readonly tenantId: string;
  readonly jobId: string;
  /** Events up to this sequence were already seen (0 = follow from the start). */
  readonly afterSequence?: number;
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
  readonly lastSequence: number;
  readonly finished: JobFinished;
}

/** `n` as the value of a 64-bit (bigint, or string with JS_STRING) or 32-bit field. */
function int64Value(field: DescField, n: number): unknown {
  if (field.fieldKind !== "scalar") return n;
  switch (field.scalar) {
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return field.longAsString ? String(n) : BigInt(n);
    default:
      return n;
  }
}

function watchRequest(tenantId: string, jobId: string, afterSequence: number): WatchRetractRequest {
  const request = create(WatchRetractRequestSchema, { tenantId, jobId });
  request.afterSequence = int64Value(
    WatchRetractRequestSchema.field.afterSequence,
    afterSequence,
  ) as WatchRetractRequest["afterSequence"];
  return request;
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
  let last = options.afterSequence ?? 0;
  let attempt = 0;
  for (;;) {
    let error: RetractError | undefined;
    try {
      status({ kind: "connecting", afterSequence: last, attempt });
      const from = last;
      const stream = client.watchRetract(watchRequest(tenantId, jobId, last), {
        ...(signal ? { signal } : {}),
        ...(options.streamTimeoutMs ? { timeoutMs: options.streamTimeoutMs } : {}),
        // The server accepted the watch (response headers): live, even before the first event.
        onHeader: () => status({ kind: "live", lastSequence: from }),
      });
      for await (const response of stream) {
        const event = response.event;
        if (!event) continue;
        const sequence = toNumber(event.sequence);
        if (event.kind.case === "heartbeat" || event.kind.case === undefined) continue;
        if (sequence <= last) continue;
        if (sequence !== last + 1) throw new SequenceGap(`expected ${last + 1}, got ${sequence}`);
        attempt = 0;
        last = sequence;
        onEvent(event);
        if (event.kind.case === "jobFinished") {
          status({ kind: "finished", lastSequence: last });
          return { lastSequence: last, finished: event.kind.value };
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
    status({ kind: "reconnecting", afterSequence: last, attempt, delayMs, error });
    await sleep(delayMs, signal);
  }
}
