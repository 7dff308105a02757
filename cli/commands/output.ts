import { Readable } from "node:stream";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import { pipeline } from "node:stream/promises";
import type { Config } from "../../shared/config.ts";
import { OUTPUT_BUCKET, objectPaths } from "../../shared/model.ts";
import { supabaseStorageFromConfig } from "../../shared/storage/supabase.ts";
import { ApiRequestError } from "../api-error.ts";
import { clientFromConfig } from "../client.ts";
import { CliError, EXIT } from "../exit.ts";
import { homeStorage } from "../local-home.ts";
import { taskName, workflowId } from "./args.ts";

/**
 * `dwop output WORKFLOW_ID TASK`: the output's bytes on stdout. With DWOP_URL set, from that server;
 * without, straight from this machine's storage (Supabase Storage when configured, else DWOP_HOME).
 */
export async function outputCommand(
  config: Config,
  id: string,
  task: string,
  opts: { json?: boolean } = {},
): Promise<number> {
  const wf = workflowId(id);
  const name = taskName(task);
  const body = config.DWOP_URL ? await fromServer(config, wf, name) : await fromStorage(config, wf, name);
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
    throw err;
  }
}

async function fromStorage(
  config: Config,
  id: string,
  task: string,
): Promise<ReadableStream<Uint8Array> | null> {
  const storage = supabaseStorageFromConfig(config) ?? homeStorage(config);
  return storage.get(OUTPUT_BUCKET, objectPaths.output(id, task));
}
