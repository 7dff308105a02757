import { Readable } from "node:stream";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import { pipeline } from "node:stream/promises";
import type { Config } from "../../shared/config.ts";
import { TERMINAL_TASK_STATES, type TaskState } from "../../shared/model.ts";
import { ApiRequestError, clientFromConfig, type DwopClient, type TaskDetail } from "../client.ts";
import { CliError, EXIT } from "../exit.ts";
import { followRemote } from "../follow.ts";
import { palette, colorsFor } from "../terminal.ts";
import { positiveInt, taskName, workflowId } from "./args.ts";

interface LogsOptions {
  attempt?: string;
  follow?: boolean;
  json?: boolean;
}

const ended = (t: TaskDetail) => TERMINAL_TASK_STATES.includes(t.status as TaskState);

/**
 * `dwop logs ID TASK`: the full log of the task's latest attempt (or --attempt N) on stdout. A log is
 * stored when its attempt ends, so `--follow` prints each attempt's log as it ends, until the task
 * has ended; it then exits 0 if the task succeeded, 1 if not.
 */
export async function logsCommand(
  config: Config,
  id: string,
  task: string,
  opts: LogsOptions,
): Promise<number> {
  const client = clientFromConfig(config);
  const wf = workflowId(id);
  const name = taskName(task);
  const attempt = positiveInt(opts.attempt, "--attempt");
  if (!opts.follow) {
    const t = (await client.workflow(wf)).tasks.find((x) => x.name === name);
    if (!t) throw new CliError(`workflow ${wf} has no task '${name}'`, EXIT.failed);
    const which = attempt ?? t.attempt;
    if (which === 0) throw new CliError(`task '${name}' has not run yet`, EXIT.failed);
    const run = t.runs.find((r) => r.attempt === which);
    await printLog(client, wf, name, which, opts.json ?? false, run?.status);
    return EXIT.ok;
  }
  const printed = new Set<number>();
  let last: TaskDetail | null = null;
  const p = palette(colorsFor(process.stderr));
  await followRemote(client, wf, async (w) => {
    const t = w.tasks.find((x) => x.name === name);
    if (!t) throw new CliError(`workflow ${wf} has no task '${name}'`, EXIT.failed);
    last = t;
    for (const run of t.runs) {
      if (!run.finishedAt || printed.has(run.attempt) || (attempt !== undefined && run.attempt < attempt))
        continue;
      printed.add(run.attempt);
      const why = run.failureReason
        ? ` (${run.failureReason}${run.exitCode === null ? "" : ` ${run.exitCode}`})`
        : "";
      if (!opts.json)
        process.stderr.write(p.dim(`── ${name} attempt ${run.attempt}: ${run.status}${why} ──\n`));
      await printLog(client, wf, name, run.attempt, opts.json ?? false, run.status).catch((err: unknown) => {
        if (!(err instanceof ApiRequestError && err.status === 404)) throw err;
        process.stderr.write(`(no log stored for attempt ${run.attempt})\n`);
      });
    }
    if (ended(t) && t.runs.every((r) => r.finishedAt)) throw new TaskEnded();
  }).catch((err: unknown) => {
    if (!(err instanceof TaskEnded)) throw err;
  });
  const final = last as TaskDetail | null;
  return final?.status === "succeeded" ? EXIT.ok : EXIT.failed;
}

/** Ends the follow once the task has ended and every attempt's log is out. */
class TaskEnded extends Error {}

async function printLog(
  client: DwopClient,
  id: string,
  task: string,
  attempt: number,
  json: boolean,
  status?: string,
): Promise<void> {
  let res: Response;
  try {
    res = await client.log(id, task, attempt);
  } catch (err) {
    if (err instanceof ApiRequestError && err.status === 404) {
      throw new CliError(`${err.message} (a log is stored when its attempt ends)`, EXIT.failed);
    }
    throw err;
  }
  if (json) {
    const log = await res.text();
    process.stdout.write(
      `${JSON.stringify({ workflowId: id, task, attempt, status: status ?? null, log })}\n`,
    );
    return;
  }
  await pipeline(Readable.fromWeb(res.body as NodeReadableStream), process.stdout, { end: false });
}
