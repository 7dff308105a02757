import type { Config } from "../../shared/config.ts";
import { clientFromConfig, type WorkflowDetail } from "../client.ts";
import { EXIT } from "../exit.ts";
import { progressTasks } from "../follow.ts";
import { bar, seconds, taskLine } from "../progress.ts";
import { colorsFor, palette, stateColor } from "../terminal.ts";
import { workflowId } from "./args.ts";

/** The workflow's state in words: a header line, one line per task, the bar. */
export function describeWorkflow(w: WorkflowDetail, color: boolean, now = Date.now()): string {
  const p = palette(color);
  const start = w.startedAt ?? w.createdAt;
  const took = seconds((w.finishedAt ? Date.parse(w.finishedAt) : now) - Date.parse(start));
  const tasks = progressTasks(w);
  return [
    `${p.bold(w.name)} ${w.id} ${stateColor(p, w.status)(w.status)} ${p.dim(`submitted ${w.createdAt}, ${took}`)}`,
    ...tasks.map((t) => `  ${taskLine(t, p, now)}`),
    `  ${bar(tasks)}`,
  ].join("\n");
}

/**
 * `dwop status ID`: the workflow and its tasks. Exits 0 while it is queued or running and when it
 * succeeded, 1 when it failed or was cancelled (or does not exist).
 */
export async function statusCommand(config: Config, id: string, opts: { json?: boolean }): Promise<number> {
  const w = await clientFromConfig(config).workflow(workflowId(id));
  process.stdout.write(
    opts.json ? `${JSON.stringify(w)}\n` : `${describeWorkflow(w, colorsFor(process.stdout))}\n`,
  );
  return w.status === "failed" || w.status === "cancelled" ? EXIT.failed : EXIT.ok;
}
