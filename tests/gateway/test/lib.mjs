// Shared by the tests: two clients of the official SDK, one per tenant, and the containers a
// test made (deleted after each test, whatever happened: the test pools are small).
import OpenAI from "openai";
import { afterEach } from "node:test";

export const URL_ = process.env.GATEWAY_URL;
export const KEY_A = process.env.KEY_A;
export const KEY_B = process.env.KEY_B;

export const a = new OpenAI({ apiKey: KEY_A, baseURL: `${URL_}/v1`, maxRetries: 0 });
export const b = new OpenAI({ apiKey: KEY_B, baseURL: `${URL_}/v1`, maxRetries: 0 });

const made = [];
afterEach(async () => {
  for (const [client, id] of made.splice(0)) {
    try {
      await client.containers.delete(id);
    } catch {
      /* deleted by the test already */
    }
  }
});

export async function container(client = a, params = {}) {
  const c = await client.containers.create({ name: "test", ...params });
  made.push([client, c.id]);
  return c;
}

// A raw request with a key, for what the SDK does not expose (status, headers, raw bytes).
export function raw(path, init = {}, key = KEY_A) {
  return fetch(`${URL_}${path}`, {
    ...init,
    headers: { Authorization: `Bearer ${key}`, ...(init.headers || {}) },
  });
}

// The error the SDK raised is OpenAI's: status, and {message, type, param, code}.
export async function rejects(assert, promise, status, code) {
  try {
    await promise;
  } catch (e) {
    assert.equal(e.status, status, `${e.status}: ${e.message}`);
    assert.ok(e.error && typeof e.error.message === "string", "error.message");
    for (const k of ["message", "type", "param", "code"])
      assert.ok(k in e.error, `error.${k} is there`);
    if (code !== undefined) assert.equal(e.error.code, code);
    return e;
  }
  assert.fail(`expected a ${status} error`);
}
