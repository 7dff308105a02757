import { resolve } from "node:path";
import { Readable } from "node:stream";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import { pipeline } from "node:stream/promises";
import type { Config } from "../../shared/config.ts";
import { TERMINAL_TASK_STATES, type TaskState } from "../../shared/model.ts";
import { ApiRequestError } from "../api-error.ts";
import { clientFromConfig, type DwopClient, type TaskDetail } from "../client.ts";
import type { Answer } from "../http.ts";
import { CliError, EXIT } from "../exit.ts";
import { Reconnecting } from "../follow.ts";
import { homeLog, homeLogAttempts } from "../local-home.ts";
import { palette, colorsFor } from "../terminal.ts";
import { positiveInt, taskName, workflowId } from "./args.ts";

interface LogsOptions {
  attempt?: string;
  follow?: boolean;
  json?: boolean;
}

const ended = (t: TaskDetail) => TERMINAL_TASK_STATES.includes(t.status as TaskState);
/** How often a follower asks for what a running attempt printed since (the API's contract: ~1 s). */
const POLL_MS = 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * `dwop logs ID TASK`: the log of the task's latest attempt (or --attempt N) on stdout, as far as it
 * has been shipped. Without DWOP_URL and with no local server that knows the workflow, it is read from
 * DWOP_HOME, where `dwop run` left it. `--follow` prints lines as they come, attempt after attempt,
 * until the task has ended, riding out a server restart; it exits 0 if the task succeeded, 1 if not.
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
  if (opts.follow) {
    const left = config.DWOP_URL
      ? null
      : await leftInHome(config, client, wf, name, attempt, opts.json ?? false);
    return left ?? followLog(client, wf, name, attempt, opts.json ?? false);
  }
  try {
    const t = await findTask(client, wf, name);
    const which = attempt ?? t.attempt;
    if (which === 0) throw new CliError(notRun(t), EXIT.failed);
    if (which > t.attempt) {
      const had = t.attempt === 1 ? "one attempt" : `attempts 1 to ${t.attempt}`;
      throw new CliError(`task '${name}' has no attempt ${which}: it has had ${had}`, EXIT.failed);
    }
    const run = t.runs.find((r) => r.attempt === which);
    await printLog(client, wf, name, which, opts.json ?? false, run?.status);
    return EXIT.ok;
  } catch (err) {
    // `dwop run` has ended and its server with it: its logs are files of the home.
    const local =
      !config.DWOP_URL && err instanceof ApiRequestError && (err.status === 0 || err.status === 404)
        ? await homeLog(config, wf, name, attempt)
        : null;
    if (!local && !config.DWOP_URL && err instanceof ApiRequestError && err.status === 0) {
      throw new CliError(
        `no log of task '${name}' of workflow ${wf} in ${resolve(config.DWOP_HOME)}, and ${err.message}`,
        EXIT.failed,
      );
    }
    if (!local) throw err;
    if (opts.json) {
      const log = await new Response(local.body).text();
      process.stdout.write(
        `${JSON.stringify({ workflowId: wf, task: name, attempt: local.attempt, status: null, log })}\n`,
      );
    } else {
      await pipeline(Readable.fromWeb(local.body as NodeReadableStream), process.stdout, { end: false });
    }
    return EXIT.ok;
  }
}

/**
 * `--follow` without DWOP_URL, when no server answers and the home holds the task's logs (`dwop run`
 * has ended): each attempt's log from `from` on, as far as it was stored, then exit 3, since whether
 * the task succeeded needs a server (`dwop dev` on this home). Null when a server answers or the home
 * holds none: --follow then follows it, or waits for one.
 */
async function leftInHome(
  config: Config,
  client: DwopClient,
  wf: string,
  name: string,
  from: number | undefined,
  json: boolean,
): Promise<number | null> {
  let unreachable: ApiRequestError;
  try {
    await client.task(wf, name);
    return null;
  } catch (err) {
    if (!(err instanceof ApiRequestError && err.status === 0)) return null; // followLog says it
    unreachable = err;
  }
  const attempts = (await homeLogAttempts(config, wf, name)).filter((a) => a >= (from ?? 1));
  if (attempts.length === 0) return null;
  const p = palette(colorsFor(process.stderr));
  for (const attempt of attempts) {
    const log = await homeLog(config, wf, name, attempt);
    if (!log) continue;
    const text = await new Response(log.body).text();
    if (json) {
      const line = { workflowId: wf, task: name, attempt, offset: 0, status: null, log: text };
      process.stdout.write(`${JSON.stringify(line)}\n`);
    } else {
      process.stderr.write(p.dim(`── ${name} attempt ${attempt} ──\n`));
      process.stdout.write(text);
    }
  }
  process.stderr.write(
    `no server answers (${unreachable.message}): this is the log \`dwop run\` left in ` +
      `${resolve(config.DWOP_HOME)}; whether the task succeeded needs \`dwop dev\` on this home\n`,
  );
  return EXIT.server;
}

/** The task alone (not its whole workflow: `--follow` reads it about once a second). */
async function findTask(client: DwopClient, wf: string, name: string): Promise<TaskDetail> {
  try {
    return await client.task(wf, name);
  } catch (err) {
    // The workflow is there, the task not (the 404 names it); any other 404 is the workflow's.
    const missing =
      err instanceof ApiRequestError && err.status === 404 ? (err.details as { task?: unknown }) : null;
    if (missing?.task === name) {
      throw new CliError(`workflow ${wf} has no task '${name}'`, EXIT.failed);
    }
    throw err;
  }
}

function notRun(t: TaskDetail): string {
  if (t.status === "upstream_failed")
    return `task '${t.name}' never ran: ${t.error ?? "blocked by a failed upstream"}`;
  if (t.status === "cancelled") return `task '${t.name}' was cancelled before it ran`;
  return `task '${t.name}' has not run yet`;
}

/**
 * Prints an attempt's log as it grows (polling with the offset the server gave, about once a second),
 * then the next attempt's if the task is retried, until the task has ended and its last log is whole.
 * A server that stores logs only when their attempt ends (no x-log-size) gets each whole log once.
 */
async function followLog(
  client: DwopClient,
  wf: string,
  name: string,
  from: number | undefined,
  json: boolean,
): Promise<number> {
  const p = palette(colorsFor(process.stderr));
  const server = new Reconnecting(client, (line) => process.stderr.write(`${line}\n`));
  let t = await server.call(() => findTask(client, wf, name));
  let attempt = from ?? 1;
  for (;;) {
    if (t.attempt < attempt) {
      // Not started yet (or a later attempt asked for): wait for it, unless the task is over.
      if (ended(t)) {
        if (t.attempt === 0) process.stderr.write(`${notRun(t)}\n`);
        return t.status === "succeeded" ? EXIT.ok : EXIT.failed;
      }
      await sleep(POLL_MS);
      t = await server.call(() => findTask(client, wf, name));
      continue;
    }
    if (!json) process.stderr.write(p.dim(`── ${name} attempt ${attempt} ──\n`));
    const run = () => t.runs.find((r) => r.attempt === attempt);
    // The attempt's log as it grows, until it is whole.
    for (let offset = 0; ;) {
      const chunk = await server
        .call(() => client.logFrom(wf, name, attempt, offset))
        .catch((err: unknown) => {
          if (err instanceof ApiRequestError && err.status === 404) return null; // nothing shipped yet
          throw err;
        });
      if (chunk && chunk.size !== null && chunk.complete !== true) {
        write(chunk.text, offset, null);
        offset = chunk.size;
        await sleep(POLL_MS);
        continue;
      }
      if (chunk && chunk.size !== null) {
        t = await server.call(() => findTask(client, wf, name));
        write(chunk.text, offset, run()?.status ?? null, true);
        break;
      }
      // A server that stores a log only when its attempt ends (no x-log-size): the whole log then.
      t = await server.call(() => findTask(client, wf, name));
      if (run()?.finishedAt || (ended(t) && t.attempt === attempt)) {
        write(chunk?.text ?? "", 0, run()?.status ?? null, true);
        break;
      }
      await sleep(POLL_MS);
    }
    const r = run();
    if (!json && r) {
      const why = r.failureReason
        ? ` (${r.failureReason}${r.exitCode === null ? "" : ` ${r.exitCode}`})`
        : "";
      process.stderr.write(p.dim(`── ${name} attempt ${attempt}: ${r.status}${why} ──\n`));
    }
    // The attempt is over: the task ends, or its next attempt is queued.
    while (t.attempt === attempt && !ended(t)) {
      await sleep(POLL_MS);
      t = await server.call(() => findTask(client, wf, name));
    }
    if (t.attempt === attempt) return t.status === "succeeded" ? EXIT.ok : EXIT.failed;
    attempt += 1;
  }

  /** Text as it comes; with --json a line per piece, the attempt's last one with its final status. */
  function write(text: string, at: number, status: string | null, last = false): void {
    if (json) {
      if (text || last) {
        const line = { workflowId: wf, task: name, attempt, offset: at, status, log: text };
        process.stdout.write(`${JSON.stringify(line)}\n`);
      }
    } else if (text) {
      process.stdout.write(text);
    }
  }
}

async function printLog(
  client: DwopClient,
  id: string,
  task: string,
  attempt: number,
  json: boolean,
  status?: string,
): Promise<void> {
  let res: Answer;
  try {
    res = await client.log(id, task, attempt);
  } catch (err) {
    if (err instanceof ApiRequestError && err.status === 404) {
      throw new CliError(`${err.message} (nothing of its log has been stored yet)`, EXIT.failed);
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
