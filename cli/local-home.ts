import { readdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Config } from "../shared/config.ts";
import { OUTPUT_BUCKET, objectPaths } from "../shared/model.ts";
import { LocalStorage } from "../shared/storage/local.ts";

// What `dwop run` leaves in DWOP_HOME, read without a server: outputs and logs are files of the home's
// local storage (`<home>/storage/<bucket>/<key>`), so reading them needs no database. Starting the
// embedded PostgreSQL would cost seconds and tell nothing a log or an output needs: the latest
// attempt is the highest-numbered log file, and a task's output the highest-numbered attempt's output file
// (an attempt is made only after the one before it ended, and none after the one that succeeded).

/** The home's local storage, for reading (signed URLs are not made here). */
export function homeStorage(config: Config): LocalStorage {
  return new LocalStorage({ root: join(resolve(config.DWOP_HOME), "storage"), secret: "unused-for-reading" });
}

/** The attempts of a task whose log the home holds, in order. */
export function homeLogAttempts(config: Config, workflowId: string, task: string): Promise<number[]> {
  return homeAttempts(config, workflowId, task, /^attempt-(\d+)\.log$/);
}

/**
 * The task's output the home holds: the highest-numbered attempt's (see above), or a task's `output.txt`
 * from before outputs were kept by attempt; null when it holds none.
 */
export async function homeOutput(
  config: Config,
  workflowId: string,
  task: string,
): Promise<ReadableStream<Uint8Array> | null> {
  const attempt =
    (await homeAttempts(config, workflowId, task, /^attempt-(\d+)\.output\.txt$/)).at(-1) ?? null;
  return homeStorage(config).get(OUTPUT_BUCKET, objectPaths.output(workflowId, task, attempt));
}

/** The attempts whose file (named as `pattern`, the attempt its first group) the home holds, in order. */
async function homeAttempts(
  config: Config,
  workflowId: string,
  task: string,
  pattern: RegExp,
): Promise<number[]> {
  const folder = join(resolve(config.DWOP_HOME), "storage", OUTPUT_BUCKET, workflowId, task);
  const files = await readdir(folder).catch(() => [] as string[]);
  return files
    .map((f) => pattern.exec(f)?.[1])
    .filter((n) => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

/** One attempt's log from the home (default: the latest there), or null when it holds none. */
export async function homeLog(
  config: Config,
  workflowId: string,
  task: string,
  attempt?: number,
): Promise<{ attempt: number; body: ReadableStream<Uint8Array> } | null> {
  const which = attempt ?? (await homeLogAttempts(config, workflowId, task)).at(-1);
  if (which === undefined) return null;
  const body = await homeStorage(config).get(OUTPUT_BUCKET, objectPaths.log(workflowId, task, which));
  return body ? { attempt: which, body } : null;
}
