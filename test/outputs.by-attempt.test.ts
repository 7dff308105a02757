// A task's output is its succeeded attempt's own object (objectPaths.output): readers (a downstream run's
// input, the API) are given the attempt the database recorded with the success, and a task that succeeded
// before outputs were kept by attempt (its output_attempt null, as migration 20261207000200 leaves it)
// is read at its output.txt.
import { afterEach, beforeEach, expect, it } from "vitest";
import { signWorkerEnv } from "../dispatcher/worker-env.ts";
import { OUTPUT_BUCKET, objectPaths, type RunAssignment } from "../shared/model.ts";
import { apiHarness, submitted, type ApiHarness } from "./support/api.ts";

let h: ApiHarness;
let alice: Record<string, string>;
let id: string;

beforeEach(async (ctx) => {
  h = await apiHarness(ctx.task.name);
  h.storage.setBaseUrl("http://127.0.0.1:9"); // URLs are signed, never fetched
  alice = await h.as("alice");
  id = await submitted(h, alice);
});
afterEach(async (ctx) => {
  await h.close(ctx.task.result?.state === "pass");
});

/** Runs the next queued task as a dispatcher would, up to its start; returns its assignment. */
async function startNext(): Promise<RunAssignment> {
  const [claimed] = await h.m.store.claimOutbox("test-claimer", 1, 30);
  await h.m.store.markPublished("test-claimer", [claimed!.id]);
  const started = await h.m.store.startRun(claimed!.message, "test-dispatcher", "local");
  if (started.kind !== "created") throw new Error(`not started: ${started.kind}`);
  return started.assignment;
}

/** The path of the URL the dispatcher signs for the run's input `raw`. */
async function inputPath(run: RunAssignment): Promise<string> {
  const env = await signWorkerEnv(h.storage, { ...run, options: { ...run.options, timeoutSeconds: 60 } }, 60);
  const [input] = JSON.parse(env.DWOP_INPUTS) as { param: string; url: string }[];
  expect(input!.param).toBe("raw");
  return decodeURIComponent(new URL(input!.url).pathname);
}

it("gives a downstream run, and the API, the output of the attempt whose success was recorded", async () => {
  const first = await startNext();
  await h.m.store.increaseAttempt(first.runId, {
    reason: "lost",
    message: "its dispatcher stopped",
    exitCode: null,
    logTail: null,
    nonRetryable: false,
  });
  const second = await startNext();
  expect(second.attempt).toBe(2);
  await h.m.store.completeRuns([second.runId]);
  // Attempt 1's worker went on and uploaded after attempt 2 succeeded: nobody reads its object.
  await h.storage.put(OUTPUT_BUCKET, objectPaths.output(id, "extract", 1), "attempt 1\n");
  await h.storage.put(OUTPUT_BUCKET, objectPaths.output(id, "extract", 2), "attempt 2\n");

  const shout = await startNext();
  expect(shout.params).toEqual([{ name: "raw", upstream: "extract", outputAttempt: 2 }]);
  expect(await inputPath(shout)).toContain(`/Task_Output/${id}/extract/attempt-2.output.txt`);
  const output = await h.app.request(`/workflows/${id}/tasks/extract/output`, { headers: alice });
  expect(await output.text()).toBe("attempt 2\n");
});

it("reads an output kept before outputs were kept by attempt at its output.txt", async () => {
  const extract = await startNext();
  await h.m.store.completeRuns([extract.runId]);
  // What the migration leaves of a task that succeeded before it: no output attempt, its output.txt.
  await h.m.db`update dwop.tasks set output_attempt = null where workflow_id = ${id} and name = 'extract'`;
  await h.storage.put(OUTPUT_BUCKET, objectPaths.output(id, "extract", null), "kept before\n");

  const shout = await startNext();
  expect(shout.params).toEqual([{ name: "raw", upstream: "extract", outputAttempt: null }]);
  expect(await inputPath(shout)).toContain(`/Task_Output/${id}/extract/output.txt`);
  const output = await h.app.request(`/workflows/${id}/tasks/extract/output`, { headers: alice });
  expect(await output.text()).toBe("kept before\n");
});
