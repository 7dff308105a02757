// A local run gets its small code and inputs in its environment, read by the dispatcher from storage on
// the same machine (Executor.inlineBytes, Storage.readNow), instead of a signed URL and a GET each; what
// is too large, missing or past the run's total still goes by URL, for the worker to fetch or report.
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { INLINE_TOTAL_BYTES, signWorkerEnv } from "../dispatcher/worker-env.ts";
import type { WorkerEnv } from "../shared/executors/executor.ts";
import {
  CODE_BUCKET,
  DEFAULT_TASK_OPTIONS,
  OUTPUT_BUCKET,
  objectPaths,
  type RunAssignment,
} from "../shared/model.ts";
import { LocalStorage } from "../shared/storage/local.ts";
import type { Storage } from "../shared/storage/storage.ts";

const WF = randomUUID();
const BUNDLE = "# header\n# dwop-source: t\nprint(1)\n# the next task's code\n";
const CODE = { offset: 9, length: "# dwop-source: t\nprint(1)\n".length };
const LIMIT = 64;

let dir: string;
let storage: LocalStorage;
let passed = true;

function assignment(params: RunAssignment["params"]): RunAssignment {
  return {
    runId: "1",
    workflowId: WF,
    taskId: "1",
    taskName: "t",
    attempt: 1,
    params,
    options: { ...DEFAULT_TASK_OPTIONS, timeoutSeconds: 60 },
    code: CODE,
    hasRequirements: false,
  };
}

type Input = { param: string; url?: string; data?: string };
const inputsOf = (env: WorkerEnv) => JSON.parse(env.DWOP_INPUTS) as Input[];
const decoded = (base64: string | undefined) => Buffer.from(base64 ?? "", "base64");

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "dwop-inline-"));
  storage = new LocalStorage({
    root: dir,
    secret: "inline-test-secret-0123456789",
    baseUrl: "http://127.0.0.1:9",
  });
  await storage.put(CODE_BUCKET, objectPaths.codeBundle(WF), BUNDLE);
  await storage.put(OUTPUT_BUCKET, objectPaths.output(WF, "small"), new Uint8Array([0, 1, 255, 10]));
  await storage.put(OUTPUT_BUCKET, objectPaths.output(WF, "empty"), "");
  await storage.put(OUTPUT_BUCKET, objectPaths.output(WF, "large"), "x".repeat(LIMIT + 1));
  await storage.put(CODE_BUCKET, objectPaths.input(WF, "doc"), "a document");
});

afterEach((ctx) => {
  if (ctx.task.result?.state !== "pass") passed = false;
});

afterAll(async () => {
  if (passed) await rm(dir, { recursive: true, force: true });
});

describe("a run's objects given inline", () => {
  it("puts the task's code range and each small input in the environment, the rest as signed URLs", async () => {
    const params = [
      { name: "a", upstream: "small" },
      { name: "b", upstream: "empty" },
      { name: "c", upstream: "large" },
      { name: "d", upstream: "missing" },
      { name: "e", upstream: "inputs.doc" },
    ];
    const env = await signWorkerEnv(storage, assignment(params), 60, null, LIMIT);
    expect(decoded(env.DWOP_CODE).toString()).toBe(BUNDLE.slice(CODE.offset, CODE.offset + CODE.length));
    expect(env.DWOP_CODE_URL).toBeUndefined();
    expect(env.DWOP_CODE_RANGE).toBe(`${CODE.offset},${CODE.length}`);
    expect(env.DWOP_INLINE_RESULT_BYTES).toBe(String(LIMIT));
    const [a, b, c, d, e] = inputsOf(env);
    expect([...decoded(a!.data)]).toEqual([0, 1, 255, 10]);
    expect(a!.url).toBeUndefined();
    expect(b).toEqual({ param: "b", data: "" });
    for (const [input, key] of [
      [c, objectPaths.output(WF, "large")],
      [d, objectPaths.output(WF, "missing")],
    ] as const) {
      expect(input!.data).toBeUndefined();
      expect(new URL(input!.url!).pathname).toContain(key);
    }
    expect(decoded(e!.data).toString()).toBe("a document");
  });

  it("gives everything by URL without a limit, or from a storage that cannot read at once", async () => {
    const params = [{ name: "a", upstream: "small" }];
    const elsewhere: Storage = {
      put: (...a) => storage.put(...a),
      get: (...a) => storage.get(...a),
      signUrl: (...a) => storage.signUrl(...a),
      move: (...a) => storage.move(...a),
      remove: (...a) => storage.remove(...a),
    };
    for (const [store, limit] of [
      [storage, 0],
      [elsewhere, LIMIT],
    ] as const) {
      const env = await signWorkerEnv(store, assignment(params), 60, null, limit);
      expect(env.DWOP_CODE).toBeUndefined();
      expect(env.DWOP_INLINE_RESULT_BYTES).toBeUndefined();
      expect(env.DWOP_CODE_URL).toMatch(/^http:\/\/127\.0\.0\.1:9\//);
      expect(inputsOf(env)[0]!.url).toMatch(/^http:/);
    }
  });

  it("takes no result back where the storage does not hold the workflow's code (another DWOP_HOME)", async () => {
    const elsewhere = new LocalStorage({ root: join(dir, "not-the-servers"), secret: "s".repeat(32) });
    elsewhere.setBaseUrl("http://127.0.0.1:9");
    const env = await signWorkerEnv(elsewhere, assignment([]), 60, null, LIMIT);
    expect(env.DWOP_CODE).toBeUndefined();
    expect(env.DWOP_INLINE_RESULT_BYTES).toBeUndefined();
  });

  it("stops inlining once the run's total would pass INLINE_TOTAL_BYTES", async () => {
    const size = INLINE_TOTAL_BYTES / 4;
    for (const name of ["q1", "q2", "q3", "q4", "q5"])
      await storage.put(OUTPUT_BUCKET, objectPaths.output(WF, name), "y".repeat(size));
    const params = ["q1", "q2", "q3", "q4", "q5"].map((name) => ({ name, upstream: name }));
    const env = await signWorkerEnv(storage, assignment(params), 60, null, size);
    const kinds = inputsOf(env).map((i) => (i.data !== undefined ? "data" : "url"));
    // The code's bytes count too: the fourth quarter no longer fits beside them.
    expect(kinds).toEqual(["data", "data", "data", "url", "url"]);
  });
});

describe("LocalStorage.readNow", () => {
  const key = () => objectPaths.codeBundle(WF);

  it("reads a whole object or a range of it, within the limit", () => {
    expect(Buffer.from(storage.readNow(CODE_BUCKET, key(), null, 1000)!).toString()).toBe(BUNDLE);
    const range = storage.readNow(CODE_BUCKET, key(), { offset: 2, length: 6 }, 6);
    expect(Buffer.from(range!).toString()).toBe("header");
  });

  it("answers null for a missing object, one over the limit, and a range past the end", () => {
    expect(storage.readNow(CODE_BUCKET, objectPaths.codeBundle(randomUUID()), null, 1000)).toBeNull();
    expect(storage.readNow(CODE_BUCKET, key(), null, BUNDLE.length - 1)).toBeNull();
    expect(storage.readNow(CODE_BUCKET, key(), { offset: 0, length: 7 }, 6)).toBeNull();
    expect(storage.readNow(CODE_BUCKET, key(), { offset: BUNDLE.length - 2, length: 3 }, 100)).toBeNull();
  });
});
