// The soak's verdict, read from the database and storage alone once the system has settled.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Db } from "../shared/db/connect.ts";
import { OUTPUT_BUCKET, objectPaths } from "../shared/model.ts";
import type { PlannedWorkflow } from "./workload.ts";

export interface InvariantRow {
  name: string;
  checked: number;
  violations: number;
  /** "info" rows are reported, never fail the run. */
  info?: boolean;
}

export interface Verdict {
  rows: InvariantRow[];
  details: string[];
}

const INFRA = new Set(["lost", "evicted", "image_pull", "unschedulable", "oom_killed"]);
/** Failures that can come before the task printed anything, or take its log with them. */
const NO_LOG_POSSIBLE = new Set(["lost", "timeout", "evicted", "image_pull", "unschedulable"]);
const OPEN_TASK = new Set(["pending", "queued", "dispatched", "running"]);

interface TaskRow {
  id: string;
  workflow_id: string;
  workflow: string;
  wf_status: string;
  name: string;
  status: string;
  failures: number;
  infra_failures: number;
  max_retries: number;
  max_infra_retries: number;
}

interface RunRow {
  task_id: string;
  attempt: number;
  status: string;
  failure_reason: string | null;
  error: string | null;
  log_tail: string | null;
}

export async function checkInvariants(
  db: Db,
  storageRoot: string,
  plans: Map<string, PlannedWorkflow>,
  jobsLeft: number | null,
): Promise<Verdict> {
  const details: string[] = [];
  const rows: InvariantRow[] = [];
  const row = (name: string, checked: number, bad: string[], info = false) => {
    rows.push({ name, checked, violations: bad.length, info });
    if (!info) details.push(...bad.slice(0, 20).map((b) => `${name}: ${b}`));
  };

  const workflows = await db<
    { id: string; name: string; status: string }[]
  >`select id, name, status from dwop.workflows`;
  const tasks = await db<TaskRow[]>`
    select t.id::text, t.workflow_id, w.name as workflow, w.status as wf_status, t.name, t.status,
           t.failures, t.infra_failures, t.max_retries, t.max_infra_retries
    from dwop.tasks t join dwop.workflows w on w.id = t.workflow_id`;
  const runs = await db<RunRow[]>`
    select task_id::text, attempt, status, failure_reason, error, log_tail from dwop.runs order by task_id, attempt`;
  const runsOf = new Map<string, RunRow[]>();
  for (const r of runs) runsOf.set(r.task_id, [...(runsOf.get(r.task_id) ?? []), r]);
  const tasksOf = new Map<string, TaskRow[]>();
  for (const t of tasks) tasksOf.set(t.workflow_id, [...(tasksOf.get(t.workflow_id) ?? []), t]);

  // Every submitted workflow exists and reached a terminal state that its tasks and its plan explain.
  const bad1: string[] = [];
  const seen = new Set(workflows.map((w) => w.name));
  for (const key of plans.keys()) if (!seen.has(key)) bad1.push(`${key}: submitted but not in the database`);
  for (const w of workflows) {
    const ts = tasksOf.get(w.id) ?? [];
    const plan = plans.get(w.name);
    const states = new Set(ts.map((t) => t.status));
    const open = ts.some((t) => OPEN_TASK.has(t.status));
    const derived = open
      ? "open"
      : ts.every((t) => t.status === "succeeded")
        ? "succeeded"
        : states.has("cancelled")
          ? "cancelled"
          : "failed";
    if (derived !== w.status)
      bad1.push(`${w.name}: workflow ${w.status}, its tasks say ${derived} (${[...states].join(",")})`);
    else if (plan && !plan.expect.status.includes(w.status as "failed"))
      bad1.push(`${w.name}: ${w.status}, expected ${plan.expect.status.join("|")}`);
    for (const [task, reason] of Object.entries(plan?.expect.failed ?? {})) {
      const t = ts.find((x) => x.name === task);
      const last = t ? runsOf.get(t.id)?.at(-1) : undefined;
      if (t?.status !== "failed" || last?.failure_reason !== reason) {
        bad1.push(`${w.name}.${task}: ${t?.status}/${last?.failure_reason}, expected failed/${reason}`);
      }
    }
  }
  row("every workflow terminal, matching its tasks and its plan", workflows.length, bad1);

  // Succeeded tasks: exactly one successful run, and the expected output in storage.
  const bad2: string[] = [];
  const bad3: string[] = [];
  let outputsChecked = 0;
  for (const t of tasks) {
    const ok = (runsOf.get(t.id) ?? []).filter((r) => r.status === "succeeded").length;
    const want = t.status === "succeeded" ? 1 : 0;
    if (ok !== want) bad2.push(`${t.workflow}.${t.name}: ${t.status} with ${ok} successful runs`);
    const expected = plans.get(t.workflow)?.expect.outputs[t.name];
    if (t.status !== "succeeded" || expected === undefined) continue;
    outputsChecked++;
    const path = join(storageRoot, OUTPUT_BUCKET, objectPaths.output(t.workflow_id, t.name));
    const got = await readFile(path, "utf8").catch(() => null);
    if (got !== expected)
      bad3.push(
        `${t.workflow}.${t.name}: output ${got === null ? "missing" : JSON.stringify(got.slice(0, 40))}, expected ${JSON.stringify(expected.slice(0, 40))}`,
      );
  }
  row("succeeded task has exactly one successful run (others none)", tasks.length, bad2);
  row("succeeded task's output equals the expected output", outputsChecked, bad3);

  const dup = await db<{ task_id: string; attempt: number; n: number }[]>`
    select task_id::text, attempt, count(*)::int as n from dwop.runs group by 1, 2 having count(*) > 1`;
  row(
    "no (task, attempt) has two runs",
    runs.length,
    dup.map((d) => `task ${d.task_id} attempt ${d.attempt}: ${d.n} runs`),
  );

  const outbox = await db<{ total: number; open: number }[]>`
    select count(*)::int as total, count(*) filter (where published_at is null)::int as open from dwop.outbox`;
  row(
    "no outbox row left unpublished",
    outbox[0]!.total,
    outbox[0]!.open ? [`${outbox[0]!.open} unpublished`] : [],
  );

  const openRuns = runs.filter((r) => ["starting", "dispatched", "running"].includes(r.status));
  row(
    "no run left open",
    runs.length,
    openRuns.map((r) => `task ${r.task_id} attempt ${r.attempt}: ${r.status}`),
  );

  if (jobsLeft !== null) row("no Kubernetes Job left behind", 1, jobsLeft ? [`${jobsLeft} Jobs left`] : []);

  // Failures carry a reason and a log tail. A 'lost' run has no log to carry: the process that held it
  // died with its dispatcher, or its Job went with someone else's delete. Those are counted apart.
  const failedRuns = runs.filter((r) => r.status === "failed" || r.status === "lost");
  const bad4: string[] = [];
  const lostNoLog: string[] = [];
  for (const r of failedRuns) {
    if (!r.failure_reason || !r.error)
      bad4.push(`task ${r.task_id} attempt ${r.attempt}: reason ${r.failure_reason}, error ${r.error}`);
    else if (!r.log_tail?.trim()) {
      // A timeout can also come before the body printed anything (its inputs still downloading while
      // the API restarts), and a pod evicted (or never started) before it printed takes no log with it:
      // there is then no log either. Counted on the same info row, never hidden.
      if (NO_LOG_POSSIBLE.has(r.failure_reason)) lostNoLog.push(`task ${r.task_id} attempt ${r.attempt}`);
      else bad4.push(`task ${r.task_id} attempt ${r.attempt}: ${r.failure_reason} without a log tail`);
    }
  }
  row("every failed run carries a reason, an error and a log tail", failedRuns.length, bad4);
  row(
    "  of which with no log to keep: lost, evicted or never started, or timed out before any output",
    failedRuns.length,
    lostNoLog,
    true,
  );

  // Retry budgets: a task's own failures and its infrastructure failures, each within its budget.
  const bad5: string[] = [];
  for (const t of tasks) {
    const rs = runsOf.get(t.id) ?? [];
    const own = rs.filter((r) => r.status === "failed" && !INFRA.has(r.failure_reason ?? "")).length;
    const retriedFromFailure = plans.get(t.workflow)?.fixMarker !== undefined;
    const ownBudget = (t.max_retries + 1) * (retriedFromFailure ? 2 : 1);
    if (t.failures > t.max_retries + 1 || t.infra_failures > t.max_infra_retries + 1 || own > ownBudget) {
      bad5.push(
        `${t.workflow}.${t.name}: failures ${t.failures}/${t.max_retries}, infra ${t.infra_failures}/${t.max_infra_retries}, failed runs ${own}`,
      );
    }
  }
  row("retries never exceeded their budgets", tasks.length, bad5);
  return { rows, details };
}

/** The invariants as a Markdown table. */
export function invariantTable(rows: InvariantRow[]): string {
  const lines = ["| invariant | checked | violations |", "|---|---:|---:|"];
  for (const r of rows)
    lines.push(`| ${r.name} | ${r.checked} | ${r.info ? `${r.violations} (info)` : r.violations} |`);
  return lines.join("\n");
}
