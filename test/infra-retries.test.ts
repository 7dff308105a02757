import { afterEach, describe, expect, it } from "vitest";
import { WorkflowDetail } from "../functions/schemas.ts";
import { apiHarness, SAMPLE, type ApiHarness } from "./support/api.ts";

/** The infrastructure retry budget is a setting (DWOP_MAX_INFRA_RETRIES), stored with each task at submit. */

let h: ApiHarness;
afterEach(async (ctx) => {
  await h.close(ctx.task.result?.state === "pass");
});

async function loseEachAttempt(budget: number | undefined): Promise<{ attempts: number; status: string }> {
  h = await apiHarness(`infra_${budget ?? "default"}`, { settings: { maxInfraRetries: budget } });
  const res = await h.postJson("/workflows", { workflow: SAMPLE }, await h.as("alice"));
  const id = WorkflowDetail.parse(await res.json()).id;
  let attempts = 0;
  for (;;) {
    const claimed = await h.m.store.claimOutbox("claimer", 10, 30);
    if (claimed.length === 0) break;
    await h.m.store.markPublished(
      "claimer",
      claimed.map((c) => c.id),
    );
    for (const { message } of claimed) {
      const started = await h.m.store.startRun(message, "dispatcher", "local");
      if (started.kind !== "created") continue;
      attempts++;
      await h.m.store.increaseAttempt(started.assignment.runId, {
        reason: "lost",
        message: "the dispatcher running this attempt stopped",
        exitCode: null,
        logTail: null,
        nonRetryable: false,
      });
    }
  }
  const [task] = await h.m.db<
    { status: string }[]
  >`select status from dwop.tasks where workflow_id = ${id} and name = 'extract'`;
  return { attempts, status: task!.status };
}

describe("the infrastructure retry budget", () => {
  it("is 3 retries unless set", async () => {
    expect(await loseEachAttempt(undefined)).toEqual({ attempts: 4, status: "failed" });
  });

  it("follows the setting", async () => {
    expect(await loseEachAttempt(0)).toEqual({ attempts: 1, status: "failed" });
  });
});
