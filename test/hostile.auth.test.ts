import fc from "fast-check";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { signJwt } from "../functions/jwt.ts";
import { OUTPUT_BUCKET, objectPaths } from "../shared/model.ts";
import { signedHeaders, signPayload } from "../shared/signature.ts";
import { LocalStorage } from "../shared/storage/local.ts";
import { API_TOKEN, apiHarness, driveToEnd, JWT_SECRET, SAMPLE, type ApiHarness } from "./support/api.ts";
import { operations, pathParams, type OpenApiDocument, type Operation } from "./support/hostile-api.ts";
import { fingerprintDiff, stateProbe, type Fingerprint, type StateProbe } from "./support/hostile-state.ts";

/**
 * Credentials that must not work, and owners reaching for what is not theirs: bad bearer tokens on every
 * protected route (401, nothing changed), another owner's ids on every route that takes an id (404, as
 * if it did not exist, nothing changed), and webhook deliveries that are unsigned, forged, stale,
 * replayed or signed for another trigger (refused, no workflow started).
 */

const SEED = Number(process.env.DWOP_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const HOOK_WORKFLOW = "fun log(event:inputs.payload):\n    print(open('event').read())\n";
const ALICE_SECRET = "alice-hook-secret-0123456789";
const BOB_SECRET = "bob-hook-secret-0123456789ab";

let h: ApiHarness;
let root: string;
let probe: StateProbe;
let doc: OpenApiDocument;
let alice: Record<string, string>;
let bob: Record<string, string>;
let bobKey: Record<string, string>;
let revokedKey: Record<string, string>;
/** Alice's things: a failed workflow with runs and an output, a queued one, a trigger, an API key. */
const mine = {
  failed: "",
  queued: "",
  runId: "",
  keyId: "",
  bobWorkflow: "",
  bobRunId: "",
  hook: "",
  bobHook: "",
};
let passed = true;

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const b64 = (value: unknown) =>
  Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

async function json<T>(res: Response | Promise<Response>): Promise<T> {
  return (await (await res).json()) as T;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "dwop-hostile-auth-"));
  const storage = new LocalStorage({ root, secret: randomBytes(16).toString("hex") });
  h = await apiHarness("hostile_auth", { storage });
  alice = await h.as("alice");
  bob = await h.as("bob");

  const submit = async (headers: Record<string, string>) =>
    (await json<{ id: string }>(h.postJson("/workflows", { workflow: SAMPLE }, headers))).id;
  mine.failed = await submit(alice);
  mine.bobWorkflow = await submit(bob);
  await driveToEnd(h.m, ["shout"]);
  mine.queued = await submit(alice);
  const runOf = async (id: string, headers: Record<string, string>) =>
    (await json<{ tasks: { runs: { id: string }[] }[] }>(h.app.request(`/workflows/${id}`, { headers })))
      .tasks[0]!.runs[0]!.id;
  mine.runId = await runOf(mine.failed, alice);
  mine.bobRunId = await runOf(mine.bobWorkflow, bob);
  await storage.put(OUTPUT_BUCKET, objectPaths.output(mine.failed, "extract"), "a,b,c\n");
  await storage.put(OUTPUT_BUCKET, objectPaths.log(mine.failed, "extract", 1), "log\n");

  const trigger = async (owner: Record<string, string>, name: string, secret: string) => {
    const res = await h.postJson("/triggers", { name, workflow: HOOK_WORKFLOW, secret }, owner);
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  };
  mine.hook = await trigger(alice, "alice-hook", ALICE_SECRET);
  mine.bobHook = await trigger(bob, "bob-hook", BOB_SECRET);
  const schedule = await h.postJson(
    "/schedules",
    { name: "alice-nightly", cron: "0 2 * * *", workflow: SAMPLE },
    alice,
  );
  expect(schedule.status).toBe(201);
  mine.keyId = (await json<{ id: string }>(h.postJson("/keys", { name: "alice" }, alice))).id;
  bobKey = bearer((await json<{ key: string }>(h.postJson("/keys", { name: "bob" }, bob))).key);
  const revoked = await json<{ id: string; key: string }>(h.postJson("/keys", { name: "old" }, alice));
  expect((await h.app.request(`/keys/${revoked.id}`, { method: "DELETE", headers: alice })).status).toBe(204);
  revokedKey = bearer(revoked.key);

  doc = await json<OpenApiDocument>(h.app.request("/openapi.json"));
  probe = await stateProbe(h.m.db, root);
});

afterEach((ctx) => {
  if (ctx.task.result?.state !== "pass") passed = false;
});

afterAll(async () => {
  await h?.close(passed);
  if (passed) await rm(root, { recursive: true, force: true });
});

/** Alice's value of a path parameter of `template`. */
function aliceValue(template: string, param: string): string {
  if (template.startsWith("/keys")) return mine.keyId;
  if (template.startsWith("/triggers")) return "alice-hook";
  if (template.startsWith("/schedules")) return "alice-nightly";
  if (template.startsWith("/hooks")) return mine.hook;
  const values: Record<string, string> = {
    id: template.endsWith("/cancel") ? mine.queued : mine.failed,
    runId: mine.runId,
    name: "extract",
  };
  return values[param]!;
}

/** The template with each parameter's value. */
function pathWith(template: string, value: (param: string) => string): string {
  let path = template;
  for (const p of pathParams(template)) path = path.replace(`{${p}}`, value(p));
  return path;
}

/** A request of `op` that names alice's things and, for a write, carries a body it would accept. */
function requestOf(op: Operation, headers: Record<string, string>): { path: string; init: RequestInit } {
  const path = pathWith(op.template, (p) => aliceValue(op.template, p));
  const bodies: Record<string, unknown> = {
    "POST /workflows": { workflow: SAMPLE },
    "POST /triggers": {
      name: `t-${randomBytes(4).toString("hex")}`,
      workflow: HOOK_WORKFLOW,
      secret: "s".repeat(20),
    },
    "POST /keys": { name: "sneaky" },
    "POST /schedules": { name: `s-${randomBytes(4).toString("hex")}`, cron: "0 3 * * *", workflow: SAMPLE },
    "PATCH /schedules/{name}": { paused: true },
    "POST /validate": { workflow: SAMPLE },
  };
  const body = bodies[`${op.method} ${op.template}`];
  const init: RequestInit = { method: op.method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)["content-type"] = "application/json";
  }
  return { path, init };
}

/** The answer must be `status` with the error shape; the state must be what it was. */
async function expectRefused(
  res: Response,
  status: number,
  before: Fingerprint,
  what: string,
): Promise<unknown> {
  const text = await res.text();
  expect(res.status, `${what}: ${text.slice(0, 200)}`).toBe(status);
  const body = JSON.parse(text) as { error: { code: string; message: string } };
  expect(typeof body.error.code, what).toBe("string");
  expect(typeof body.error.message, what).toBe("string");
  if (status === 401 && !what.startsWith("POST /hooks"))
    expect(res.headers.get("www-authenticate"), what).toContain("Bearer");
  expect(h.errors.splice(0), what).toEqual([]);
  expect(fingerprintDiff(before, await probe.fingerprint()), what).toBe("");
  return body;
}

const protectedOps = () => operations(doc).filter((o) => o.op.security.length > 0);
/** The routes of an owner's credentials (not a run's log-stream token). */
const ownerOps = () => operations(doc).filter((o) => o.op.security.some((s) => "bearer" in (s as object)));
/** The routes a running worker calls with its run's token. */
const runTokenOps = () =>
  operations(doc).filter((o) => o.op.security.some((s) => "runToken" in (s as object)));

describe("bearer credentials that must not work", () => {
  /** Credentials each protected route must refuse with 401. */
  async function badCredentials(): Promise<[string, Record<string, string>][]> {
    const now = Math.floor(h.clock.now / 1000);
    const claims = { sub: "alice", exp: now + 3600, role: "authenticated" };
    const good = await signJwt(claims, JWT_SECRET);
    const [head = "", payload = "", signature = ""] = good.split(".");
    const macWith = async (header: object, body: Record<string, unknown>, secret: string) => {
      const token = await signJwt(body, secret);
      const [, p = "", s = ""] = token.split(".");
      // Same payload, another header: the MAC no longer covers what is sent, except where re-signed below.
      return `${b64(header)}.${p}.${s}`;
    };
    const hs = async (header: object, body: object, secret = JWT_SECRET) => {
      // A token whose header says `header`, MAC'd correctly over exactly what is sent, with `secret`.
      const unsigned = `${b64(header)}.${b64(body)}`;
      return `${unsigned}.${createHmac("sha256", secret).update(unsigned).digest("base64url")}`;
    };
    const flipped = signature.slice(0, -2) + (signature.at(-2) === "A" ? "B" : "A") + signature.at(-1);
    return [
      ["no Authorization", {}],
      ["an empty Authorization", { authorization: "" }],
      ["Bearer and nothing", { authorization: "Bearer" }],
      ["Bearer and blanks", { authorization: "Bearer   " }],
      ["Basic credentials", { authorization: `Basic ${Buffer.from("alice:pw").toString("base64")}` }],
      ["the token without Bearer", { authorization: API_TOKEN }],
      ["another scheme", { authorization: `Token ${API_TOKEN}` }],
      ["two tokens", { authorization: `Bearer ${API_TOKEN} ${API_TOKEN}` }],
      ["the API token with a character more", bearer(`${API_TOKEN}x`)],
      ["the API token with a character less", bearer(API_TOKEN.slice(0, -1))],
      ["the API token in upper case", bearer(API_TOKEN.toUpperCase())],
      ["a 64 KiB token", bearer("x".repeat(64 * 1024))],
      ["an unknown API key", bearer(`dwop_${randomBytes(24).toString("hex")}`)],
      ["a revoked API key", revokedKey],
      ["an expired JWT", bearer(await signJwt({ ...claims, exp: now - 1 }, JWT_SECRET))],
      ["a JWT expiring now", bearer(await signJwt({ ...claims, exp: now }, JWT_SECRET))],
      ["a JWT without exp", bearer(await signJwt({ sub: "alice" }, JWT_SECRET))],
      ["a JWT with a string exp", bearer(await signJwt({ ...claims, exp: String(now + 3600) }, JWT_SECRET))],
      ["a JWT not valid yet", bearer(await signJwt({ ...claims, nbf: now + 600 }, JWT_SECRET))],
      ["a JWT without sub", bearer(await signJwt({ exp: now + 3600 }, JWT_SECRET))],
      ["a JWT with an empty sub", bearer(await signJwt({ ...claims, sub: "" }, JWT_SECRET))],
      ["a JWT with a numeric sub", bearer(await signJwt({ ...claims, sub: 42 }, JWT_SECRET))],
      ["a JWT whose sub holds NUL", bearer(await signJwt({ ...claims, sub: "alice\u0000" }, JWT_SECRET))],
      [
        "a JWT whose sub is half a surrogate pair",
        bearer(await signJwt({ ...claims, sub: "\ud800" }, JWT_SECRET)),
      ],
      [
        "a JWT whose sub holds a newline",
        bearer(await signJwt({ ...claims, sub: "alice\nbob" }, JWT_SECRET)),
      ],
      [
        "a JWT with a 257-character sub",
        bearer(await signJwt({ ...claims, sub: "a".repeat(257) }, JWT_SECRET)),
      ],
      ["a JWT signed with another secret", bearer(await signJwt(claims, "another-secret-0123456789abcdef"))],
      ["a JWT signed with an empty secret", bearer(await hs({ alg: "HS256", typ: "JWT" }, claims, ""))],
      ["a JWT whose payload was swapped", bearer(`${head}.${b64({ ...claims, sub: "bob" })}.${signature}`)],
      ["a JWT with a flipped signature", bearer(`${head}.${payload}.${flipped}`)],
      ["a JWT without a signature", bearer(`${head}.${payload}.`)],
      ["alg none", bearer(`${b64({ alg: "none", typ: "JWT" })}.${payload}.`)],
      ["alg None with the real signature", bearer(`${b64({ alg: "None" })}.${payload}.${signature}`)],
      ["alg NONE", bearer(`${b64({ alg: "NONE" })}.${payload}.`)],
      ["alg HS512, correctly MAC'd with the secret", bearer(await hs({ alg: "HS512", typ: "JWT" }, claims))],
      [
        "alg RS256, MAC'd with the secret (alg confusion)",
        bearer(await hs({ alg: "RS256", typ: "JWT" }, claims)),
      ],
      ["alg ES256 with a header swapped in", bearer(await macWith({ alg: "ES256" }, claims, JWT_SECRET))],
      [
        "a kid pointing at a file, MAC'd with an empty key",
        bearer(await hs({ alg: "HS256", kid: "../../../dev/null" }, claims, "")),
      ],
      ["no alg", bearer(await hs({ typ: "JWT" }, claims))],
      ["a header that is not JSON", bearer(`${b64("{not json")}.${payload}.${signature}`)],
      ["a payload that is an array", bearer(await hs({ alg: "HS256" }, [claims] as unknown as object))],
      ["four segments", bearer(`${good}.${signature}`)],
      ["base64 with padding", bearer(`${head}==.${payload}.${signature}`)],
      ["base64 with + and /", bearer(`${head.replace(/-/g, "+")}+/.${payload}.${signature}`)],
      ["a JWT with blanks inside", bearer(`${head}. ${payload}.${signature}`)],
    ];
  }

  it("refuses each on every protected route with 401, changing nothing", async () => {
    const cases = await badCredentials();
    const ops = protectedOps();
    expect(ops.length).toBeGreaterThanOrEqual(17);
    const before = await probe.fingerprint();
    let requests = 0;
    for (const op of ops) {
      for (const [label, headers] of cases) {
        const { path, init } = requestOf(op, headers);
        await expectRefused(
          await h.app.request(path, init),
          401,
          before,
          `${op.method} ${path} with ${label}`,
        );
        requests++;
      }
    }
    console.log(`auth: ${requests} requests with bad credentials, all 401`);
  });

  it("refuses random and JWT-shaped tokens", async () => {
    const ops = protectedOps();
    const before = await probe.fingerprint();
    const segment = fc.string({
      unit: fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
      maxLength: 60,
    });
    const token = fc.oneof(
      fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 300 }),
      fc.tuple(segment, segment, segment).map((parts) => parts.join(".")),
      fc.tuple(fc.jsonValue(), fc.jsonValue()).map(([a, b]) => `${b64(a ?? null)}.${b64(b ?? null)}.${b64("sig")}`),
      fc.string({ minLength: 1, maxLength: 40 }).map((s) => `dwop_${s.replace(/\s/g, "")}`),
    ); // prettier-ignore
    await fc.assert(
      fc.asyncProperty(fc.nat(ops.length - 1), token, async (i, t) => {
        fc.pre(t !== API_TOKEN && !/\s/.test(t));
        const op = ops[i]!;
        const { path, init } = requestOf(op, bearer(t));
        await expectRefused(
          await h.app.request(path, init),
          401,
          before,
          `${op.method} ${path} with ${JSON.stringify(t).slice(0, 80)}`,
        );
      }),
      { seed: SEED, numRuns: 300 },
    );
  });
});

describe("another owner's ids", () => {
  const callers = () =>
    [
      ["bob (JWT)", bob],
      ["bob (API key)", bobKey],
      ["the static API token (owner local)", bearer(API_TOKEN)],
    ] as const;

  it("are refused with 401 on a run's routes, which take that run's token and no owner's", async () => {
    const ops = runTokenOps();
    expect(ops.map((o) => `${o.method} ${o.template}`)).toContain("POST /runs/{runId}/log");
    const before = await probe.fingerprint();
    for (const op of ops) {
      for (const [label, headers] of [...callers(), ["alice (JWT)", alice] as const]) {
        const { path, init } = requestOf(op, headers);
        await expectRefused(await h.app.request(path, init), 401, before, `${op.method} ${path} as ${label}`);
      }
    }
  });

  it("answer 404 on every route that takes an id, exactly as an id that does not exist, changing nothing", async () => {
    // Pools and a key's cap are the operator's (the static API token changes them; owners get 403): not
    // an owner's ids, and checked in pools.api.test.ts.
    const operators = (o: Operation) =>
      o.template.startsWith("/pools") || (o.method === "PATCH" && o.template === "/keys/{id}");
    const withIds = ownerOps().filter((o) => pathParams(o.template).length > 0 && !operators(o));
    expect(withIds.map((o) => `${o.method} ${o.template}`)).toEqual(
      expect.arrayContaining([
        "GET /workflows/{id}/runs/{runId}",
        "DELETE /triggers/{name}",
        "PATCH /schedules/{name}",
        "DELETE /keys/{id}",
        "POST /workflows/{id}/retry",
      ]),
    );
    const before = await probe.fingerprint();
    for (const op of withIds) {
      // Alice herself may read (writes are checked at the end, once the refusals are done).
      const { path, init } = requestOf(op, alice);
      if (op.method === "GET" && !op.template.endsWith("/events")) {
        expect((await h.app.request(path, init)).status, `alice: ${op.method} ${path}`).toBe(200);
      }
      for (const [label, headers] of callers()) {
        const { path: p, init: i } = requestOf(op, headers);
        if (op.template === "/keys/{id}" && headers === bobKey) {
          // An API key may not manage keys at all: 403 before any key is looked up.
          await expectRefused(await h.app.request(p, i), 403, before, `${op.method} ${p} as ${label}`);
          continue;
        }
        const answer = await expectRefused(
          await h.app.request(p, i),
          404,
          before,
          `${op.method} ${p} as ${label}`,
        );
        // The same answer as for a workflow, run, trigger or key that never existed.
        const ghost = pathWith(op.template, (param) =>
          op.template.startsWith("/triggers") || op.template.startsWith("/schedules") ? "nobody-here" : { id: crypto.randomUUID(), runId: "999999999", name: "nobody_here" }[param]!,
        ); // prettier-ignore
        const other = await expectRefused(
          await h.app.request(ghost, requestOf(op, headers).init),
          404,
          before,
          `${op.method} ${ghost}`,
        );
        expect(answer, `${op.method} ${p} as ${label}`).toEqual(other);
      }
    }
  });

  it("mix no ids across owners: a run, task or output is found only under its own workflow", async () => {
    const before = await probe.fingerprint();
    const paths = [
      [alice, `/workflows/${mine.failed}/runs/${mine.bobRunId}`],
      [bob, `/workflows/${mine.bobWorkflow}/runs/${mine.runId}`],
      [alice, `/workflows/${mine.bobWorkflow}/runs/${mine.bobRunId}`],
    ] as const;
    for (const [headers, path] of paths)
      await expectRefused(await h.app.request(path, { headers }), 404, before, path);
  });

  it("never list another owner's workflows, triggers or keys, whatever the cursor or search", async () => {
    for (const [label, headers] of callers()) {
      const lists = await Promise.all(
        [
          `/workflows?cursor=${mine.failed}`,
          "/workflows?limit=100",
          `/ui/api/workflows?q=${mine.failed.slice(0, 8)}`,
          `/ui/api/workflows?cursor=${mine.queued}&limit=100`,
          "/triggers",
          "/schedules",
          "/keys",
        ].map(async (path) => [path, await (await h.app.request(path, { headers })).text()] as const),
      );
      for (const [path, text] of lists) {
        for (const secret of [
          mine.failed,
          mine.queued,
          mine.keyId,
          "alice-hook",
          "alice-nightly",
          ALICE_SECRET,
        ]) {
          expect(text.includes(secret), `${label} ${path} shows ${secret}`).toBe(false);
        }
      }
    }
  });

  it("were real targets: alice herself cancels, retries and deletes them afterwards", async () => {
    const ok = async (method: string, path: string, status: number) =>
      expect((await h.app.request(path, { method, headers: alice })).status, `${method} ${path}`).toBe(
        status,
      );
    await ok("POST", `/workflows/${mine.queued}/cancel`, 200);
    await ok("POST", `/workflows/${mine.failed}/retry`, 200);
    await ok("DELETE", `/keys/${mine.keyId}`, 204);
  });
});

describe("webhook deliveries that must not start anything", () => {
  const deliver = (id: string, body: string, headers: Record<string, string>) =>
    h.app.request(`/hooks/${id}`, { method: "POST", headers, body });
  const workflows = async () =>
    (await h.m.db<{ n: number }[]>`select count(*)::int as n from dwop.workflows`)[0]!.n;

  it("refuses unsigned, forged, stale and mis-addressed deliveries", async () => {
    const body = '{"ref":"refs/heads/main"}';
    const now = h.clock.now;
    const ts = String(Math.floor(now / 1000));
    const good = await signedHeaders(ALICE_SECRET, body, "good-1", now, mine.hook);
    const sig = good["X-DWOP-Signature"]!;
    const cases: [string, string, Record<string, string>, number][] = [
      ["no headers", body, {}, 401],
      ["signed with bob's secret", body, await signedHeaders(BOB_SECRET, body, "f1", now, mine.hook), 401],
      [
        "signed with a guessable secret",
        body,
        { ...good, "X-DWOP-Signature": await signPayload("secret", ts, body, mine.hook) },
        401,
      ],
      ["the body changed", `${body} `, good, 401],
      ["an empty body", "", good, 401],
      ["another timestamp than signed", body, { ...good, "X-DWOP-Timestamp": String(Number(ts) + 1) }, 401],
      ["sha1=", body, { ...good, "X-DWOP-Signature": sig.replace("sha256=", "sha1=") }, 401],
      ["no prefix", body, { ...good, "X-DWOP-Signature": sig.slice(7) }, 401],
      ["63 hex digits", body, { ...good, "X-DWOP-Signature": sig.slice(0, -1) }, 401],
      ["65 hex digits", body, { ...good, "X-DWOP-Signature": `${sig}0` }, 401],
      ["not hex", body, { ...good, "X-DWOP-Signature": `sha256=${"z".repeat(64)}` }, 401],
      ["two signatures", body, { ...good, "X-DWOP-Signature": `${sig}, ${sig}` }, 401],
      ["stale by 301 s", body, await signedHeaders(ALICE_SECRET, body, "f2", now - 301_000, mine.hook), 401],
      [
        "301 s in the future",
        body,
        await signedHeaders(ALICE_SECRET, body, "f3", now + 301_000, mine.hook),
        401,
      ],
      ["a timestamp in ms", body, { ...good, "X-DWOP-Timestamp": String(now) }, 401],
      ["a negative timestamp", body, { ...good, "X-DWOP-Timestamp": `-${ts}` }, 401],
      ["a fractional timestamp", body, { ...good, "X-DWOP-Timestamp": `${ts}.0` }, 401],
      ["a timestamp with a plus", body, { ...good, "X-DWOP-Timestamp": `+${ts}` }, 401],
      ["no delivery id", body, { ...good, "X-DWOP-Delivery": "" }, 400],
      ["a delivery id with a blank", body, { ...good, "X-DWOP-Delivery": "a b" }, 400],
      ["a 201-character delivery id", body, { ...good, "X-DWOP-Delivery": "d".repeat(201) }, 400],
    ];
    const before = await probe.fingerprint();
    for (const [what, sent, headers, status] of cases) {
      await expectRefused(
        await deliver(mine.hook, sent, headers),
        status,
        before,
        `POST /hooks alice-hook: ${what}`,
      );
    }
    // Bob's valid delivery, sent to alice's trigger: computed for another trigger.
    const forBob = await signedHeaders(BOB_SECRET, body, "bob-1", now, mine.bobHook);
    await expectRefused(
      await deliver(mine.hook, body, forBob),
      401,
      before,
      "POST /hooks: bob's delivery at alice's trigger",
    );
    // Alice's secret, but signed for bob's trigger, or for none (as callbacks are signed).
    for (const [what, other] of [
      ["bob's trigger", mine.bobHook],
      ["no trigger", undefined],
    ] as const) {
      const headers = await signedHeaders(ALICE_SECRET, body, "f4", now, other);
      await expectRefused(
        await deliver(mine.hook, body, headers),
        401,
        before,
        `POST /hooks: signed for ${what}`,
      );
    }
    for (const [what, id] of [
      ["unknown trigger", crypto.randomUUID()],
      ["the trigger's name", "alice-hook"],
      ["an id one character off", `${mine.hook.slice(0, -1)}${mine.hook.endsWith("0") ? "1" : "0"}`],
    ]) {
      await expectRefused(await deliver(id!, body, good), 404, before, `POST /hooks: ${what}`);
    }
  });

  it("refuses random changes to a valid delivery", async () => {
    const body = '{"n":1}';
    const good = await signedHeaders(ALICE_SECRET, body, "mutant", h.clock.now, mine.hook);
    const before = await probe.fingerprint();
    const flip = (text: string, at: number, ch: string) => {
      const i = at % Math.max(1, text.length);
      const next = text.slice(0, i) + ch + text.slice(i + 1);
      return next === text ? `${text}${ch}` : next;
    };
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("body", "X-DWOP-Signature", "X-DWOP-Timestamp"), fc.nat(), fc.constantFrom(..."0123456789abcdef{}x ="), async (part, at, ch) => {
        const headers = { ...good };
        let sent = body;
        if (part === "body") sent = flip(body, at, ch);
        else headers[part] = flip(headers[part]!, part === "X-DWOP-Signature" ? 7 + (at % 64) : at, ch);
        fc.pre(sent !== body || headers[part] !== good[part]);
        await expectRefused(await deliver(mine.hook, sent, headers), 401, before, `POST /hooks: ${part} changed at ${at} to ${ch}`);
      }),
      { seed: SEED, numRuns: 200 },
    ); // prettier-ignore
  });

  it("starts a delivery once: a replay is refused with the same id, a new id, or re-signed", async () => {
    const body = '{"deploy":42}';
    const good = await signedHeaders(ALICE_SECRET, body, "deploy-42", h.clock.now, mine.hook);
    const count = await workflows();
    expect((await deliver(mine.hook, body, good)).status).toBe(202);
    expect(await workflows()).toBe(count + 1);
    const before = await probe.fingerprint();
    await expectRefused(
      await deliver(mine.hook, body, good),
      409,
      before,
      "POST /hooks: the same delivery again",
    );
    // The delivery id is not signed: a captured request sent again with a new id is still a replay.
    const renamed = { ...good, "X-DWOP-Delivery": "deploy-42-again" };
    await expectRefused(
      await deliver(mine.hook, body, renamed),
      409,
      before,
      "POST /hooks: the same signed request, another id",
    );
    await expectRefused(
      await deliver(mine.hook, body, {
        ...good,
        "X-DWOP-Signature": good["X-DWOP-Signature"]!.toUpperCase().replace("SHA256", "sha256"),
      }),
      409,
      before,
      "POST /hooks: the signature in upper case",
    );
    h.clock.now += 30_000;
    const resigned = await signedHeaders(ALICE_SECRET, body, "deploy-42", h.clock.now, mine.hook);
    const res = await deliver(mine.hook, body, resigned);
    expect(res.status, "POST /hooks: re-signed later, same id").toBe(409);
    // Its new signature is recorded (so its own replays are known), but nothing is started.
    const started = ["workflows", "tasks", "outbox", "runs", "events"];
    const after = await probe.fingerprint();
    for (const table of started) expect(after.tables[table], table).toBe(before.tables[table]);
    // Five minutes on, the captured request is stale rather than a replay.
    h.clock.now += 301_000;
    await expectRefused(
      await deliver(mine.hook, body, { ...good, "X-DWOP-Delivery": "late" }),
      401,
      after,
      "POST /hooks: stale",
    );
    h.clock.now -= 331_000;
    expect(await workflows()).toBe(count + 1);
  });
});
