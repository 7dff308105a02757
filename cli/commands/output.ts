import { Readable } from "node:stream";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import { pipeline } from "node:stream/promises";
import { resolve } from "node:path";
import type { Config } from "../../shared/config.ts";
import { ApiRequestError } from "../api-error.ts";
import { clientFromConfig } from "../client.ts";
import { CliError, EXIT } from "../exit.ts";
import { homeOutput } from "../local-home.ts";
import { taskName, workflowId } from "./args.ts";

/**
 * `dwop output WORKFLOW_ID TASK`: the output's bytes on stdout, from the server (DWOP_URL, else the local
 * `dwop dev`), which reads the one of the attempt whose success was recorded. Without DWOP_URL and with no
 * server answering (`dwop run` has ended, and its server with it), from the files it left in DWOP_HOME: the
 * highest-numbered attempt's output there (see cli/local-home.ts).
 */
export async function outputCommand(
  config: Config,
  id: string,
  task: string,
  opts: { json?: boolean } = {},
): Promise<number> {
  const wf = workflowId(id);
  const name = taskName(task);
  const body = await fromServer(config, wf, name);
  if (!body) throw new CliError(`no output for task '${name}' of workflow ${wf}`, EXIT.failed);
  const stream = Readable.fromWeb(body as NodeReadableStream);
  if (opts.json) {
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    const output = Buffer.concat(chunks).toString("utf8");
    process.stdout.write(`${JSON.stringify({ workflowId: wf, task: name, output })}\n`);
    return EXIT.ok;
  }
  await pipeline(stream, process.stdout);
  return EXIT.ok;
}

async function fromServer(
  config: Config,
  id: string,
  task: string,
): Promise<ReadableStream<Uint8Array> | null> {
  try {
    return (await clientFromConfig(config).output(id, task)).body;
  } catch (err) {
    if (err instanceof ApiRequestError && err.status === 404) return null;
    if (config.DWOP_URL || !(err instanceof ApiRequestError && err.status === 0)) throw err;
    const left = await homeOutput(config, id, task);
    if (left) return left;
    throw new CliError(
      `no output of task '${task}' of workflow ${id} in ${resolve(config.DWOP_HOME)}, and ${err.message}`,
      EXIT.failed,
    );
  }
}
