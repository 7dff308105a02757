import { readFile } from "node:fs/promises";
import { Readable } from "node:stream";
import type { Config } from "../../shared/config.ts";
import { UnknownPoolError, type WorkflowSummary } from "../../shared/db/store.ts";
import { OUTPUT_BUCKET, objectPaths } from "../../shared/model.ts";
import {
  checkSubmission,
  MissingInputError,
  SubmissionRefused,
  submitLimits,
  submitWorkflow,
  type SubmitResult,
} from "../../shared/submit.ts";
import { CliError, EXIT } from "../exit.ts";
import { createLogger, type LogFormat } from "../../shared/pino.ts";
import { blame } from "../blocked.ts";
import { tailLines } from "../log-tail.ts";
import { followWorkflow, Progress } from "../progress.ts";
import { handleShutdown, STOP_DEADLINE_MS } from "../shutdown.ts";
import { colorsFor, liveFor, muteable, palette, type OutStream } from "../terminal.ts";
import { startHomeDatabase } from "../embedded-postgres.ts";
import { refuseUnpatchedPostgres } from "../postgres-patched.ts";
import type { Stack } from "../stack.ts";
import { readSource } from "./validate.ts";

interface RunOptions {
  requirements?: string;
  input?: string[];
  json?: boolean;
  logFormat?: LogFormat;
}

/** Most bytes of each final output printed at the end; `dwop output` prints all of it. */
const OUTPUT_PREVIEW = 64 * 1024;
/** Lines of each failed task's log printed at the end; `dwop logs` prints all of it. */
const LOG_TAIL_LINES = 20;

/**
 * `dwop run FILE`: starts the embedded stack, submits, shows progress on stderr and exits 0 when the
 * workflow succeeded, 1 when it failed or was cancelled (after each failed task's error and log tail),
 * 2 for usage or DSL errors, 130 on Ctrl-C (the workflow stays recorded; `dwop dev` resumes it).
 */
export async function runCommand(config: Config, file: string, opts: RunOptions): Promise<number> {
  const source = await readSource(file);
  const requirements = opts.requirements ? await readSource(opts.requirements) : null;
  const inputs = await readInputs(opts.input ?? []);
  // DSL errors, a file over the limits, an input read but not given and one given but not read (as the
  // API refuses it) exit 2 before anything starts; the submit takes the spec parsed here.
  const spec = refusedAsUsage(() =>
    checkSubmission(source, file, Object.keys(inputs), submitLimits(config), { refuseUnread: true }),
  );

  const stderr = muteable(process.stderr);
  const err = (s: string) => stderr.write(`${s}\n`);
  const logger = createLogger(process.env.DWOP_LOG_LEVEL ? config.DWOP_LOG_LEVEL : "warn", {
    format: opts.logFormat ?? config.DWOP_LOG_FORMAT,
    destination: stderr,
  });
  // The workflow is submitted while the engine starts (the fork server is the slowest part of a start).
  let submitted!: SubmitResult;
  const submit = async (parts: Pick<Stack, "store" | "storage">) => {
    submitted = await submitWorkflow(parts, {
      source,
      file,
      requirements,
      inputs,
      owner: "local",
      retryBackoffMs: config.DWOP_RETRY_BACKOFF_MS,
      maxInfraRetries: config.DWOP_MAX_INFRA_RETRIES,
      spec,
    }).catch((e: unknown) => {
      // The home's database is the first to know its pools: refused as the API's 422 is (nothing stored).
      if (e instanceof UnknownPoolError) {
        throw new CliError(
          `${e.message}; \`dwop pool set NAME SLOTS\` makes one (docs/pools.md)`,
          EXIT.usage,
        );
      }
      throw e;
    });
  };
  refuseUnpatchedPostgres();
  // The database starts while the engine's modules load (about 0.25 s each here, now side by side).
  const database = startHomeDatabase(config, err);
  database.catch(() => {}); // a failure is thrown by startStack, which awaits it
  const { startStack } = await import("../stack.ts").catch(async (e: unknown) => {
    await (await database.catch(() => null))?.stop();
    throw e;
  });
  const stack = await startStack({
    config: { ...config, DWOP_PORT: 0 },
    logger,
    engine: true,
    say: err,
    meanwhile: submit,
    database,
  });
  const shutdown = handleShutdown({
    line: () => "interrupted: stopped; the workflow stays recorded and resumes with `dwop dev`",
    mute: () => stderr.mute(),
    stop: () => stack.stop({ fast: true }),
    deadlineMs: () => STOP_DEADLINE_MS,
  });
  try {
    err(`workflow ${submitted.id} (${submitted.spec.tasks.length} tasks)`);
    const progress = new Progress(stderr, { color: colorsFor(stderr), live: liveFor(stderr) });
    const upstreams = new Map(spec.tasks.map((t) => [t.name, t.params.map((p) => p.upstream)]));
    const final = await followWorkflow(
      stack.store,
      submitted.id,
      (tasks) => {
        const blocker = blame(tasks.map((x) => ({ ...x, upstreams: upstreams.get(x.name) ?? [] })));
        progress.update(
          tasks.map((t) => ({ ...t, blockedBy: t.status === "upstream_failed" ? blocker(t.name) : null })),
        );
      },
      {
        onStall: (stall) => progress.stall(stall),
        stall: {
          afterSeconds: config.DWOP_STALL_AFTER_SECONDS,
          aliveSeconds: config.DWOP_LOST_AFTER_SECONDS,
        },
      },
    );
    progress.finish();
    err(`workflow ${final.id} ${final.status}`);
    if (final.status !== "succeeded") await printFailures(stack, final, stderr);
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(jsonSummary(final))}\n`);
    } else {
      await printLeafOutputs(stack, final, submitted.spec.tasks);
    }
    await shutdown.settle();
    return final.status === "succeeded" ? EXIT.ok : EXIT.failed;
  } catch (e) {
    // After Ctrl-C the stack is stopping under the workflow's follower: its errors are not news.
    await shutdown.settle();
    throw e;
  } finally {
    if (!shutdown.signal) {
      shutdown.dispose();
      await stack.stop();
    }
  }
}

/**
 * Each failed task's error and the last lines of its log, and the command that prints the whole log
 * (which works after this process has ended: it reads the home's storage).
 */
async function printFailures(stack: Stack, final: WorkflowSummary, out: OutStream): Promise<void> {
  const p = palette(colorsFor(out));
  for (const t of final.tasks) {
    if (t.status !== "failed") continue;
    const attempt = t.attempts > 1 ? ` (attempt ${t.attempt})` : "";
    out.write(`\n${p.red("✗")} ${p.bold(t.name)}${attempt}: ${t.error ?? "failed"}\n`);
    const log = await stack.storage
      .get(OUTPUT_BUCKET, objectPaths.log(final.id, t.name, t.attempt))
      .catch(() => null);
    const lines = log ? await tailLines(log, LOG_TAIL_LINES) : [];
    if (lines.length) {
      out.write(
        `${p.dim(`  last ${lines.length === LOG_TAIL_LINES ? `${LOG_TAIL_LINES} lines` : "lines"} of its log:`)}\n`,
      );
      for (const line of lines) out.write(`  │ ${line}\n`);
    } else {
      out.write(`${p.dim("  (no log was stored for this attempt)")}\n`);
    }
    out.write(`${p.dim(`  whole log: dwop logs ${final.id} ${t.name}`)}\n`);
  }
}

export function jsonSummary(w: WorkflowSummary) {
  return {
    id: w.id,
    status: w.status,
    tasks: w.tasks.map((t) => ({ name: t.name, status: t.status, attempts: t.attempts, error: t.error })),
  };
}

export async function readInputs(specs: string[]): Promise<Record<string, Uint8Array>> {
  const inputs: Record<string, Uint8Array> = {};
  for (const spec of specs) {
    const eq = spec.indexOf("=");
    const name = spec.slice(0, eq);
    if (eq < 1 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new CliError(`--input wants NAME=FILE, got '${spec}'`, EXIT.usage);
    }
    try {
      inputs[name] = await readFile(spec.slice(eq + 1));
    } catch {
      throw new CliError(`cannot read input file ${spec.slice(eq + 1)}`, EXIT.usage);
    }
  }
  return inputs;
}

/** Prints the outputs of the tasks nothing depends on: what the workflow produced. */
async function printLeafOutputs(
  stack: Stack,
  final: WorkflowSummary,
  tasks: { name: string; params: { upstream: string }[] }[],
): Promise<void> {
  const upstreams = new Set(tasks.flatMap((t) => t.params.map((p) => p.upstream)));
  for (const t of final.tasks) {
    if (upstreams.has(t.name) || t.status !== "succeeded") continue;
    const body = await stack.storage.get(OUTPUT_BUCKET, objectPaths.output(final.id, t.name));
    if (!body) continue;
    process.stdout.write(`── ${t.name} ──\n`);
    let written = 0;
    for await (const chunk of Readable.fromWeb(
      body as import("node:stream/web").ReadableStream,
    ) as AsyncIterable<Buffer>) {
      const room = OUTPUT_PREVIEW - written;
      process.stdout.write(chunk.subarray(0, room));
      written += Math.min(room, chunk.length);
      if (written >= OUTPUT_PREVIEW) {
        process.stdout.write(`\n… (more: dwop output ${final.id} ${t.name})\n`);
        break;
      }
    }
  }
}

/** Runs `check`, with a refused submission (a missing input, a limit) as a usage error (exit 2). */
function refusedAsUsage<T>(check: () => T): T {
  try {
    return check();
  } catch (e) {
    if (e instanceof MissingInputError || e instanceof SubmissionRefused) {
      throw new CliError(e.message, EXIT.usage);
    }
    throw e;
  }
}
