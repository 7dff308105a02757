import { serve } from "@hono/node-server";
import fc from "fast-check";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { LocalStorage } from "../shared/storage/local.ts";
import { API_TOKEN, apiHarness, driveToEnd, SAMPLE, type ApiHarness } from "./support/api.ts";
import {
  describeRequest,
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
 * owner who has a workflow with runs, a trigger, a schedule and an API key. Every answer is a documented 4xx with the
 * `{"error": {"code", "message"}}` shape, never a 5xx or a stack trace, and nothing is written: every
 * dwop table and every storage file is the same after each request as before the first.
 */

const SEED = Number(process.env.DWOP_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
/** Requests per operation. */
const RUNS = Number(process.env.DWOP_FUZZ_API_RUNS ?? 80);
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
/** Answers by operation and status, printed at the end: the refusals should come from many checks. */
const answers = new Map<string, Map<number, number>>();
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
  const trigger = await h.postJson(
    "/triggers",
    { name: "alice-hook", workflow: HOOK_WORKFLOW, secret: "s".repeat(32) },
    alice,
  );
  const schedule = await h.postJson(
    "/schedules",
    { name: "alice-nightly", cron: "0 2 * * *", workflow: SAMPLE },
    alice,
  );
  expect([key.status, trigger.status, schedule.status]).toEqual([201, 201, 201]);
  const triggerId = ((await trigger.json()) as { id: string }).id;

  real = {
    pathValue(template, param) {
      if (template.startsWith("/keys")) return keyId;
      if (template.startsWith("/pools")) return "fuzzpool";
      if (template.startsWith("/triggers")) return "alice-hook";
      if (template.startsWith("/schedules")) return "alice-nightly";
      if (template.startsWith("/hooks")) return triggerId;
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
          JSON.stringify({ name: "fz-base", workflow: HOOK_WORKFLOW, secret: "f".repeat(32) }),
        "post /keys application/json": () => JSON.stringify({ name: "fuzz key" }),
        "post /schedules application/json": () =>
          JSON.stringify({
            name: "fz-base",
            cron: "*/5 * * * *",
            workflow: SAMPLE,
            timezone: "Europe/Paris",
          }),
        "patch /schedules/{name} application/json": () => JSON.stringify({ paused: true }),
        "put /pools/{name} application/json": () => JSON.stringify({ slots: 2 }),
        "patch /keys/{id} application/json": () => JSON.stringify({ maxRunning: 3 }),
        "post /validate application/json": () => JSON.stringify({ workflow: SAMPLE }),
        "post /hooks/{id} */*": () => "{}",
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
      // Pools and caps are the operator's to change (the fuzzed requests, as alice, are refused 403).
      const operatorOnly =
        op.template.startsWith("/pools") || (op.method === "PATCH" && op.template.startsWith("/keys"));
      const who = operatorOnly ? { authorization: `Bearer ${API_TOKEN}` } : alice;
      const path = op.template.replace(/\{(\w+)\}/g, (_, p: string) => real.pathValue(op.template, p)!);
      const res = await h.app.request(path, {
        method: op.method,
        headers: { ...who, ...(typeof body === "string" ? { "content-type": type } : {}) },
        body: typeof body === "string" ? body.replace("fz-base", "fz-setup") : body,
      });
      expect(res.status, `${op.method} ${op.template} ${type}: ${await res.clone().text()}`).toBeLessThan(
        300,
      );
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
  console.log(`API fuzz: ${sent} hostile requests (seed ${SEED}); answers by operation:`);
  for (const [op, counts] of answers) {
    console.log(
      `  ${op.padEnd(42)} ${[...counts]
        .sort(([a], [b]) => a - b)
        .map(([s, n]) => `${s}x${n}`)
        .join(" ")}`,
    );
  }
  await h?.close(passed);
  if (passed) await rm(root, { recursive: true, force: true });
});

const STACK_TRACE = /\n\s+at \S|node_modules|\.ts:\d+:\d+|Error: /;

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
  const counts = answers.get(`${op.method} ${op.template}`) ?? new Map<number, number>();
  answers.set(`${op.method} ${op.template}`, counts.set(res.status, (counts.get(res.status) ?? 0) + 1));
  // Collected before any assertion, so a failure leaves nothing behind for the next request (or for
  // fast-check's shrinking) to trip over: the state is compared with the one before this request.
  const logged = h.errors.splice(0).map((e) => `${e.msg}: ${String((e.obj as { err?: unknown }).err)}`);
  const after = await probe.fingerprint();
  const written = fingerprintDiff(last, after);
  last = after;

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
  expect(logged, what).toEqual([]);
  expect(written, what).toBe("");
}

describe("hostile requests derived from the OpenAPI document", () => {
  it("covers every operation the document lists", () => {
    const listed = operations(doc).map((o) => `${o.method} ${o.template}`);
    expect(listed.length).toBeGreaterThanOrEqual(20);
    expect(listed).toEqual(
      expect.arrayContaining(["POST /workflows", "POST /hooks/{id}", "DELETE /keys/{id}"]),
    );
  });

  // One property per operation, so a failure names its route; the list is read from the document.
  const ops = [
    "GET /healthz", "GET /readyz", "GET /openapi.json", "POST /workflows", "GET /workflows", "GET /workflows/{id}",
    "GET /workflows/{id}/tasks", "GET /workflows/{id}/tasks/{name}", "POST /workflows/{id}/cancel", "POST /workflows/{id}/retry",
    "GET /workflows/{id}/runs/{runId}",
    "GET /workflows/{id}/tasks/{name}/output", "GET /workflows/{id}/tasks/{name}/logs", "GET /workflows/{id}/events",
    "POST /triggers", "GET /triggers", "GET /triggers/{name}", "DELETE /triggers/{name}", "POST /schedules",
    "GET /schedules", "GET /schedules/{name}", "PATCH /schedules/{name}", "DELETE /schedules/{name}", "POST /keys", "GET /keys",
    "DELETE /keys/{id}", "PATCH /keys/{id}", "GET /pools", "PUT /pools/{name}", "DELETE /pools/{name}",
    "POST /hooks/{id}", "POST /validate", "GET /ui/api/workflows",
    "POST /runs/{runId}/log", "POST /runs/{runId}/log/sealed", "POST /runs/{runId}/upload-urls",
  ]; // prettier-ignore
  it("lists exactly the operations fuzzed here", () => {
    expect(
      operations(doc)
        .map((o) => `${o.method} ${o.template}`)
        .sort(),
    ).toEqual([...ops].sort());
  });

  ops.forEach((name, i) => {
    it(`refuses hostile ${name} requests, writing nothing`, async () => {
      const op = operations(doc).find((o) => `${o.method} ${o.template}` === name)!;
      last = await probe.fingerprint();
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

/** The raw answer to raw request bytes, from the app served by @hono/node-server on a free port. */
async function rawExchange(request: string): Promise<string> {
  const server = serve({ fetch: h.app.fetch, hostname: "127.0.0.1", port: 0 });
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  const { port } = server.address() as AddressInfo;
  try {
    return await new Promise<string>((resolve, reject) => {
      const socket = connect(port, "127.0.0.1", () => socket.end(request));
      let answer = "";
      socket.setEncoding("latin1").on("data", (chunk: string) => (answer += chunk));
      socket.on("end", () => resolve(answer)).on("error", reject);
    });
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe("hostile requests, one by one", () => {
  async function refused(
    res: Response,
    status: number,
    code?: string,
  ): Promise<{ message: string; details: unknown }> {
    const body = (await res.json()) as { error: { code: string; message: string; details: unknown } };
    expect(res.status, JSON.stringify(body)).toBe(status);
    if (code) expect(body.error.code).toBe(code);
    expect(h.errors.splice(0)).toEqual([]);
    expect(fingerprintDiff(baseline, await probe.fingerprint())).toBe("");
    return body.error;
  }

  it("refuses NUL in text fields with 422 instead of a database error", async () => {
    await refused(await h.postJson("/keys", { name: "a\u0000b" }, alice), 422, "invalid_request");
    const trigger = { name: "nul-secret", workflow: HOOK_WORKFLOW, secret: `${"s".repeat(20)}\u0000` };
    await refused(await h.postJson("/triggers", trigger, alice), 422, "invalid_request");
    const callback = {
      workflow: SAMPLE,
      callback_url: "http://127.0.0.1:9/\u0000",
      callback_secret: "s".repeat(20),
    };
    await refused(await h.postJson("/workflows", callback, alice), 422, "invalid_request");
    await refused(
      await h.postJson("/workflows", { workflow: SAMPLE, requirements: "six\u0000" }, alice),
      422,
    );
    await refused(await h.app.request("/ui/api/workflows?q=%00", { headers: alice }), 400, "bad_request");
    // In a workflow's source, the DSL says where the NUL is.
    const dsl = await refused(
      await h.postJson("/workflows", { workflow: `${SAMPLE}# \u0000\n` }, alice),
      400,
    );
    expect(dsl.details).toEqual([expect.objectContaining({ line: 6, column: 3 })]);
  });

  it("refuses a JSON body or a workflow file that is not UTF-8, instead of storing replacement characters", async () => {
    const latin1 = Buffer.from('{"name": "caf\xe9"}', "latin1");
    const json = await h.app.request("/keys", {
      method: "POST",
      headers: { ...alice, "content-type": "application/json" },
      body: latin1,
    });
    expect((await refused(json, 400, "bad_request")).message).toBe("the body is not valid UTF-8");
    const form = new FormData();
    form.append(
      "workflow",
      new File([Buffer.from("fun a():\n    print('caf\xe9')\n", "latin1")], "latin1.workflow"),
    );
    const multipart = await h.app.request("/workflows", { method: "POST", headers: alice, body: form });
    expect((await refused(multipart, 400, "bad_request")).message).toBe(
      "the workflow file is not valid UTF-8",
    );
  });

  it("refuses a workflow file name that is huge or holds control characters, answering briefly", async () => {
    for (const name of ["f".repeat(100_000), "a\u0000b.workflow", "\u001b[2J.workflow"]) {
      const form = new FormData();
      form.append("workflow", new File(["x\n".repeat(600)], name));
      const res = await h.app.request("/workflows", { method: "POST", headers: alice, body: form });
      expect(Number(res.headers.get("content-length") ?? (await res.clone().text()).length)).toBeLessThan(
        10_000,
      );
      const error = await refused(res, 422, "invalid_request");
      expect(error.details).toEqual([expect.objectContaining({ path: "workflow" })]);
    }
  });

  it("treats form fields named after Object.prototype members as the data they are", async () => {
    for (const field of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
      const form = new FormData();
      form.append("workflow", new File([SAMPLE], "proto.workflow"));
      form.append(field, "x");
      const res = await h.app.request("/workflows", { method: "POST", headers: alice, body: form });
      expect((await refused(res, 422, "invalid_request")).details).toEqual([
        { path: field, message: "unknown field" },
      ]);
    }
    // An input named __proto__ is an input like any other: stored and counted, not a prototype.
    const form = new FormData();
    form.append(
      "workflow",
      new File(["fun a(x:inputs.__proto__):\n    print(open('x').read())\n"], "p.workflow"),
    );
    form.append("inputs.__proto__", new File(["payload"], "p.bin"));
    const res = await h.app.request("/workflows", { method: "POST", headers: alice, body: form });
    expect(res.status).toBe(201);
    const { id, inputs } = (await res.json()) as { id: string; inputs: string[] };
    expect(inputs).toEqual(["__proto__"]);
    expect(await readFile(join(root, "Task_Code", id, "inputs", "__proto__"), "utf8")).toBe("payload");
    baseline = await probe.fingerprint();
  });

  it("cannot put CR or LF in a header through fetch, and the server refuses them on the wire", async () => {
    for (const value of ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\u0000b"]) {
      expect(() => new Headers({ "idempotency-key": value })).toThrow(TypeError);
    }
    const auth = `Authorization: ${alice.authorization}\r\n`;
    const body = '{"name":"injected"}';
    const post = (headers: string) =>
      `POST /keys HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\n${headers}` +
      `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
    for (const injected of [
      "Idempotency-Key: a\rSet-Cookie: x=1\r\n",
      "X-A: a\nTransfer-Encoding: chunked\r\n",
      "X-A: a\u0000b\r\n",
    ]) {
      expect(await rawExchange(post(injected))).toMatch(/^HTTP\/1\.1 400 /);
    }
    // Headers beyond Node's limit (16 KiB) are refused before the app sees them.
    expect(await rawExchange(post(`X-Big: ${"b".repeat(64 * 1024)}\r\n`))).toMatch(/^HTTP\/1\.1 431 /);
    expect(fingerprintDiff(baseline, await probe.fingerprint())).toBe("");
  });
});
