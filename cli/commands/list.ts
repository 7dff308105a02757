import type { Config } from "../../shared/config.ts";
import { clientFromConfig, type WorkflowList } from "../client.ts";
import { EXIT } from "../exit.ts";
import { seconds } from "../progress.ts";
import { colorsFor, palette, stateColor } from "../terminal.ts";
import { positiveInt, workflowState } from "./args.ts";

function table(list: WorkflowList, color: boolean, now = Date.now()): string {
  const p = palette(color);
  const rows = list.workflows.map((w) => {
    const start = w.startedAt ?? w.createdAt;
    const took = seconds((w.finishedAt ? Date.parse(w.finishedAt) : now) - Date.parse(start));
    return [
      w.id,
      w.status,
      String(w.taskCount),
      w.createdAt.replace("T", " ").replace(/\.\d+/, ""),
      took,
      w.name,
    ];
  });
  const head = ["ID", "STATE", "TASKS", "SUBMITTED", "TOOK", "NAME"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[], paintState = false) =>
    cells
      .map((c, i) => {
        const padded = i === cells.length - 1 ? c : c.padEnd(widths[i]!);
        return paintState && i === 1 ? stateColor(p, c)(padded) : padded;
      })
      .join("  ");
  return [p.dim(line(head)), ...rows.map((r) => line(r, true))].join("\n");
}

/** `dwop list [--status S]`: the caller's workflows, newest first. */
export async function listCommand(
  config: Config,
  opts: { status?: string; limit?: string; json?: boolean },
): Promise<number> {
  const list = await clientFromConfig(config).list({
    status: workflowState(opts.status),
    limit: positiveInt(opts.limit, "--limit", 100) ?? 20,
  });
  if (opts.json) process.stdout.write(`${JSON.stringify(list)}\n`);
  else if (list.workflows.length === 0) process.stderr.write("no workflows\n");
  else process.stdout.write(`${table(list, colorsFor(process.stdout))}\n`);
  return EXIT.ok;
}
