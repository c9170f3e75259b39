// What the page shows of deliveries, recipients and audit entries, and the Retract request it
// sends — as plain values, so the page itself never touches generated messages. With
// progress.ts this is where a contract change lands.

import { create } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";

import {
  AuditActionSchema,
  AuditOutcomeSchema,
  AuditSectionSchema,
  type AuditEvent,
} from "./gen/retract/v1/audit_service_pb.js";
import {
  DeleteMode,
  DeleteModeSchema,
  EligibilitySchema,
  Eligibility,
  JobStateSchema,
  RecipientOutcomeSchema,
  RetractOptionsSchema,
  type GetRetractOptionsResponse,
  type RetractOptions,
  type TargetStatus,
} from "./gen/retract/v1/retract_service_pb.js";
import { RetractStatusSchema, type DomainOutcome } from "./gen/retract/v1/tenant_service_pb.js";
import { counts, enumName, finishedDepths, type Counts, type FinishedDepth } from "./progress.js";

/** `SOME_NAME` → `Some name`. */
export function humanize(name: string): string {
  const words = name.toLowerCase().replace(/_/g, " ").trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function iso(t: Timestamp | undefined): string {
  return t ? timestampDate(t).toISOString() : "";
}

/** The last retract job that reached a recipient (GetRetractOptions). */
export interface LastRetractView {
  readonly jobId: string;
  /** RecipientOutcome name; empty while the job still works on the recipient. */
  readonly outcome: string;
  readonly createTime: string;
}

export interface RecipientRow {
  readonly address: string;
  readonly eligible: boolean;
  /** Eligibility name: `ELIGIBLE`, `DOMAIN_NOT_MANAGED`, `DOMAIN_NOT_GRANTED`, `PERMISSION_ISSUE`. */
  readonly eligibility: string;
  readonly detail: string;
  /** The last job that retracted (or is retracting) this recipient's copy; undefined when none. */
  readonly lastRetract: LastRetractView | undefined;
  /** Delivered to this recipient again after `lastRetract` was created: that copy is not retracted. */
  readonly deliveredAfterLastRetract: boolean;
}

/** Whether the caller may press Retract, and why not (GetRetractOptions.caller_can_retract). */
export interface CallerCanRetract {
  readonly allowed: boolean;
  /** The ErrorReason name StartRetract would answer (`MISSING_PERMISSION`, …); empty when allowed. */
  readonly code: string;
  readonly detail: string;
}

export interface DeliveryView {
  readonly internetMessageId: string;
  readonly sender: string;
  readonly subject: string;
  readonly deliveryTime: string;
  readonly recipientCount: number;
  readonly recipients: readonly RecipientRow[];
  /** More recipients than `recipients` (the first page) exist. */
  readonly moreRecipients: boolean;
  readonly callerCanRetract: CallerCanRetract;
  /** Whether retracting conversations (replies and forwards) is available on this server. */
  readonly conversationsAvailable: boolean;
  /** The deepest conversation depth a retract may ask for. */
  readonly maxConversationDepth: number;
}

/** The Retract tab of one delivery (GetRetractOptions, its first page of recipients). */
export function deliveryView(r: GetRetractOptionsResponse): DeliveryView {
  const d = r.delivery;
  const can = r.callerCanRetract;
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
      lastRetract: o.lastRetract
        ? {
            jobId: o.lastRetract.jobId,
            outcome: o.lastRetract.outcome !== undefined ? enumName(RecipientOutcomeSchema, o.lastRetract.outcome) : "",
            createTime: iso(o.lastRetract.createTime),
          }
        : undefined,
      deliveredAfterLastRetract: o.deliveredAfterLastRetract,
    })),
    moreRecipients: r.nextPageToken !== "",
    // An older server that does not say: let StartRetract answer.
    callerCanRetract: can ? { allowed: can.allowed, code: can.code, detail: can.detail } : { allowed: true, code: "", detail: "" },
    conversationsAvailable: r.conversationsAvailable,
    maxConversationDepth: r.maxConversationDepth,
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
  /** Why, for the audit trail; at most 500 characters. */
  readonly reason: string;
}

/** RetractOptions.reason's limit, in characters. */
export const MAX_REASON_CHARS = 500;

/** The RetractOptions of the form. */
export function retractOptions(form: RetractForm): RetractOptions {
  return create(RetractOptionsSchema, {
    internetMessageId: form.internetMessageId,
    recipients: form.allEligible ? [] : [...form.recipients],
    includeConversations: form.includeConversations,
    conversationDepth: form.includeConversations ? form.conversationDepth : 0,
    deleteMode: form.deleteMode as DeleteMode,
    dryRun: form.dryRun,
    reason: form.reason.trim(),
  });
}

// ---- audit entries ------------------------------------------------------------------------

/** One labelled value of an audit entry's details; `key` names the field (for tests, styling). */
export interface DetailFact {
  readonly key: string;
  readonly label: string;
  readonly value: string;
}

/** A table in an audit entry's details (per-depth counters, domain outcomes, mailboxes). */
export interface DetailTable {
  readonly key: string;
  readonly caption: string;
  readonly columns: readonly string[];
  readonly rows: readonly (readonly (string | number)[])[];
}

/** An audit entry's typed details, readable: a one-line summary, facts and tables. */
export interface AuditDetailsView {
  /** The details' oneof case (`retractDispatched`, …); empty when the entry has none. */
  readonly kind: string;
  readonly summary: string;
  readonly facts: readonly DetailFact[];
  readonly tables: readonly DetailTable[];
}

export interface AuditRow {
  readonly eventId: string;
  readonly time: string;
  readonly actor: string;
  readonly section: string;
  /** AuditAction name: `RETRACT_DISPATCHED`, `RETRACT_FINISHED`, … */
  readonly action: string;
  /** The action for people: `Retract dispatched`. */
  readonly actionLabel: string;
  readonly target: string;
  readonly outcome: string;
  readonly correlationId: string;
  readonly details: AuditDetailsView;
}

const COUNT_LABELS: Record<string, string> = {
  targetCount: "Mailboxes",
  doneCount: "Done",
  deletedCount: "Deleted",
  notFoundCount: "No copy found",
  alreadyDeletedCount: "Already deleted",
  wouldDeleteCount: "Would delete (dry run)",
  failedCount: "Failed",
  skippedCount: "Skipped",
  cancelledCount: "Cancelled",
  copiesFoundCount: "Copies found",
  copiesDeletedCount: "Copies deleted",
  restoredCount: "Restored",
  readBeforeRetractCount: "Read before the retract",
};

/** A counter's label: `deletedCount` → `Deleted`. */
export function countLabel(name: string): string {
  return COUNT_LABELS[name] ?? humanize(name.replace(/Count$/, "").replace(/[A-Z]/g, (c) => `_${c}`));
}

/** The non-zero counters, as "12 mailboxes, 12 deleted, …". */
export function countsSummary(c: Counts): string {
  const parts = Object.entries(c)
    .filter(([, v]) => v !== 0)
    .map(([k, v]) => `${v} ${countLabel(k).toLowerCase()}`);
  return parts.length ? parts.join(", ") : "nothing counted";
}

/** JobFinished's / RetractFinishedDetails' per-depth summary as a table. */
export function depthTable(depths: readonly FinishedDepth[]): DetailTable {
  return {
    key: "depths",
    caption: "Per depth",
    columns: ["Depth", "Mailboxes", "Copies retracted", "Read before the retract"],
    rows: depths.map((d) => [d.depth, d.mailboxCount, d.copiesRetractedCount, d.readBeforeRetractCount]),
  };
}

function domainTable(outcomes: readonly DomainOutcome[]): DetailTable {
  return {
    key: "domains",
    caption: "Domains",
    columns: ["Domain", "Status", "Detail"],
    rows: outcomes.map((o) => [o.domain, humanize(enumName(RetractStatusSchema, o.retractStatus)), o.detail || "—"]),
  };
}

function targetTable(targets: readonly TargetStatus[], total: number): DetailTable {
  return {
    key: "targets",
    caption: total > targets.length ? `Mailboxes (the first ${targets.length} of ${total})` : "Mailboxes",
    columns: ["Mailbox", "Depth", "Outcome", "Copies found / deleted", "Had read it"],
    rows: targets.map((t) => [
      t.mailbox,
      t.depth,
      t.outcome !== undefined ? humanize(enumName(RecipientOutcomeSchema, t.outcome)) : "Unfinished",
      `${t.copiesFoundCount} / ${t.copiesDeletedCount}`,
      t.wasRead ? "Yes" : "No",
    ]),
  };
}

const yesNo = (b: boolean) => (b ? "Yes" : "No");

/** What a RetractOptions asked, as facts. */
export function optionFacts(o: RetractOptions | undefined): DetailFact[] {
  if (!o) return [];
  const mode = humanize(enumName(DeleteModeSchema, o.deleteMode));
  return [
    { key: "internetMessageId", label: "Message", value: o.internetMessageId },
    {
      key: "recipients",
      label: "Recipients",
      value: o.recipients.length ? o.recipients.join(", ") : "Every eligible recipient",
    },
    { key: "deleteMode", label: "Delete mode", value: mode },
    { key: "dryRun", label: "Dry run", value: yesNo(o.dryRun) },
    {
      key: "conversations",
      label: "Conversations",
      value: o.includeConversations ? `Followed to depth ${o.conversationDepth || 1}` : "Not followed",
    },
    { key: "skipIneligible", label: "Skip ineligible", value: yesNo(o.skipIneligible) },
    { key: "includeSenderCopy", label: "Sender's copy", value: yesNo(o.includeSenderCopy) },
    { key: "reason", label: "Reason", value: o.reason || "—" },
  ];
}

const fact = (key: string, label: string, value: string): DetailFact => ({ key, label, value: value || "—" });

/** An audit entry's typed details as facts and tables (the "expandable entry"). */
export function auditDetails(e: AuditEvent): AuditDetailsView {
  const d = e.details;
  switch (d.case) {
    case undefined:
      return { kind: "", summary: "No details", facts: [], tables: [] };
    case "tenantCreated":
      return {
        kind: d.case,
        summary: `Tenant “${d.value.displayName}”`,
        facts: [fact("displayName", "Display name", d.value.displayName)],
        tables: [],
      };
    case "tenantDeleted": {
      const t = d.value;
      return {
        kind: d.case,
        summary: `Tenant deleted: ${t.deliveryCount} deliveries, ${t.jobCount} jobs`,
        facts: [
          fact("reason", "Reason", t.reason),
          fact("microsoftTenantId", "Microsoft 365 tenant", t.microsoftTenantId),
          fact("domains", "Domains", t.domains.join(", ")),
          fact("deliveryCount", "Deliveries deleted", String(t.deliveryCount)),
          fact("jobCount", "Jobs deleted", String(t.jobCount)),
          fact("auditPurgeTime", "Audit trail kept until", iso(t.auditPurgeTime) || "forever"),
        ],
        tables: [],
      };
    }
    case "domainChanged":
      return {
        kind: d.case,
        summary: d.value.domain,
        facts: [fact("domain", "Domain", d.value.domain), fact("asEntered", "As entered", d.value.asEntered)],
        tables: [],
      };
    case "grantStarted":
      return {
        kind: d.case,
        summary: `Consent attempt ${d.value.grantId}`,
        facts: [
          fact("grantId", "Consent attempt", d.value.grantId),
          fact("allowRelink", "Allow relink", yesNo(d.value.allowRelink)),
          fact("expireTime", "Expires", iso(d.value.expireTime)),
        ],
        tables: [],
      };
    case "grantFinished": {
      const g = d.value;
      return {
        kind: d.case,
        summary: g.error ? `${g.error}: ${g.errorDescription}` : `${g.domainOutcomes.length} domains`,
        facts: [
          fact("grantId", "Consent attempt", g.grantId),
          fact("microsoftTenantId", "Microsoft 365 tenant", g.microsoftTenantId),
          fact("signedInAdministrator", "Signed-in administrator", g.signedInAdministrator),
          ...(g.error
            ? [fact("error", "Error", g.error), fact("errorDescription", "Error description", g.errorDescription)]
            : []),
        ],
        tables: g.domainOutcomes.length ? [domainTable(g.domainOutcomes)] : [],
      };
    }
    case "domainsVerified":
      return {
        kind: d.case,
        summary: `${d.value.domainOutcomes.length} domains verified`,
        facts: [fact("microsoftTenantId", "Microsoft 365 tenant", d.value.microsoftTenantId)],
        tables: d.value.domainOutcomes.length ? [domainTable(d.value.domainOutcomes)] : [],
      };
    case "retractDispatched": {
      const r = d.value;
      const o = r.options;
      const mode = o ? humanize(enumName(DeleteModeSchema, o.deleteMode)).toLowerCase() : "";
      const summary = [
        `${r.mailboxCount} ${r.mailboxCount === 1 ? "mailbox" : "mailboxes"}`,
        mode && `${mode} delete`,
        o?.dryRun && "dry run",
        o?.reason && `reason: “${o.reason}”`,
      ]
        .filter(Boolean)
        .join(", ");
      const more = r.mailboxCount > r.mailboxes.length ? ` (the first ${r.mailboxes.length} of ${r.mailboxCount})` : "";
      return {
        kind: d.case,
        summary,
        facts: [
          fact("jobId", "Job", r.jobId),
          fact("requestId", "Request id", r.requestId),
          ...optionFacts(o),
          fact("mailboxes", `Mailboxes${more}`, `${r.mailboxCount}: ${r.mailboxes.join(", ")}`),
        ],
        tables: [],
      };
    }
    case "retractCancelRequested":
      return {
        kind: d.case,
        summary: d.value.reason ? `Reason: “${d.value.reason}”` : "No reason given",
        facts: [fact("jobId", "Job", d.value.jobId), fact("reason", "Reason", d.value.reason)],
        tables: [],
      };
    case "restoreDispatched":
      return {
        kind: d.case,
        summary: `Restore of ${d.value.restoresJobId}: ${d.value.mailboxCount} mailboxes`,
        facts: [
          fact("jobId", "Restore job", d.value.jobId),
          fact("restoresJobId", "Restores", d.value.restoresJobId),
          fact("requestId", "Request id", d.value.requestId),
          fact("reason", "Reason", d.value.reason),
          fact("mailboxCount", "Mailboxes", String(d.value.mailboxCount)),
        ],
        tables: [],
      };
    case "retractFinished": {
      const f = d.value;
      const state = humanize(enumName(JobStateSchema, f.state));
      const c = counts(f.counts);
      return {
        kind: d.case,
        summary: `${state}: ${countsSummary(c)}`,
        facts: [
          fact("jobId", "Job", f.jobId),
          fact("internetMessageId", "Message", f.internetMessageId),
          fact("state", "State", state),
          fact("detail", "Detail", f.detail),
          fact("counts", "Counts", countsSummary(c)),
        ],
        tables: [depthTable(finishedDepths(f.depths)), ...(f.targets.length ? [targetTable(f.targets, f.targetCount)] : [])],
      };
    }
  }
}

export function auditRow(e: AuditEvent): AuditRow {
  const action = enumName(AuditActionSchema, e.action);
  return {
    eventId: e.eventId,
    time: iso(e.occurTime),
    actor: e.actor,
    section: enumName(AuditSectionSchema, e.section),
    action,
    actionLabel: humanize(action),
    target: e.target,
    outcome: enumName(AuditOutcomeSchema, e.outcome),
    correlationId: e.correlationId,
    details: auditDetails(e),
  };
}
