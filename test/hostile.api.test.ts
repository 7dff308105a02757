import fc from "fast-check";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { LocalStorage } from "../shared/storage/local.ts";
import { apiHarness, driveToEnd, SAMPLE, type ApiHarness } from "./support/api.ts";
import {
  hostileRequests,
  keepsRoute,
  operations,
  type HostileRequest,
  type OpenApiDocument,
  type Operation,
  type RealValues,
} from "./support/hostile-api.ts";
import { fingerprintDiff, stateProbe, type Fingerprint, type StateProbe } from "./support/hostile-state.ts";

/**
 * Property-based requests derived from GET /openapi.json: for every operation, requests that each carry
 * something the operation must refuse (see test/support/hostile-api.ts), made in process as a signed-in
 * owner who has a workflow with runs, a trigger and an API key. Every answer is a documented 4xx with the
 * `{"error": {"code", "message"}}` shape, never a 5xx or a stack trace, and nothing is written: every
 * dwop table and every storage file is the same after each request as before the first.
 */

const SEED = Number(process.env.DWOP_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
/** Requests per operation. */
const RUNS = Number(process.env.DWOP_FUZZ_API_RUNS ?? 120);
const LIMITS = { maxRequestBytes: 256 * 1024, maxWebhookBytes: 64 * 1024 };
const HOOK_WORKFLOW = "fun log(event:inputs.payload):\n    print(open('event').read())\n";

console.log(`API fuzz: seed ${SEED}, ${RUNS} requests per operation (replay with DWOP_FUZZ_SEED=${SEED})`);

let h: ApiHarness;
let root: string;
let probe: StateProbe;
let baseline: Fingerprint;
/** The state after the last request. */
let last: Fingerprint;
let alice: Record<string, string>;
let doc: OpenApiDocument;
let real: RealValues;
let sent = 0;
let passed = true;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "dwop-hostile-api-"));
  const storage = new LocalStorage({ root, secret: randomBytes(16).toString("hex") });
  h = await apiHarness("hostile_api", { settings: LIMITS, storage });
  alice = await h.as("alice");

  const submitted = await h.postJson("/workflows", { workflow: SAMPLE, name: "seed" }, alice);
  expect(submitted.status).toBe(201);
  const workflowId = ((await submitted.json()) as { id: string }).id;
  await driveToEnd(h.m, ["shout"]);
  const detail = (await (await h.app.request(`/workflows/${workflowId}`, { headers: alice })).json()) as {
    tasks: { name: string; runs: { id: string }[] }[];
  };
  const runId = detail.tasks[0]!.runs[0]!.id;
  const key = await h.postJson("/keys", { name: "seed" }, alice);
  const keyId = ((await key.json()) as { id: string }).id;
  const trigger = await h.postJson("/triggers", { name: "alice-hook", workflow: HOOK_WORKFLOW, secret: "s".repeat(32) }, alice);
  expect([key.status, trigger.status]).toEqual([201, 201]);

  real = {
    pathValue(template, param) {
      if (template.startsWith("/keys")) return keyId;
      if (template.startsWith("/triggers") || template.startsWith("/hooks")) return "alice-hook";
      return { id: workflowId, runId, name: "extract" }[param];
    },
    validBody(template, method, type) {
      const bodies: Record<string, () => string | FormData> = {
        "post /workflows application/json": () => JSON.stringify({ workflow: SAMPLE, name: "fuzz" }),
        "post /workflows multipart/form-data": () => {
          const form = new FormData();
          form.append("workflow", new File([SAMPLE], "fuzz.workflow"));
          return form;
        },
        "post /triggers application/json": () =>
          JSON.stringify({ name: "fz-base", workflow: HOOK_WORKFLOW, secret: "s".repeat(32) }),
        "post /keys application/json": () => JSON.stringify({ name: "fuzz key" }),
        "post /validate application/json": () => JSON.stringify({ workflow: SAMPLE }),
        "post /hooks/{name} */*": () => "{}",
      };
      return bodies[`${method} ${template} ${type}`]?.();
    },
  };

  doc = (await (await h.app.request("/openapi.json")).json()) as OpenApiDocument;
  // Each valid body is accepted as it is, so each refusal below is the mutation's doing.
  for (const op of operations(doc)) {
    for (const type of Object.keys(op.op.requestBody?.content ?? {})) {
      const body = real.validBody(op.template, op.method.toLowerCase(), type);
      expect(body, `a valid body for ${op.method} ${op.template} ${type}`).toBeDefined();
      if (op.template.startsWith("/hooks")) continue;
      const res = await h.app.request(op.template, {
        method: op.method,
        headers: { ...alice, ...(typeof body === "string" ? { "content-type": type } : {}) },
        body: typeof body === "string" ? body.replace("fz-base", "fz-setup") : body,
      });
      expect(res.status, `${op.method} ${op.template} ${type}: ${await res.clone().text()}`).toBeLessThan(300);
    }
  }
  probe = await stateProbe(h.m.db, root);
  baseline = await probe.fingerprint();
  last = baseline;
  expect(Object.keys(baseline.files).length).toBeGreaterThan(0);
});

afterEach((ctx) => {
  if (ctx.task.result?.state !== "pass") passed = false;
});

afterAll(async () => {
  console.log(`API fuzz: ${sent} hostile requests (seed ${SEED})`);
  await h?.close(passed);
  if (passed) await rm(root, { recursive: true, force: true });
});

const STACK_TRACE = /\n\s+at \S|node_modules|\.ts:\d+:\d+|Error: /;

function describeRequest(r: HostileRequest): string {
  return `${r.method} ${r.path.slice(0, 200)} [${r.why.join("; ")}]`;
}

async function send(r: HostileRequest): Promise<Response> {
  const init: RequestInit = { method: r.method, headers: r.headers };
  if (r.body !== undefined) init.body = r.body as BodyInit;
  return h.app.request(r.path, init);
}

/** One hostile request: refused as documented, no 5xx, no trace, nothing written or logged. */
async function checkRefused(op: Operation, r: HostileRequest): Promise<void> {
  sent++;
  const res = await send(r);
  const text = await res.text();
  const what = `${describeRequest(r)} -> ${res.status} ${text.slice(0, 300)}`;
  expect(res.status, what).toBeLessThan(500);
  if (r.mustFail && keepsRoute(op.template, r.path)) {
    expect(op.statuses, what).toContain(res.status);
    expect(res.status, what).toBeGreaterThanOrEqual(400);
  }
  if (res.status >= 400) {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    expect(typeof body.error?.code, what).toBe("string");
    expect(typeof body.error?.message, what).toBe("string");
    expect(res.headers.get("content-type"), what).toMatch(/^application\/json/);
  }
  expect(STACK_TRACE.test(text), what).toBe(false);
  // Compared with the state before this request, so a failure (and fast-check's shrinking) names it.
  const logged = h.errors.splice(0);
  const after = await probe.fingerprint();
  const written = fingerprintDiff(last, after);
  last = after;
  expect(logged.map((e) => `${e.msg}: ${String((e.obj as { err?: unknown }).err)}`), what).toEqual([]);
  expect(written, what).toBe("");
}

describe("hostile requests derived from the OpenAPI document", () => {
  it("covers every operation the document lists", () => {
    const listed = operations(doc).map((o) => `${o.method} ${o.template}`);
    expect(listed.length).toBeGreaterThanOrEqual(20);
    expect(listed).toEqual(expect.arrayContaining(["POST /workflows", "POST /hooks/{name}", "DELETE /keys/{id}"]));
  });

  // One property per operation, so a failure names its route; the list is read from the document.
  const ops = [
    "GET /healthz", "GET /readyz", "GET /openapi.json", "POST /workflows", "GET /workflows", "GET /workflows/{id}",
    "POST /workflows/{id}/cancel", "POST /workflows/{id}/retry", "GET /workflows/{id}/runs/{runId}",
    "GET /workflows/{id}/tasks/{name}/output", "GET /workflows/{id}/tasks/{name}/logs", "GET /workflows/{id}/events",
    "POST /triggers", "GET /triggers", "GET /triggers/{name}", "DELETE /triggers/{name}", "POST /keys", "GET /keys",
    "DELETE /keys/{id}", "POST /hooks/{name}", "POST /validate", "GET /ui/api/workflows",
  ]; // prettier-ignore
  it("lists exactly the operations fuzzed here", () => {
    expect(operations(doc).map((o) => `${o.method} ${o.template}`).sort()).toEqual([...ops].sort());
  });

  ops.forEach((name, i) => {
    it(`refuses hostile ${name} requests, writing nothing`, async () => {
      const op = operations(doc).find((o) => `${o.method} ${o.template}` === name)!;
      // Bodies make POST /workflows, /triggers and /keys the richest: they get three times the runs.
      const runs = op.op.requestBody ? RUNS * 3 : RUNS;
      await fc.assert(
        fc.asyncProperty(hostileRequests(op, real, alice, LIMITS), (r) => checkRefused(op, r)),
        { seed: SEED + i, numRuns: runs },
      );
      expect(fingerprintDiff(baseline, await probe.fingerprint())).toBe("");
    });
  });
});
