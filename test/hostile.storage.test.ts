import fc from "fast-check";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { signWorkerEnv } from "../dispatcher/worker-env.ts";
import type { WorkerEnv } from "../shared/executors/executor.ts";
import {
  CODE_BUCKET,
  DEFAULT_TASK_OPTIONS,
  OUTPUT_BUCKET,
  objectPaths,
  type RunAssignment,
} from "../shared/model.ts";
import { serveLocalStorage, type LocalStorageServer } from "../shared/storage/local-routes.ts";
import { SIGNED_PATH_PREFIX } from "../shared/storage/local.ts";
import { filesFingerprint, fingerprintDiff, type Fingerprint } from "./support/hostile-state.ts";

/**
 * Signed URLs of local storage, as a worker holds them (made by the dispatcher's signWorkerEnv): each
 * opens one object with one method until it expires. A tampered path, method, expiry or signature, reuse
 * after expiry, a traversing path, or one task's URL aimed at another task's or another workflow's
 * object is refused with 403, and nothing is read or written. Requests go over HTTP with the path exactly
 * as written (node:http does not normalise it, as fetch would).
 */

const SEED = Number(process.env.DWOP_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const TTL = 60;

let dir: string;
let root: string;
let clock: number;
let server: LocalStorageServer;
let passed = true;
const W1 = randomUUID();
const W2 = randomUUID();
/** Worker A runs W1/shout (reads W1/extract and inputs.doc); worker C runs W2/extract. */
let envA: WorkerEnv;
let envC: WorkerEnv;

function assignment(workflowId: string, taskName: string, params: RunAssignment["params"]): RunAssignment {
  return {
    runId: "1",
    workflowId,
    taskId: "1",
    taskName,
    attempt: 1,
    params,
    options: { ...DEFAULT_TASK_OPTIONS, timeoutSeconds: 1 },
    code: { offset: 0, length: 10 },
    hasRequirements: true,
  };
}

/** Every object of both workflows, as bucket/key. */
const OBJECTS = (): [string, string][] => [
  [CODE_BUCKET, objectPaths.codeBundle(W1)],
  [CODE_BUCKET, objectPaths.codeBundle(W2)],
  [CODE_BUCKET, objectPaths.requirements(W1)],
  [CODE_BUCKET, objectPaths.requirements(W2)],
  [CODE_BUCKET, objectPaths.input(W1, "doc")],
  [CODE_BUCKET, objectPaths.input(W2, "doc")],
  [OUTPUT_BUCKET, objectPaths.output(W1, "extract")],
  [OUTPUT_BUCKET, objectPaths.output(W1, "shout")],
  [OUTPUT_BUCKET, objectPaths.output(W2, "extract")],
  [OUTPUT_BUCKET, objectPaths.log(W1, "extract", 1)],
  [OUTPUT_BUCKET, objectPaths.log(W1, "shout", 1)],
  [OUTPUT_BUCKET, objectPaths.log(W2, "extract", 1)],
];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "dwop-hostile-storage-"));
  root = join(dir, "root");
  clock = Date.parse("2030-01-01T00:00:00Z");
  server = await serveLocalStorage({ root, secret: "hostile-storage-secret-0123", now: () => clock });
  for (const [bucket, key] of OBJECTS())
    await server.storage.put(bucket, key, `contents of ${bucket}/${key}`);
  const params = [
    { name: "raw", upstream: "extract" },
    { name: "doc", upstream: "inputs.doc" },
  ];
  envA = await signWorkerEnv(server.storage, assignment(W1, "shout", params), TTL);
  envC = await signWorkerEnv(server.storage, assignment(W2, "extract", []), TTL);
});

afterEach((ctx) => {
  if (ctx.task.result?.state !== "pass") passed = false;
});

afterAll(async () => {
  await server?.close();
  if (passed) await rm(dir, { recursive: true, force: true });
});

/** The worker's URLs with the method each is for. */
function urlsOf(env: WorkerEnv): { what: string; method: "GET" | "PUT"; url: URL }[] {
  const inputs = JSON.parse(env.DWOP_INPUTS) as { param: string; url: string }[];
  return [
    { what: "code", method: "GET", url: new URL(env.DWOP_CODE_URL!) },
    { what: "requirements", method: "GET", url: new URL(env.DWOP_REQUIREMENTS_URL!) },
    ...inputs.map((i) => ({ what: `input ${i.param}`, method: "GET" as const, url: new URL(i.url) })),
    { what: "output", method: "PUT", url: new URL(env.DWOP_OUTPUT_URL) },
    { what: "log", method: "PUT", url: new URL(env.DWOP_LOG_URL) },
  ];
}

/** One request with the path and query exactly as given. */
function send(method: string, pathAndQuery: string, body?: string): Promise<{ status: number; body: string }> {
  const { port } = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, method, path: pathAndQuery, headers: body === undefined ? {} : { "content-length": Buffer.byteLength(body) } },
      (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
} // prettier-ignore

const state = (): Promise<Fingerprint> => filesFingerprint(root);

async function expectForbidden(
  method: string,
  pathAndQuery: string,
  what: string,
  body?: string,
): Promise<void> {
  const before = await state();
  const res = await send(method, pathAndQuery, body);
  expect(res.status, `${what}: ${method} ${pathAndQuery} -> ${res.body.slice(0, 200)}`).toBe(403);
  expect((JSON.parse(res.body) as { error: { code: string } }).error.code, what).toBe("forbidden");
  expect(fingerprintDiff(before, await state()), what).toBe("");
}

const pathOf = (url: URL) => url.pathname;
const withPath = (url: URL, path: string) => `${path}${url.search}`;
const objectPath = (bucket: string, key: string) =>
  `${SIGNED_PATH_PREFIX}${[bucket, ...key.split("/")].map(encodeURIComponent).join("/")}`;

describe("a worker's signed URLs", () => {
  it("open their own object, with their own method", async () => {
    for (const { what, method, url } of urlsOf(envA)) {
      const res = await send(
        method,
        `${url.pathname}${url.search}`,
        method === "PUT" ? `new ${what}` : undefined,
      );
      expect(res.status, what).toBe(200);
    }
  });

  it("open no other object: another task's, another workflow's, another bucket's", async () => {
    let tried = 0;
    for (const env of [envA, envC]) {
      for (const { what, method, url } of urlsOf(env)) {
        for (const [bucket, key] of OBJECTS()) {
          const target = objectPath(bucket, key);
          if (target === pathOf(url)) continue;
          await expectForbidden(
            method,
            withPath(url, target),
            `${what} URL used for ${bucket}/${key}`,
            method === "PUT" ? "overwrite" : undefined,
          );
          tried++;
        }
      }
    }
    expect(tried).toBeGreaterThan(100);
  });

  it("work with no other method", async () => {
    for (const { what, method, url } of urlsOf(envA)) {
      const other = method === "GET" ? "PUT" : "GET";
      await expectForbidden(
        other,
        `${url.pathname}${url.search}`,
        `${what} URL with ${other}`,
        other === "PUT" ? "x" : undefined,
      );
      const relabelled = new URL(url);
      relabelled.searchParams.set("method", other);
      await expectForbidden(
        other,
        `${relabelled.pathname}${relabelled.search}`,
        `${what} URL relabelled ${other}`,
        other === "PUT" ? "x" : undefined,
      );
      for (const verb of ["POST", "DELETE", "PATCH"]) {
        const before = await state();
        const res = await send(verb, `${url.pathname}${url.search}`, "x");
        expect([403, 404, 405], `${what} with ${verb}`).toContain(res.status);
        expect(fingerprintDiff(before, await state())).toBe("");
      }
    }
  });

  it("refuse a tampered signature, expiry or method, and a missing or duplicated one", async () => {
    const { url } = urlsOf(envA).find((u) => u.what === "output")!;
    const sig = url.searchParams.get("signature")!;
    const expires = url.searchParams.get("expires")!;
    const variants: [string, (q: URLSearchParams) => void][] = [
      ["a flipped signature digit", (q) => q.set("signature", (sig[0] === "0" ? "1" : "0") + sig.slice(1))],
      ["the last signature digit flipped", (q) => q.set("signature", sig.slice(0, -1) + (sig.at(-1) === "0" ? "1" : "0"))],
      ["an upper-case signature", (q) => q.set("signature", sig.toUpperCase())],
      ["a short signature", (q) => q.set("signature", sig.slice(0, 63))],
      ["a long signature", (q) => q.set("signature", `${sig}0`)],
      ["no signature", (q) => q.delete("signature")],
      ["an empty signature", (q) => q.set("signature", "")],
      ["a signature of zeros", (q) => q.set("signature", "0".repeat(64))],
      ["a later expiry", (q) => q.set("expires", String(Number(expires) + 3600))],
      ["an earlier expiry", (q) => q.set("expires", String(Number(expires) - 1))],
      ["an expiry with a leading zero", (q) => q.set("expires", `0${expires}`)],
      ["an expiry in ms", (q) => q.set("expires", `${expires}000`)],
      ["a negative expiry", (q) => q.set("expires", `-${expires}`)],
      ["no expiry", (q) => q.delete("expires")],
      ["no method", (q) => q.delete("method")],
      ["a lower-case method", (q) => q.set("method", "put")],
      ["the method GET", (q) => q.set("method", "GET")],
      ["a duplicated, forged signature first", (q) => {
        q.delete("signature");
        q.append("signature", "0".repeat(64));
        q.append("signature", sig);
      }],
    ]; // prettier-ignore
    for (const [what, edit] of variants) {
      const q = new URLSearchParams(url.search);
      edit(q);
      await expectForbidden("PUT", `${url.pathname}?${q}`, what, "tampered");
    }
  });

  it("are refused once expired, and stay refused", async () => {
    const { url } = urlsOf(envC).find((u) => u.what === "code")!;
    const expires = Number(url.searchParams.get("expires"));
    const saved = clock;
    try {
      clock = (expires - 1) * 1000;
      expect((await send("GET", `${url.pathname}${url.search}`)).status).toBe(200);
      for (const later of [0, 1, 3600, 86_400 * 365]) {
        clock = (expires + later) * 1000;
        await expectForbidden("GET", `${url.pathname}${url.search}`, `expired ${later} s ago`);
      }
      const put = urlsOf(envC).find((u) => u.what === "output")!.url;
      await expectForbidden("PUT", `${put.pathname}${put.search}`, "expired upload", "late output");
    } finally {
      clock = saved;
    }
  });

  it("refuse a traversing, doubled or encoded path, even one signed for where it leads", async () => {
    const { url } = urlsOf(envA).find((u) => u.what === "output")!;
    // Signed for W1/extract/output.txt: a path that only normalises to it is refused all the same.
    const signedForTarget = new URL(
      await server.storage.signUrl(OUTPUT_BUCKET, objectPaths.output(W1, "extract"), "GET", TTL),
    );
    const base = `${SIGNED_PATH_PREFIX}${OUTPUT_BUCKET}/${W1}`;
    const paths = [
      `${base}/shout/../extract/output.txt`,
      `${base}/shout/%2e%2e/extract/output.txt`,
      `${base}/shout/%2E%2E/extract/output.txt`,
      `${base}/shout/.%2e/extract/output.txt`,
      `${base}/./extract/output.txt`,
      `${base}/extract%2foutput.txt`,
      `${base}/extract%2Foutput.txt`,
      `${base}/extract%5coutput.txt`,
      `${base}//extract/output.txt`,
      `${base}/extract/output.txt/`,
      `${base}/extract/output.txt%00`,
      `${base}/extract/output.txt%00.png`,
      `${base}/extract/%`,
      `${base}/extract/output.txt%ff`,
      `${SIGNED_PATH_PREFIX}..%2f..%2f..%2fetc%2fpasswd`,
      `${SIGNED_PATH_PREFIX}${OUTPUT_BUCKET}/..%2f..%2fstorage.secret`,
      `${SIGNED_PATH_PREFIX}.tmp/x.part`,
      `/storage/v1/object/../object/${OUTPUT_BUCKET}/${W1}/extract/output.txt`,
      `/storage/v1/${OUTPUT_BUCKET}/${W1}/extract/output.txt`,
    ];
    for (const path of paths) {
      await expectForbidden(
        "GET",
        `${path}${signedForTarget.search}`,
        "traversal with the target's signature",
      );
      await expectForbidden(
        "PUT",
        `${path}${url.search}`,
        "traversal with the worker's upload URL",
        "escaped",
      );
    }
    // A raw backslash never reaches the routes: Node's HTTP parser refuses the request line.
    const before = await state();
    expect((await send("GET", `${base}/extract\\output.txt${signedForTarget.search}`)).status).toBe(400);
    expect(fingerprintDiff(before, await state())).toBe("");
    // An absolute-form request target is cut to its path, then judged the same way.
    await expectForbidden(
      "GET",
      `http://127.0.0.1${base}/shout/../extract/output.txt${signedForTarget.search}`,
      "absolute form",
    );
  });

  it("refuse any one-character change to a URL, unless it still names the same signed request", async () => {
    const targets = urlsOf(envA).filter((u) => u.what === "output" || u.what === "input raw");
    const alphabet = [..."0123456789abcdefABCDEF./%?&=-_~#\\"];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...targets), fc.nat(), fc.constantFrom(...alphabet), fc.constantFrom("replace", "insert", "delete"), async (t, at, ch, op) => {
        const original = `${t.url.pathname}${t.url.search}`;
        const i = at % original.length;
        const mutated =
          op === "replace" ? original.slice(0, i) + ch + original.slice(i + 1)
          : op === "insert" ? original.slice(0, i) + ch + original.slice(i)
          : original.slice(0, i) + original.slice(i + 1);
        fc.pre(mutated !== original && mutated.startsWith("/"));
        const before = await state();
        const res = await send(t.method, mutated, t.method === "PUT" ? "mutant" : undefined);
        const after = await state();
        const what = `${t.what}: ${mutated} -> ${res.status} ${res.body.slice(0, 120)}`;
        if (sameSignedRequest(mutated, original)) {
          expect([200, 403], what).toContain(res.status);
        } else {
          expect(res.status, what).not.toBe(200);
          expect(res.status, what).toBeLessThan(500);
        }
        // Whatever the answer, no object but the signed one changed.
        const signedFile = decodeURIComponent(t.url.pathname.slice(SIGNED_PATH_PREFIX.length));
        const changed = fingerprintDiff(before, after).split("\n").filter((l) => l && !l.startsWith(`file ${signedFile}:`));
        expect(changed, what).toEqual([]);
      }),
      { seed: SEED, numRuns: 400 },
    ); // prettier-ignore
  });
});

/**
 * True when `mutated` still names the signed object and carries the signed method, expiry and signature
 * (first occurrence of each, as the server reads them): a change in how it is written, not in what.
 */
function sameSignedRequest(mutated: string, original: string): boolean {
  const parse = (raw: string) => {
    const [path = "", query = ""] = raw.split(/[?#]/, 2) as [string, string?];
    let decoded: string;
    try {
      decoded = path
        .split("/")
        .map((s) => decodeURIComponent(s))
        .join("\u0000");
    } catch {
      return null;
    }
    const q = new URLSearchParams(query.split("#")[0]);
    return `${decoded}|${q.get("method")}|${q.get("expires")}|${q.get("signature")}`;
  };
  const a = parse(mutated);
  return a !== null && a === parse(original);
}
