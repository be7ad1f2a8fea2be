import { test } from "node:test";
import assert from "node:assert/strict";
import { a, b, container, raw, rejects, KEY_A } from "./lib.mjs";

const exec = (cid, body, key = KEY_A) =>
  raw(`/v1/containers/${cid}/executions`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) }, key);

test("an execution answers the shim's object, the code_interpreter_call item and annotations", async () => {
  const c = await container(a);
  // through the SDK's own generic call, as a frontend would
  const x = await a.post(`/containers/${c.id}/executions`, { body: { code: "x = 41\nprint(x + 1)\nx" } });
  assert.equal(x.object, "container.execution");
  assert.equal(x.status, "completed");
  assert.equal(x.stdout, "42\n");
  assert.equal(x.result, "41");
  assert.equal(x.item.type, "code_interpreter_call");
  assert.match(x.item.id, /^ci_/);
  assert.equal(x.item.status, "completed");
  assert.equal(x.item.container_id, c.id);
  assert.equal(x.item.code, "x = 41\nprint(x + 1)\nx");
  assert.deepEqual(x.item.outputs, [{ type: "logs", logs: "42\n41\n" }]);
  assert.deepEqual(x.annotations, []);
  const again = await a.post(`/containers/${c.id}/executions`, { body: { code: "x" } });
  assert.equal(again.result, "41", "the interpreter keeps its state");
});

test("a figure is an image output with a URL the client can fetch; files are cited", async () => {
  const c = await container(a);
  const code = [
    "import matplotlib",
    "matplotlib.use('Agg')",
    "import matplotlib.pyplot as plt",
    "plt.plot([1, 3, 2])",
    "plt.show()",
    "open('/mnt/data/report.txt', 'w').write('done')",
  ].join("\n");
  const x = await a.post(`/containers/${c.id}/executions`, { body: { code, timeout_ms: 60000 } });
  assert.equal(x.status, "completed", JSON.stringify(x));
  const images = x.item.outputs.filter((o) => o.type === "image");
  assert.equal(images.length, 1, JSON.stringify(x.item.outputs));
  assert.match(images[0].url, new RegExp(`/v1/containers/${c.id}/files/cfile_[0-9a-f]+/content$`));
  const png = await fetch(images[0].url, { headers: { Authorization: `Bearer ${KEY_A}` } });
  assert.equal(png.status, 200);
  assert.equal(png.headers.get("content-type"), "image/png");
  const bytes = Buffer.from(await png.arrayBuffer());
  assert.equal(bytes.subarray(1, 4).toString(), "PNG");
  const cited = x.annotations.map((n) => n.filename).sort();
  assert.ok(cited.includes("report.txt"), JSON.stringify(x.annotations));
  for (const n of x.annotations) {
    assert.equal(n.type, "container_file_citation");
    assert.equal(n.container_id, c.id);
    assert.match(n.file_id, /^cfile_/);
    assert.equal(typeof n.start_index, "number");
    assert.equal(typeof n.end_index, "number");
  }
});

test("errors, timeouts: the item says so", async () => {
  const c = await container(a);
  const f = await a.post(`/containers/${c.id}/executions`, { body: { code: "1/0" } });
  assert.equal(f.status, "failed");
  assert.equal(f.error.ename, "ZeroDivisionError");
  assert.equal(f.item.status, "completed", "the code ran; the model reads the traceback");
  assert.match(f.item.outputs[0].logs, /ZeroDivisionError/);
  const t = await a.post(`/containers/${c.id}/executions`, { body: { code: "import time\ntime.sleep(30)", timeout_ms: 300 } });
  assert.equal(t.status, "timeout");
  assert.equal(t.item.status, "incomplete");
  await rejects(assert, a.post(`/containers/${c.id}/executions`, { body: {} }), 400, "missing_required_parameter");
  await rejects(assert, a.post(`/containers/${c.id}/executions`, { body: { code: 5 } }), 400);
  await rejects(assert, a.post(`/containers/${c.id}/executions`, { body: { code: "1", bogus: 1 } }), 400, "unknown_parameter");
  await rejects(assert, b.post(`/containers/${c.id}/executions`, { body: { code: "1" } }), 404, "not_found");
  await rejects(assert, a.post(`/containers/cntr_nope/executions`, { body: { code: "1" } }), 404);
});

test("stream: true is text/event-stream: output deltas while it runs, then the whole object", async () => {
  const c = await container(a);
  const r = await exec(c.id, { code: "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.05)\n'end'", stream: true });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), "text/event-stream");
  const text = await r.text();
  const events = text
    .split("\n\n")
    .filter((block) => block && !block.startsWith(":")) // keep-alive comments
    .map((block) => {
      const ev = /^event: (.*)$/m.exec(block)[1];
      const data = JSON.parse(/^data: (.*)$/m.exec(block)[1]);
      return { ev, data };
    });
  const deltas = events.filter((e) => e.ev === "exec.output");
  assert.ok(deltas.length >= 1, text);
  assert.equal(deltas.map((d) => d.data.text).join(""), "0\n1\n2\n");
  for (const d of deltas) assert.equal(d.data.stream, "stdout");
  const last = events[events.length - 1];
  assert.equal(last.ev, "container.execution");
  assert.equal(last.data.result, "'end'");
  assert.equal(last.data.item.type, "code_interpreter_call");
  // errors of the call itself are plain error answers, not a stream
  const bad = await exec("cntr_nope", { code: "1", stream: true });
  assert.equal(bad.status, 404);
  assert.equal((await bad.json()).error.code, "not_found");
});

test("a streamed cell quieter than the connection timeout (3 s here) gets to its end", async () => {
  const c = await container(a);
  const r = await exec(c.id, { code: "import time\nprint('going', flush=True)\ntime.sleep(4.5)\n'slept'", stream: true });
  assert.equal(r.status, 200);
  const text = await r.text();
  const blocks = text.split("\n\n").filter(Boolean);
  assert.ok(blocks.some((b) => b === ": keep-alive"), "the quiet seconds are kept alive");
  const last = blocks[blocks.length - 1];
  assert.match(last, /^event: container.execution$/m, text);
  assert.equal(JSON.parse(/^data: (.*)$/m.exec(last)[1]).result, "'slept'");
});
