import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Run, WorkflowDetail } from "../functions/schemas.ts";
import { OUTPUT_BUCKET, objectPaths } from "../shared/model.ts";
import { apiHarness, driveToEnd, SAMPLE, submitted, type ApiHarness } from "./support/api.ts";

let h: ApiHarness;
let alice: Record<string, string>;
let id: string;

beforeEach(async (ctx) => {
  h = await apiHarness(ctx.task.name);
  alice = await h.as("alice");
  id = await submitted(h, alice, `@retries(1)\n${SAMPLE}`);
});
afterEach(async (ctx) => {
  await h.close(ctx.task.result?.state === "pass");
});

async function detail() {
  return WorkflowDetail.parse(await (await h.app.request(`/workflows/${id}`, { headers: alice })).json());
}

describe("GET /workflows/:id/runs/:runId", () => {
  it("shows one attempt: executor, job name, exit code, failure reason and log tail", async () => {
    await driveToEnd(h.m, ["extract"]);
    const runId = (await detail()).tasks[0]!.runs[0]!.id;
    const res = await h.app.request(`/workflows/${id}/runs/${runId}`, { headers: alice });
    expect(res.status).toBe(200);
    expect(Run.parse(await res.json())).toMatchObject({
      workflowId: id,
      taskName: "extract",
      attempt: 1,
      status: "failed",
      executor: "local",
      jobName: "job-extract-1",
      dispatcherId: "test-dispatcher",
      exitCode: 1,
      failureReason: "exit_code",
      error: "exited with code 1",
      logTail: "Traceback (most recent call last):\nValueError: boom",
    });
  });

  it("is not found for another owner, another workflow, or a malformed id", async () => {
    await driveToEnd(h.m, ["extract"]);
    const runId = (await detail()).tasks[0]!.runs[0]!.id;
    const bob = await h.as("bob");
    expect((await h.app.request(`/workflows/${id}/runs/${runId}`, { headers: bob })).status).toBe(404);
    const otherId = await submitted(h, alice);
    expect((await h.app.request(`/workflows/${otherId}/runs/${runId}`, { headers: alice })).status).toBe(404);
    expect((await h.app.request(`/workflows/${id}/runs/abc`, { headers: alice })).status).toBe(404);
  });
});

describe("task output and logs", () => {
  it("streams the output once there is one", async () => {
    const output = `/workflows/${id}/tasks/extract/output`;
    const before = await h.app.request(output, { headers: alice });
    expect(before.status).toBe(404);
    await h.storage.put(OUTPUT_BUCKET, objectPaths.output(id, "extract"), "a,b,c\n");
    const res = await h.app.request(output, { headers: alice });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    expect(await res.text()).toBe("a,b,c\n");
    expect((await h.app.request(output, { headers: await h.as("bob") })).status).toBe(404);
    expect((await h.app.request(`/workflows/${id}/tasks/nope/output`, { headers: alice })).status).toBe(404);
    expect((await h.app.request(`/workflows/${id}/tasks/bad-name!/output`, { headers: alice })).status).toBe(
      404,
    );
  });

  it("streams a large output without reading it whole first", async () => {
    const big = new Uint8Array(8 * 1024 * 1024).fill(97);
    await h.storage.put(OUTPUT_BUCKET, objectPaths.output(id, "extract"), big);
    const res = await h.app.request(`/workflows/${id}/tasks/extract/output`, { headers: alice });
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(first.value!.length).toBeLessThan(big.length); // a chunk, not the whole object
    let total = first.value!.length;
    for (let r = await reader.read(); !r.done; r = await reader.read()) total += r.value.length;
    expect(total).toBe(big.length);
  });

  it("serves the latest attempt's log, or the attempt asked for", async () => {
    await driveToEnd(h.m, ["extract"]);
    await h.storage.put(OUTPUT_BUCKET, objectPaths.log(id, "extract", 1), "first try\n");
    await h.storage.put(OUTPUT_BUCKET, objectPaths.log(id, "extract", 2), "second try\n");
    const logs = `/workflows/${id}/tasks/extract/logs`;
    expect(await (await h.app.request(logs, { headers: alice })).text()).toBe("second try\n");
    expect(await (await h.app.request(`${logs}?attempt=1`, { headers: alice })).text()).toBe("first try\n");
    expect((await h.app.request(`${logs}?attempt=3`, { headers: alice })).status).toBe(404);
    expect((await h.app.request(`${logs}?attempt=0`, { headers: alice })).status).toBe(400);
    expect((await h.app.request(`/workflows/${id}/tasks/shout/logs`, { headers: alice })).status).toBe(404);
    expect((await h.app.request(logs, { headers: await h.as("bob") })).status).toBe(404);
  });
});
