// A run's URLs are signed together: where signing is a request (Supabase Storage), all of them at once,
// one round trip's wait rather than one after another; where the storage signs with its own key
// (LocalStorage.signUrlNow), at once, the same URLs.
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signWorkerEnv } from "../dispatcher/worker-env.ts";
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
let dir: string;
let local: LocalStorage;

const run: RunAssignment = {
  runId: "7",
  workflowId: WF,
  taskId: "7",
  taskName: "t",
  attempt: 2,
  params: [
    { name: "a", upstream: "up1" },
    { name: "b", upstream: "up2" },
    { name: "doc", upstream: "inputs.doc" },
  ],
  options: { ...DEFAULT_TASK_OPTIONS, timeoutSeconds: 60 },
  code: { offset: 0, length: 4 },
  hasRequirements: true,
};

/** The local storage as one that signs by request (no signUrlNow): each answered after `ms`. */
function signingByRequest(ms: number) {
  const seen = { inFlight: 0, most: 0, requests: 0 };
  const storage: Storage = {
    put: (b, k, body) => local.put(b, k, body),
    get: (b, k) => local.get(b, k),
    move: (b, from, to) => local.move(b, from, to),
    remove: (b, keys) => local.remove(b, keys),
    signUrl: async (b, k, method, ttl) => {
      seen.requests += 1;
      seen.most = Math.max(seen.most, ++seen.inFlight);
      await new Promise((r) => setTimeout(r, ms));
      seen.inFlight -= 1;
      return local.signUrl(b, k, method, ttl);
    },
  };
  return { storage, seen };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "dwop-sign-"));
  local = new LocalStorage({
    root: dir,
    secret: "sign-test-secret-0123456789",
    baseUrl: "http://127.0.0.1:9",
  });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("a run's signed URLs", () => {
  it("are asked for all at once where signing is a request", async () => {
    const { storage, seen } = signingByRequest(50);
    const env = await signWorkerEnv(storage, run, 30);
    // The code, three inputs, the requirements, the output and the log: before, the inputs went together
    // and each other URL waited for the one before it (at most 3 at once).
    expect(seen.requests).toBe(7);
    expect(seen.most).toBe(7);
    const inputs = JSON.parse(env.DWOP_INPUTS) as { param: string; url: string }[];
    const path = (url: string | undefined) => decodeURIComponent(new URL(url!).pathname);
    expect(inputs.map((i) => [i.param, path(i.url)])).toEqual([
      ["a", expect.stringContaining(`${OUTPUT_BUCKET}/${objectPaths.output(WF, "up1")}`)],
      ["b", expect.stringContaining(`${OUTPUT_BUCKET}/${objectPaths.output(WF, "up2")}`)],
      ["doc", expect.stringContaining(`${CODE_BUCKET}/${objectPaths.input(WF, "doc")}`)],
    ]);
    expect(path(env.DWOP_CODE_URL)).toContain(`${CODE_BUCKET}/${objectPaths.codeBundle(WF)}`);
    expect(path(env.DWOP_REQUIREMENTS_URL)).toContain(`${CODE_BUCKET}/${objectPaths.requirements(WF)}`);
    expect(path(env.DWOP_OUTPUT_URL)).toContain(`${OUTPUT_BUCKET}/${objectPaths.attemptOutput(WF, "t", 2)}`);
    expect(path(env.DWOP_LOG_URL)).toContain(`${OUTPUT_BUCKET}/${objectPaths.log(WF, "t", 2)}`);
    expect(new URL(env.DWOP_OUTPUT_URL!).searchParams.get("method")).toBe("PUT");
  });

  it("are the same signed at once by a storage with its own key", async () => {
    const { storage } = signingByRequest(0);
    // Both within one second, so that their expiries are the same.
    const both = async (): Promise<WorkerEnv[]> => {
      const second = Math.floor(Date.now() / 1000);
      const pair = [await signWorkerEnv(local, run, 30), await signWorkerEnv(storage, run, 30)];
      return Math.floor(Date.now() / 1000) === second ? pair : both();
    };
    const [now, byRequest] = await both();
    expect(now).toEqual(byRequest);
  });
});
