// The reference page: connect, look up a delivery, the Retract tab, a live retract that
// survives reloads, the summary and the audit trail. Plain DOM; every value from the server
// reaches the page through view.ts / progress.ts, and is written with textContent only.

import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";

import { retractClients, type RetractClients } from "../client.js";
import { describeError, type RetractError } from "../errors.js";
import { followJob, resumeJob, type FollowStatus } from "../follow.js";
import { AuditSection } from "../gen/retract/v1/audit_service_pb.js";
import { DeleteMode, RetractOptionsSchema } from "../gen/retract/v1/retract_service_pb.js";
import {
  applyEvent,
  byDepth,
  isFinished,
  notFollowed,
  startProgress,
  storageProgressStore,
  type FollowedJob,
  type JobProgress,
  type MailboxProgress,
} from "../progress.js";
import {
  auditRow,
  countLabel,
  deleteModes,
  deliveryView,
  depthTable,
  humanize,
  MAX_REASON_CHARS,
  retractOptions,
  type AuditDetailsView,
  type AuditRow,
  type DeliveryView,
  type DetailTable,
  type RecipientRow,
} from "../view.js";

// ---- small DOM helpers -------------------------------------------------------------------

function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el as T;
}

type Child = Node | string | number | null | undefined | false;

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    el.setAttribute(name, value === true ? "" : value);
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === "number" ? String(c) : c);
  }
  return el;
}

function time(iso: string | undefined): HTMLElement | string {
  if (!iso) return "—";
  return h("time", { datetime: iso }, new Date(iso).toLocaleString());
}

const OUTCOME_TONE: Record<string, string> = {
  DELETED: "ok",
  WOULD_DELETE: "ok",
  NOT_FOUND: "idle",
  ALREADY_DELETED: "idle",
  SKIPPED: "warn",
  CANCELLED: "warn",
  FAILED: "bad",
};

/** A mailbox's progress as a badge: the phase while working, the outcome when done. */
function progressBadge(m: MailboxProgress | undefined): HTMLElement {
  if (!m) return h("span", { class: "badge idle" }, "Not part of this job");
  if (m.phase === "DONE") {
    const label = humanize(m.outcome || "DONE");
    return h("span", { class: `badge ${OUTCOME_TONE[m.outcome] ?? "idle"}`, title: m.detail || undefined }, label);
  }
  return h("span", { class: `badge ${m.phase === "PENDING" ? "idle" : "busy"}` }, humanize(m.phase) + "…");
}

/** Where the last retract left a recipient, from the Retract tab (GetRetractOptions). */
function lastRetractCell(r: RecipientRow): HTMLElement | string {
  const last = r.lastRetract;
  if (!last) return "—";
  // The job shown below: its Progress column is live, this lookup is not.
  if (progress && last.jobId === progress.jobId) {
    return h("div", { class: "last-retract", "data-job-id": last.jobId, "data-this-job": "true" }, h("span", { class: "badge busy" }, "This job"));
  }
  const outcome = last.outcome;
  return h(
    "div",
    { class: "last-retract", "data-job-id": last.jobId, "data-outcome": outcome || undefined },
    h("span", { class: `badge ${outcome ? (OUTCOME_TONE[outcome] ?? "idle") : "busy"}` }, outcome ? humanize(outcome) : "In progress"),
    " ",
    time(last.createTime),
    r.deliveredAfterLastRetract
      ? h("div", { class: "note", "data-delivered-again": "true" }, "Delivered again after this retract: that copy is still there.")
      : null,
  );
}

// ---- state ---------------------------------------------------------------------------------

const session = window.sessionStorage;
const jobs = storageProgressStore(session, "retract.job");
const PENDING = "retract.pending-start";

interface Settings {
  server: string;
  token: string;
  tenant: string;
}

let delivery: DeliveryView | undefined;
let progress: JobProgress | undefined;
let following: AbortController | undefined;

function settings(): Settings {
  return {
    server: $<HTMLInputElement>("server").value.trim(),
    token: $<HTMLTextAreaElement>("token").value.trim(),
    tenant: $<HTMLInputElement>("tenant").value.trim(),
  };
}

function clients(): RetractClients {
  const s = settings();
  return retractClients({ baseUrl: s.server, token: () => settings().token });
}

function remember(): void {
  const s = settings();
  session.setItem("retract.settings", JSON.stringify(s));
}

function restoreSettings(): void {
  const query = new URLSearchParams(location.search);
  let saved: Partial<Settings> = {};
  try {
    saved = JSON.parse(session.getItem("retract.settings") ?? "{}") as Partial<Settings>;
  } catch {
    saved = {};
  }
  $<HTMLInputElement>("server").value =
    query.get("server") ?? saved.server ?? `${location.protocol}//${location.hostname}:50051`;
  $<HTMLTextAreaElement>("token").value = saved.token ?? "";
  $<HTMLInputElement>("tenant").value = query.get("tenant") ?? saved.tenant ?? "acme";
  $<HTMLInputElement>("message-id").value = query.get("message") ?? session.getItem("retract.message") ?? "";
}

// ---- errors --------------------------------------------------------------------------------

/** Shows the error right after `near` (the control or section it concerns), announced as an alert. */
function showError(thrown: unknown, title: string, near: string): void {
  // A string is a check of the page itself, not a failed call.
  const e: ErrorDetails =
    typeof thrown === "string"
      ? { codeName: "", message: thrown, reason: "", domain: "", fieldViolations: [], preconditionViolations: [], retryAfterMs: undefined }
      : describeError(thrown);
  showDetails(title, near, e);
}

type ErrorDetails = Pick<
  RetractError,
  "codeName" | "message" | "reason" | "domain" | "fieldViolations" | "preconditionViolations" | "retryAfterMs"
>;

function showDetails(title: string, near: string, e: ErrorDetails): void {
  $("error-title").textContent = title;
  $("error-code").textContent = e.codeName;
  $("error-colon").hidden = !e.codeName;
  $("error-message").textContent = e.message;
  $("error-reason").textContent = e.reason;
  $("error-reason-line").hidden = !e.reason;
  $("error-violations").replaceChildren(
    ...e.fieldViolations.map((v) => h("li", {}, h("code", {}, v.field), ": ", v.description)),
    ...e.preconditionViolations.map((v) => h("li", {}, v)),
  );
  // A browser tells a script nothing about refused CORS or unreachable servers but "failed to fetch".
  const unreachable = e.codeName === "UNKNOWN" && /fetch|network/i.test(e.message);
  const retry = $("error-retry");
  retry.hidden = e.retryAfterMs === undefined && !unreachable;
  retry.textContent =
    e.retryAfterMs !== undefined
      ? `Try again in ${Math.ceil(e.retryAfterMs / 1000)} s.`
      : unreachable
        ? `The server did not answer this page: check its address, and that its cors_allowed_origins lists ${location.origin}.`
        : "";
  const box = $("error");
  box.dataset["code"] = e.codeName;
  box.dataset["reason"] = e.reason;
  box.dataset["errorDomain"] = e.domain;
  $(near).after(box);
  box.hidden = false;
  box.scrollIntoView({ block: "nearest" });
}

function clearError(): void {
  $("error").hidden = true;
}

// ---- the delivery and its Retract tab ------------------------------------------------------

async function lookUp(): Promise<boolean> {
  clearError();
  remember();
  const messageId = $<HTMLInputElement>("message-id").value.trim();
  session.setItem("retract.message", messageId);
  const button = $<HTMLButtonElement>("lookup");
  button.disabled = true;
  try {
    const response = await clients().retract.getRetractOptions({
      tenantId: settings().tenant,
      internetMessageId: messageId,
    });
    delivery = deliveryView(response);
    renderDelivery();
    return true;
  } catch (e) {
    showError(e, "The delivery could not be looked up", "lookup-form");
    return false;
  } finally {
    button.disabled = false;
  }
}

function renderDelivery(): void {
  if (!delivery) return;
  $("delivery").hidden = false;
  $("delivery-subject").textContent = delivery.subject || "(no subject)";
  $("delivery-sender").textContent = delivery.sender;
  $("delivery-time").replaceChildren(time(delivery.deliveryTime));
  const eligible = delivery.recipients.filter((r) => r.eligible).length;
  $("delivery-count").textContent = `${delivery.recipientCount} (${eligible} can be retracted)`;
  $("tabs").hidden = false;
  renderRecipients();
}

function renderRecipients(): void {
  if (!delivery) return;
  // The form is locked while a job is shown (running or finished); "Retract again" unlocks it.
  const running = progress !== undefined;
  const rows = delivery.recipients.map((r) => {
    const m = progress?.mailboxes[`0:${r.address}`];
    const box = h("input", {
      type: "checkbox",
      class: "include",
      value: r.address,
      id: `include-${r.address}`,
      "aria-label": `Include ${r.address}`,
      "data-eligible": r.eligible ? "true" : undefined,
      disabled: !r.eligible || running,
      checked: r.eligible && (progress ? m !== undefined : true),
    });
    return h(
      "tr",
      { "data-mailbox": r.address, "data-phase": m?.phase, "data-outcome": m?.outcome || undefined },
      h("td", {}, box),
      h("th", { scope: "row" }, h("label", { for: `include-${r.address}` }, r.address)),
      h(
        "td",
        {},
        h("span", { class: `badge ${r.eligible ? "ok" : "warn"}` }, humanize(r.eligibility)),
        r.detail ? h("div", { class: "hint" }, r.detail) : null,
      ),
      h("td", {}, progress ? progressBadge(m) : "—", m?.detail && m.phase === "DONE" ? h("div", { class: "hint" }, m.detail) : null),
      h("td", { class: "num" }, m && (m.phase !== "PENDING" || m.copiesFoundCount) ? `${m.copiesFoundCount} / ${m.copiesDeletedCount}` : "—"),
      h("td", {}, m && m.phase === "DONE" ? (m.wasRead ? "Yes" : "No") : "—"),
      h("td", {}, lastRetractCell(r)),
    );
  });
  $("recipients").querySelector("tbody")!.replaceChildren(...rows);
  const all = $<HTMLInputElement>("include-all");
  all.disabled = running;
  syncIncludeAll();
  // Said before the click: whether this caller may retract here at all, and why not.
  const can = delivery.callerCanRetract;
  $<HTMLButtonElement>("retract").disabled = running || !can.allowed;
  const refusal = $("retract-precondition");
  refusal.hidden = can.allowed;
  refusal.dataset["code"] = can.code;
  refusal.textContent = can.allowed ? "" : `You cannot retract here: ${can.detail || humanize(can.code)}${can.code ? ` (${can.code})` : ""}.`;
  const more = $("more-recipients");
  more.hidden = !delivery.moreRecipients;
  more.textContent = delivery.moreRecipients
    ? `The first ${delivery.recipients.length} of ${delivery.recipientCount} recipients are shown; with every box ticked the retract takes every eligible recipient.`
    : "";
  // Conversations stay visible but off while the server cannot follow them.
  const conversations = $<HTMLInputElement>("conversations");
  if (!delivery.conversationsAvailable) conversations.checked = false;
  conversations.disabled = running || !delivery.conversationsAvailable;
  $("conversations-unavailable").hidden = delivery.conversationsAvailable;
  for (const option of $<HTMLSelectElement>("depth").options) {
    const tooDeep = Number(option.value) > Math.max(delivery.maxConversationDepth, 1);
    option.hidden = tooDeep;
    option.disabled = tooDeep;
  }
  // The form of the job shown is the job's own (after a reload too), locked.
  if (progress) {
    const asked = progress.asked;
    conversations.checked = asked.conversationDepth > 0;
    if (asked.conversationDepth > 0) $<HTMLSelectElement>("depth").value = String(asked.conversationDepth);
    $<HTMLInputElement>("dry-run").checked = asked.dryRun;
    $<HTMLInputElement>("reason").value = progress.reason;
    for (const radio of document.querySelectorAll<HTMLInputElement>("#delete-mode input")) {
      radio.checked = Number(radio.value) === asked.deleteMode;
    }
  }
  for (const id of ["dry-run", "reason"]) $<HTMLInputElement>(id).disabled = running;
  $<HTMLSelectElement>("depth").disabled = running || !conversations.checked;
  for (const radio of document.querySelectorAll<HTMLInputElement>("#delete-mode input")) radio.disabled = running;
}

function includeBoxes(): HTMLInputElement[] {
  return [...document.querySelectorAll<HTMLInputElement>("#recipients tbody input.include")];
}

function syncIncludeAll(): void {
  const enabled = includeBoxes().filter((b) => b.dataset["eligible"]);
  const ticked = enabled.filter((b) => b.checked);
  const all = $<HTMLInputElement>("include-all");
  all.checked = enabled.length > 0 && ticked.length === enabled.length;
  all.indeterminate = ticked.length > 0 && ticked.length < enabled.length;
}

function setUpOptions(): void {
  const group = $("delete-mode");
  for (const mode of deleteModes()) {
    const id = `mode-${mode.name.toLowerCase()}`;
    const hint: Record<string, string> = {
      SOFT: "recoverable: moved to Recoverable Items",
      HARD: "purged",
      MOVE_TO_DELETED_ITEMS: "the user still sees it there",
    };
    group.append(
      h("input", { type: "radio", name: "delete-mode", id, value: String(mode.value), checked: mode.value === DeleteMode.SOFT }),
      h("label", { for: id }, humanize(mode.name), hint[mode.name] ? h("span", { class: "hint" }, ` (${hint[mode.name]})`) : null),
    );
  }
  const conversations = $<HTMLInputElement>("conversations");
  conversations.addEventListener("change", () => {
    $<HTMLSelectElement>("depth").disabled = !conversations.checked;
  });
  $("reason-hint").textContent = `Why you retract it, recorded with the job in the audit trail (at most ${MAX_REASON_CHARS} characters).`;
  $<HTMLInputElement>("reason").maxLength = MAX_REASON_CHARS;
  $<HTMLInputElement>("include-all").addEventListener("change", (e) => {
    const on = (e.target as HTMLInputElement).checked;
    for (const b of includeBoxes()) if (b.dataset["eligible"] && !b.disabled) b.checked = on;
  });
  $("recipients").addEventListener("change", (e) => {
    if ((e.target as HTMLElement).classList.contains("include")) syncIncludeAll();
  });
}

function form() {
  const boxes = includeBoxes();
  const eligible = boxes.filter((b) => b.dataset["eligible"]);
  const ticked = eligible.filter((b) => b.checked).map((b) => b.value);
  const mode = document.querySelector<HTMLInputElement>("#delete-mode input:checked");
  return {
    internetMessageId: delivery?.internetMessageId ?? "",
    recipients: ticked,
    allEligible: ticked.length === eligible.length,
    includeConversations: $<HTMLInputElement>("conversations").checked,
    conversationDepth: Number($<HTMLSelectElement>("depth").value),
    deleteMode: Number(mode?.value ?? DeleteMode.SOFT),
    dryRun: $<HTMLInputElement>("dry-run").checked,
    reason: $<HTMLInputElement>("reason").value,
  };
}

// ---- retracting and following --------------------------------------------------------------

interface PendingStart {
  tenantId: string;
  requestId: string;
  options: JsonValue;
}

async function retract(): Promise<void> {
  clearError();
  const values = form();
  if (values.recipients.length === 0) {
    showError("Tick at least one recipient to retract from.", "Nothing to retract", "retract");
    return;
  }
  const options = retractOptions(values);
  // Saved before the call: a reload while it is in flight repeats it with the same request id,
  // which the server answers with the same job.
  const pending: PendingStart = {
    tenantId: settings().tenant,
    requestId: crypto.randomUUID(),
    options: toJson(RetractOptionsSchema, options),
  };
  session.setItem(PENDING, JSON.stringify(pending));
  await start(pending);
}

async function start(pending: PendingStart): Promise<void> {
  $<HTMLButtonElement>("retract").disabled = true;
  try {
    const { job } = await clients().retract.startRetract({
      tenantId: pending.tenantId,
      requestId: pending.requestId,
      options: fromJson(RetractOptionsSchema, pending.options),
    });
    if (!job) throw new Error("StartRetract returned no job");
    progress = startProgress(job);
    jobs.save(progress);
    session.removeItem(PENDING);
    void follow();
  } catch (e) {
    session.removeItem(PENDING);
    showError(e, "The retract was not started", "retract");
    $<HTMLButtonElement>("retract").disabled = false;
  }
}

async function follow(): Promise<void> {
  if (!progress) return;
  following?.abort();
  const controller = new AbortController();
  following = controller;
  render();
  try {
    await followJob(clients().retract, {
      tenantId: progress.tenantId,
      jobId: progress.jobId,
      afterSequence: progress.lastSequence,
      signal: controller.signal,
      onEvent: (event) => {
        if (!progress) return;
        progress = applyEvent(progress, event);
        jobs.save(progress);
        render();
      },
      onStatus: renderConnection,
    });
    render();
    $("summary").focus();
    void loadJobAudit();
  } catch (e) {
    if (controller.signal.aborted) return;
    showError(e, "Following the job stopped", "connection");
  }
}

function renderConnection(s: FollowStatus): void {
  const el = $("connection");
  el.dataset["status"] = s.kind;
  switch (s.kind) {
    case "connecting":
      el.textContent = s.afterSequence !== "0"
        ? `Re-attaching after event ${s.afterSequence}…`
        : "Connecting…";
      break;
    case "live":
      el.textContent = "Live: updates appear as each mailbox progresses.";
      break;
    case "reconnecting":
      el.textContent = `Connection lost${s.error ? ` (${s.error.codeName})` : ""}; re-attaching after event ${s.afterSequence} in ${Math.ceil(s.delayMs / 100) / 10} s (attempt ${s.attempt}).`;
      break;
    case "finished":
      el.textContent = "The job has finished.";
      break;
  }
}

function render(): void {
  renderRecipients();
  if (!progress) return;
  const p = progress;
  const section = $("progress");
  section.hidden = false;
  const mailboxes = Object.values(p.mailboxes);
  const done = mailboxes.filter((m) => m.phase === "DONE").length;
  const targets = Math.max(mailboxes.length, p.counts.targetCount);
  Object.assign(section.dataset, {
    jobId: p.jobId,
    lastSequence: p.lastSequence,
    fromSequence: p.fromSequence,
    eventsApplied: String(p.eventsApplied),
    missing: String(p.missing.length),
    state: p.state,
    done: String(done),
    targets: String(targets),
  });
  const bar = $<HTMLProgressElement>("progress-bar");
  bar.max = Math.max(targets, 1);
  bar.value = done;
  const text = `${done} of ${targets} mailboxes done — ${humanize(p.state)}.`;
  $("progress-job").textContent = [
    p.message ? `“${p.message.subject || "(no subject)"}” from ${p.message.sender}` : p.internetMessageId,
    p.asked.conversationDepth > 0 && `replies and forwards followed ${p.asked.conversationDepth} ${p.asked.conversationDepth === 1 ? "hop" : "hops"} deep`,
    p.requestedBy && `requested by ${p.requestedBy}`,
    p.reason && `reason: “${p.reason}”`,
  ]
    .filter(Boolean)
    .join(", ");
  $("progress-text").textContent = text;
  announce(text, isFinished(p));

  $("depths").querySelector("tbody")!.replaceChildren(
    ...byDepth(p).map((d) =>
      h(
        "tr",
        { "data-depth": String(d.depth) },
        h("th", { scope: "row" }, d.depth === 0 ? "0 (the delivery)" : `${d.depth} (replies and forwards, hop ${d.depth})`),
        h("td", { class: "num" }, d.mailboxes),
        h("td", { class: "num" }, d.done),
        h("td", { class: "num" }, d.deleted),
        h("td", { class: "num" }, d.failed),
        h("td", { class: "num" }, `${d.copiesFoundCount} / ${d.copiesDeletedCount}`),
        h("td", { class: "num" }, d.conversationSteps ? `${d.conversationSteps} (${d.messagesFoundCount} found, ${d.messagesRetractedCount} retracted)` : "—"),
      ),
    ),
  );
  // Who led to whom: each mailbox reached through a conversation, with the visited mailbox
  // whose sent reply or forward reached it, by depth, then by address (the same order before
  // and after a reload).
  const reached = mailboxes
    .filter((m) => m.depth > 0)
    .sort((a, b) => a.depth - b.depth || a.mailbox.localeCompare(b.mailbox));
  $("reached").hidden = reached.length === 0;
  $("reached").querySelector("tbody")!.replaceChildren(
    ...reached.map((m) =>
      h(
        "tr",
        { "data-mailbox": m.mailbox, "data-depth": String(m.depth), "data-discovered-from": m.discoveredFrom || undefined, "data-phase": m.phase, "data-outcome": m.outcome || undefined },
        h("th", { scope: "row" }, m.mailbox),
        h("td", { class: "num" }, m.depth),
        h("td", {}, m.discoveredFrom || "—"),
        h("td", {}, progressBadge(m)),
        h("td", { class: "num" }, `${m.copiesFoundCount} / ${m.copiesDeletedCount}`),
      ),
    ),
  );
  const unfollowed = notFollowed(p);
  $("unfollowed").hidden = unfollowed.length === 0;
  $("unfollowed").querySelector("tbody")!.replaceChildren(
    ...unfollowed.map((u) =>
      h(
        "tr",
        { "data-address": u.address, "data-code": u.code, "data-hop": String(u.hop), "data-named-by": u.namedBy },
        h("th", { scope: "row" }, u.address),
        h("td", { class: "num" }, u.hop),
        h("td", {}, humanize(u.code), " ", h("code", {}, u.code)),
        h("td", {}, u.namedBy),
      ),
    ),
  );
  $("conversations-incomplete").hidden = p.conversationsComplete;
  renderSummary(p);
}

// Screen readers hear the progress at most every few seconds (and at the end), not per event.
let announced = 0;
function announce(text: string, now: boolean): void {
  const el = $("progress-announce");
  if (el.textContent === text || (!now && Date.now() - announced < 5000)) return;
  announced = Date.now();
  el.textContent = text;
}

function renderSummary(p: JobProgress): void {
  const summary = $("summary");
  summary.hidden = !p.finished;
  if (!p.finished) return;
  summary.dataset["state"] = p.finished.state;
  $("summary-state").textContent = humanize(p.finished.state) + ".";
  $("summary-detail").textContent = p.finished.detail;
  const failure = p.finished.failure;
  $("summary-failure").hidden = !failure;
  $("summary-failure").textContent = failure ? `Failed: ${failure.detail} (${failure.code})` : "";
  const cancel = p.cancellation;
  $("summary-cancellation").hidden = !cancel;
  $("summary-cancellation").textContent = cancel
    ? `Cancelled by ${cancel.requestedBy}${cancel.reason ? `: “${cancel.reason}”` : ""}.`
    : "";
  // Zero counters of other kinds of job (restored, would delete on a real run, …) are left out.
  $("summary-counts").replaceChildren(
    ...Object.entries(p.finished.counts)
      .filter(([k, v]) => v !== 0 || k === "targetCount" || k === "failedCount")
      .flatMap(([k, v]) => [h("dt", {}, countLabel(k)), h("dd", { "data-count": k }, v)]),
  );
  $("summary-depths").querySelector("tbody")!.replaceChildren(
    ...tableRows(depthTable(p.finished.depths), (row) => ({ "data-depth": String(row[0]) })),
  );
  $("summary-job").textContent = p.jobId;
  const resumed = p.fromSequence !== "0" ? ` after the reload (the table was listed as of event ${p.fromSequence})` : "";
  $("summary-events").textContent = `${p.eventsApplied} events received${resumed}${p.missing.length ? `, ${p.missing.length} missing` : ", none missing"}.`;
}

/** The body rows of a DetailTable, the first column as row headers. */
function tableRows(
  t: DetailTable,
  attrs: (row: readonly (string | number)[]) => Record<string, string> = () => ({}),
): HTMLTableRowElement[] {
  return t.rows.map((row) =>
    h("tr", attrs(row), ...row.map((cell, i) => (i === 0 ? h("th", { scope: "row" }, cell) : h("td", { class: typeof cell === "number" ? "num" : undefined }, cell)))),
  );
}

function detailTable(t: DetailTable): HTMLTableElement {
  return h(
    "table",
    { "data-table": t.key },
    h("caption", {}, t.caption),
    h("thead", {}, h("tr", {}, ...t.columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, ...tableRows(t, (row) => (t.key === "depths" ? { "data-depth": String(row[0]) } : {}))),
  );
}

/** An entry's typed details: a one-line summary that opens on the facts and tables. */
function detailsView(d: AuditDetailsView, r: AuditRow): HTMLElement {
  if (!d.kind) return h("span", { class: "hint" }, d.summary);
  return h(
    "details",
    { class: "audit-details", "data-details": d.kind },
    h("summary", {}, d.summary),
    h(
      "dl",
      { class: "facts" },
      ...d.facts.flatMap((f) => [h("dt", {}, f.label), h("dd", { "data-field": f.key }, f.value)]),
      h("dt", {}, "Target"),
      h("dd", { "data-field": "target" }, r.target || "—"),
      h("dt", {}, "Correlation id"),
      h("dd", { "data-field": "correlationId" }, h("code", {}, r.correlationId || "—")),
    ),
    ...d.tables.map(detailTable),
  );
}

function auditRows(rows: AuditRow[]): HTMLTableRowElement[] {
  return rows.map((r) =>
    h(
      "tr",
      { "data-action": r.action, "data-event-id": r.eventId },
      h("td", {}, time(r.time)),
      h("td", {}, r.actionLabel, h("code", { class: "action-code" }, r.action)),
      h("td", {}, r.actor),
      h("td", {}, humanize(r.outcome)),
      h("td", {}, detailsView(r.details, r)),
    ),
  );
}

async function loadJobAudit(): Promise<void> {
  if (!progress) return;
  try {
    const { events } = await clients().audit.listAuditEvents({
      tenantId: progress.tenantId,
      section: AuditSection.RETRACT,
      target: progress.jobId,
    });
    const section = $("job-audit");
    section.hidden = false;
    section.querySelector("tbody")!.replaceChildren(...auditRows(events.map(auditRow)));
    section.dataset["entries"] = String(events.length);
  } catch (e) {
    showError(e, "The audit entries could not be loaded", "job-audit-heading");
  }
}

async function loadTenantAudit(): Promise<void> {
  try {
    const { events } = await clients().audit.listAuditEvents({
      tenantId: settings().tenant,
      section: AuditSection.RETRACT,
      pageSize: 20,
    });
    $("tenant-audit").querySelector("tbody")!.replaceChildren(...auditRows(events.map(auditRow)));
  } catch (e) {
    showError(e, "The audit trail could not be loaded", "audit-refresh");
  }
}

/**
 * After a reload: the job's table as ListRetractTargets has it now, then its events from the
 * listing's sequence on (not a replay of the whole job).
 */
async function resume(followed: FollowedJob): Promise<void> {
  try {
    progress = await resumeJob(clients().retract, { tenantId: followed.tenantId, jobId: followed.jobId });
  } catch (e) {
    jobs.clear();
    showError(e, "The job this page was following could not be loaded", "retract");
    return;
  }
  jobs.save(progress);
  void follow();
}

// ---- tabs ----------------------------------------------------------------------------------

function setUpTabs(): void {
  const tabs = [...document.querySelectorAll<HTMLButtonElement>("[role=tab]")];
  const select = (tab: HTMLButtonElement) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute("aria-controls")!).hidden = !on;
    }
    tab.focus();
    if (tab.id === "tab-audit") void loadTenantAudit();
  };
  for (const [i, tab] of tabs.entries()) {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (e) => {
      const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
      if (step) select(tabs[(i + step + tabs.length) % tabs.length]!);
      if (e.key === "Home") select(tabs[0]!);
      if (e.key === "End") select(tabs[tabs.length - 1]!);
    });
  }
  $("audit-refresh").addEventListener("click", () => void loadTenantAudit());
}

// ---- start ---------------------------------------------------------------------------------

async function main(): Promise<void> {
  restoreSettings();
  setUpOptions();
  setUpTabs();
  $("connect-form").addEventListener("change", remember);
  $("lookup-form").addEventListener("submit", (e) => {
    e.preventDefault();
    following?.abort();
    progress = undefined;
    jobs.clear();
    $("progress").hidden = true;
    $("summary").hidden = true;
    $("job-audit").hidden = true;
    void lookUp();
  });
  $("retract-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void retract();
  });
  $("another").addEventListener("click", () => {
    following?.abort();
    progress = undefined;
    jobs.clear();
    for (const id of ["progress", "summary", "job-audit"]) $(id).hidden = true;
    renderRecipients();
    // Again from the server: the Last retract column now names the job just shown.
    void lookUp();
  });

  // After a reload: the job this tab was following, or a start that was in flight.
  const followed = jobs.load();
  const pendingRaw = session.getItem(PENDING);
  if (followed || pendingRaw) {
    if ($<HTMLInputElement>("message-id").value && settings().token) await lookUp();
    if (followed) {
      await resume(followed);
    } else if (pendingRaw) {
      await start(JSON.parse(pendingRaw) as PendingStart);
    }
  }
  document.body.dataset["ready"] = "true";
}

void main();
