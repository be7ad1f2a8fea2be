// capsule-gateway's MCP server through the official MCP TypeScript SDK (@modelcontextprotocol/sdk),
// unchanged: Streamable HTTP at /mcp with a tenant's key, and --mcp-stdio spawned as a local
// server.  Every session a test opens is ended after it (its sandbox deleted); the shim is asked
// directly whether a sandbox exists.
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { URL_, KEY_A, KEY_B } from "./lib.mjs";

const GATEWAY = `${process.env.BUILD}/shim/gateway/capsule-gateway`;
const SHIM_SOCKET = process.env.SHIM_SOCKET;

const open = [];
afterEach(async () => {
  for (const { client, transport } of open.splice(0)) {
    try {
      if (transport.terminateSession) await transport.terminateSession();
    } catch {
      /* ended by the test already */
    }
    await client.close();
  }
});

async function connect(key = KEY_A, capabilities = {}) {
  const transport = new StreamableHTTPClientTransport(new URL(`${URL_}/mcp`), {
    requestInit: { headers: { Authorization: `Bearer ${key}` } },
  });
  const client = new Client({ name: "capsule-test", version: "1.0.0" }, { capabilities });
  await client.connect(transport);
  open.push({ client, transport });
  return { client, transport };
}

// One call on the shim's socket, as the gateway makes them.
function shim(method, params) {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(SHIM_SOCKET);
    let buf = "";
    s.on("error", reject);
    s.on("data", (d) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      s.end();
      resolve(JSON.parse(buf.slice(0, nl)));
    });
    s.write(JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) + "\n");
  });
}

// The shim's containers of TENANT made for MCP sessions.
async function mcpContainers(tenant = "tenant-a") {
  const r = await shim("containers.list", { tenant, limit: 100 });
  return r.result.data.filter((c) => c.name.startsWith("mcp-") && c.status === "running");
}

const python = (client, code, extra = {}, opts) =>
  client.callTool({ name: "python", arguments: { code, ...extra } }, undefined, opts);
const textOf = (r) => r.content.filter((c) => c.type === "text").map((c) => c.text).join("");

// A raw POST to /mcp (what the SDK does not let us get wrong on purpose).
function post(body, headers = {}, key = KEY_A) {
  return fetch(`${URL_}/mcp`, {
    method: "POST",
    headers: {
      Authorization: `Bearer ${key}`,
      "Content-Type": "application/json",
      Accept: "application/json, text/event-stream",
      ...headers,
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

test("initialize, tools and their schemas; the session id is random hex", async () => {
  const { client, transport } = await connect();
  assert.match(transport.sessionId, /^[0-9a-f]{32}$/);
  assert.equal(client.getServerVersion().name, "capsule");
  assert.ok(client.getServerCapabilities().tools);
  assert.ok(client.getServerCapabilities().resources);
  const { tools } = await client.listTools();
  assert.deepEqual(tools.map((t) => t.name).sort(), ["download_file", "list_files", "python", "reset", "upload_file"]);
  for (const t of tools) {
    assert.ok(t.description.length > 20, t.name);
    assert.equal(t.inputSchema.type, "object");
  }
  assert.deepEqual(tools.find((t) => t.name === "python").inputSchema.required, ["code"]);
  await client.ping();
  assert.equal((await mcpContainers()).length, 0, "no sandbox before the first tool call");
});

test("python: state persists, the last value and stdout come back as text", async () => {
  const { client } = await connect();
  const r1 = await python(client, "x = 41\nprint('hello')\nx");
  assert.equal(r1.isError, false);
  assert.equal(textOf(r1), "hello\n41\n");
  const r2 = await python(client, "x + 1");
  assert.equal(textOf(r2), "42\n");
  assert.equal((await mcpContainers()).length, 1, "one sandbox for the session");
});

test("a figure is an image/png that decodes; a made file is a resource link and a resource", async () => {
  const { client } = await connect();
  const code = [
    "import matplotlib",
    "matplotlib.use('Agg')",
    "import matplotlib.pyplot as plt",
    "plt.plot([1, 3, 2])",
    "plt.show()",
    "open('/mnt/data/report.txt', 'w').write('done')",
  ].join("\n");
  const r = await python(client, code, { timeout_ms: 60000 });
  assert.equal(r.isError, false, textOf(r));
  const images = r.content.filter((c) => c.type === "image");
  assert.equal(images.length, 1);
  assert.equal(images[0].mimeType, "image/png");
  const png = Buffer.from(images[0].data, "base64");
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const links = r.content.filter((c) => c.type === "resource_link");
  const report = links.find((l) => l.name === "report.txt");
  assert.ok(report, JSON.stringify(links));
  assert.equal(report.uri, "capsule://files/report.txt");
  assert.equal(report.mimeType, "text/plain");
  assert.equal(report.size, 4);
  const { resources } = await client.listResources();
  assert.ok(resources.some((x) => x.uri === "capsule://files/report.txt"), JSON.stringify(resources));
  const read = await client.readResource({ uri: report.uri });
  assert.equal(read.contents.length, 1);
  assert.equal(Buffer.from(read.contents[0].blob, "base64").toString(), "done");
  await assert.rejects(client.readResource({ uri: "capsule://files/nothing-here.txt" }), /not found/i);
  await assert.rejects(client.readResource({ uri: "capsule://files/../../etc/passwd" }), /'\.\.'/);
  await assert.rejects(client.readResource({ uri: "file:///etc/passwd" }), /capsule:\/\/files/);
});

test("an exception, a timeout and running out of memory are tool errors with the reason", async () => {
  const { client } = await connect();
  await python(client, "kept = 'yes'");
  const e = await python(client, "def f():\n    return 1 / 0\nf()");
  assert.equal(e.isError, true);
  assert.match(textOf(e), /ZeroDivisionError/);
  assert.match(textOf(e), /raised an exception/);
  const t = await python(client, "while True:\n    pass", { timeout_ms: 500 });
  assert.equal(t.isError, true);
  assert.match(textOf(t), /timeout of 500 ms/);
  assert.equal(textOf(await python(client, "kept")), "'yes'\n", "an interrupted cell keeps the state");
  const m = await python(client, "blocks = []\nwhile True:\n    blocks.append(bytearray(8 << 20))");
  assert.equal(m.isError, true);
  assert.match(textOf(m), /out of memory/);
  assert.equal(textOf(await python(client, "1 + 1")), "2\n", "the session goes on after an OOM");
});

test("upload_file, download_file, list_files; paths are confined to /mnt/data", async () => {
  const { client } = await connect();
  const bytes = Buffer.from([0, 1, 2, 250, 255, 10, 13]);
  const up = await client.callTool({ name: "upload_file", arguments: { path: "in/data.bin", content: bytes.toString("base64") } });
  assert.equal(up.isError, false, textOf(up));
  assert.equal(up.content.find((c) => c.type === "resource_link").uri, "capsule://files/in/data.bin");
  const seen = await python(client, "list(open('/mnt/data/in/data.bin', 'rb').read())");
  assert.equal(textOf(seen), "[0, 1, 2, 250, 255, 10, 13]\n");
  const down = await client.callTool({ name: "download_file", arguments: { path: "/mnt/data/in/data.bin" } });
  assert.equal(down.isError, false, textOf(down));
  assert.equal(down.content[0].type, "resource");
  assert.equal(down.content[0].resource.uri, "capsule://files/in/data.bin");
  assert.equal(down.content[0].resource.mimeType, "application/octet-stream");
  assert.deepEqual(Buffer.from(down.content[0].resource.blob, "base64"), bytes);
  const list = await client.callTool({ name: "list_files", arguments: {} });
  assert.match(textOf(list), /\/mnt\/data\/in\/data\.bin \(7 bytes\)/);
  for (const path of ["../etc/passwd", "/etc/passwd", "a/../../b", "", "/mnt/data/./x"]) {
    const bad = await client.callTool({ name: "upload_file", arguments: { path, content: "eA==" } });
    assert.equal(bad.isError, true, path);
    const bad2 = await client.callTool({ name: "download_file", arguments: { path } });
    assert.equal(bad2.isError, true, path);
  }
  const notb64 = await client.callTool({ name: "upload_file", arguments: { path: "x", content: "!!!" } });
  assert.equal(notb64.isError, true);
  assert.match(textOf(notb64), /base64/);
  const missing = await client.callTool({ name: "download_file", arguments: { path: "nope.csv" } });
  assert.equal(missing.isError, true);
  assert.match(textOf(missing), /no file \/mnt\/data\/nope\.csv/);
});

test("reset: a fresh interpreter, the files kept", async () => {
  const { client } = await connect();
  await python(client, "v = 1\nopen('keep.txt', 'w').write('k')");
  const r = await client.callTool({ name: "reset", arguments: {} });
  assert.equal(r.isError, false, textOf(r));
  const gone = await python(client, "v");
  assert.equal(gone.isError, true);
  assert.match(textOf(gone), /NameError/);
  assert.equal(textOf(await python(client, "open('keep.txt').read()")), "'k'\n");
});

test("progress while a cell runs longer than a second, with stdout so far", async () => {
  const { client } = await connect();
  const seen = [];
  const r = await python(client, "import time\nfor i in range(3):\n    print('step', i, flush=True)\n    time.sleep(0.8)\n'end'", {}, {
    onprogress: (p) => seen.push(p),
  });
  assert.equal(r.isError, false, textOf(r));
  assert.match(textOf(r), /step 2\n'end'/);
  assert.ok(seen.length >= 1, "at least one progress notification");
  assert.ok(seen.some((p) => /stdout so far:\nstep 0/.test(p.message)), JSON.stringify(seen));
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i].progress > seen[i - 1].progress);
});

test("a cell quieter than the connection timeout (3 s here) is answered, as a stream and as JSON", async () => {
  const { client, transport } = await connect();
  const r = await python(client, "import time\ntime.sleep(4.5)\n'slept'");
  assert.equal(textOf(r), "'slept'\n");
  const j = await post({ jsonrpc: "2.0", id: 9, method: "tools/call", params: { name: "python", arguments: { code: "import time\ntime.sleep(4.5)\n'again'" } } },
    { "Mcp-Session-Id": transport.sessionId, Accept: "application/json" });
  assert.equal(j.status, 200);
  assert.equal(j.headers.get("content-type"), "application/json");
  assert.equal(textOf((await j.json()).result), "'again'\n");
  // a call waiting behind another's cell of the session is kept alive too
  let started;
  const running = new Promise((resolve) => (started = resolve));
  const first = python(client, "import time\ntime.sleep(4.5)\n'first'", {}, { onprogress: () => started() });
  await running;
  const second = await python(client, "'second'");
  assert.equal(textOf(second), "'second'\n");
  assert.equal(textOf(await first), "'first'\n");
});

test("notifications/cancelled interrupts the cell", async () => {
  const { client } = await connect();
  const ac = new AbortController();
  let started;
  const running = new Promise((resolve) => (started = resolve));
  const call = python(client, "import time\nstarted = 1\nprint('going', flush=True)\nfor i in range(6000):\n    time.sleep(0.1)\nfinished = 1", { timeout_ms: 600000 }, {
    signal: ac.signal,
    onprogress: (p) => /going/.test(p.message) && started(),
  });
  await running;
  const t0 = Date.now();
  ac.abort("enough");
  await assert.rejects(call);
  // the interpreter is free again at once (else this would wait ten minutes) and the cell
  // stopped before its end
  const r = await python(client, "print('started' in globals(), 'finished' in globals())");
  assert.equal(textOf(r), "True False\n");
  assert.ok(Date.now() - t0 < 20000, `the cell was interrupted (${Date.now() - t0} ms)`);
});

test("cancelling a call that waits for another's cell leaves that cell alone", async () => {
  const { client } = await connect();
  let started;
  const running = new Promise((resolve) => (started = resolve));
  const first = python(client, "import os, time\nprint('a-going', flush=True)\nwhile not os.path.exists('go'):\n    time.sleep(0.05)\n'a done'", { timeout_ms: 120000 }, {
    onprogress: (p) => /a-going/.test(p.message) && started(),
  });
  await running;
  const ac = new AbortController();
  const second = python(client, "b = 1", {}, { signal: ac.signal });
  ac.abort("not this one");
  await assert.rejects(second);
  const up = await client.callTool({ name: "upload_file", arguments: { path: "go", content: "" } });
  assert.equal(up.isError, false, textOf(up));
  const r = await first;
  assert.equal(r.isError, false, textOf(r));
  assert.match(textOf(r), /'a done'/);
  assert.equal(textOf(await python(client, "'b' in globals()")), "False\n", "the cancelled call never ran");
});

test("the tier is fixed by the call that makes the sandbox", async () => {
  const { client } = await connect();
  assert.equal((await python(client, "1", { memory_limit: "4g" })).isError, false);
  const again = await python(client, "1", { memory_limit: "4g" });
  assert.equal(again.isError, false);
  const other = await python(client, "1", { memory_limit: "1g" });
  assert.equal(other.isError, true);
  assert.match(textOf(other), /memory_limit 4g already/);
  const bad = await python(client, "1", { memory_limit: "2t" });
  assert.equal(bad.isError, true);
});

test("401 without a key or with a wrong one, in the gateway's error shape", async () => {
  for (const headers of [{}, { Authorization: "Bearer sk-wrong" }]) {
    const r = await fetch(`${URL_}/mcp`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream", ...headers },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
    });
    assert.equal(r.status, 401);
    const body = await r.json();
    assert.equal(typeof body.error.message, "string");
  }
  const c = new Client({ name: "t", version: "1" });
  await assert.rejects(c.connect(new StreamableHTTPClientTransport(new URL(`${URL_}/mcp`))));
});

test("another tenant's session id is not found; DELETE ends the session and its sandbox", async () => {
  const { client, transport } = await connect();
  await python(client, "1");
  const sid = transport.sessionId;
  const [mine] = await mcpContainers();
  assert.ok(mine, "the session's sandbox");
  const ping = { jsonrpc: "2.0", id: 7, method: "ping" };
  const other = await post(ping, { "Mcp-Session-Id": sid }, KEY_B);
  assert.equal(other.status, 404);
  assert.equal((await other.json()).error.code, -32600);
  const other2 = await fetch(`${URL_}/mcp`, { method: "DELETE", headers: { Authorization: `Bearer ${KEY_B}`, "Mcp-Session-Id": sid } });
  assert.equal(other2.status, 404, "nor can it be ended by another tenant");
  const ok = await post(ping, { "Mcp-Session-Id": sid });
  assert.equal(ok.status, 200);
  assert.deepEqual((await ok.json()).result, {});
  await transport.terminateSession();
  const after = await shim("containers.retrieve", { tenant: "tenant-a", container_id: mine.id });
  assert.equal(after.error?.data?.code, "not_found", JSON.stringify(after));
  assert.equal((await post(ping, { "Mcp-Session-Id": sid })).status, 404);
});

test("hostile input: errors, and the gateway stays up", async () => {
  const { transport } = await connect();
  const sid = transport.sessionId;
  const h = { "Mcp-Session-Id": sid };
  let r = await post("{not json", h);
  assert.equal(r.status, 400);
  assert.equal((await r.json()).error.code, -32700);
  r = await post([{ jsonrpc: "2.0", id: 1, method: "ping" }], h);
  assert.equal(r.status, 400);
  assert.equal((await r.json()).error.code, -32600, "no batches (2025-06-18)");
  r = await post({ jsonrpc: "1.0", id: 1, method: "ping" }, h);
  assert.equal((await r.json()).error.code, -32600);
  r = await post({ jsonrpc: "2.0", id: 1, method: "no/such" }, h);
  assert.equal((await r.json()).error.code, -32601);
  r = await post({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "rm -rf", arguments: {} } }, { ...h, Accept: "application/json" });
  assert.equal((await r.json()).error.code, -32602);
  r = await post({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "python", arguments: "x" } }, { ...h, Accept: "application/json" });
  assert.equal((await r.json()).error.code, -32602);
  r = await post({ jsonrpc: "2.0", id: 4, method: "ping" });
  assert.equal(r.status, 400, "no session header");
  r = await post({ jsonrpc: "2.0", id: 4, method: "ping" }, { "Mcp-Session-Id": "f".repeat(32) });
  assert.equal(r.status, 404);
  r = await post({ jsonrpc: "2.0", id: 4, method: "ping" }, { ...h, "MCP-Protocol-Version": "1999-01-01" });
  assert.equal(r.status, 400);
  r = await post({ jsonrpc: "2.0", id: 4, method: "ping" }, { ...h, Origin: "http://evil.example" });
  assert.equal(r.status, 403, "DNS rebinding: a foreign Origin");
  r = await post({ jsonrpc: "2.0", id: 4, method: "ping" }, { ...h, Origin: "http://localhost:3000" });
  assert.equal(r.status, 200);
  r = await post({ jsonrpc: "2.0", id: 4, method: "ping" }, { ...h, "Content-Type": "text/plain" });
  assert.equal(r.status, 415);
  r = await post({ jsonrpc: "2.0", id: 4, method: "ping" }, { ...h, Accept: "text/html" });
  assert.equal(r.status, 406);
  r = await post({ jsonrpc: "2.0", method: "notifications/whatever" }, h);
  assert.equal(r.status, 202);
  r = await post({ jsonrpc: "2.0", id: 5, method: "ping", params: "\u0000" }, h);
  assert.equal(r.status, 400);
  r = await post('{"jsonrpc":"2.0","id":6,"method":"ping","params":{"a":"\\u0000"}}', h);
  assert.equal(r.status, 400);
  r = await post("[".repeat(100000), h);
  assert.equal(r.status, 400);
  r = await post("x".repeat(20 << 20), h);
  assert.equal(r.status, 413, "a body over the cap");
  r = await fetch(`${URL_}/mcp`, { headers: { Authorization: `Bearer ${KEY_A}`, Accept: "text/event-stream", ...h } });
  assert.equal(r.status, 405, "no stream the server starts");
  await r.arrayBuffer();
  r = await post({ jsonrpc: "2.0", id: 8, method: "ping" }, h);
  assert.deepEqual((await r.json()).result, {}, "the session and the gateway are still up");
});

test("the tier comes from initialize's capabilities", async () => {
  const { client, transport } = await connect(KEY_A, { experimental: { capsule: { memory_limit: "4g" } } });
  await python(client, "1");
  const [c] = (await mcpContainers()).filter((x) => x.name === `mcp-${transport.sessionId.slice(0, 8)}`);
  assert.equal(c.memory_limit, "4g");
});

test("--mcp-stdio: one session on stdin/stdout; its sandbox goes when the client closes", async () => {
  const transport = new StdioClientTransport({
    command: GATEWAY,
    args: ["--mcp-stdio", "--shim-socket", SHIM_SOCKET, "--tenant", "tenant-a"],
    stderr: "pipe",
  });
  const client = new Client({ name: "capsule-test-stdio", version: "1.0.0" });
  let log = "";
  await client.connect(transport);
  transport.stderr.on("data", (d) => (log += d));
  const exited = new Promise((resolve) => transport._process.once("exit", resolve));
  try {
    assert.equal(client.getServerVersion().name, "capsule");
    assert.equal(textOf(await python(client, "y = 6 * 7\ny")), "42\n");
    assert.equal(textOf(await python(client, "y + 1")), "43\n");
    const seen = [];
    await python(client, "import time\nprint('tick', flush=True)\ntime.sleep(1.5)", {}, { onprogress: (p) => seen.push(p) });
    assert.ok(seen.some((p) => /tick/.test(p.message)), JSON.stringify(seen));
    await assert.rejects(client.callTool({ name: "nope", arguments: {} }), /Unknown tool/);
    assert.equal((await mcpContainers()).length, 1);
  } finally {
    await client.close();
  }
  await exited;
  assert.equal((await mcpContainers()).length, 0, `the sandbox was deleted (${log})`);
});

// A gateway of its own, with a short --mcp-idle: its log says when a session expired.
async function ownGateway(args) {
  const { spawn } = await import("node:child_process");
  const child = spawn(GATEWAY, ["--listen", "127.0.0.1:0", "--shim-socket", SHIM_SOCKET, "--keys", process.env.KEYS_FILE,
    "--state-dir", `${process.env.WORK}/gateway-state-mcp`, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  const waiters = [];
  child.stderr.on("data", (d) => {
    log += d;
    for (const w of waiters.splice(0)) if (!w.re.test(log)) waiters.push(w); else w.resolve(log);
  });
  const waitLog = (re) => new Promise((resolve) => (re.test(log) ? resolve(log) : waiters.push({ re, resolve })));
  const port = (await waitLog(/listening on .* port (\d+)/)).match(/listening on .* port (\d+)/)[1];
  const exited = new Promise((resolve) => child.once("exit", resolve));
  return { child, url: `http://127.0.0.1:${port}/mcp`, waitLog, exited };
}

async function sessionAt(url) {
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${KEY_A}` } } });
  const client = new Client({ name: "capsule-test", version: "1.0.0" });
  await client.connect(transport);
  await python(client, "1");
  const name = `mcp-${transport.sessionId.slice(0, 8)}`;
  const [c] = (await mcpContainers()).filter((x) => x.name === name);
  assert.ok(c, "the session's sandbox");
  return { client, transport, container: c };
}

test("an idle session expires and its sandbox goes; so do all when the gateway stops", async () => {
  const g = await ownGateway(["--mcp-idle", "2"]);
  try {
    const s1 = await sessionAt(g.url);
    await g.waitLog(new RegExp(`session ${s1.transport.sessionId.slice(0, 8)}.* idle for 2 s: ended`));
    const r = await shim("containers.retrieve", { tenant: "tenant-a", container_id: s1.container.id });
    assert.equal(r.error?.data?.code, "not_found", JSON.stringify(r));
    await assert.rejects(python(s1.client, "1"), /404|not found/i, "the session is gone");
    await s1.client.close();
    const s2 = await sessionAt(g.url);
    await s2.client.close();
    g.child.kill("SIGTERM");
    assert.equal(await g.exited, 0);
    const r2 = await shim("containers.retrieve", { tenant: "tenant-a", container_id: s2.container.id });
    assert.equal(r2.error?.data?.code, "not_found", JSON.stringify(r2));
  } finally {
    if (g.child.exitCode === null) g.child.kill("SIGTERM");
    await g.exited;
  }
});

test("--mcp-stdio with hostile lines: an error answer each, stdout only JSON-RPC, exit 0 at EOF", async () => {
  const { spawn } = await import("node:child_process");
  const child = spawn(GATEWAY, ["--mcp-stdio", "--shim-socket", SHIM_SOCKET, "--tenant", "tenant-a"], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  const waiters = [];
  child.stdout.on("data", (d) => {
    out += d;
    for (const w of waiters.splice(0)) if (out.split("\n").length - 1 >= w.n) w.resolve(); else waiters.push(w);
  });
  child.stderr.resume();
  const lines = (n) => new Promise((resolve) => (out.split("\n").length - 1 >= n ? resolve() : waiters.push({ n, resolve })));
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.stdin.write("{not json\n");
  child.stdin.write('[{"jsonrpc":"2.0","id":1,"method":"ping"}]\n');
  child.stdin.write("\n   \n");
  child.stdin.write('{"jsonrpc":"2.0","id":3,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}\n');
  child.stdin.write('{"jsonrpc":"2.0","method":"notifications/initialized"}\n');
  child.stdin.write('{"jsonrpc":"2.0","id":"four","method":"tools/call","params":{"name":"download_file","arguments":{"path":"../../etc/shadow"}}}\n');
  await lines(4);
  child.stdin.end();
  assert.equal(await exited, 0);
  const msgs = out.trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(msgs.length, 4, out);
  const byId = (id) => msgs.find((m) => m.id === id);
  const noId = msgs.filter((m) => m.id === null).map((m) => m.error.code).sort();
  assert.deepEqual(noId, [-32700, -32600].sort());
  assert.equal(byId(3).result.protocolVersion, "2025-06-18");
  assert.equal(byId("four").result.isError, true);
  assert.match(byId("four").result.content[0].text, /'\.\.'/);
});
