import { readdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Config } from "../shared/config.ts";
import { OUTPUT_BUCKET, objectPaths } from "../shared/model.ts";
import { LocalStorage } from "../shared/storage/local.ts";

// What `dwop run` leaves in DWOP_HOME, read without a server: outputs and logs are files of the home's
// local storage (`<home>/storage/<bucket>/<key>`), so reading them needs no database. Starting the
// embedded PostgreSQL would cost seconds and tell nothing a log or an output needs: the latest
// attempt is the highest-numbered log file.

/** The home's local storage, for reading (signed URLs are not made here). */
export function homeStorage(config: Config): LocalStorage {
  return new LocalStorage({ root: join(resolve(config.DWOP_HOME), "storage"), secret: "unused-for-reading" });
}

/** The attempts of a task whose log the home holds, in order. */
export async function homeLogAttempts(config: Config, workflowId: string, task: string): Promise<number[]> {
  const folder = join(resolve(config.DWOP_HOME), "storage", OUTPUT_BUCKET, workflowId, task);
  const files = await readdir(folder).catch(() => [] as string[]);
  return files
    .map((f) => /^attempt-(\d+)\.log$/.exec(f)?.[1])
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
