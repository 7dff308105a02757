import { lookup } from "node:dns/promises";
import { readdir } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Claimer } from "../cron/claimer.ts";
import { WorkflowDetail } from "../functions/schemas.ts";
import type { Bus, OutgoingMessage } from "../shared/bus/bus.ts";
import { DELIVERY_FAILED } from "../shared/callbacks.ts";
import type { Logger } from "../shared/log.ts";
import { forbiddenReason, parseAllowList, parseIp } from "../shared/net/addresses.ts";
import { systemResolver, type ResolveHost } from "../shared/net/callback-target.ts";
import { pinnedTransport } from "../shared/net/pinned-post.ts";
import { checkSignature } from "../shared/signature.ts";
import { apiHarness, driveToEnd, SAMPLE, workflowIds, type ApiHarness } from "./support/api.ts";

const SECRET = "callback-secret-0123456789";
/** The test receivers listen on 127.0.0.1, which callbacks may reach only when an operator allows it. */
const LOOPBACK_ALLOWED = parseAllowList("127.0.0.1/32");

/** A resolver that knows only the names it is given (tests never wait on real DNS). */
function fakeDns(names: Record<string, string[]>): ResolveHost {
  return (name) =>
    Object.hasOwn(names, name)
      ? Promise.resolve(names[name]!)
      : Promise.reject(new Error(`getaddrinfo ENOTFOUND ${name}`));
}

interface Received {
  headers: IncomingMessage["headers"];
  body: string;
}

/** A receiver that answers each POST with the next status of `statuses` (the last one repeats). */
async function receiver(statuses: number[]): Promise<{ url: string; received: Received[]; server: Server }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      const status = statuses[Math.min(received.length - 1, statuses.length - 1)]!;
      if (status === 0) return; // never answers
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/done`, received, server };
}

/** A bus that records what it is asked to publish and confirms it all. */
function recordingBus(): Bus & { published: OutgoingMessage[] } {
  const published: OutgoingMessage[] = [];
  return {
    published,
    publish: (messages) => {
      published.push(...messages);
      return Promise.resolve(messages.map((m) => m.outboxId));
    },
    consume: () => Promise.reject(new Error("not a consumer")),
    depth: () => Promise.resolve(0),
    close: () => Promise.resolve(),
  };
}

async function until<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 25));
  }
}

let h: ApiHarness;
let server: Server | null = null;
let claimer: Claimer | null = null;

beforeEach(async (ctx) => {
  h = await apiHarness(ctx.task.name, {
    settings: { callbackAllow: LOOPBACK_ALLOWED },
    resolveHost: fakeDns({ "receiver.test": ["127.0.0.1"], "public.test": ["93.184.216.34"] }),
  });
});
afterEach(async (ctx) => {
  server?.closeAllConnections();
  server?.close();
  await claimer?.stop();
  server = claimer = null;
  await h.close(ctx.task.result?.state === "pass");
});

async function submitWithCallback(url: string, workflow = SAMPLE): Promise<string> {
  const body = { workflow, callback_url: url, callback_secret: SECRET };
  const res = await h.postJson("/workflows", body, await h.as("alice"));
  expect(res.status).toBe(201);
  return WorkflowDetail.parse(await res.json()).id;
}

async function callbackRows() {
  return h.m.db<
    {
      id: string;
      published: boolean;
      gave_up: boolean;
      delivery_attempts: number;
      payload: { summary: unknown };
    }[]
  >`
    select id, published_at is not null as published, gave_up_at is not null as gave_up, delivery_attempts, payload
    from dwop.outbox where topic = 'workflow.callback' order by id`;
}

/** What the claimer logged, as [message, fields]. */
let logged: [string | undefined, object][] = [];
const capturing: Logger = {
  debug: (obj, msg) => logged.push([msg, obj]),
  info: (obj, msg) => logged.push([msg, obj]),
  warn: (obj, msg) => logged.push([msg, obj]),
  error: (obj, msg) => logged.push([msg, obj]),
  child: () => capturing,
};

async function startClaimer(bus: Bus, callbacks: ConstructorParameters<typeof Claimer>[2]["callbacks"]) {
  logged = [];
  claimer = new Claimer(h.m.store, bus, {
    id: "callback-claimer",
    batchSize: 100,
    leaseSeconds: 30,
    pollMs: 50,
    logger: capturing,
    callbacks: { allow: LOOPBACK_ALLOWED, ...callbacks },
  });
  await claimer.start();
}

describe("completion callbacks", () => {
  it("are queued by the transaction that ends the workflow, cancel included, and only when asked for", async () => {
    const plain = await h.postJson("/workflows", { workflow: SAMPLE }, await h.as("alice"));
    expect(plain.status).toBe(201);
    const id = await submitWithCallback("http://127.0.0.1:9/x");
    await driveToEnd(h.m); // claims task rows only: callback rows are not for the bus
    const [row, ...rest] = await callbackRows();
    expect(rest).toEqual([]);
    expect(row).toMatchObject({ published: false, delivery_attempts: 0 });
    expect(row!.payload.summary).toMatchObject({
      id,
      status: "succeeded",
      tasks: [
        { name: "extract", status: "succeeded", attempts: 1, error: null },
        { name: "shout", status: "succeeded", attempts: 1, error: null },
      ],
    });
    const cancelled = await submitWithCallback("http://127.0.0.1:9/x");
    await h.app.request(`/workflows/${cancelled}/cancel`, { method: "POST", headers: await h.as("alice") });
    expect((await callbackRows()).map((r) => (r.payload.summary as { status: string }).status)).toEqual([
      "succeeded",
      "cancelled",
    ]);
  });

  it("refuses a callback URL without a secret", async () => {
    const res = await h.postJson(
      "/workflows",
      { workflow: SAMPLE, callback_url: "http://x.test/" },
      await h.as("a"),
    );
    expect(res.status).toBe(422);
  });

  it("POST the signed summary, retried with backoff until a 2xx", async () => {
    const r = await receiver([500, 502, 204]);
    server = r.server;
    const id = await submitWithCallback(r.url);
    await driveToEnd(h.m);
    await startClaimer(recordingBus(), { backoffMs: 50 });
    const [row] = await until(async () => {
      const rows = await callbackRows();
      return rows[0]?.published ? rows : undefined;
    });
    expect(row).toMatchObject({ gave_up: false, delivery_attempts: 3 });
    expect(r.received).toHaveLength(3);
    for (const got of r.received) {
      const headers = {
        signature: got.headers["x-dwop-signature"] as string,
        timestamp: got.headers["x-dwop-timestamp"] as string,
      };
      expect(
        await checkSignature(SECRET, headers, new TextEncoder().encode(got.body), Date.now()),
      ).toBeNull();
      expect(got.headers["x-dwop-delivery"]).toBe(`callback-${row!.id}`); // the same id on every try
      expect(got.headers["content-type"]).toBe("application/json");
      expect(JSON.parse(got.body)).toMatchObject({ id, status: "succeeded" });
    }
    const events = await h.m.db<{ status: string; attempt: number }[]>`
      select status, attempt from dwop.events where workflow_id = ${id} and kind = 'callback' order by id`;
    expect(events).toEqual([
      { status: "retrying", attempt: 1 },
      { status: "retrying", attempt: 2 },
      { status: "delivered", attempt: 3 },
    ]);
  });

  it("give up after the last try", async () => {
    const r = await receiver([503]);
    server = r.server;
    const id = await submitWithCallback(r.url);
    await driveToEnd(h.m);
    await startClaimer(recordingBus(), { backoffMs: 20, maxAttempts: 3 });
    const [row] = await until(async () => {
      const rows = await callbackRows();
      return rows[0]?.published ? rows : undefined;
    });
    expect(row).toMatchObject({ gave_up: true, delivery_attempts: 3 });
    expect(r.received).toHaveLength(3);
    const [last] = await h.m.db<{ status: string; data: { error: string } }[]>`
      select status, data from dwop.events where workflow_id = ${id} and kind = 'callback' order by id desc limit 1`;
    // The receiver's answer is not for the tenant to see: it would map which internal ports answer how.
    expect(last).toEqual({ status: "failed", data: { error: DELIVERY_FAILED } });
    const [outbox] = await h.m.db<
      { last_error: string }[]
    >`select last_error from dwop.outbox where topic = 'workflow.callback'`;
    expect(outbox!.last_error).toBe(DELIVERY_FAILED);
    // The operator still sees what happened, in the log.
    expect(logged.filter(([msg]) => msg?.startsWith("completion callback"))).toEqual([
      [
        "completion callback failed; will try again",
        expect.objectContaining({ attempt: 1, error: "HTTP 503" }),
      ],
      [
        "completion callback failed; will try again",
        expect.objectContaining({ attempt: 2, error: "HTTP 503" }),
      ],
      ["completion callback given up", expect.objectContaining({ attempt: 3, error: "HTTP 503" })],
    ]);
  });

  it("doubles the delay after each failed try, up to an hour", async () => {
    await submitWithCallback("http://127.0.0.1:9/x");
    await driveToEnd(h.m);
    const delays: number[] = [];
    let now = new Date("2030-01-01T00:00:00Z");
    for (let i = 0; i < 14; i++) {
      const [claimed] = await h.m.db<
        { id: string }[]
      >`select id from dwop.claim_outbox_events('c', 10, 30, ${now}, 'workflow.callback')`;
      await h.m.db`select dwop.record_callback_result('c', ${claimed!.id}, 'HTTP 500', 20, 1000, ${now})`;
      const [row] = await h.m.db<
        { available_at: Date }[]
      >`select available_at from dwop.outbox where id = ${claimed!.id}`;
      delays.push((row!.available_at.getTime() - now.getTime()) / 1000);
      now = row!.available_at;
    }
    expect(delays).toEqual([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600]);
  });

  it("never hold up task messages while a receiver is slow", async () => {
    const r = await receiver([0]);
    server = r.server;
    await submitWithCallback(r.url);
    await driveToEnd(h.m);
    const bus = recordingBus();
    await startClaimer(bus, { timeoutMs: 10_000 });
    await until(() => r.received.length === 1);
    const started = Date.now();
    await h.postJson("/workflows", { workflow: SAMPLE }, await h.as("alice"));
    await until(() => bus.published.length === 1);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect((await callbackRows())[0]?.published).toBe(false); // still waiting for its answer
  });
});

describe("callback addresses", () => {
  const refused = [
    "http://127.0.0.1/",
    "http://127.0.0.2:8080/x",
    "http://10.0.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:7f00:1::]/",
    "http://[fe80::1]/",
    "http://[fd00:ec2::254]/",
    "http://[::]/",
    "http://0.0.0.0:5432/",
    "http://100.64.0.1/",
    "http://100.100.100.200/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://224.0.0.1/",
    "http://localhost:5432/",
    "http://api.localhost/",
    "http://2130706433/", // 127.0.0.1 as one decimal number
    "http://0177.0.0.1/", // octal
    "http://0x7f.1/", // hex, with the last part covering three bytes
    "https://rebind.test/", // a name that resolves to loopback
    "https://split.test/", // one public and one private address: every address must pass
  ];

  it("refuses (422) a callback URL that is or resolves to a loopback, private, link-local or metadata address, storing nothing", async () => {
    const strict = await apiHarness("strict_callbacks", {
      resolveHost: fakeDns({ "rebind.test": ["127.0.0.1"], "split.test": ["93.184.216.34", "10.1.2.3"] }),
    });
    try {
      for (const url of refused) {
        const res = await strict.postJson(
          "/workflows",
          { workflow: SAMPLE, callback_url: url, callback_secret: SECRET },
          await strict.as("alice"),
        );
        const body = (await res.json()) as { error: { code: string; message: string } };
        expect({ url, status: res.status, code: body.error.code }).toEqual({
          url,
          status: 422,
          code: "callback_refused",
        });
        expect(body.error.message).toMatch(/callback/);
        expect(body.error.message).not.toMatch(/10\.1\.2\.3|127\.0\.0\.1 ?\)/); // never which address a name has
      }
      expect(await workflowIds(strict.m)).toEqual([]);
      expect(await strict.m.db`select 1 from dwop.submissions`).toHaveLength(0);
      const files = await readdir(strict.storageRoot, { recursive: true });
      expect(files).toEqual([]);
    } finally {
      await strict.close(true);
    }
  });

  it("resolve names with the system's resolver by default: this machine's own name is refused", async (ctx) => {
    const own = hostname();
    const addresses = await lookup(own, { all: true }).catch(() => []);
    const forbidden = addresses.some((a) => {
      const parsed = parseIp(a.address);
      return parsed !== null && forbiddenReason(parsed) !== null;
    });
    if (!forbidden) ctx.skip(); // a machine whose name resolves to a public address proves nothing here
    const system = await apiHarness("system_resolver", { resolveHost: systemResolver() });
    try {
      const res = await system.postJson(
        "/workflows",
        { workflow: SAMPLE, callback_url: `http://${own}:8080/`, callback_secret: SECRET },
        await system.as("alice"),
      );
      expect(res.status).toBe(422);
      expect((await res.json()) as unknown).toMatchObject({ error: { code: "callback_refused" } });
    } finally {
      await system.close(true);
    }
  });

  it("accept public addresses, names that do not resolve here (the sender checks them), and what the allow-list allows", async () => {
    const allowing = await apiHarness("allowing_callbacks", {
      settings: { callbackAllow: parseAllowList("10.0.0.0/8, localhost, *.svc.cluster.local") },
      resolveHost: fakeDns({ "public.test": ["93.184.216.34"], "hook.ns.svc.cluster.local": ["10.96.0.12"] }),
    });
    try {
      for (const url of [
        "https://93.184.216.34/hook",
        "https://[2606:4700:4700::1111]/hook",
        "https://public.test/hook",
        "https://not-resolvable.example/hook",
        "http://10.0.0.1/in-cluster",
        "http://localhost:9/x",
        "http://hook.ns.svc.cluster.local/done",
      ]) {
        const res = await allowing.postJson(
          "/workflows",
          { workflow: SAMPLE, callback_url: url, callback_secret: SECRET },
          await allowing.as("alice"),
        );
        expect({ url, status: res.status }).toEqual({ url, status: 201 });
      }
      const res = await allowing.postJson(
        "/workflows",
        { workflow: SAMPLE, callback_url: "http://192.168.0.1/", callback_secret: SECRET },
        await allowing.as("alice"),
      );
      expect(res.status).toBe(422); // the allow-list allows 10/8, not every private block
    } finally {
      await allowing.close(true);
    }
  });

  it("are checked again when sent: an address the sender's allow-list does not allow is never connected to", async () => {
    const r = await receiver([204]);
    server = r.server;
    const id = await submitWithCallback(r.url); // the API allows 127.0.0.1; the sender below does not
    await driveToEnd(h.m);
    claimer = new Claimer(h.m.store, recordingBus(), {
      id: "strict-claimer",
      batchSize: 100,
      leaseSeconds: 30,
      pollMs: 50,
      callbacks: { maxAttempts: 1 },
    });
    await claimer.start();
    const [row] = await until(async () => {
      const rows = await callbackRows();
      return rows[0]?.published ? rows : undefined;
    });
    expect(row).toMatchObject({ gave_up: true, delivery_attempts: 1 });
    expect(r.received).toEqual([]);
    const events = await h.m.db<{ status: string; data: { error: string } }[]>`
      select status, data from dwop.events where workflow_id = ${id} and kind = 'callback'`;
    expect(events).toEqual([{ status: "failed", data: { error: DELIVERY_FAILED } }]);
  });

  it("are sent to the address the sender resolved and checked, with the URL's host in the Host header", async () => {
    const r = await receiver([204]);
    server = r.server;
    const port = new URL(r.url).port;
    // receiver.test exists only in this test's resolver: a connection made by any other lookup fails.
    await submitWithCallback(`http://receiver.test:${port}/done`);
    await driveToEnd(h.m);
    const transport = pinnedTransport(LOOPBACK_ALLOWED, fakeDns({ "receiver.test": ["127.0.0.1"] }));
    await startClaimer(recordingBus(), { transport });
    await until(() => r.received.length === 1);
    expect(r.received[0]!.headers.host).toBe(`receiver.test:${port}`);
  });

  it("are refused when sent if the name now resolves elsewhere (DNS rebinding after the submit check)", async () => {
    const r = await receiver([204]);
    server = r.server;
    const port = new URL(r.url).port;
    await submitWithCallback(`http://public.test:${port}/done`); // public when submitted
    await driveToEnd(h.m);
    const rebound = fakeDns({ "public.test": ["127.0.0.1"] });
    const transport = pinnedTransport(parseAllowList(""), rebound);
    await startClaimer(recordingBus(), { transport, maxAttempts: 1 });
    await until(async () => (await callbackRows())[0]?.published);
    expect((await callbackRows())[0]).toMatchObject({ gave_up: true });
    expect(r.received).toEqual([]);
  });
});
