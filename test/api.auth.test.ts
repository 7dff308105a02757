import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { signJwt } from "../functions/jwt.ts";
import { ApiKey, ApiKeyCreated, ApiKeyList, ErrorResponse, WorkflowList } from "../functions/schemas.ts";
import { sha256Hex } from "../shared/signature.ts";
import { API_TOKEN, apiHarness, JWT_SECRET, SAMPLE, workflowForm, type ApiHarness } from "./support/api.ts";

let h: ApiHarness;

beforeEach(async (ctx) => {
  h = await apiHarness(ctx.task.name);
});
afterEach(async (ctx) => {
  await h.close(ctx.task.result?.state === "pass");
});

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function status(headers: Record<string, string>, path = "/workflows"): Promise<number> {
  return (await h.app.request(path, { headers })).status;
}

async function refusal(headers: Record<string, string>): Promise<{ status: number; message: string }> {
  const res = await h.app.request("/workflows", { headers });
  return { status: res.status, message: ErrorResponse.parse(await res.json()).error.message };
}

/** The owners whose workflows a caller sees, by submitting one and listing. */
async function ownerSeen(headers: Record<string, string>): Promise<number> {
  await h.app.request("/workflows", { method: "POST", headers, body: workflowForm(SAMPLE) });
  const list = WorkflowList.parse(await (await h.app.request("/workflows", { headers })).json());
  return list.workflows.length;
}

describe("bearer tokens", () => {
  it("refuses a request without credentials with 401 and WWW-Authenticate", async () => {
    const attempts: Record<string, string>[] = [
      {},
      { authorization: "Basic dXNlcjpwdw==" },
      { authorization: "Bearer" },
    ];
    for (const headers of attempts) {
      const res = await h.app.request("/workflows", { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toContain("Bearer");
      expect(ErrorResponse.parse(await res.json()).error.code).toBe("unauthorized");
    }
    for (const path of ["/triggers", "/keys", `/workflows/${crypto.randomUUID()}/events`]) {
      expect(await status({}, path)).toBe(401);
    }
  });

  it("accepts DWOP_API_TOKEN as the owner 'local'", async () => {
    expect(await ownerSeen(bearer(API_TOKEN))).toBe(1);
    const [row] = await h.m.db<{ owner: string }[]>`select owner from dwop.workflows`;
    expect(row?.owner).toBe("local");
    expect(await status(bearer(`${API_TOKEN}x`))).toBe(401);
  });

  it("accepts a Supabase JWT and checks its signature, expiry and subject", async () => {
    const now = Math.floor(h.clock.now / 1000);
    const good = await signJwt({ sub: "alice", exp: now + 60 }, JWT_SECRET);
    expect(await status(bearer(good))).toBe(200);

    const forged = await signJwt({ sub: "alice", exp: now + 60 }, "another-secret-0123456789");
    expect(await refusal(bearer(forged))).toEqual({ status: 401, message: "token signature does not match" });
    const [head, , sig] = good.split(".");
    const tampered = `${head}.${Buffer.from(JSON.stringify({ sub: "bob", exp: now + 60 })).toString("base64url")}.${sig}`;
    expect(await refusal(bearer(tampered))).toEqual({
      status: 401,
      message: "token signature does not match",
    });

    const expired = await signJwt({ sub: "alice", exp: now - 1 }, JWT_SECRET);
    expect(await refusal(bearer(expired))).toEqual({ status: 401, message: "token expired" });
    h.clock.now += 61_000; // the good token expires as time passes
    expect(await refusal(bearer(good))).toEqual({ status: 401, message: "token expired" });
    h.clock.now -= 61_000;

    const forever = await signJwt({ sub: "alice" }, JWT_SECRET);
    expect(await refusal(bearer(forever))).toEqual({ status: 401, message: "token has no expiry" });
    const anonymous = await signJwt({ role: "anon", exp: now + 60 }, JWT_SECRET);
    expect(await refusal(bearer(anonymous))).toEqual({ status: 401, message: "token has no subject" });
    const none = `${Buffer.from('{"alg":"none"}').toString("base64url")}.${good.split(".")[1]}.`;
    expect((await refusal(bearer(none))).status).toBe(401);
  });

  it("refuses a correctly signed JWT whose subject cannot name an owner with 401, not a database error", async () => {
    const exp = Math.floor(h.clock.now / 1000) + 60;
    for (const sub of ["alice\u0000", "\u0000", "\ud800alice", "alice\r\n", "a".repeat(257)]) {
      const token = await signJwt({ sub, exp }, JWT_SECRET);
      for (const [method, path] of [
        ["GET", "/workflows"],
        ["GET", "/triggers"],
        ["POST", "/keys"],
      ] as const) {
        const res = await h.app.request(path, {
          method,
          headers: { ...bearer(token), "content-type": "application/json" },
          body: method === "POST" ? '{"name":"k"}' : undefined,
        });
        expect({ sub, path, status: res.status }).toEqual({ sub, path, status: 401 });
        expect(ErrorResponse.parse(await res.json()).error.message).toBe(
          "token subject is not a valid owner",
        );
      }
    }
    expect(h.errors).toEqual([]);
    // A subject of any script, up to 256 characters, is an owner.
    for (const sub of ["ünïcödé-👩‍💻", "a".repeat(256)]) {
      expect(await status(bearer(await signJwt({ sub, exp }, JWT_SECRET)))).toBe(200);
    }
  });

  it("refuses JWTs when no JWT secret is configured", async () => {
    const bare = await apiHarness("no_jwt_secret", { settings: { jwtSecret: undefined } });
    try {
      const token = await signJwt({ sub: "alice", exp: Math.floor(Date.now() / 1000) + 60 }, JWT_SECRET);
      expect((await bare.app.request("/workflows", { headers: bearer(token) })).status).toBe(401);
    } finally {
      await bare.close(true);
    }
  });

  it("leaves health, readiness, the OpenAPI document and hooks open", async () => {
    expect(await status({}, "/healthz")).toBe(200);
    expect(await status({}, "/readyz")).toBe(200);
    expect(await status({}, "/openapi.json")).toBe(200);
    expect((await h.app.request("/hooks/none", { method: "POST", body: "{}" })).status).toBe(404);
    const unknown = `/hooks/${crypto.randomUUID()}`;
    expect((await h.app.request(unknown, { method: "POST", body: "{}" })).status).toBe(404);
  });
});

describe("API keys", () => {
  it("are made by a signed-in owner, shown once, and act as that owner until revoked", async () => {
    const alice = await h.as("alice");
    const made = await h.postJson("/keys", { name: "ci" }, alice);
    expect(made.status).toBe(201);
    const key = ApiKeyCreated.parse(await made.json());
    expect(key.key).toMatch(/^dwop_[0-9a-f]{64}$/);
    expect(key.key.startsWith(key.prefix)).toBe(true);

    const [stored] = await h.m.db<{ key_hash: string }[]>`select key_hash from dwop.api_keys`;
    expect(stored?.key_hash).toBe(await sha256Hex(key.key)); // only the hash is kept
    const listed = await (await h.app.request("/keys", { headers: alice })).text();
    expect(listed).not.toContain(key.key);
    expect(ApiKeyList.parse(JSON.parse(listed)).keys.map((k) => k.id)).toEqual([key.id]);

    await h.app.request("/workflows", { method: "POST", headers: alice, body: workflowForm(SAMPLE) });
    expect(await ownerSeen(bearer(key.key))).toBe(2); // alice's first, and the one made with the key
    // The key with its last character changed (to one it is not: a key that ended in 0 passed as itself).
    const altered = `${key.key.slice(0, -1)}${key.key.endsWith("0") ? "1" : "0"}`;
    expect(await status(bearer(altered))).toBe(401);
    expect(await status(bearer("dwop_wrong"))).toBe(401);

    const byKey = await h.postJson("/keys", { name: "child" }, bearer(key.key));
    expect(byKey.status).toBe(403);
    expect(
      (await h.app.request(`/keys/${key.id}`, { method: "DELETE", headers: await h.as("bob") })).status,
    ).toBe(404);
    expect((await h.app.request(`/keys/${key.id}`, { method: "DELETE", headers: alice })).status).toBe(204);
    expect(await refusal(bearer(key.key))).toEqual({ status: 401, message: "unknown or revoked API key" });
    const after = ApiKeyList.parse(await (await h.app.request("/keys", { headers: alice })).json());
    expect(ApiKey.parse(after.keys[0]).revokedAt).not.toBeNull();
    expect((await h.app.request(`/keys/${key.id}`, { method: "DELETE", headers: alice })).status).toBe(404);
  });

  it("can be made in SQL by an operator", async () => {
    const [row] = await h.m.db<{ key: string }[]>`select key from dwop.create_api_key('carol', 'cron')`;
    expect(await ownerSeen(bearer(row!.key))).toBe(1);
    const [wf] = await h.m.db<{ owner: string }[]>`select owner from dwop.workflows`;
    expect(wf?.owner).toBe("carol");
  });

  it("validates the request to make one", async () => {
    const alice = await h.as("alice");
    expect((await h.postJson("/keys", { name: "" }, alice)).status).toBe(422);
    const form = await h.app.request("/keys", { method: "POST", headers: alice, body: "name=x" });
    expect(form.status).toBe(415);
  });
});
