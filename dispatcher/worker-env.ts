import { inputRefName, isInputRef } from "../shared/dsl/index.ts";
import type { WorkerEnv } from "../shared/executors/executor.ts";
import { CODE_BUCKET, OUTPUT_BUCKET, objectPaths, type RunAssignment } from "../shared/model.ts";
import type { Storage } from "../shared/storage/storage.ts";
import { createHmac } from "node:crypto";
import { logStreamMessage, logStreamUrl } from "../shared/log-stream.ts";

/** The API a worker ships its live log to, and the key its run's token is signed with. */
export interface LogStream {
  apiUrl: string;
  key: Uint8Array;
}

/**
 * Signs the URLs one attempt needs: its code (the workflow's code bundle, and the task's range in it),
 * requirements and inputs to read, its output and log to write. Each URL is for one object and one
 * method, and lives as long as the attempt may run (its deadline, which the dispatcher has resolved)
 * plus `marginSeconds`: a URL that leaks from a run is of no use for long. With a log stream, the worker
 * also gets its run's URL and token to ship its live log.
 */
export async function signWorkerEnv(
  storage: Storage,
  run: RunAssignment,
  marginSeconds: number,
  logStream?: LogStream | null,
): Promise<WorkerEnv> {
  const deadline = run.options.timeoutSeconds;
  if (!deadline) throw new Error(`run ${run.runId} has no deadline: resolve the default timeout first`);
  const ttl = deadline + marginSeconds;
  const wf = run.workflowId;
  const inputs = await Promise.all(
    run.params.map(async (p) => {
      const url = isInputRef(p.upstream)
        ? await storage.signUrl(CODE_BUCKET, objectPaths.input(wf, inputRefName(p.upstream)), "GET", ttl)
        : await storage.signUrl(OUTPUT_BUCKET, objectPaths.output(wf, p.upstream), "GET", ttl);
      return { param: p.name, url };
    }),
  );
  const env: WorkerEnv = {
    DWOP_CODE_URL: await storage.signUrl(CODE_BUCKET, objectPaths.codeBundle(wf), "GET", ttl),
    DWOP_CODE_RANGE: codeRange(run),
    DWOP_INPUTS: JSON.stringify(inputs),
    DWOP_ATTEMPT: String(run.attempt),
    DWOP_OUTPUT_URL: await storage.signUrl(OUTPUT_BUCKET, objectPaths.output(wf, run.taskName), "PUT", ttl),
    DWOP_LOG_URL: await storage.signUrl(
      OUTPUT_BUCKET,
      objectPaths.log(wf, run.taskName, run.attempt),
      "PUT",
      ttl,
    ),
  };
  if (logStream) {
    env.DWOP_LOG_STREAM_URL = logStreamUrl(logStream.apiUrl, run.runId);
    env.DWOP_LOG_STREAM_TOKEN = logStreamToken(logStream.key, run.runId);
  }
  if (run.hasRequirements) {
    env.DWOP_REQUIREMENTS_URL = await storage.signUrl(CODE_BUCKET, objectPaths.requirements(wf), "GET", ttl);
  }
  return env;
}

/** The task's range of the code bundle as `offset,length` (DWOP_CODE_RANGE). */
function codeRange(run: RunAssignment): string {
  const { offset, length } = run.code ?? {};
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset! < 0 || length! < 1) {
    throw new Error(`task ${run.taskName} of workflow ${run.workflowId} has no valid code range`);
  }
  return `${offset},${length}`;
}

/**
 * A run's log-stream token (shared/log-stream.ts, which checks it), base64url: Node's synchronous HMAC,
 * where Web Crypto's sign would be a trip through libuv's thread pool on the path of every run's start.
 */
export function logStreamToken(secret: Uint8Array, runId: string): string {
  return createHmac("sha256", secret).update(logStreamMessage(runId)).digest("base64url");
}
