import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorResponse, HookAccepted, Trigger, TriggerList } from "../functions/schemas.ts";
import { CODE_BUCKET, objectPaths } from "../shared/model.ts";
import { signedHeaders, signPayload } from "../shared/signature.ts";
import { API_TOKEN, apiHarness, workflowIds, type ApiHarness } from "./support/api.ts";

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

async function register(name = "github", headers = alice, workflow = WORKFLOW, secret = SECRET) {
  return h.postJson("/triggers", { name, workflow, secret }, headers);
}

/** Registers a trigger and returns its id. */
async function registered(name = "github", headers = alice, secret = SECRET): Promise<string> {
  const res = await register(name, headers, WORKFLOW, secret);
  expect(res.status, await res.clone().text()).toBe(201);
  return Trigger.parse(await res.json()).id;
}

async function deliver(body: string, headers: Record<string, string>, id: string) {
  return h.app.request(`/hooks/${id}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
}

/** The headers of a delivery signed for the trigger `id`. */
function signed(body: string, delivery: string, id: string, secret = SECRET, now = h.clock.now) {
  return signedHeaders(secret, body, delivery, now, id);
}

async function code(res: Response) {
  return ErrorResponse.parse(await res.json()).error.code;
}

/** The owner of the workflow a 202 started. */
async function startedFor(res: Response): Promise<string> {
  expect(res.status).toBe(202);
  const { workflowId } = HookAccepted.parse(await res.json());
  const [row] = await h.m.db<{ owner: string }[]>`select owner from dwop.workflows where id = ${workflowId}`;
  return row!.owner;
}

describe("triggers", () => {
  it("registers a trigger and never returns its secret", async () => {
    const res = await register();
    expect(res.status).toBe(201);
    const raw = await res.text();
    expect(raw).not.toContain(SECRET);
    const trigger = Trigger.parse(JSON.parse(raw));
    expect(trigger).toMatchObject({ name: "github", url: `/hooks/${trigger.id}`, workflow: WORKFLOW });
    const list = await (await h.app.request("/triggers", { headers: alice })).text();
    expect(list).not.toContain(SECRET);
    expect(TriggerList.parse(JSON.parse(list)).triggers.map((t) => t.name)).toEqual(["github"]);
    expect((await h.app.request("/triggers/github", { headers: alice })).status).toBe(200);
  });

  it("keeps names per owner: another owner may take the same name and secret, and learns nothing", async () => {
    const aliceId = await registered();
    const bob = await h.as("bob");
    // The same name and secret as alice's: answered exactly as a fresh name and secret would be.
    const bobRes = await register("github", bob);
    const freshRes = await register("fresh", bob, WORKFLOW, `${SECRET}-fresh`);
    expect([bobRes.status, freshRes.status]).toEqual([201, 201]);
    const bobId = Trigger.parse(await bobRes.json()).id;
    expect(bobId).not.toBe(aliceId);
    // A name is taken only among the caller's own triggers.
    const again = await register("github");
    expect(again.status).toBe(409);
    expect(await code(again)).toBe("trigger_exists");

    const listed = TriggerList.parse(await (await h.app.request("/triggers", { headers: bob })).json());
    expect(listed.triggers.map((t) => [t.name, t.id])).toEqual([
      ["fresh", expect.any(String)],
      ["github", bobId],
    ]);
    const mine = Trigger.parse(await (await h.app.request("/triggers/github", { headers: alice })).json());
    expect(mine.id).toBe(aliceId);

    // Each delivery reaches only its own trigger's owner.
    const body = '{"push": 1}';
    expect(await startedFor(await deliver(body, await signed(body, "a-1", aliceId), aliceId))).toBe("alice");
    expect(await startedFor(await deliver(body, await signed(body, "b-1", bobId), bobId))).toBe("bob");
    const crossed = await deliver(body, await signed(body, "x-1", aliceId), bobId);
    expect(crossed.status).toBe(401);
    expect(await code(crossed)).toBe("invalid_signature");

    // Deleting is per owner too: bob's goes, alice's stays and still takes deliveries.
    expect((await h.app.request("/triggers/github", { method: "DELETE", headers: bob })).status).toBe(204);
    expect((await deliver(body, await signed(body, "b-2", bobId), bobId)).status).toBe(404);
    h.clock.now += 1000; // a new signature: the same signed request would be a replay
    expect(await startedFor(await deliver(body, await signed(body, "a-2", aliceId), aliceId))).toBe("alice");
    const [row] = await h.m.db<{ n: number }[]>`select count(*)::int as n from dwop.workflows`;
    expect(row!.n).toBe(3);
  });

  it("refuses a delivery signed for one trigger at another with the same secret", async () => {
    const first = await registered("first");
    const second = await registered("second");
    const body = '{"event": "push"}';
    const forFirst = await signed(body, "d-1", first);
    const res = await deliver(body, forFirst, second);
    expect(res.status).toBe(401);
    expect(await code(res)).toBe("invalid_signature");
    // Signed without any trigger (as completion callbacks are): refused by both.
    const bare = await signedHeaders(SECRET, body, "d-2", h.clock.now);
    expect((await deliver(body, bare, first)).status).toBe(401);
    expect((await deliver(body, bare, second)).status).toBe(401);
    expect(await workflowIds(h.m)).toEqual([]);
    expect((await deliver(body, forFirst, first)).status).toBe(202);
  });

  it("gives a trigger made again under the same name a new id, and the old URL finds nothing", async () => {
    const old = await registered();
    const body = "{}";
    expect((await deliver(body, await signed(body, "d-1", old), old)).status).toBe(202);
    expect((await h.app.request("/triggers/github", { method: "DELETE", headers: alice })).status).toBe(204);
    const again = await registered();
    expect(again).not.toBe(old);
    expect((await deliver(body, await signed(body, "d-2", old), old)).status).toBe(404);
    // The old trigger's deliveries went with it: the same delivery id is new to this trigger.
    expect((await deliver(body, await signed(body, "d-1", again), again)).status).toBe(202);
    // The name is no URL: /hooks/<name> names no trigger.
    expect((await deliver(body, await signed(body, "d-3", again), "github")).status).toBe(404);
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
    // A pool that does not exist, as a schedule's is refused: else every delivery would be.
    const pooled = await register("pooled", alice, `@pool("gpu")\n${WORKFLOW}`);
    expect([pooled.status, await code(pooled)]).toEqual([422, "unknown_pool"]);
    const list = TriggerList.parse(await (await h.app.request("/triggers", { headers: alice })).json());
    expect(list.triggers).toEqual([]);
  });

  it("answers a delivery 422 unknown_pool once its pool is deleted, and starts it once it is back", async () => {
    const operator = { authorization: `Bearer ${API_TOKEN}`, "content-type": "application/json" };
    const pool = (method: string) =>
      h.app.request("/pools/gpu", {
        method,
        headers: operator,
        body: method === "PUT" ? '{"slots":1}' : null,
      });
    expect((await pool("PUT")).status).toBe(200);
    const res = await register("pooled", alice, `@pool("gpu")\n${WORKFLOW}`);
    const { id } = Trigger.parse(await res.json());
    expect((await pool("DELETE")).status).toBe(204);
    const refused = await deliver("{}", await signed("{}", "d-1", id), id);
    expect([refused.status, await code(refused)]).toEqual([422, "unknown_pool"]);
    expect((await pool("PUT")).status).toBe(200);
    expect((await deliver("{}", await signed("{}", "d-1", id), id)).status).toBe(202);
  });

  it("refuses a workflow over the submission limits (bytes, tasks) with 413 before parsing it", async () => {
    // Each would fail the parse too (a 400): the 413 shows the cap ran first, as it does for POST /workflows.
    const tasks = Array.from({ length: 10_001 }, (_, i) => `fun t${i}(:\n`).join("");
    const tooMany = await register("many", alice, tasks);
    expect([tooMany.status, await code(tooMany)]).toEqual([413, "too_many_tasks"]);
    const tooLarge = await register("large", alice, `fun a(:\n# ${"x".repeat(1024 * 1024)}\n`);
    expect([tooLarge.status, await code(tooLarge)]).toEqual([413, "workflow_too_large"]);
    const list = TriggerList.parse(await (await h.app.request("/triggers", { headers: alice })).json());
    expect(list.triggers).toEqual([]);
  });
});

describe("POST /hooks/:id", () => {
  let id: string;
  beforeEach(async () => {
    id = await registered();
  });

  it("starts the trigger's workflow as its owner with the raw body as inputs.payload", async () => {
    const body = '{"ref": "refs/heads/main",  "n": 1}';
    const res = await deliver(body, await signed(body, "delivery-1", id), id);
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
    const good = await signed(body, "delivery-1", id);
    const cases: [string, Record<string, string>, string, number][] = [
      ["signed with another secret", await signed(body, "d2", id, "another-secret-0123"), body, 401],
      ["body changed after signing", good, `${body} `, 401],
      ["no signature", { ...good, "X-DWOP-Signature": "" }, body, 401],
      ["stale", await signed(body, "d3", id, SECRET, h.clock.now - 301_000), body, 401],
      ["from the future", await signed(body, "d4", id, SECRET, h.clock.now + 301_000), body, 401],
      ["no delivery id", { ...good, "X-DWOP-Delivery": "" }, body, 400],
    ];
    for (const [what, headers, sent, status] of cases) {
      const res = await deliver(sent, headers, id);
      expect({ what, status: res.status }).toEqual({ what, status });
    }
    expect(await workflowIds(h.m)).toEqual([]);

    const first = await deliver(body, good, id);
    expect(first.status).toBe(202);
    const replay = await deliver(body, good, id);
    expect(replay.status).toBe(409);
    expect(await replay.clone().json()).toMatchObject({
      error: { message: "this signed request (its timestamp and body) was already received" },
    });
    expect(await code(replay)).toBe("replayed_delivery");
    // The same signed bytes under another delivery id: the captured request replayed.
    const renamed = await deliver(body, { ...good, "X-DWOP-Delivery": "delivery-9" }, id);
    expect(renamed.status).toBe(409);
    expect(((await renamed.json()) as { error: { message: string } }).error.message).toBe(
      "this signed request (its timestamp and body) was already received",
    );
    // Re-signed with a fresh timestamp, the same delivery id is still a replay.
    h.clock.now += 10_000;
    const again = await deliver(body, await signed(body, "delivery-1", id), id);
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: { message: string } }).error.message).toBe(
      "delivery delivery-1 was already received",
    );
    expect((await workflowIds(h.m)).length).toBe(1);
  });

  it("accepts a timestamp within five minutes either way", async () => {
    const body = "{}";
    const ts = String(Math.floor(h.clock.now / 1000) - 290);
    const headers = {
      "X-DWOP-Timestamp": ts,
      "X-DWOP-Signature": await signPayload(SECRET, ts, body, id),
      "X-DWOP-Delivery": "late",
    };
    expect((await deliver(body, headers, id)).status).toBe(202);
  });

  it("starts one workflow when the same delivery arrives twice at once", async () => {
    const body = '{"twice": true}';
    const headers = await signed(body, "dup", id);
    const statuses = (await Promise.all([deliver(body, headers, id), deliver(body, headers, id)])).map(
      (r) => r.status,
    );
    expect(statuses.sort()).toEqual([202, 409]);
    expect((await workflowIds(h.m)).length).toBe(1);
  });

  it("refuses an unknown trigger with 404 and a body over the webhook limit with 413", async () => {
    const body = "{}";
    for (const other of ["nobody", crypto.randomUUID()]) {
      expect((await deliver(body, await signed(body, "x", other), other)).status, other).toBe(404);
    }
    const big = "x".repeat(2048);
    const res = await deliver(big, await signed(big, "big", id), id);
    expect(res.status).toBe(413);
    expect(await workflowIds(h.m)).toEqual([]);
  });
});
