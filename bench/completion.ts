// The dispatch transactions of a chain alone, with no executor and no bus: for each step of a chain,
// mark_runs_dispatched (the run's process started) then complete_runs_and_start (its success recorded and
// its successor's run made), as a dispatcher calls them, one after the other on the machine's Postgres.
// Run: npx tsx bench/completion.ts [--tasks=200] [--rounds=3]
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { LocalStorage } from "../shared/storage/local.ts";
import { submitWorkflow } from "../shared/submit.ts";
import { migratedDatabase } from "../test/support/migrated.ts";
import { chainWorkflow, percentile } from "./stats.ts";

const arg = (name: string, fallback: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const n = Number(arg("tasks", "200"));
const rounds = Number(arg("rounds", "3"));

const m = await migratedDatabase("bench_completion");
const root = await mkdtemp(join(tmpdir(), "dwop-bench-completion-"));
const storage = new LocalStorage({ root, secret: "bench" });
const completions: number[] = [];
const marks: number[] = [];
try {
  for (let r = 0; r < rounds; r++) {
    const { id } = await submitWorkflow(
      { store: m.store, storage },
      { source: chainWorkflow(n), file: "chain.workflow", owner: "bench", retryBackoffMs: 0 },
    );
    const [first] = await m.db<{ id: string; attempt: number }[]>`
      select id::text, attempt from dwop.tasks where workflow_id = ${id} and name = 't0'`;
    const [started] = await m.store.startRuns(
      [{ taskId: first!.id, attempt: first!.attempt }],
      "d1",
      "local",
    );
    if (started?.kind !== "created")
      throw new Error(`the chain's first task did not start: ${started?.kind}`);
    let runId = started.assignment.runId;
    for (let i = 1; i < n; i++) {
      const t0 = performance.now();
      await m.store.markRunsDispatched([{ runId, jobName: "pid-1" }], true);
      const t1 = performance.now();
      const { started: next } = await m.store.completeRunsAndStart([runId], "d1", "local", null);
      completions.push(performance.now() - t1);
      marks.push(t1 - t0);
      if (!next[0]) throw new Error(`step ${i} started no successor`);
      runId = next[0].runId;
    }
  }
  const p = (xs: number[]) =>
    `p50 ${percentile(xs, 50).toFixed(2)} ms, p90 ${percentile(xs, 90).toFixed(2)} ms`;
  console.log(
    `${completions.length} chain steps: complete_runs_and_start ${p(completions)}; mark_runs_dispatched ${p(marks)}; ` +
      `load ${loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}`,
  );
} finally {
  await m.close(true);
  await rm(root, { recursive: true, force: true });
}
process.exit(0);
