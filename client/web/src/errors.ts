// Errors as the UI needs them: the gRPC code and message plus the decoded google.rpc details
// the server always sends (ErrorInfo with an UPPER_SNAKE reason; BadRequest field violations on
// INVALID_ARGUMENT; RetryInfo on RESOURCE_EXHAUSTED / UNAVAILABLE). The details travel in the
// `grpc-status-details-bin` header or trailer, which the server exposes to browsers through CORS.
// Every ErrorInfo reason is a value of `retract.v1.ErrorReason` (errors.proto) without its
// `ERROR_REASON_` prefix, in the domain `retract.email-security.internal`: branch on `errorReason`.

import { Code, ConnectError } from "@connectrpc/connect";

import {
  BadRequestSchema,
  ErrorInfoSchema,
  PreconditionFailureSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";
import { ErrorReason, ErrorReasonSchema } from "./gen/retract/v1/errors_pb.js";

export { ErrorReason };

/** `google.rpc.ErrorInfo.domain` of every error the retract service sends. */
export const ERROR_DOMAIN = "retract.email-security.internal";

/**
 * An ErrorInfo reason (`TENANT_NOT_LINKED`) as the ErrorReason enum; UNSPECIFIED when it is
 * empty or not one this client knows. Also takes a RetractPrecondition `code`.
 */
export function errorReason(reason: string): ErrorReason {
  const value = ErrorReasonSchema.values.find((v) => v.name === `ERROR_REASON_${reason}`);
  return value ? (value.number as ErrorReason) : ErrorReason.UNSPECIFIED;
}

export interface FieldViolation {
  readonly field: string;
  readonly description: string;
}

export interface RetractError {
  /** The gRPC status code, e.g. `Code.InvalidArgument`. */
  readonly code: Code;
  /** Its name as in the gRPC spec, e.g. `INVALID_ARGUMENT`. */
  readonly codeName: string;
  /** The server's message, without the `[code]` prefix. */
  readonly message: string;
  /** `google.rpc.ErrorInfo.reason`, e.g. `MISSING_CREDENTIALS`; empty when absent. */
  readonly reason: string;
  /**
   * The reason as the ErrorReason enum, for typed checks (`e.errorReason ===
   * ErrorReason.TOKEN_EXPIRED`); UNSPECIFIED when absent, unknown, or not of ERROR_DOMAIN.
   */
  readonly errorReason: ErrorReason;
  /** `google.rpc.ErrorInfo.domain`. */
  readonly domain: string;
  /** `google.rpc.ErrorInfo.metadata`. */
  readonly metadata: Readonly<Record<string, string>>;
  /** `google.rpc.BadRequest.field_violations`. */
  readonly fieldViolations: readonly FieldViolation[];
  /** `google.rpc.PreconditionFailure.violations`, as "type subject: description". */
  readonly preconditionViolations: readonly string[];
  /** `google.rpc.RetryInfo.retry_delay` in milliseconds, when the server says when to retry. */
  readonly retryAfterMs: number | undefined;
  /** The original error. */
  readonly cause: ConnectError;
}

/** UPPER_SNAKE name of a code: Code.InvalidArgument → "INVALID_ARGUMENT". */
export function codeName(code: Code): string {
  return (Code[code] ?? `CODE_${code}`).replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** Any thrown value as a RetractError (network failures become UNKNOWN / UNAVAILABLE). */
export function describeError(thrown: unknown): RetractError {
  const error = ConnectError.from(thrown);
  const info = error.findDetails(ErrorInfoSchema)[0];
  const badRequest = error.findDetails(BadRequestSchema);
  const precondition = error.findDetails(PreconditionFailureSchema);
  const retry = error.findDetails(RetryInfoSchema)[0];
  const delay = retry?.retryDelay;
  return {
    code: error.code,
    codeName: codeName(error.code),
    message: error.rawMessage,
    reason: info?.reason ?? "",
    errorReason: info && info.domain === ERROR_DOMAIN ? errorReason(info.reason) : ErrorReason.UNSPECIFIED,
    domain: info?.domain ?? "",
    metadata: { ...(info?.metadata ?? {}) },
    fieldViolations: badRequest.flatMap((b) =>
      b.fieldViolations.map((v) => ({ field: v.field, description: v.description })),
    ),
    preconditionViolations: precondition.flatMap((p) =>
      p.violations.map((v) => `${v.type} ${v.subject}: ${v.description}`.trim()),
    ),
    retryAfterMs: delay ? Number(delay.seconds) * 1000 + Math.round(delay.nanos / 1e6) : undefined,
    cause: error,
  };
}

/** Errors after which following a job again cannot help: the request itself is refused. */
const FATAL = new Set<Code>([
  Code.InvalidArgument,
  Code.NotFound,
  Code.AlreadyExists,
  Code.PermissionDenied,
  Code.Unauthenticated,
  Code.FailedPrecondition,
  Code.OutOfRange,
  Code.Unimplemented,
]);

/** Whether a call that failed so may succeed when repeated (dropped connection, restart, limits). */
export function isRetryable(error: RetractError | ConnectError): boolean {
  return !FATAL.has(error.code);
}
