import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI, { toFile } from "openai";
import { a, b, container, raw, rejects, URL_ } from "./lib.mjs";

test("a missing or wrong key is 401 in OpenAI's shape", async () => {
  const none = await fetch(`${URL_}/v1/containers`);
  assert.equal(none.status, 401);
  const body = await none.json();
  assert.deepEqual(Object.keys(body.error).sort(), ["code", "message", "param", "type"]);
  const wrong = new OpenAI({ apiKey: "sk-wrong", baseURL: `${URL_}/v1`, maxRetries: 0 });
  const e = await rejects(assert, wrong.containers.list(), 401, "invalid_api_key");
  assert.ok(e instanceof OpenAI.AuthenticationError);
  const notBearer = await fetch(`${URL_}/v1/containers`, { headers: { Authorization: "Basic eA==" } });
  assert.equal(notBearer.status, 401);
  // with a body too: the SDK reads the 401, not a reset connection
  await rejects(assert, wrong.containers.create({ name: "x" }), 401, "invalid_api_key");
  const upload = await rejects(
    assert,
    wrong.files.create({ file: await toFile(Buffer.alloc(200000, 1), "x.bin"), purpose: "user_data" }),
    401,
  );
  assert.ok(upload instanceof OpenAI.AuthenticationError);
  await rejects(assert, a.post("/nowhere", { body: { x: 1 } }), 404);
});

test("create, retrieve, list, delete", async () => {
  const c = await a.containers.create({
    name: "analysis",
    memory_limit: "1g",
    expires_after: { anchor: "last_active_at", minutes: 5 },
  });
  try {
    assert.match(c.id, /^cntr_/);
    assert.equal(c.object, "container");
    assert.equal(c.name, "analysis");
    assert.equal(c.status, "running");
    assert.equal(c.memory_limit, "1g");
    assert.deepEqual(c.expires_after, { anchor: "last_active_at", minutes: 5 });
    assert.equal(typeof c.created_at, "number");
    assert.equal(typeof c.last_active_at, "number");
    const r = await a.containers.retrieve(c.id);
    assert.equal(r.id, c.id);
    assert.equal(r.name, "analysis");
    const ids = [];
    for await (const x of a.containers.list()) ids.push(x.id);
    assert.ok(ids.includes(c.id));
  } finally {
    const d = await (await raw(`/v1/containers/${c.id}`, { method: "DELETE" })).json();
    assert.deepEqual(d, { id: c.id, object: "container.deleted", deleted: true });
  }
  await rejects(assert, a.containers.retrieve(c.id), 404, "not_found");
  await rejects(assert, a.containers.delete(c.id), 404, "not_found");
});

test("pagination: limit, order, after, first_id, last_id, has_more", async () => {
  const made = [];
  for (let i = 0; i < 3; i++) made.push((await container(a, { name: `page-${i}` })).id);
  const page = await a.containers.list({ limit: 2, order: "asc" });
  assert.equal(page.data.length, 2);
  assert.equal(page.has_more, true);
  const all = [];
  for await (const x of a.containers.list({ limit: 1, order: "asc" })) all.push(x.id);
  const mine = all.filter((id) => made.includes(id));
  assert.deepEqual(mine, made, "the SDK pages through all of them in creation order");
  const desc = await (await raw("/v1/containers?limit=2&order=desc")).json();
  assert.equal(desc.object, "list");
  assert.equal(desc.first_id, desc.data[0].id);
  assert.equal(desc.last_id, desc.data[1].id);
  assert.equal(desc.data[0].id, made[2], "desc starts with the newest");
  const next = await (await raw(`/v1/containers?limit=100&order=desc&after=${desc.last_id}`)).json();
  assert.ok(!next.data.some((x) => x.id === desc.data[0].id || x.id === desc.data[1].id));
  assert.equal(next.has_more, false);
  const named = await (await raw("/v1/containers?name=page-1")).json();
  assert.deepEqual(named.data.map((x) => x.id), [made[1]]);
  await rejects(assert, a.containers.list({ limit: 0 }), 400);
  await rejects(assert, a.containers.list({ order: "sideways" }), 400);
});

test("tenants: another tenant's container does not exist", async () => {
  const c = await container(a, { name: "private" });
  await rejects(assert, b.containers.retrieve(c.id), 404, "not_found");
  await rejects(assert, b.containers.delete(c.id), 404, "not_found");
  await rejects(assert, b.containers.files.list(c.id), 404, "not_found");
  const ids = [];
  for await (const x of b.containers.list()) ids.push(x.id);
  assert.ok(!ids.includes(c.id), "B's list does not show A's container");
  const mine = await container(b, { name: "b-own" });
  const aids = [];
  for await (const x of a.containers.list()) aids.push(x.id);
  assert.ok(!aids.includes(mine.id), "A's list does not show B's container");
  assert.equal((await a.containers.retrieve(c.id)).id, c.id, "A still has it");
});

test("network_policy disabled is echoed; allowlist, skills and unknown fields are refused", async () => {
  const c = await container(a, { network_policy: { type: "disabled" } });
  assert.deepEqual(c.network_policy, { type: "disabled" });
  await rejects(
    assert,
    a.containers.create({ name: "x", network_policy: { type: "allowlist", allowed_domains: ["example.com"] } }),
    400,
  );
  await rejects(assert, a.containers.create({ name: "x", skills: [{ type: "skill_reference", skill_id: "s" }] }), 400);
  const e = await rejects(assert, a.containers.create({ name: "x", colour: "red" }), 400, "unknown_parameter");
  assert.equal(e.error.param, "colour");
  await rejects(assert, a.containers.create({ name: "x", memory_limit: "3g" }), 400, "invalid_value");
  await rejects(assert, a.containers.create({ name: "x", expires_after: { anchor: "created_at", minutes: 1 } }), 400);
  await rejects(assert, a.containers.create({}), 400);
  await rejects(assert, a.containers.create({ name: 7 }), 400);
});

test("a full pool is 429 with Retry-After", async () => {
  // the test pool is 768m; the 64g tier takes 1g of it
  const r = await raw("/v1/containers", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: "too-big", memory_limit: "64g" }),
  });
  const body = await r.json();
  assert.equal(r.status, 429, JSON.stringify(body));
  assert.equal(body.error.code, "memory_pool_exhausted");
  assert.equal(body.error.type, "rate_limit_error");
  assert.ok(Number(r.headers.get("retry-after")) > 0);
});

test("auto mode: a context key finds its live container again, a new one after delete", async () => {
  const post = (body, key) =>
    raw("/v1/containers", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) }, key);
  const first = await (await post({ context_key: "conversation-1", memory_limit: "1g" })).json();
  assert.match(first.id, /^cntr_/, JSON.stringify(first));
  try {
    const again = await (await post({ context_key: "conversation-1" })).json();
    assert.equal(again.id, first.id);
    const other = await (await post({ context_key: "conversation-1" }, process.env.KEY_B)).json();
    assert.notEqual(other.id, first.id, "another tenant's key of the same name is its own");
    await b.containers.delete(other.id);
  } finally {
    await a.containers.delete(first.id);
  }
  const fresh = await (await post({ context_key: "conversation-1" })).json();
  assert.notEqual(fresh.id, first.id);
  await a.containers.delete(fresh.id);
});
