import type { Store, TaskSummary, WorkflowSummary } from "../shared/db/store.ts";
import { TERMINAL_WORKFLOW_STATES } from "../shared/model.ts";

const MARK: Record<string, string> = {
  pending: "·",
  queued: "○",
  dispatched: "◔",
  running: "◑",
  succeeded: "✓",
  failed: "✗",
  upstream_failed: "⊘",
  cancelled: "⊘",
};

/** One progress line for a task: state, attempt and duration. */
export function taskLine(t: TaskSummary): string {
  const seconds =
    t.startedAt && t.finishedAt ? ` ${((t.finishedAt.getTime() - t.startedAt.getTime()) / 1000).toFixed(2)}s` : "";
  const attempt = t.attempt > 1 ? ` attempt ${t.attempt}` : "";
  const error = t.status === "failed" && t.error ? ` — ${t.error}` : "";
  return `${MARK[t.status] ?? "?"} ${t.name} ${t.status}${attempt}${seconds}${error}`;
}

/** `[######----] 6/10` over tasks that have ended. */
export function bar(w: WorkflowSummary, width = 24): string {
  const done = w.tasks.filter((t) => ["succeeded", "failed", "upstream_failed", "cancelled"].includes(t.status)).length;
  const filled = Math.round((done / Math.max(1, w.tasks.length)) * width);
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${done}/${w.tasks.length}`;
}

/**
 * Waits for a workflow to end, calling `onTask` for every task whose state changed. Woken by the
 * database's `dwop_workflow_done` notification, with a short poll for the per-task progress.
 */
export async function followWorkflow(
  store: Store,
  workflowId: string,
  onTask: (t: TaskSummary, w: WorkflowSummary) => void,
  pollMs = 100,
): Promise<WorkflowSummary> {
  const seen = new Map<string, string>();
  let wake: (() => void) | null = null;
  const listener = await store.db.listen("dwop_workflow_done", (id) => {
    if (id === workflowId) wake?.();
  });
  try {
    for (;;) {
      const w = await store.workflowSummary(workflowId);
      if (!w) throw new Error(`workflow ${workflowId} not found`);
      for (const t of w.tasks) {
        const key = `${t.status}:${t.attempt}`;
        if (seen.get(t.name) !== key) {
          seen.set(t.name, key);
          onTask(t, w);
        }
      }
      if (TERMINAL_WORKFLOW_STATES.includes(w.status)) return w;
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, pollMs);
      });
    }
  } finally {
    await listener.unlisten().catch(() => {});
  }
}
