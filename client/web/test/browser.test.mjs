// The browser end-to-end test: Debian's Chromium (driven by playwright-core) loads the bundled
// reference page and retracts through retract-demo (the server + graph-sim), over gRPC-Web on
// HTTP/1.1 in plaintext and on HTTP/2 with TLS, and is refused from an origin the server does
// not list. `npm test` (after `npm run bundle` and `cargo build -p retract-demo`).
//
// Under CI=true a missing Chromium fails the run; elsewhere the browser tests are skipped.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";

import { chromium } from "playwright-core";

import {
  MESSAGE,
  OUTPUT,
  REPO,
  WEB,
  findChromium,
  holdGraph,
  importClient,
  mailbox,
  makeTestCa,
  serveStatic,
  startDemo,
} from "./harness.mjs";

const CI = process.env.CI === "true" || process.env.CI === "1";
const executablePath = findChromium();
if (!executablePath && CI) {
  throw new Error("chromium is not installed (apt-get install -y chromium): under CI the browser test must run");
}
const RECIPIENTS = [
  "alice@contoso.com",
  "bob@contoso.com",
  "carol@contoso.com",
  ...Array.from({ length: 9 }, (_, i) => `user${String(i + 1).padStart(2, "0")}@contoso.com`),
];

const REASON = "Phishing: fake wire-transfer request (ticket SEC-4711)";

// retract-demo's conversation, two hops deep: the phish to alice, bob and carol (depth 0); bob
// replied (to dave and the outside sender) and alice forwarded it to erin (hop 1); erin
// forwarded that to frank and to a partner outside contoso.com (hop 2).
const DELIVERED = ["alice@contoso.com", "bob@contoso.com", "carol@contoso.com"];
const REACHED = [
  { mailbox: "dave@contoso.com", depth: 1, from: "bob@contoso.com" },
  { mailbox: "erin@contoso.com", depth: 1, from: "alice@contoso.com" },
  { mailbox: "frank@contoso.com", depth: 2, from: "erin@contoso.com" },
];
const CONVERSATION = [MESSAGE, "<re-urgent@contoso.com>", "<fw-urgent@contoso.com>", "<fw-fw-urgent@contoso.com>"];

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** A development caller token with only `permissions`, minted by retractctl (built with the demo). */
function token(email, permissions) {
  // Next to retract-demo (CI passes RETRACT_DEMO_BIN, under CARGO_TARGET_DIR); its quickstart runs retractctl.
  const bin =
    process.env.RETRACTCTL_BIN ??
    (process.env.RETRACT_DEMO_BIN ? join(dirname(process.env.RETRACT_DEMO_BIN), "retractctl") : join(REPO, "target/debug/retractctl"));
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`cargo build -p retract-client --bins\` first`);
  const args = ["token", "--subject", email, "--email", email, "--tenant", "acme"];
  for (const p of permissions) args.push("--permission", p);
  return execFileSync(bin, args, { encoding: "utf8" }).trim();
}
const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");

/** axe-core's WCAG 2 A/AA violations on the page as it is now, as "rule: target" lines. */
async function accessibilityViolations(page) {
  await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const result = await axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } });
    return result.violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  });
  return violations;
}

describe("retract in a browser", { skip: executablePath ? false : "chromium is not installed" }, () => {
  let allowed, refused, plain, secure, convo, tls, browser, client;

  before(async () => {
    const dist = join(WEB, "dist");
    assert.ok(existsSync(join(dist, "app.js")), "dist/app.js is missing: run `npm run bundle` first");
    mkdirSync(OUTPUT, { recursive: true });
    [allowed, refused] = await Promise.all([serveStatic(dist), serveStatic(dist)]);
    tls = makeTestCa(join(OUTPUT, "tls"));
    [plain, secure, convo] = await Promise.all([
      // Twelve mailboxes, three at a time, 100–400 ms per Graph request: a few seconds of
      // progress to watch, reload in the middle of, and hold.
      startDemo("plain", [
        "--cors-origin", allowed.origin,
        "--extra-recipients", "9",
        "--mailbox-concurrency", "3",
        "--graph-latency-ms", "100",
        "--graph-jitter-ms", "300",
      ]),
      startDemo("tls", [
        "--cors-origin", allowed.origin,
        "--tls-cert-file", tls.certFile,
        "--tls-key-file", tls.keyFile,
        "--tls-ca-file", tls.caFile,
      ]),
      // Its own delivery state for the conversation retract (the HTTP/1.1 test retracts the
      // phish from plain's depth-0 mailboxes, and a traversal starts from a mailbox's copy of
      // the original). One mailbox at a time, 100–250 ms per Graph request: the depths arrive
      // one after another.
      startDemo("conversations", [
        "--cors-origin", allowed.origin,
        "--mailbox-concurrency", "1",
        "--graph-latency-ms", "100",
        "--graph-jitter-ms", "150",
      ]),
    ]);
    browser = await chromium.launch({
      executablePath,
      headless: true,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        // Trust certificate chains that contain the test CA's key (and nothing else extra).
        `--ignore-certificate-errors-spki-list=${tls.caSpkiSha256}`,
      ],
    });
    client = await importClient();
  });

  after(async () => {
    await browser?.close();
    await Promise.all([plain?.stop(), secure?.stop(), convo?.stop(), allowed?.close(), refused?.close()]);
  });

  /** A fresh tab with the page, pointed at `server`, with page errors collected. */
  async function openPage(origin, server) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    const page = await context.newPage();
    const problems = [];
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    const consoleErrors = [];
    page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
    // The protocol of every response, as Chromium's network stack saw it (DevTools protocol).
    const responses = [];
    const cdp = await context.newCDPSession(page);
    await cdp.send("Network.enable");
    cdp.on("Network.responseReceived", (e) => responses.push({ url: e.response.url, protocol: e.response.protocol }));
    await page.goto(`${origin}/index.html?server=${encodeURIComponent(server)}`);
    await page.waitForSelector("body[data-ready=true]");
    return { page, context, problems, consoleErrors, responses };
  }

  async function lookUp(page, token) {
    await page.fill("#token", token);
    await page.fill("#message-id", MESSAGE);
    await page.click("#lookup");
  }

  /** How the browser reached `host`: the protocols of its gRPC-Web responses from there. */
  function protocolsTo(responses, host) {
    return [...new Set(responses.filter((r) => new URL(r.url).host === host).map((r) => r.protocol))];
  }

  async function progressOf(page) {
    return page.$eval("#progress", (el) => ({
      visible: !el.hidden,
      done: Number(el.dataset.done ?? 0),
      targets: Number(el.dataset.targets ?? 0),
      state: el.dataset.state ?? "",
      lastSequence: Number(el.dataset.lastSequence ?? 0),
      fromSequence: Number(el.dataset.fromSequence ?? 0),
      eventsApplied: Number(el.dataset.eventsApplied ?? 0),
      missing: Number(el.dataset.missing ?? 0),
      jobId: el.dataset.jobId ?? "",
    }));
  }

  test("the client follows a job across dropped connections, each event once (node, gRPC-Web)", async (t) => {
    let cuts = 0;
    // Cuts the first two WatchRetract streams after their first chunk, as a flaky network would.
    const cuttingFetch = async (input, init) => {
      const response = await fetch(input, init);
      if (!String(input).endsWith("/WatchRetract") || cuts >= 2 || !response.body) return response;
      cuts += 1;
      const reader = response.body.getReader();
      let chunks = 0;
      const body = new ReadableStream({
        async pull(controller) {
          if (chunks++ >= 1) {
            reader.cancel().catch(() => {});
            controller.error(new TypeError("network error (cut by the test)"));
            return;
          }
          const { done, value } = await reader.read();
          if (done) controller.close();
          else controller.enqueue(value);
        },
      });
      return new Response(body, { status: response.status, headers: response.headers });
    };
    const api = client.retractClients({ baseUrl: `http://${plain.addr}`, token: plain.token, fetch: cuttingFetch });
    const { job } = await api.retract.startRetract({
      tenantId: "acme",
      requestId: crypto.randomUUID(),
      options: { internetMessageId: MESSAGE, deleteMode: client.retractv1.DeleteMode.SOFT, dryRun: true },
    });
    const sequences = [];
    const statuses = [];
    let progress = client.startProgress(job);
    const result = await client.followJob(api.retract, {
      tenantId: "acme",
      jobId: job.jobId,
      baseDelayMs: 50,
      onEvent: (e) => {
        assert.equal(typeof e.sequence, "string", "int64 with jstype = JS_STRING");
        sequences.push(Number(e.sequence));
        progress = client.applyEvent(progress, e);
      },
      onStatus: (s) => statuses.push(s.kind),
    });
    t.diagnostic(`${sequences.length} events, statuses: ${statuses.join(" ")}`);
    assert.equal(cuts, 2, "two streams were cut");
    assert.ok(statuses.filter((s) => s === "reconnecting").length >= 2, `re-attached: ${statuses.join(" ")}`);
    assert.deepEqual(sequences, Array.from({ length: sequences.length }, (_, i) => i + 1), "1, 2, 3, … once each");
    assert.equal(result.lastSequence, String(sequences.at(-1)));
    assert.equal(progress.finished?.state, "SUCCEEDED");
    assert.equal(progress.missing.length, 0);
    assert.equal(Object.values(progress.mailboxes).filter((m) => m.outcome === "WOULD_DELETE").length, 12);
    const { job: after } = await api.retract.getRetractJob({ tenantId: "acme", jobId: job.jobId });
    assert.equal(after.lastSequence, result.lastSequence, "the server's last sequence");
  });

  test("the page retracts over gRPC-Web on HTTP/1.1: live progress, a reload mid-job, summary, audit", async (t) => {
    const { page, context, problems, responses } = await openPage(allowed.origin, `http://${plain.addr}`);
    try {
      await lookUp(page, plain.token);
      await page.locator("#recipients tbody tr").nth(RECIPIENTS.length - 1).waitFor();
      assert.equal(await page.locator("#recipients tbody tr").count(), RECIPIENTS.length);
      assert.equal(await page.locator("#recipients tbody input.include:checked").count(), RECIPIENTS.length);
      assert.equal(await page.textContent("#delivery-subject"), "Urgent: wire transfer today");

      // The server follows conversations (conversations_available): the box is offered, the
      // depth only once it is ticked. This caller may retract (caller_can_retract).
      assert.equal(await page.isDisabled("#conversations"), false);
      assert.equal(await page.isDisabled("#depth"), true);
      assert.equal(await page.isVisible("#conversations-unavailable"), false);
      assert.equal(await page.isVisible("#retract-precondition"), false);
      assert.equal(await page.isDisabled("#retract"), false);
      assert.equal(await page.isChecked("#mode-soft"), true);
      // The first test's dry run retracted nothing: no recipient has a last retract yet.
      assert.equal(await page.locator("#recipients .last-retract").count(), 0);

      assert.equal(await page.isDisabled("#reason"), false, "the reason is a field of the contract");
      await page.fill("#reason", REASON);
      await page.click("#retract");
      const distinct = new Set();
      const watch = async (until, what, ms = 30_000) => {
        const deadline = Date.now() + ms;
        for (;;) {
          const p = await progressOf(page);
          if (p.visible && !(await page.isVisible("#summary"))) distinct.add(p.done);
          if (await until(p)) return p;
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(p)}`);
          await sleep(25);
        }
      };
      const early = await watch((p) => p.done >= 3, "three mailboxes done");
      assert.ok(early.done < RECIPIENTS.length, "the job is still running");

      // Hold Microsoft Graph, reload the page in the middle of the job, then let it go on.
      await holdGraph(plain.graph, true);
      let released = false;
      try {
        const beforeReload = await progressOf(page);
        await page.reload();
        await page.waitForSelector("body[data-ready=true]");
        await page.waitForSelector("#progress:not([hidden])");
        const restored = await progressOf(page);
        t.diagnostic(`reloaded at ${beforeReload.done}/${beforeReload.targets} done, event ${beforeReload.lastSequence}; listed as of event ${restored.fromSequence}`);
        assert.equal(restored.jobId, beforeReload.jobId, "the same job after the reload");
        // The table after the reload is ListRetractTargets', as of a sequence at least the page's.
        assert.ok(restored.fromSequence >= beforeReload.lastSequence, "the listing is not older than the page was");
        assert.ok(restored.lastSequence >= restored.fromSequence, "followed from the listing's sequence");
        assert.ok(restored.done >= beforeReload.done, "the listing has every mailbox done before the reload");
        assert.equal(restored.targets, RECIPIENTS.length);
        assert.equal(await page.isVisible("#summary"), false, "not finished yet");
        await page.waitForSelector("#connection[data-status=live]");
        await holdGraph(plain.graph, false);
        released = true;
      } finally {
        if (!released) await holdGraph(plain.graph, false);
      }

      await watch(() => page.isVisible("#summary"), "the summary", 60_000);
      const end = await progressOf(page);
      // Progress arrived incrementally: the page showed several different "mailboxes done" counts
      // while the job ran, not just the end.
      const before = [...distinct].filter((done) => done < RECIPIENTS.length);
      t.diagnostic(`"mailboxes done" counts seen while running: ${before.join(", ")}; listed as of ${end.fromSequence}, then ${end.eventsApplied} events, last ${end.lastSequence}, ${end.missing} missing`);
      assert.ok(before.length >= 3, `several distinct updates before the end: ${[...distinct].join(", ")}`);
      assert.equal(await page.getAttribute("#summary", "data-state"), "SUCCEEDED");
      assert.equal(await page.textContent('#summary-counts [data-count="deletedCount"]'), String(RECIPIENTS.length));
      assert.equal(await page.textContent('#summary-counts [data-count="copiesDeletedCount"]'), String(RECIPIENTS.length));
      assert.equal(await page.textContent('#summary-depths tr[data-depth="0"] td:nth-of-type(1)'), String(RECIPIENTS.length), "JobFinished.depths");
      assert.equal(end.missing, 0, "no event missed");
      assert.ok(end.fromSequence > 0, "the table after the reload came from ListRetractTargets");
      assert.equal(end.fromSequence + end.eventsApplied, end.lastSequence, "every sequence after the listing applied once");
      assert.match(await page.textContent("#progress-job"), /Urgent: wire transfer today/, "the job's message snapshot");
      for (const address of RECIPIENTS) {
        assert.equal(await page.getAttribute(`#recipients tr[data-mailbox="${address}"]`, "data-outcome"), "DELETED", address);
      }
      // The lookup after the reload named this job as the last retract: the page says so
      // instead of the lookup's stale outcome.
      assert.equal(await page.locator(`#recipients .last-retract[data-this-job][data-job-id="${end.jobId}"]`).count(), RECIPIENTS.length);
      assert.equal(await page.textContent('#depths tr[data-depth="0"] td:nth-of-type(2)'), String(RECIPIENTS.length));

      // The server agrees: its last sequence is the page's, and a replay from 0 has as many events.
      const api = client.retractClients({ baseUrl: `http://${plain.addr}`, token: plain.token });
      const { job } = await api.retract.getRetractJob({ tenantId: "acme", jobId: end.jobId });
      assert.equal(Number(job.lastSequence), end.lastSequence);
      assert.equal(job.options.reason, REASON, "the reason travelled as RetractOptions.reason");
      let replayed = 0;
      for await (const r of api.retract.watchRetract({ tenantId: "acme", jobId: end.jobId })) {
        if (r.event?.kind.case !== "heartbeat") replayed += 1;
      }
      assert.equal(replayed, end.lastSequence);
      const listed = await api.retract.listRetractTargets({ tenantId: "acme", jobId: end.jobId, pageSize: 1000 });
      assert.equal(listed.targets.length, RECIPIENTS.length);
      assert.equal(listed.asOfSequence, job.lastSequence);

      // The job's audit entries: its dispatch (with the options asked, the reason among them)
      // and its end (with the per-depth summary), as typed details.
      await page.waitForSelector("#job-audit:not([hidden])");
      const actions = await page.$$eval("#job-audit table.audit > tbody > tr", (rows) => rows.map((r) => r.dataset.action));
      assert.deepEqual(new Set(actions), new Set(["RETRACT_DISPATCHED", "RETRACT_FINISHED"]));
      const dispatched = '#job-audit tr[data-action="RETRACT_DISPATCHED"] [data-details="retractDispatched"]';
      const field = (entry, key) => page.textContent(`${entry} [data-field="${key}"]`);
      assert.equal(await field(dispatched, "reason"), REASON);
      assert.equal(await field(dispatched, "deleteMode"), "Soft");
      assert.equal(await field(dispatched, "dryRun"), "No");
      assert.equal(await field(dispatched, "recipients"), "Every eligible recipient");
      assert.equal(await field(dispatched, "conversations"), "Not followed");
      assert.equal(await field(dispatched, "jobId"), end.jobId);
      assert.match(await page.textContent(`${dispatched} > summary`), /reason: “Phishing/);
      const finished = '#job-audit tr[data-action="RETRACT_FINISHED"] [data-details="retractFinished"]';
      assert.equal(await field(finished, "state"), "Succeeded");
      const depth0 = await page.$$eval(`${finished} table[data-table="depths"] tbody tr`, (rows) =>
        rows.map((r) => [...r.children].map((c) => c.textContent)),
      );
      assert.deepEqual(depth0, [["0", String(RECIPIENTS.length), String(RECIPIENTS.length), "0"]], "per-depth summary");
      assert.equal(await page.locator(`${finished} table[data-table="targets"] tbody tr`).count(), RECIPIENTS.length);

      // The simulated mailboxes: every copy soft-deleted (recoverable), the reply to dave untouched.
      for (const address of RECIPIENTS) {
        const folders = await mailbox(plain.graph, address);
        for (const [folder, messages] of Object.entries(folders)) {
          const copies = messages.filter((m) => m.internet_message_id === MESSAGE);
          if (folder === "recoverableitemsdeletions") assert.equal(copies.length, 1, `${address}: recoverable copy`);
          else assert.equal(copies.length, 0, `${address}: no copy left in ${folder}`);
        }
      }
      const dave = await mailbox(plain.graph, "dave@contoso.com");
      assert.ok(dave.inbox.some((m) => m.internet_message_id === "<re-urgent@contoso.com>"), "conversations were not followed");

      t.diagnostic(`protocol to ${plain.addr}: ${protocolsTo(responses, plain.addr)}`);
      assert.deepEqual(protocolsTo(responses, plain.addr), ["http/1.1"], "HTTP/1.1 in plaintext");
      assert.deepEqual(problems, []);
      assert.deepEqual(await accessibilityViolations(page), [], "axe-core: WCAG 2.1 A/AA");
      // Open the entries' details for the screenshot.
      for (const summary of await page.locator("#job-audit details > summary").all()) await summary.click();
      assert.deepEqual(await accessibilityViolations(page), [], "axe-core, with the audit details open");
      await page.locator("#summary").scrollIntoViewIfNeeded();
      await page.screenshot({ path: join(OUTPUT, "retract-page.png"), fullPage: true });

      // Retract again: the Retract tab, looked up again, names this job as each recipient's last retract.
      // "Retract again" first redraws the table from the lookup made after the reload (three
      // mailboxes done then), then from a new lookup: wait for the new one, every row Deleted.
      await page.click("#another");
      await page.waitForFunction(
        ([jobId, n]) => document.querySelectorAll(`#recipients .last-retract[data-job-id="${jobId}"][data-outcome="DELETED"]`).length === n,
        [end.jobId, RECIPIENTS.length],
      );
      const again = await page.locator("#recipients tr:has([data-delivered-again])").allTextContents();
      if (again.length) t.diagnostic(`delivered again: ${JSON.stringify(again)}`);
      assert.equal(await page.locator("#recipients [data-delivered-again]").count(), 0);
    } finally {
      await context.close();
    }
  });

  /** The "Mailboxes reached through conversations" rows, as the page shows them. */
  async function reachedOf(page) {
    return page.$$eval("#reached tbody tr", (rows) =>
      rows.map((r) => ({
        mailbox: r.dataset.mailbox,
        depth: Number(r.dataset.depth),
        from: r.dataset.discoveredFrom ?? "",
        fromText: r.children[2]?.textContent ?? "",
        phase: r.dataset.phase ?? "",
        outcome: r.dataset.outcome ?? "",
      })),
    );
  }

  test("the page retracts a conversation two hops deep: live depths, a reload mid-job, per-depth summary", async (t) => {
    const { page, context, problems, responses } = await openPage(allowed.origin, `http://${convo.addr}`);
    try {
      await lookUp(page, convo.token);
      await page.locator("#recipients tbody tr").nth(DELIVERED.length - 1).waitFor();
      assert.equal(await page.locator("#recipients tbody tr").count(), DELIVERED.length);
      assert.equal(await page.isDisabled("#conversations"), false, "conversations_available");
      await page.check("#conversations");
      assert.equal(await page.isDisabled("#depth"), false, "the depth once conversations are ticked");
      await page.selectOption("#depth", "2");
      await page.fill("#reason", REASON);
      await page.click("#retract");

      // Every state the page showed while the job ran (mailboxes done, of how many, which
      // reached rows), and when each reached mailbox first appeared.
      const states = new Set();
      const seenReached = new Map();
      const watch = async (until, what, ms = 60_000) => {
        const deadline = Date.now() + ms;
        for (;;) {
          const p = await progressOf(page);
          const finished = await page.isVisible("#summary");
          if (p.visible && !finished) {
            const rows = await reachedOf(page);
            states.add(`${p.done}/${p.targets} ${rows.map((r) => `${r.mailbox}:${r.phase}`).join(",")}`);
            for (const r of rows) if (!seenReached.has(r.mailbox)) seenReached.set(r.mailbox, { ...r, atSequence: p.lastSequence });
          }
          if (await until(p)) return p;
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(p)}`);
          await sleep(25);
        }
      };
      // Alice's conversation step names erin (hop 1): reload then, in the middle of depth 0.
      await watch(async () => (await reachedOf(page)).some((r) => r.mailbox === "erin@contoso.com"), "erin reached");

      await holdGraph(convo.graph, true);
      let released = false;
      try {
        const beforeReload = await progressOf(page);
        await page.reload();
        await page.waitForSelector("body[data-ready=true]");
        await page.waitForSelector("#progress:not([hidden])");
        const restored = await progressOf(page);
        t.diagnostic(`reloaded at ${beforeReload.done}/${beforeReload.targets} done, event ${beforeReload.lastSequence}; listed as of event ${restored.fromSequence}`);
        assert.equal(restored.jobId, beforeReload.jobId, "the same job after the reload");
        assert.ok(restored.fromSequence >= beforeReload.lastSequence, "the listing is not older than the page was");
        assert.ok(restored.done >= beforeReload.done);
        assert.equal(await page.isVisible("#summary"), false, "not finished yet");
        // ListRetractTargets has the mailboxes reached so far, with who led to them.
        const erin = (await reachedOf(page)).find((r) => r.mailbox === "erin@contoso.com");
        assert.deepEqual([erin?.depth, erin?.from], [1, "alice@contoso.com"], "erin, reached from alice, after the reload");
        assert.equal(await page.isVisible("#conversations-incomplete"), false, "the earlier steps were replayed");
        // The locked form is the job's own, not the page's defaults.
        assert.equal(await page.isChecked("#conversations"), true, "the job follows conversations");
        assert.equal(await page.inputValue("#depth"), "2");
        assert.equal(await page.inputValue("#reason"), REASON);
        assert.match(await page.textContent("#progress-job"), /followed 2 hops deep/);
        await page.waitForSelector("#connection[data-status=live]");
        await holdGraph(convo.graph, false);
        released = true;
      } finally {
        if (!released) await holdGraph(convo.graph, false);
      }

      await watch(() => page.isVisible("#summary"), "the summary", 90_000);
      const end = await progressOf(page);
      t.diagnostic(`states while running: ${[...states].join(" | ")}`);
      t.diagnostic(`listed as of ${end.fromSequence}, then ${end.eventsApplied} events, last ${end.lastSequence}, ${end.missing} missing`);
      assert.ok(states.size >= 4, `several distinct updates before the end: ${[...states].join(" | ")}`);
      // The ConversationUpdates drew the depth-1 and depth-2 rows while the job ran.
      for (const r of REACHED) {
        const seen = seenReached.get(r.mailbox);
        assert.ok(seen, `${r.mailbox} appeared before the end`);
        assert.deepEqual([seen.depth, seen.from], [r.depth, r.from], `${r.mailbox}: depth and who led to it`);
      }

      assert.equal(await page.getAttribute("#summary", "data-state"), "SUCCEEDED");
      assert.equal(end.missing, 0, "no event missed");
      assert.ok(end.fromSequence > 0, "the table after the reload came from ListRetractTargets");
      assert.equal(end.fromSequence + end.eventsApplied, end.lastSequence, "every sequence after the listing applied once");
      const mailboxCount = DELIVERED.length + REACHED.length;
      assert.equal(end.targets, mailboxCount);
      assert.equal(await page.textContent('#summary-counts [data-count="targetCount"]'), String(mailboxCount));
      assert.equal(await page.textContent('#summary-counts [data-count="deletedCount"]'), String(mailboxCount));

      // The per-depth summary, as JobFinished.depths has it: the server's own numbers.
      const api = client.retractClients({ baseUrl: `http://${convo.addr}`, token: convo.token });
      let finished;
      for await (const r of api.retract.watchRetract({ tenantId: "acme", jobId: end.jobId, afterSequence: String(end.lastSequence - 1) })) {
        if (r.event?.kind.case === "jobFinished") finished = r.event.kind.value;
      }
      const serverDepths = finished.depths.map((d) => [d.depth, d.mailboxCount, d.copiesRetractedCount, d.readBeforeRetractCount].map(String));
      const summaryDepths = await page.$$eval("#summary-depths tbody tr", (rows) => rows.map((r) => [...r.children].map((c) => c.textContent)));
      t.diagnostic(`per-depth summary (depth, mailboxes, copies retracted, read before): ${JSON.stringify(summaryDepths)}`);
      assert.deepEqual(summaryDepths, serverDepths, "the page's per-depth summary is JobFinished.depths");
      assert.deepEqual(summaryDepths.map((r) => [r[0], r[1]]), [["0", "3"], ["1", "2"], ["2", "1"]], "mailboxes per depth");
      const copiesRetracted = summaryDepths.reduce((n, r) => n + Number(r[2]), 0);
      assert.equal(await page.textContent('#summary-counts [data-count="copiesDeletedCount"]'), String(copiesRetracted));

      // Who led to whom, every mailbox deleted; the live per-depth table agrees.
      const reached = await reachedOf(page);
      assert.deepEqual(
        reached.map((r) => [r.mailbox, r.depth, r.from, r.fromText, r.outcome]),
        REACHED.map((r) => [r.mailbox, r.depth, r.from, r.from, "DELETED"]),
      );
      for (const address of DELIVERED) {
        assert.equal(await page.getAttribute(`#recipients tr[data-mailbox="${address}"]`, "data-outcome"), "DELETED", address);
      }
      for (const [depth, mailboxes] of [[0, 3], [1, 2], [2, 1]]) {
        const row = `#depths tr[data-depth="${depth}"]`;
        assert.equal(await page.textContent(`${row} td:nth-of-type(1)`), String(mailboxes), `live depth ${depth}`);
        // One conversation step per visited mailbox: the steps before the reload (which
        // ListRetractTargets does not list) were replayed, the later ones followed.
        assert.match(await page.textContent(`${row} td:nth-of-type(6)`), new RegExp(`^${mailboxes} \\(`), `conversation steps at depth ${depth}`);
      }

      // The recipients the conversation named but the job does not follow, with their code.
      const unfollowed = await page.$$eval("#unfollowed tbody tr", (rows) =>
        rows.map((r) => ({ address: r.dataset.address, hop: r.dataset.hop, code: r.dataset.code, namedBy: r.dataset.namedBy, text: r.textContent })),
      );
      t.diagnostic(`not followed: ${unfollowed.map((u) => `${u.address} (hop ${u.hop}, ${u.code}, from ${u.namedBy})`).join("; ")}`);
      const partner = unfollowed.find((u) => u.address === "partner@fabrikam.example");
      assert.deepEqual(
        partner && [partner.hop, partner.code, partner.namedBy],
        ["2", "DOMAIN_NOT_MANAGED", "erin@contoso.com"],
        "the partner outside is reported, not followed",
      );
      assert.match(partner.text, /Domain not managed/);
      assert.ok(!reached.some((r) => r.mailbox === "partner@fabrikam.example"), "and not visited");
      const ceo = unfollowed.find((u) => u.address === "ceo@evil.example");
      assert.deepEqual(ceo && [ceo.hop, ceo.code, ceo.namedBy], ["1", "DOMAIN_NOT_MANAGED", "bob@contoso.com"], "bob's reply to the sender");
      assert.equal(await page.isVisible("#conversations-incomplete"), false);

      // The simulated mailboxes: every copy of hop ≤ 2 soft-deleted (recoverable), none left elsewhere.
      let recoverable = 0;
      for (const address of [...DELIVERED, ...REACHED.map((r) => r.mailbox)]) {
        const folders = await mailbox(convo.graph, address);
        let inRecoverable = 0;
        for (const [folder, messages] of Object.entries(folders)) {
          const copies = messages.filter((m) => CONVERSATION.includes(m.internet_message_id));
          if (folder === "recoverableitemsdeletions") inRecoverable = copies.length;
          else assert.deepEqual(copies.map((m) => m.internet_message_id), [], `${address}: no copy left in ${folder}`);
        }
        assert.ok(inRecoverable >= 1, `${address}: its copies are recoverable`);
        recoverable += inRecoverable;
      }
      assert.equal(recoverable, copiesRetracted, "as many recoverable copies as the job retracted");

      // The audit entries: dispatched to depth 2, finished with the same per-depth summary.
      await page.waitForSelector("#job-audit:not([hidden])");
      const dispatched = '#job-audit tr[data-action="RETRACT_DISPATCHED"] [data-details="retractDispatched"]';
      assert.equal(await page.textContent(`${dispatched} [data-field="conversations"]`), "Followed to depth 2");
      const finishedEntry = '#job-audit tr[data-action="RETRACT_FINISHED"] [data-details="retractFinished"]';
      const auditDepths = await page.$$eval(`${finishedEntry} table[data-table="depths"] tbody tr`, (rows) =>
        rows.map((r) => [...r.children].map((c) => c.textContent)),
      );
      assert.deepEqual(auditDepths, summaryDepths, "the audit's per-depth summary");

      assert.deepEqual(protocolsTo(responses, convo.addr), ["http/1.1"]);
      assert.deepEqual(problems, []);
      assert.deepEqual(await accessibilityViolations(page), [], "axe-core: WCAG 2.1 A/AA");
      await page.locator("#summary").scrollIntoViewIfNeeded();
      await page.screenshot({ path: join(OUTPUT, "retract-conversations.png"), fullPage: true });
    } finally {
      await context.close();
    }
  });

  test("the page works over HTTP/2 with TLS, trusting the test CA", async (t) => {
    const { page, context, problems, responses } = await openPage(allowed.origin, `https://${secure.addr}`);
    try {
      await lookUp(page, secure.token);
      await page.locator("#recipients tbody tr").nth(2).waitFor();
      await page.check("#dry-run");
      await page.click("#retract");
      await page.waitForSelector("#summary:not([hidden])", { timeout: 30_000 });
      assert.equal(await page.getAttribute("#summary", "data-state"), "SUCCEEDED");
      for (const address of ["alice@contoso.com", "bob@contoso.com", "carol@contoso.com"]) {
        assert.equal(await page.getAttribute(`#recipients tr[data-mailbox="${address}"]`, "data-outcome"), "WOULD_DELETE");
        const inbox = (await mailbox(secure.graph, address)).inbox;
        assert.ok(inbox.some((m) => m.internet_message_id === MESSAGE), `${address}: a dry run deletes nothing`);
      }
      t.diagnostic(`protocol to ${secure.addr}: ${protocolsTo(responses, secure.addr)}`);
      assert.deepEqual(protocolsTo(responses, secure.addr), ["h2"], "HTTP/2 over TLS");
      assert.deepEqual(problems, []);
      await page.screenshot({ path: join(OUTPUT, "retract-page-tls.png"), fullPage: true });
    } finally {
      await context.close();
    }
  });

  test("the page says before the click when the caller may not retract (caller_can_retract)", async () => {
    const { page, context, problems } = await openPage(allowed.origin, `http://${plain.addr}`);
    try {
      await lookUp(page, token("reader@contoso.com", ["retract.read", "audit.read"]));
      await page.locator("#recipients tbody tr").nth(RECIPIENTS.length - 1).waitFor();
      assert.equal(await page.isDisabled("#retract"), true);
      assert.equal(await page.isVisible("#retract-precondition"), true);
      assert.equal(await page.getAttribute("#retract-precondition", "data-code"), "MISSING_PERMISSION");
      assert.match(await page.textContent("#retract-precondition"), /retract\.message/);
      assert.deepEqual(problems, []);
      await page.screenshot({ path: join(OUTPUT, "retract-page-not-allowed.png"), fullPage: true });
    } finally {
      await context.close();
    }
  });

  test("the page shows decoded error details: ErrorInfo reason and field violations", async () => {
    const { page, context } = await openPage(allowed.origin, `http://${plain.addr}`);
    try {
      await page.fill("#token", "not-a-token");
      await page.fill("#message-id", MESSAGE);
      await page.click("#lookup");
      await page.waitForSelector("#error:not([hidden])");
      assert.equal(await page.getAttribute("#error", "data-code"), "UNAUTHENTICATED");
      assert.match((await page.getAttribute("#error", "data-reason")) ?? "", /^[A-Z_]+$/, "an ErrorInfo reason");

      await page.fill("#token", plain.token);
      await page.fill("#message-id", "no-angle-brackets");
      await page.click("#lookup");
      await page.waitForSelector("#error[data-code=INVALID_ARGUMENT]");
      assert.equal(await page.getAttribute("#error", "data-reason"), "INVALID_ARGUMENT");
      assert.equal(await page.getAttribute("#error", "data-error-domain"), "retract.email-security.internal");
      const violations = await page.$$eval("#error-violations li", (li) => li.map((l) => l.textContent));
      assert.ok(violations.some((v) => v.startsWith("internet_message_id")), `field violations: ${violations}`);
    } finally {
      await context.close();
    }
  });

  test("an origin the server does not list is refused by the browser (CORS)", async (t) => {
    const { page, context, consoleErrors } = await openPage(refused.origin, `http://${plain.addr}`);
    try {
      await lookUp(page, plain.token);
      await page.waitForSelector("#error:not([hidden])");
      assert.equal(await page.isVisible("#tabs"), false, "no delivery shown");
      assert.match(await page.textContent("#error-retry"), /cors_allowed_origins lists http:\/\/127\.0\.0\.1:\d+/);
      t.diagnostic(`${refused.origin}: ${consoleErrors.find((e) => e.includes("CORS")) ?? "(no CORS message)"}`);
      assert.ok(
        consoleErrors.some((e) => e.includes("blocked by CORS policy")),
        `Chromium blocked it: ${consoleErrors.join(" | ")}`,
      );
    } finally {
      await context.close();
    }
  });
});
