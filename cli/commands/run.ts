import { readFile } from "node:fs/promises";
import { Readable } from "node:stream";
import type { Config } from "../../shared/config.ts";
import type { WorkflowSummary } from "../../shared/db/store.ts";
import { parseWorkflow } from "../../shared/dsl/index.ts";
import { OUTPUT_BUCKET, objectPaths } from "../../shared/model.ts";
import { MissingInputError, SubmissionRefused, submitLimits, submitWorkflow } from "../../shared/submit.ts";
import { CliError, EXIT } from "../exit.ts";
import { createLogger } from "../../shared/pino.ts";
import { followWorkflow, Progress } from "../progress.ts";
import { colorsFor, liveFor } from "../terminal.ts";
import { startStack, type Stack } from "../stack.ts";
import { readSource } from "./validate.ts";

interface RunOptions {
  requirements?: string;
  input?: string[];
  json?: boolean;
}

/** Most bytes of each final output printed at the end; `dwop output` prints all of it. */
const OUTPUT_PREVIEW = 64 * 1024;

/**
 * `dwop run FILE`: starts the embedded stack, submits, shows progress on stderr and exits 0 when the
 * workflow succeeded, 1 when it failed or was cancelled, 2 for usage or DSL errors.
 */
export async function runCommand(config: Config, file: string, opts: RunOptions): Promise<number> {
  const source = await readSource(file);
  parseWorkflow(source, file); // DSL errors exit 2 before anything starts
  const requirements = opts.requirements ? await readSource(opts.requirements) : null;
  const inputs = await readInputs(opts.input ?? []);

  const err = (s: string) => process.stderr.write(`${s}\n`);
  const logger = createLogger(process.env.DWOP_LOG_LEVEL ? config.DWOP_LOG_LEVEL : "warn");
  const stack = await startStack({ config: { ...config, DWOP_PORT: 0 }, logger, engine: true, say: err });
  let interrupted = false;
  const interrupt = () => {
    interrupted = true;
    err("interrupted: stopping; the workflow stays recorded and resumes with `dwop dev`");
    void stack.stop().finally(() => process.exit(EXIT.interrupted));
  };
  process.once("SIGINT", interrupt);
  process.once("SIGTERM", interrupt);
  try {
    const submitted = await submitWorkflow(
      { store: stack.store, storage: stack.storage },
      {
        source,
        file,
        requirements,
        inputs,
        owner: "local",
        retryBackoffMs: config.DWOP_RETRY_BACKOFF_MS,
        limits: submitLimits(config),
      },
    ).catch((e: unknown) => {
      if (e instanceof MissingInputError || e instanceof SubmissionRefused) {
        throw new CliError(e.message, EXIT.usage);
      }
      throw e;
    });
    err(`workflow ${submitted.id} (${submitted.spec.tasks.length} tasks)`);
    const progress = new Progress(process.stderr, {
      color: colorsFor(process.stderr),
      live: liveFor(process.stderr),
    });
    const final = await followWorkflow(stack.store, submitted.id, (tasks) => progress.update(tasks));
    progress.finish();
    err(`workflow ${final.id} ${final.status}`);
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(jsonSummary(final))}\n`);
    } else {
      await printLeafOutputs(stack, final, submitted.spec.tasks);
    }
    return final.status === "succeeded" ? EXIT.ok : EXIT.failed;
  } finally {
    process.off("SIGINT", interrupt);
    process.off("SIGTERM", interrupt);
    if (!interrupted) await stack.stop();
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
