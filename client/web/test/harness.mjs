// What the browser test runs against: the bundled page on a small static server (two origins,
// one of them not allowed by the server's CORS), the retract-demo binary (graph-sim + the
// server in one process, on plaintext or TLS), a test CA for TLS made with openssl, Debian's
// Chromium, and the client itself bundled for node (gRPC-Web over node's fetch).

import { execFileSync, spawn } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { dirname, extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

export const WEB = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const REPO = resolve(WEB, "../..");
export const OUTPUT = join(WEB, "test-output");
export const MESSAGE = "<urgent-wire-transfer@evil.example>";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json",
};

/** Serves `dir` on 127.0.0.1 (a port of its own = an origin of its own). */
export async function serveStatic(dir) {
  const server = createServer(async (req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const file = normalize(join(dir, path === "/" ? "index.html" : path));
    if (!file.startsWith(dir)) {
      res.writeHead(403).end();
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
      res.end(body);
    } catch {
      res.writeHead(404).end("not found");
    }
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address();
  return { origin: `http://127.0.0.1:${port}`, close: () => new Promise((ok) => server.close(ok)) };
}

/**
 * A test CA and a server certificate for 127.0.0.1 / localhost signed by it (openssl).
 * Returns the files and the base64 SHA-256 of the CA's SubjectPublicKeyInfo, which Chromium
 * takes in `--ignore-certificate-errors-spki-list` to trust chains containing that CA.
 */
export function makeTestCa(dir) {
  mkdirSync(dir, { recursive: true });
  const f = (name) => join(dir, name);
  const openssl = (...args) => execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl("req", "-x509", ...ec, "-keyout", f("ca.key"), "-out", f("ca.pem"), "-days", "2",
    "-subj", "/CN=retract browser-test CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
  openssl("req", ...ec, "-keyout", f("server.key"), "-out", f("server.csr"), "-subj", "/CN=127.0.0.1");
  writeFileSync(f("server.ext"), [
    "subjectAltName=IP:127.0.0.1,DNS:localhost",
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature",
    "extendedKeyUsage=serverAuth",
  ].join("\n"));
  openssl("x509", "-req", "-in", f("server.csr"), "-CA", f("ca.pem"), "-CAkey", f("ca.key"),
    "-CAcreateserial", "-out", f("server.pem"), "-days", "2", "-extfile", f("server.ext"));
  // The server sends its certificate and the CA, so the CA's key is in the chain Chromium sees.
  writeFileSync(f("chain.pem"), readFileSync(f("server.pem"), "utf8") + readFileSync(f("ca.pem"), "utf8"));
  const spki = new X509Certificate(readFileSync(f("ca.pem"))).publicKey.export({ type: "spki", format: "der" });
  return {
    caFile: f("ca.pem"),
    certFile: f("chain.pem"),
    keyFile: f("server.key"),
    caSpkiSha256: createHash("sha256").update(spki).digest("base64"),
  };
}

function demoBinary() {
  const bin = process.env.RETRACT_DEMO_BIN ?? join(REPO, "target/debug/retract-demo");
  if (!existsSync(bin)) {
    throw new Error(`${bin} is missing: run \`cargo build -p retract-demo\` first (or set RETRACT_DEMO_BIN)`);
  }
  return bin;
}

// A crashed test run must not leave servers behind.
const children = new Set();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/** Starts retract-demo with `args` and waits until it is seeded; parses what it prints. */
export async function startDemo(name, args) {
  mkdirSync(OUTPUT, { recursive: true });
  const child = spawn(demoBinary(), ["--listen", "127.0.0.1:0", "--database", join(OUTPUT, `${name}.db`), ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  children.add(child);
  child.once("exit", () => children.delete(child));
  let log = "";
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  const exited = new Promise((ok) => child.once("exit", ok));
  const deadline = Date.now() + 60_000;
  while (!/retract is running on (\S+) /.test(log) || !/export TOKEN=(\S+)/.test(log) || !/curl (http\S+)\/_sim\//.test(log)) {
    if (child.exitCode !== null) throw new Error(`retract-demo (${name}) exited ${child.exitCode}:\n${log}`);
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`retract-demo (${name}) did not start within 60 s:\n${log}`);
    }
    await new Promise((ok) => setTimeout(ok, 100));
  }
  const addr = /retract is running on (\S+) /.exec(log)[1];
  return {
    addr,
    token: /export TOKEN=(\S+)/.exec(log)[1],
    graph: /curl (http\S+)\/_sim\//.exec(log)[1],
    log: () => log,
    async stop() {
      if (child.exitCode === null) child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
      writeFileSync(join(OUTPUT, `${name}.log`), log);
    },
  };
}

/** Debian's Chromium; undefined when it is not installed. */
export function findChromium() {
  if (process.env.CHROMIUM && existsSync(process.env.CHROMIUM)) return process.env.CHROMIUM;
  for (const name of ["chromium", "chromium-browser"]) {
    try {
      const path = execFileSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim();
      if (path) return path;
    } catch {
      // not this one
    }
  }
  return undefined;
}

/** The client package (src/index.ts) bundled for node, imported. */
export async function importClient() {
  mkdirSync(OUTPUT, { recursive: true });
  const outfile = join(OUTPUT, "client.node.mjs");
  await build({
    entryPoints: [join(WEB, "src/index.ts")],
    outfile,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    logLevel: "warning",
  });
  return import(`${outfile}?${Date.now()}`);
}

/** The simulator's view of one mailbox: folder name → messages. */
export async function mailbox(graph, address) {
  const res = await fetch(`${graph}/_sim/mailboxes/${encodeURIComponent(address)}`);
  if (!res.ok) throw new Error(`mailbox ${address}: HTTP ${res.status}`);
  return res.json();
}

/** Holds (true) or releases (false) every Graph request at the simulator's gate. */
export async function holdGraph(graph, hold) {
  const res = await fetch(`${graph}/_sim/hold`, { method: hold ? "POST" : "DELETE" });
  if (!res.ok) throw new Error(`hold: HTTP ${res.status}`);
}
