import type * as z from "zod";
import type { Schedule as ScheduleSchema } from "../../functions/schemas.ts";
import type { Config } from "../../shared/config.ts";
import { parseWorkflow } from "../../shared/dsl/index.ts";
import { clientFromConfig, type DwopClient, type RequestOptions } from "../client.ts";
import { CliError, EXIT } from "../exit.ts";
import { colorsFor, palette, stateColor } from "../terminal.ts";
import { readInputs } from "./run.ts";
import { readSource } from "./validate.ts";

/** A schedule as the API answers it. */
export type Schedule = z.output<typeof ScheduleSchema>;

const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;

export interface ScheduleAddOptions {
  cron: string;
  tz?: string;
  requirements?: string;
  input?: string[];
  overlap?: string;
  catchup?: string;
  json?: boolean;
}

/**
 * `dwop schedule add NAME FILE --cron EXPR`: checks the file here (DSL errors exit 2 before anything is
 * sent), then registers the schedule on DWOP_URL; the server checks the expression, zone and modes.
 */
export async function scheduleAddCommand(
  config: Config,
  name: string,
  file: string,
  opts: ScheduleAddOptions,
): Promise<number> {
  scheduleName(name);
  const source = await readSource(file);
  parseWorkflow(source, file);
  const inputs: Record<string, string> = {};
  for (const [input, bytes] of Object.entries(await readInputs(opts.input ?? []))) {
    try {
      inputs[input] = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      throw new CliError(
        `a schedule's inputs are text: the file of --input ${input} is not UTF-8`,
        EXIT.usage,
      );
    }
  }
  const body = {
    name,
    cron: opts.cron,
    workflow: source,
    ...(opts.tz !== undefined && { timezone: opts.tz }),
    ...(opts.requirements !== undefined && { requirements: await readSource(opts.requirements) }),
    ...(Object.keys(inputs).length > 0 && { inputs }),
    ...(opts.overlap !== undefined && { overlap: opts.overlap }),
    ...(opts.catchup !== undefined && { catchup: opts.catchup }),
  };
  const client = clientFromConfig(config);
  const created = await send(client, "POST", "/schedules", body);
  print(created, opts.json);
  return EXIT.ok;
}

/** `dwop schedule list`: the caller's schedules, each with its next fire time and its last run. */
export async function scheduleListCommand(config: Config, opts: { json?: boolean }): Promise<number> {
  const { schedules } = await send<{ schedules: Schedule[] }>(clientFromConfig(config), "GET", "/schedules");
  if (opts.json) process.stdout.write(`${JSON.stringify({ schedules })}\n`);
  else if (schedules.length === 0) process.stderr.write("no schedules\n");
  else process.stdout.write(`${table(schedules, colorsFor(process.stdout))}\n`);
  return EXIT.ok;
}

/**
 * `dwop schedule show NAME`: the schedule, then its last fire records, newest first: each fire time and
 * what became of it (the workflow it started, or why it failed, was skipped or was missed).
 */
export async function scheduleShowCommand(
  config: Config,
  name: string,
  opts: { json?: boolean },
): Promise<number> {
  const path = `/schedules/${encodeURIComponent(scheduleName(name))}`;
  const s = await send(clientFromConfig(config), "GET", path);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(s)}\n`);
    return EXIT.ok;
  }
  print(s, false);
  process.stdout.write(`overlap ${s.overlap}, catchup ${s.catchup}\n`);
  if (s.lastFires.length === 0) {
    process.stdout.write("no fires yet\n");
    return EXIT.ok;
  }
  const p = palette(colorsFor(process.stdout));
  const rows = s.lastFires.map((f) => [fireTimes(f), f.outcome, f.workflowId ?? f.reason ?? ""]);
  const widths = [0, 1].map((i) => Math.max(...rows.map((r) => r[i]!.length), i === 0 ? 9 : 7));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c)).join("  ");
  process.stdout.write(
    `${[p.dim(line(["FIRE TIME", "OUTCOME", "WORKFLOW OR REASON"])), ...rows.map(line)].join("\n")}\n`,
  );
  return EXIT.ok;
}

/** A fire's time, or for a missed record the range of times it covers and how many. */
function fireTimes(f: Schedule["lastFires"][number]): string {
  if (f.outcome !== "missed" || !f.missedThrough) return when(f.fireAt);
  const count = f.missedCount === null ? "over 1000" : String(f.missedCount);
  return f.missedThrough === f.fireAt
    ? when(f.fireAt)
    : `${when(f.fireAt)} to ${when(f.missedThrough)} (${count})`;
}

/** `dwop schedule pause|resume NAME`. */
export async function schedulePauseCommand(
  config: Config,
  name: string,
  paused: boolean,
  opts: { json?: boolean },
): Promise<number> {
  const path = `/schedules/${encodeURIComponent(scheduleName(name))}`;
  print(await send(clientFromConfig(config), "PATCH", path, { paused }), opts.json);
  return EXIT.ok;
}

/** `dwop schedule rm NAME`: deletes it; the workflows it started stay. */
export async function scheduleRemoveCommand(config: Config, name: string): Promise<number> {
  const path = `/schedules/${encodeURIComponent(scheduleName(name))}`;
  await clientFromConfig(config).request("DELETE", path);
  process.stderr.write(`schedule ${name} deleted\n`);
  return EXIT.ok;
}

function scheduleName(name: string): string {
  if (!NAME.test(name)) {
    throw new CliError(`a schedule name is letters, digits, _ and - (at most 63), got '${name}'`, EXIT.usage);
  }
  return name;
}

async function send<T = Schedule>(
  client: DwopClient,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const init: RequestOptions =
    body === undefined ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
  return (await (await client.request(method, path, init)).json()) as T;
}

function print(s: Schedule, json: boolean | undefined): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(s)}\n`);
    return;
  }
  const next = s.paused ? "paused" : `next ${when(s.nextFireAt)}`;
  process.stdout.write(`${s.name}: ${s.cron} (${s.timezone}), ${next}\n`);
}

function when(iso: string | null): string {
  return iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace(/Z$/, " UTC") : "never";
}

function table(schedules: Schedule[], color: boolean): string {
  const p = palette(color);
  const rows = schedules.map((s) => {
    const last = s.lastRuns[0];
    const fire = s.lastFires[0];
    return [
      s.name,
      s.cron,
      s.timezone,
      s.paused ? "paused" : when(s.nextFireAt),
      last ? last.status : "-",
      last ? last.id : "-",
      fire ? `${fire.outcome} ${when(fire.fireAt)}` : "-",
    ];
  });
  const head = ["NAME", "CRON", "ZONE", "NEXT", "LAST", "LAST RUN", "LAST FIRE"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[], paint = false) =>
    cells
      .map((c, i) => {
        const padded = i === cells.length - 1 ? c : c.padEnd(widths[i]!);
        return paint && i === 4 && c !== "-" ? stateColor(p, c)(padded) : padded;
      })
      .join("  ");
  return [p.dim(line(head)), ...rows.map((r) => line(r, true))].join("\n");
}
