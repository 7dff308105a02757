// A run that ends while its dispatch's mark still waits for the batch before it (a no-op run always, a
// short one under load) is recorded by its success alone: the dispatcher takes the mark back and gives its
// job name to complete_runs (migration 20261207000300), one transaction instead of two over the same rows.
import { afterEach, describe, expect, it, vi } from "vitest";
import { fanWorkflow } from "../bench/stats.ts";
import { NoopExecutor } from "../bench/noop-executor.ts";
import { startEngine, type BusKind, type Engine } from "./support/engine.ts";

let engine: Engine | null = null;
afterEach(async (ctx) => {
  vi.restoreAllMocks();
  await engine?.stop(ctx.task.result?.state === "pass");
  engine = null;
});

describe.each<BusKind>(["rabbit", "pgboss"])("a run that ends before its dispatch is marked (%s)", (bus) => {
  it("is recorded by its success alone, with its job name and a dispatch time", async () => {
    engine = await startEngine(`quick_runs_${bus}`, {
      bus,
      concurrency: 8,
      executor: () => new NoopExecutor(),
    });
    const marks = vi.spyOn(engine.m.store, "markRunsDispatched");
    const id = await engine.submit(fanWorkflow(38));
    expect((await engine.waitFor(id, 60_000)).status).toBe("succeeded");
    // Each no-op run ends before its mark goes out (before, its 40 runs were marked in 12 calls).
    expect(marks).not.toHaveBeenCalled();
    const runs = await engine.m.db<{ id: string; status: string; job: string; dispatchedAtEnd: boolean }[]>`
      select id, status, job_name as job, dispatched_at = finished_at as "dispatchedAtEnd"
      from dwop.runs where workflow_id = ${id} order by id`;
    expect(runs).toHaveLength(40);
    expect(
      runs.filter((r) => r.status !== "succeeded" || r.job !== `noop-${r.id}` || !r.dispatchedAtEnd),
    ).toEqual([]);
  });
});
