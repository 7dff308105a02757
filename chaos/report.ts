// The soak's printed report: one table of invariants per pass, and the figures around it.
import { invariantTable } from "./invariants.ts";
import type { PassReport } from "./run.ts";

const list = (o: Record<string, number>) =>
  Object.entries(o)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${n}`)
    .join(", ") || "none";

export function formatPass(p: PassReport): string {
  const faults = Object.values(p.faults).reduce((a, b) => a + b, 0);
  return [
    `## ${p.executor} executor, ${p.bus === "rabbit" ? "RabbitMQ" : "pg-boss"} (seed ${p.seed})`,
    "",
    invariantTable(p.rows),
    "",
    `- workflows: ${p.workflows} (${list(p.workflowsByStatus)}); shapes: ${list(p.shapes)}`,
    `- tasks: ${p.tasks} (${p.succeededTasks} succeeded); runs: ${p.runs}`,
    `- faults injected: ${faults} (${list(p.faults)})${p.faultErrors ? `; ${p.faultErrors} could not be injected` : ""}`,
    `- processes that exited on their own and were restarted: ${p.unexpectedExits}${p.unexpectedExits && !p.details.length ? ` (logs kept: ${p.logDir})` : ""}`,
    `- time from the last fault to all settled: ${p.settleMs === null ? "did not settle" : `${(p.settleMs / 1000).toFixed(1)} s`}`,
    `- duration: ${(p.durationMs / 60_000).toFixed(1)} min; throughput: ${p.tasksPerMinute.toFixed(0)} tasks succeeded per minute`,
    `- invariant violations: ${p.violations}`,
    ...(p.details.length ? ["", "```", ...p.details, "```", `(logs and database kept: ${p.logDir})`] : []),
  ].join("\n");
}
