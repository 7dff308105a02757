import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorResponse, HookAccepted, Trigger, TriggerList } from "../functions/schemas.ts";
import { CODE_BUCKET, objectPaths } from "../shared/model.ts";
import { signedHeaders, signPayload } from "../shared/signature.ts";
import { apiHarness, workflowIds, type ApiHarness } from "./support/api.ts";

const SECRET = "whsec-0123456789abcdef";
const WORKFLOW = "fun echo(body:inputs.payload):\n    print(open('body').read())\n";

let h: ApiHarness;
let alice: Record<string, string>;

beforeEach(async (ctx) => {
  h = await apiHarness(ctx.task.name, { settings: { maxWebhookBytes: 1024 } });
  alice = await h.as("alice");
});
afterEach(async (ctx) => {
  await h.close(ctx.task.result?.state === "pass");
});

async function register(name = "github", headers = alice, workflow = WORKFLOW) {
  return h.postJson("/triggers", { name, workflow, secret: SECRET }, headers);
}

async function deliver(body: string, headers: Record<string, string>, name = "github") {
  return h.app.request(`/hooks/${name}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
}

async function code(res: Response) {
  return ErrorResponse.parse(await res.json()).error.code;
}

describe("triggers", () => {
  it("registers a trigger and never returns its secret", async () => {
    const res = await register();
    expect(res.status).toBe(201);
    const raw = await res.text();
    expect(raw).not.toContain(SECRET);
    expect(Trigger.parse(JSON.parse(raw))).toMatchObject({
      name: "github",
      url: "/hooks/github",
      workflow: WORKFLOW,
    });
    const list = await (await h.app.request("/triggers", { headers: alice })).text();
    expect(list).not.toContain(SECRET);
    expect(TriggerList.parse(JSON.parse(list)).triggers.map((t) => t.name)).toEqual(["github"]);
    expect((await h.app.request("/triggers/github", { headers: alice })).status).toBe(200);
  });

  it("keeps one namespace of names, and each owner's triggers to itself", async () => {
    await register();
    const bob = await h.as("bob");
    expect((await register("github", bob)).status).toBe(409);
    expect((await register("github")).status).toBe(409);
    expect(
      TriggerList.parse(await (await h.app.request("/triggers", { headers: bob })).json()).triggers,
    ).toEqual([]);
    expect((await h.app.request("/triggers/github", { headers: bob })).status).toBe(404);
    expect((await h.app.request("/triggers/github", { method: "DELETE", headers: bob })).status).toBe(404);
    expect((await h.app.request("/triggers/github", { method: "DELETE", headers: alice })).status).toBe(204);
    const signed = await signedHeaders(SECRET, "{}", "d1", h.clock.now);
    expect((await deliver("{}", signed)).status).toBe(404);
  });

  it("refuses a second trigger with a secret already in use, whoever owns the first", async () => {
    // The signature covers the timestamp and the body, not the trigger's name: with one secret, each
    // trigger would accept deliveries meant for the other.
    expect((await register("first")).status).toBe(201);
    const bob = await h.as("bob");
    for (const who of [alice, bob]) {
      const res = await register("second", who);
      expect(res.status).toBe(409);
      expect(await code(res)).toBe("secret_in_use");
    }
    const [row] = await h.m.db<{ n: number }[]>`select count(*)::int as n from dwop.triggers`;
    expect(row!.n).toBe(1);
    // Its own secret, and it is registered; deleting the first frees its secret.
    const own = { name: "second", workflow: WORKFLOW, secret: `${SECRET}-second` };
    expect((await h.postJson("/triggers", own, bob)).status).toBe(201);
    expect((await h.app.request("/triggers/first", { method: "DELETE", headers: alice })).status).toBe(204);
    expect((await register("third", bob)).status).toBe(201);
  });

  it("validates the workflow and the fields", async () => {
    const dsl = await register("bad", alice, "fun a(:\n");
    expect(dsl.status).toBe(400);
    expect(await code(dsl)).toBe("invalid_workflow");
    const inputs = await register("other", alice, "fun a(x:inputs.other):\n    print(1)\n");
    expect(inputs.status).toBe(422);
    expect(
      (await h.postJson("/triggers", { name: "weak", workflow: WORKFLOW, secret: "short" }, alice)).status,
    ).toBe(422);
    expect(
      (await h.postJson("/triggers", { name: "no/slash", workflow: WORKFLOW, secret: SECRET }, alice)).status,
    ).toBe(422);
    expect((await h.app.request("/triggers", { method: "POST", headers: alice, body: "x" })).status).toBe(
      415,
    );
  });
});

describe("POST /hooks/:name", () => {
  beforeEach(async () => {
    expect((await register()).status).toBe(201);
  });

  it("starts the trigger's workflow as its owner with the raw body as inputs.payload", async () => {
    const body = '{"ref": "refs/heads/main",  "n": 1}';
    const res = await deliver(body, await signedHeaders(SECRET, body, "delivery-1", h.clock.now));
    expect(res.status).toBe(202);
    const { workflowId } = HookAccepted.parse(await res.json());
    const [row] = await h.m.db<{ owner: string; name: string; inputs: string[] }[]>`
      select owner, name, inputs from dwop.workflows where id = ${workflowId}`;
    expect(row).toEqual({ owner: "alice", name: "github", inputs: ["payload"] });
    const stored = await new Response(
      await h.storage.get(CODE_BUCKET, objectPaths.input(workflowId, "payload")),
    ).text();
    expect(stored).toBe(body); // byte for byte, spacing kept
  });

  it("refuses a bad signature, a stale or future timestamp, and a replayed delivery, starting nothing", async () => {
    const body = '{"event": "push"}';
    const good = await signedHeaders(SECRET, body, "delivery-1", h.clock.now);
    const cases: [string, Record<string, string>, string, number][] = [
      [
        "signed with another secret",
        await signedHeaders("another-secret-0123", body, "d2", h.clock.now),
        body,
        401,
      ],
      ["body changed after signing", good, `${body} `, 401],
      ["no signature", { ...good, "X-DWOP-Signature": "" }, body, 401],
      ["stale", await signedHeaders(SECRET, body, "d3", h.clock.now - 301_000), body, 401],
      ["from the future", await signedHeaders(SECRET, body, "d4", h.clock.now + 301_000), body, 401],
      ["no delivery id", { ...good, "X-DWOP-Delivery": "" }, body, 400],
    ];
    for (const [what, headers, sent, status] of cases) {
      const res = await deliver(sent, headers);
      expect({ what, status: res.status }).toEqual({ what, status });
    }
    expect(await workflowIds(h.m)).toEqual([]);

    const first = await deliver(body, good);
    expect(first.status).toBe(202);
    const replay = await deliver(body, good);
    expect(replay.status).toBe(409);
    expect(await code(replay)).toBe("replayed_delivery");
    // Re-signed with a fresh timestamp, the same delivery id is still a replay.
    h.clock.now += 10_000;
    expect((await deliver(body, await signedHeaders(SECRET, body, "delivery-1", h.clock.now))).status).toBe(
      409,
    );
    expect((await workflowIds(h.m)).length).toBe(1);
  });

  it("accepts a timestamp within five minutes either way", async () => {
    const body = "{}";
    const ts = String(Math.floor(h.clock.now / 1000) - 290);
    const headers = {
      "X-DWOP-Timestamp": ts,
      "X-DWOP-Signature": await signPayload(SECRET, ts, body),
      "X-DWOP-Delivery": "late",
    };
    expect((await deliver(body, headers)).status).toBe(202);
  });

  it("starts one workflow when the same delivery arrives twice at once", async () => {
    const body = '{"twice": true}';
    const headers = await signedHeaders(SECRET, body, "dup", h.clock.now);
    const statuses = (await Promise.all([deliver(body, headers), deliver(body, headers)])).map(
      (r) => r.status,
    );
    expect(statuses.sort()).toEqual([202, 409]);
    expect((await workflowIds(h.m)).length).toBe(1);
  });

  it("refuses an unknown trigger with 404 and a body over the webhook limit with 413", async () => {
    const body = "{}";
    expect((await deliver(body, await signedHeaders(SECRET, body, "x", h.clock.now), "nobody")).status).toBe(
      404,
    );
    const big = "x".repeat(2048);
    const res = await deliver(big, await signedHeaders(SECRET, big, "big", h.clock.now));
    expect(res.status).toBe(413);
    expect(await workflowIds(h.m)).toEqual([]);
  });
});
