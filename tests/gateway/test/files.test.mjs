import { test } from "node:test";
import assert from "node:assert/strict";
import { toFile } from "openai";
import { a, b, container, raw, rejects } from "./lib.mjs";

const CSV = "region,sales\nnorth,10\nsouth,32\n";

test("container files: multipart upload, list, retrieve, content, delete", async () => {
  const c = await container(a);
  const f = await a.containers.files.create(c.id, { file: await toFile(Buffer.from(CSV), "sales.csv") });
  assert.match(f.id, /^cfile_/);
  assert.equal(f.object, "container.file");
  assert.equal(f.container_id, c.id);
  assert.equal(f.path, "/mnt/data/sales.csv");
  assert.equal(f.bytes, CSV.length);
  assert.equal(f.source, "user");
  assert.equal(typeof f.created_at, "number");
  const r = await a.containers.files.retrieve(f.id, { container_id: c.id });
  assert.deepEqual(r, f);
  const listed = [];
  for await (const x of a.containers.files.list(c.id)) listed.push(x.id);
  assert.ok(listed.includes(f.id));
  const content = await a.containers.files.content.retrieve(f.id, { container_id: c.id });
  assert.equal(content.headers.get("content-type"), "text/csv");
  assert.equal(content.headers.get("content-length"), String(CSV.length));
  assert.equal(await content.text(), CSV);
  const d = await a.containers.files.delete(f.id, { container_id: c.id });
  assert.deepEqual(d, { id: f.id, object: "container.file.deleted", deleted: true });
  await rejects(assert, a.containers.files.retrieve(f.id, { container_id: c.id }), 404, "not_found");
  await rejects(assert, a.containers.files.content.retrieve(f.id, { container_id: c.id }), 404);
  await rejects(assert, a.containers.files.retrieve("cfile_nope", { container_id: c.id }), 404);
});

test("container files: binary bytes come back exactly, pages, another tenant gets 404", async () => {
  const c = await container(a);
  const bytes = Buffer.alloc(300000);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) & 0xff;
  const ids = [];
  for (const name of ["one.bin", "two.bin", "three.bin"])
    ids.push((await a.containers.files.create(c.id, { file: await toFile(bytes, name) })).id);
  const got = Buffer.from(await (await a.containers.files.content.retrieve(ids[1], { container_id: c.id })).arrayBuffer());
  assert.ok(got.equals(bytes));
  const page = await a.containers.files.list(c.id, { limit: 2, order: "asc" });
  assert.equal(page.data.length, 2);
  assert.equal(page.has_more, true);
  const all = [];
  for await (const x of a.containers.files.list(c.id, { limit: 1, order: "asc" })) all.push(x.id);
  assert.deepEqual(all.filter((id) => ids.includes(id)), ids);
  await rejects(assert, b.containers.files.retrieve(ids[0], { container_id: c.id }), 404, "not_found");
  await rejects(assert, b.containers.files.content.retrieve(ids[0], { container_id: c.id }), 404);
  await rejects(assert, b.containers.files.delete(ids[0], { container_id: c.id }), 404);
  await rejects(assert, b.containers.files.create(c.id, { file: await toFile(bytes, "x.bin") }), 404);
});

test("container files: too large is 413, nothing is left half-written", async () => {
  const c = await container(a);
  const big = Buffer.alloc(9 << 20, 1); // the test gateway takes 8m
  const e = await rejects(assert, a.containers.files.create(c.id, { file: await toFile(big, "big.bin") }), 413);
  assert.equal(e.error.param, "file");
  const page = await a.containers.files.list(c.id);
  assert.ok(!page.data.some((f) => f.path.endsWith("big.bin")));
  await rejects(assert, a.containers.files.create(c.id, {}), 400);
});

test("Files API: create, retrieve, list, content, delete; per tenant", async () => {
  const f = await a.files.create({ file: await toFile(Buffer.from(CSV), "sales.csv"), purpose: "user_data" });
  assert.match(f.id, /^file-/);
  assert.equal(f.object, "file");
  assert.equal(f.bytes, CSV.length);
  assert.equal(f.filename, "sales.csv");
  assert.equal(f.purpose, "user_data");
  assert.equal(f.status, "processed");
  try {
    assert.deepEqual(await a.files.retrieve(f.id), f);
    const ids = [];
    for await (const x of a.files.list()) ids.push(x.id);
    assert.ok(ids.includes(f.id));
    const filtered = await a.files.list({ purpose: "batch" });
    assert.ok(!filtered.data.some((x) => x.id === f.id));
    const content = await a.files.content(f.id);
    assert.equal(await content.text(), CSV);
    assert.equal(content.headers.get("content-length"), String(CSV.length));
    await rejects(assert, b.files.retrieve(f.id), 404);
    await rejects(assert, b.files.content(f.id), 404);
    await rejects(assert, b.files.delete(f.id), 404);
    const bl = [];
    for await (const x of b.files.list()) bl.push(x.id);
    assert.ok(!bl.includes(f.id));
  } finally {
    const d = await a.files.delete(f.id);
    assert.deepEqual(d, { id: f.id, object: "file", deleted: true });
  }
  await rejects(assert, a.files.retrieve(f.id), 404);
  await rejects(assert, a.files.create({ file: await toFile(Buffer.from("x"), "x.txt"), purpose: "nonsense" }), 400);
  await rejects(assert, a.files.retrieve("file-../../etc"), 404);
});

test("Files API: pagination and the tenant's quota (413)", async () => {
  const made = [];
  try {
    for (let i = 0; i < 3; i++)
      made.push((await a.files.create({ file: await toFile(Buffer.from(`n${i}`), `n${i}.txt`), purpose: "assistants" })).id);
    const page = await a.files.list({ limit: 2, order: "asc" });
    assert.equal(page.data.length, 2);
    assert.equal(page.has_more, true);
    const all = [];
    for await (const x of a.files.list({ limit: 1, order: "asc" })) all.push(x.id);
    assert.deepEqual(all.filter((id) => made.includes(id)), made);
    // 10m quota in the test: two 6m files do not fit
    const six = Buffer.alloc(6 << 20, 2);
    made.push((await a.files.create({ file: await toFile(six, "six.bin"), purpose: "assistants" })).id);
    await rejects(assert, a.files.create({ file: await toFile(six, "six2.bin"), purpose: "assistants" }), 413);
    // another tenant's quota is its own
    const theirs = await b.files.create({ file: await toFile(six, "six.bin"), purpose: "assistants" });
    await b.files.delete(theirs.id);
  } finally {
    for (const id of made) await a.files.delete(id);
  }
});

test("file_ids and file_id bring stored files into containers", async () => {
  const f = await a.files.create({ file: await toFile(Buffer.from(CSV), "input.csv"), purpose: "user_data" });
  try {
    const c = await container(a, { file_ids: [f.id] });
    const files = (await a.containers.files.list(c.id)).data;
    const inside = files.find((x) => x.path === "/mnt/data/input.csv");
    assert.ok(inside, JSON.stringify(files));
    const text = await (await a.containers.files.content.retrieve(inside.id, { container_id: c.id })).text();
    assert.equal(text, CSV);
    const c2 = await container(a);
    const g = await a.containers.files.create(c2.id, { file_id: f.id });
    assert.equal(g.path, "/mnt/data/input.csv");
    await rejects(assert, a.containers.files.create(c2.id, { file_id: "file-00000000000000000000000000000000" }), 404);
    // another tenant cannot name it
    const cb = await container(b);
    await rejects(assert, b.containers.files.create(cb.id, { file_id: f.id }), 404);
    await rejects(assert, b.containers.create({ name: "x", file_ids: [f.id] }), 404);
  } finally {
    await a.files.delete(f.id);
  }
});
