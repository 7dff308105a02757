import { join, resolve } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Config } from "../../shared/config.ts";
import { OUTPUT_BUCKET, objectPaths } from "../../shared/model.ts";
import { LocalStorage } from "../../shared/storage/local.ts";
import { CliError, EXIT } from "../exit.ts";

/** `dwop output WORKFLOW_ID TASK`: the output's bytes on stdout, streamed from local storage. */
export async function outputCommand(config: Config, workflowId: string, task: string): Promise<number> {
  if (!/^[0-9a-f-]{36}$/i.test(workflowId) || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(task)) {
    throw new CliError("expected a workflow id (uuid) and a task name", EXIT.usage);
  }
  const storage = new LocalStorage({ root: join(resolve(config.DWOP_HOME), "storage"), secret: "unused-for-reading" });
  const body = await storage.get(OUTPUT_BUCKET, objectPaths.output(workflowId, task));
  if (!body) throw new CliError(`no output for task '${task}' of workflow ${workflowId}`, EXIT.failed);
  await pipeline(Readable.fromWeb(body as import("node:stream/web").ReadableStream), process.stdout);
  return EXIT.ok;
}
