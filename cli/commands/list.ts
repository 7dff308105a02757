import type { Config } from "../../shared/config.ts";
import { clientFromConfig, type WorkflowList } from "../client.ts";
import { CliError, EXIT } from "../exit.ts";
import { seconds } from "../progress.ts";
import { colorsFor, palette, stateColor } from "../terminal.ts";
import { isWorkflowId, positiveInt, workflowState } from "./args.ts";

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
      w.schedule ?? "-",
      w.name,
    ];
  });
  const head = ["ID", "STATE", "TASKS", "SUBMITTED", "TOOK", "SCHEDULE", "NAME"];
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

/**
 * `dwop list [--status S] [--schedule NAME] [--cursor C | --all]`: the caller's workflows, newest
 * first, each with the schedule that started it (`-` for none), a page at a time. A full page ends with the cursor of the next one (on stderr; `nextCursor`
 * with --json); `--all` reads page after page to the end.
 */
export async function listCommand(
  config: Config,
  opts: {
    status?: string;
    schedule?: string;
    limit?: string;
    cursor?: string;
    all?: boolean;
    json?: boolean;
  },
): Promise<number> {
  const client = clientFromConfig(config);
  const status = workflowState(opts.status);
  const schedule = opts.schedule;
  if (schedule !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/.test(schedule)) {
    throw new CliError(`--schedule wants a schedule's name, got '${schedule}'`, EXIT.usage);
  }
  const limit = positiveInt(opts.limit, "--limit", 100) ?? 20;
  if (opts.cursor !== undefined && !isWorkflowId(opts.cursor)) {
    throw new CliError(
      `--cursor wants the cursor a previous page ended with (a UUID), got '${opts.cursor}'`,
      EXIT.usage,
    );
  }
  let page = await client.list({ status, schedule, limit: opts.all ? 100 : limit, cursor: opts.cursor });
  const workflows = [...page.workflows];
  while (opts.all && page.nextCursor) {
    page = await client.list({ status, schedule, limit: 100, cursor: page.nextCursor });
    workflows.push(...page.workflows);
  }
  const list: WorkflowList = { workflows, nextCursor: page.nextCursor };
  if (opts.json) process.stdout.write(`${JSON.stringify(list)}\n`);
  else if (list.workflows.length === 0) process.stderr.write("no workflows\n");
  else process.stdout.write(`${table(list, colorsFor(process.stdout))}\n`);
  if (!opts.json && list.nextCursor) {
    const flags = [
      status ? `--status ${status}` : "",
      schedule ? `--schedule ${schedule}` : "",
      limit !== 20 ? `--limit ${limit}` : "",
    ].filter(Boolean);
    process.stderr.write(
      `more: dwop list ${[...flags, `--cursor ${list.nextCursor}`].join(" ")} (or --all)\n`,
    );
  }
  return EXIT.ok;
}
