import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { logStreamToken, signWorkerEnv } from "../dispatcher/worker-env.ts";
import { WorkflowDetail } from "../functions/schemas.ts";
import { RunLogs } from "../shared/db/run-logs.ts";
import { buildJob } from "../shared/executors/kubernetes/job-spec.ts";
import { verifyLogStreamToken } from "../shared/log-stream.ts";
import { DEFAULT_TASK_OPTIONS, type RunAssignment } from "../shared/model.ts";
import { apiHarness, SAMPLE, workflowForm, type ApiHarness } from "./support/api.ts";

/**
 * The routes a running worker calls with its run's token (functions/log-stream.ts), in process: what a
 * token opens and what it does not, the order of chunks, and the end of a run closing its log.
 */

let h: ApiHarness;
let alice: Record<string, string>;
let workflowId: string;
let run: RunAssignment;
let key: Uint8Array;

beforeEach(async (ctx) => {
  h = await apiHarness(ctx.task.name);
  h.storage.setBaseUrl("http://127.0.0.1:9"); // signs URLs; nothing is fetched from it
  alice = await h.as("alice");
  const res = await h.app.request("/workflows", {
    method: "POST",
    headers: alice,
    body: workflowForm(SAMPLE),
  });
  workflowId = WorkflowDetail.parse(await res.json()).id;
  const [claimed] = await h.m.store.claimOutbox("test-claimer", 10, 30);
  const started = await h.m.store.startRun(claimed!.message, "test-dispatcher", "local");
  if (started.kind !== "created") throw new Error(`no run: ${started.kind}`);
  run = started.assignment;
  await h.m.store.markRunDispatched(run.runId, "job-extract-1", true);
  key = await new RunLogs(h.m.db).streamKey();
});
afterEach(async (ctx) => {
  await h.close(ctx.task.result?.state === "pass");
});

const ship = async (runId: string, token: string, offset: number, body: string) =>
  h.app.request(`/runs/${runId}/log`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "x-log-offset": String(offset) },
    body,
  });

async function liveLog(query = ""): Promise<{ text: string; size: string | null; complete: string | null }> {
  const res = await h.app.request(`/workflows/${workflowId}/tasks/extract/logs${query}`, { headers: alice });
  expect(res.status).toBe(200);
  return {
    text: await res.text(),
    size: res.headers.get("x-log-size"),
    complete: res.headers.get("x-log-complete"),
  };
}

describe("a run's log-stream token", () => {
  it("opens that run's log and nothing else: no other run, no owner's route, no guessed token", async () => {
    const token = logStreamToken(key, run.runId);
    expect(await verifyLogStreamToken(key, run.runId, token)).toBe(true);
    const otherRun = String(Number(run.runId) + 1);
    expect(await verifyLogStreamToken(key, otherRun, token)).toBe(false);
    expect((await ship(otherRun, token, 0, "x\n")).status).toBe(401);
    expect(
      (await ship(run.runId, token.slice(0, -1) + (token.endsWith("A") ? "B" : "A"), 0, "x\n")).status,
    ).toBe(401);
    expect((await ship(run.runId, "", 0, "x\n")).status).toBe(401);
    const asOwner = await h.app.request(`/workflows/${workflowId}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(asOwner.status).toBe(401);
    const ownersToken = await h.app.request(`/runs/${run.runId}/log`, {
      method: "POST",
      headers: { ...alice, "x-log-offset": "0" },
      body: "x\n",
    });
    expect(ownersToken.status, "an owner's credentials are not a run's token").toBe(401);
  });

  it("appends chunks in order, answers a resend or a gap with the size to resume from, and serves them live", async () => {
    const token = logStreamToken(key, run.runId);
    expect(await (await ship(run.runId, token, 0, "one\n")).json()).toEqual({ result: "appended", size: 4 });
    expect(await (await ship(run.runId, token, 0, "one\ntwo\n")).json()).toEqual({
      result: "behind",
      size: 4,
    });
    expect(await (await ship(run.runId, token, 9, "far\n")).json()).toEqual({ result: "behind", size: 4 });
    expect(await (await ship(run.runId, token, 4, "two\n")).json()).toEqual({ result: "appended", size: 8 });
    expect(await liveLog()).toEqual({ text: "one\ntwo\n", size: "8", complete: "false" });
    expect(await liveLog("?offset=4")).toEqual({ text: "two\n", size: "8", complete: "false" });
    expect(await liveLog("?offset=8")).toEqual({ text: "", size: "8", complete: "false" });
    const bad = await h.app.request(`/runs/${run.runId}/log`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "x-log-offset": "-1" },
      body: "x\n",
    });
    expect(bad.status).toBe(400);
  });

  it("closes the log when the run ends: nothing more is taken, and the log up to then stays readable", async () => {
    const token = logStreamToken(key, run.runId);
    await ship(run.runId, token, 0, "before the end\n");
    await h.m.store.increaseAttempt(run.runId, {
      reason: "timeout",
      message: "timed out after 1s (DeadlineExceeded)",
      exitCode: null,
      logTail: null,
      nonRetryable: true,
    });
    expect(await (await ship(run.runId, token, 15, "after\n")).json()).toEqual({ result: "ended", size: 15 });
    expect(await liveLog()).toEqual({ text: "before the end\n", size: "15", complete: "true" });
    const urls = await h.app.request(`/runs/${run.runId}/upload-urls`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
    });
    expect(urls.status, "an ended run gets no upload URL").toBe(409);
  });

  it("mints upload URLs for the run's own output (its attempt's) and log, and sealing drops the chunks", async () => {
    const token = logStreamToken(key, run.runId);
    const res = await h.app.request(`/runs/${run.runId}/upload-urls`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
    });
    const urls = (await res.json()) as { output: string; log: string };
    expect(new URL(urls.output).pathname).toBe(
      `/storage/v1/object/Task_Output/${workflowId}/extract/attempt-${run.attempt}.output.txt`,
    );
    expect(new URL(urls.log).pathname).toContain(`/Task_Output/${workflowId}/extract/`);
    await ship(run.runId, token, 0, "kept until sealed\n");
    const sealed = await h.app.request(`/runs/${run.runId}/log/sealed`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
    });
    expect(sealed.status).toBe(204);
    expect(await new RunLogs(h.m.db).sizes(workflowId)).toEqual(new Map());
  });
});

describe("the worker's environment", () => {
  it("carries the run's log-stream URL and token, into a Kubernetes Job's container too", async () => {
    const env = await signWorkerEnv(
      h.storage,
      { ...run, options: { ...DEFAULT_TASK_OPTIONS, timeoutSeconds: 60 } },
      30,
      { apiUrl: "https://api.example.com/base/", key },
    );
    expect(env.DWOP_LOG_STREAM_URL).toBe(`https://api.example.com/base/runs/${run.runId}/log`);
    expect(await verifyLogStreamToken(key, run.runId, env.DWOP_LOG_STREAM_TOKEN!)).toBe(true);
    const job = buildJob(run, env, {
      image: "dwop-pyworker:dev",
      imagePullPolicy: "IfNotPresent",
      ttlSecondsAfterFinished: 60,
      runAsUser: 10001,
      defaultCpu: "500m",
      defaultMemory: "512Mi",
      volumeSizeLimit: "1Gi",
    });
    const names = job.spec!.template.spec!.containers[0]!.env!.map((e) => e.name);
    expect(names).toEqual(expect.arrayContaining(["DWOP_LOG_STREAM_URL", "DWOP_LOG_STREAM_TOKEN"]));
  });
});
