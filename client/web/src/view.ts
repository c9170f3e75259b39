// What the page shows of deliveries, recipients and audit entries, and the Retract request it
// sends — as plain values, so the page itself never touches generated messages. With
// progress.ts this is where a contract change lands.

import { create, type JsonValue } from "@bufbuild/protobuf";
import { reflect } from "@bufbuild/protobuf/reflect";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";

import {
  AuditOutcomeSchema,
  AuditSectionSchema,
  type AuditEvent,
} from "./gen/retract/v1/audit_service_pb.js";
import {
  DeleteMode,
  DeleteModeSchema,
  EligibilitySchema,
  Eligibility,
  RetractOptionsSchema,
  type GetRetractOptionsResponse,
  type RetractOptions,
} from "./gen/retract/v1/retract_service_pb.js";
import { enumName } from "./progress.js";

/** `SOME_NAME` → `Some name`. */
export function humanize(name: string): string {
  const words = name.toLowerCase().replace(/_/g, " ").trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function iso(t: Timestamp | undefined): string {
  return t ? timestampDate(t).toISOString() : "";
}

export interface RecipientRow {
  readonly address: string;
  readonly eligible: boolean;
  /** Eligibility name: `ELIGIBLE`, `DOMAIN_NOT_MANAGED`, `DOMAIN_NOT_GRANTED`, `PERMISSION_ISSUE`. */
  readonly eligibility: string;
  readonly detail: string;
}

export interface DeliveryView {
  readonly internetMessageId: string;
  readonly sender: string;
  readonly subject: string;
  readonly deliveryTime: string;
  readonly recipientCount: number;
  readonly recipients: readonly RecipientRow[];
}

/** The Retract tab of one delivery (GetRetractOptions). */
export function deliveryView(r: GetRetractOptionsResponse): DeliveryView {
  const d = r.delivery;
  return {
    internetMessageId: d?.internetMessageId ?? "",
    sender: d?.sender ?? "",
    subject: d?.subject ?? "",
    deliveryTime: iso(d?.deliveryTime),
    recipientCount: d?.recipientCount || r.recipients.length,
    recipients: r.recipients.map((o) => ({
      address: o.address,
      eligible: o.eligibility === Eligibility.ELIGIBLE,
      eligibility: enumName(EligibilitySchema, o.eligibility),
      detail: o.detail,
    })),
  };
}

/** The delete modes the contract offers, as [value, label] for a radio group. */
export function deleteModes(): { value: number; name: string }[] {
  return DeleteModeSchema.values
    .filter((v) => v.number !== DeleteMode.UNSPECIFIED)
    .map((v) => ({ value: v.number, name: enumName(DeleteModeSchema, v.number) }));
}

export interface RetractForm {
  readonly internetMessageId: string;
  /** The recipients ticked; all eligible ones when every eligible box is ticked (sent as empty). */
  readonly recipients: readonly string[];
  readonly allEligible: boolean;
  readonly includeConversations: boolean;
  readonly conversationDepth: number;
  readonly deleteMode: number;
  readonly dryRun: boolean;
  readonly reason: string;
}

/** Whether this contract's RetractOptions has a field (e.g. `reason`, added later). */
export function optionSupported(localName: string): boolean {
  return RetractOptionsSchema.fields.some((f) => f.localName === localName);
}

/** The RetractOptions of the form; fields the contract does not have yet are left out. */
export function retractOptions(form: RetractForm): RetractOptions {
  const options = create(RetractOptionsSchema, {
    internetMessageId: form.internetMessageId,
    recipients: form.allEligible ? [] : [...form.recipients],
    includeConversations: form.includeConversations,
    conversationDepth: form.includeConversations ? form.conversationDepth : 0,
    deleteMode: form.deleteMode as DeleteMode,
    dryRun: form.dryRun,
  });
  const reason = RetractOptionsSchema.fields.find((f) => f.localName === "reason");
  if (reason && form.reason.trim()) reflect(RetractOptionsSchema, options).set(reason, form.reason.trim());
  return options;
}

export interface AuditRow {
  readonly eventId: string;
  readonly time: string;
  readonly actor: string;
  readonly section: string;
  readonly action: string;
  readonly target: string;
  readonly outcome: string;
  readonly requestId: string;
  /** The structured details (the "expandable entry") as JSON. */
  readonly details: JsonValue;
}

export function auditRow(e: AuditEvent): AuditRow {
  return {
    eventId: e.eventId,
    time: iso(e.occurTime),
    actor: e.actor,
    section: enumName(AuditSectionSchema, e.section),
    action: e.action,
    target: e.target,
    outcome: enumName(AuditOutcomeSchema, e.outcome),
    requestId: e.requestId,
    details: e.details ?? null,
  };
}
