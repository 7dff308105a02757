import { inputRefName, isInputRef } from "../shared/dsl/index.ts";
import type { WorkerEnv } from "../shared/executors/executor.ts";
import { CODE_BUCKET, OUTPUT_BUCKET, objectPaths, type RunAssignment } from "../shared/model.ts";
import type { ObjectRange, SignedMethod, Storage } from "../shared/storage/storage.ts";
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
 *
 * With `inlineBytes` (the executor's, see Executor.inlineBytes), the code and each input of at most that
 * many bytes that the storage can read at once are given in the environment instead (base64), up to
 * INLINE_TOTAL_BYTES in all; the rest, and every object of a storage that cannot, by URL. Where the code
 * itself was read so, the storage also takes a small output and log from the executor
 * (DWOP_INLINE_RESULT_BYTES), within its size limit.
 */
export async function signWorkerEnv(
  storage: Storage,
  run: RunAssignment,
  marginSeconds: number,
  logStream?: LogStream | null,
  inlineBytes = 0,
): Promise<WorkerEnv> {
  const deadline = run.options.timeoutSeconds;
  if (!deadline) throw new Error(`run ${run.runId} has no deadline: resolve the default timeout first`);
  const ttl = deadline + marginSeconds;
  const wf = run.workflowId;
  const range = codeRange(run);
  const inline = inliner(storage, inlineBytes);
  const codeKey = objectPaths.codeBundle(wf);
  const code = inline(CODE_BUCKET, codeKey, range);
  const params = run.params.map((p) => {
    const [bucket, key] = isInputRef(p.upstream)
      ? [CODE_BUCKET, objectPaths.input(wf, inputRefName(p.upstream))]
      : [OUTPUT_BUCKET, objectPaths.output(wf, p.upstream)];
    return { name: p.name, bucket, key, data: inline(bucket, key, null) };
  });
  // Every URL the run needs, signed together: each one's index in `urls`.
  const wanted: WantedUrl[] = [];
  const want = (bucket: string, key: string, method: SignedMethod) =>
    wanted.push({ bucket, key, method }) - 1;
  const output = want(OUTPUT_BUCKET, objectPaths.attemptOutput(wf, run.taskName, run.attempt), "PUT");
  const log = want(OUTPUT_BUCKET, objectPaths.log(wf, run.taskName, run.attempt), "PUT");
  const inputUrls = params.map((p) => (p.data === null ? want(p.bucket, p.key, "GET") : -1));
  const codeUrl = code === null ? want(CODE_BUCKET, codeKey, "GET") : -1;
  const requirementsUrl = run.hasRequirements ? want(CODE_BUCKET, objectPaths.requirements(wf), "GET") : -1;
  const urls = await signAll(storage, wanted, ttl);

  const inputs = params.map((p, i) =>
    p.data !== null ? { param: p.name, data: p.data } : { param: p.name, url: urls[inputUrls[i]!]! },
  );
  const env: WorkerEnv = {
    ...(code !== null ? { DWOP_CODE: code } : { DWOP_CODE_URL: urls[codeUrl]! }),
    DWOP_CODE_RANGE: `${range.offset},${range.length}`,
    DWOP_INPUTS: JSON.stringify(inputs),
    DWOP_ATTEMPT: String(run.attempt),
    DWOP_OUTPUT_URL: urls[output]!,
    DWOP_LOG_URL: urls[log]!,
  };
  // The code found where the storage keeps objects shows that it is the storage server's own: a
  // dispatcher whose DWOP_HOME is not the API's signs URLs for objects it does not hold, and must not
  // store a run's output where nobody reads it.
  if (code !== null) {
    env.DWOP_INLINE_RESULT_BYTES = String(Math.min(inlineBytes, storage.maxObjectBytes ?? inlineBytes));
  }
  if (logStream) {
    env.DWOP_LOG_STREAM_URL = logStreamUrl(logStream.apiUrl, run.runId);
    env.DWOP_LOG_STREAM_TOKEN = logStreamToken(logStream.key, run.runId);
  }
  if (requirementsUrl >= 0) env.DWOP_REQUIREMENTS_URL = urls[requirementsUrl]!;
  return env;
}

/** One URL to sign for a run. */
interface WantedUrl {
  bucket: string;
  key: string;
  method: SignedMethod;
}

/**
 * Signs the URLs in order: at once where the storage signs with its own key (LocalStorage's signUrlNow,
 * no promise each), else every request together (Supabase Storage signs over HTTP: one round trip's time
 * for all of them, not one after another).
 */
function signAll(storage: Storage, wanted: WantedUrl[], ttl: number): string[] | Promise<string[]> {
  const { signUrlNow } = storage;
  if (signUrlNow) return wanted.map((w) => signUrlNow.call(storage, w.bucket, w.key, w.method, ttl));
  return Promise.all(wanted.map((w) => storage.signUrl(w.bucket, w.key, w.method, ttl)));
}

/** The most bytes one run gets in its environment (its code and inputs together); see signWorkerEnv. */
export const INLINE_TOTAL_BYTES = 256 * 1024;

/**
 * Reads objects for one run's environment: base64 of an object (or range) of at most `maxBytes`, while
 * the run's total stays within INLINE_TOTAL_BYTES; null when it goes by URL.
 */
function inliner(storage: Storage, maxBytes: number) {
  let left = INLINE_TOTAL_BYTES;
  return (bucket: string, key: string, range: ObjectRange | null): string | null => {
    if (!storage.readNow || maxBytes <= 0 || left <= 0) return null;
    const bytes = storage.readNow(bucket, key, range, Math.min(maxBytes, left));
    if (bytes === null) return null;
    left -= bytes.length;
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("base64");
  };
}

/** The task's range of the code bundle (DWOP_CODE_RANGE is `offset,length`). */
function codeRange(run: RunAssignment): ObjectRange {
  const { offset, length } = run.code ?? {};
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset! < 0 || length! < 1) {
    throw new Error(`task ${run.taskName} of workflow ${run.workflowId} has no valid code range`);
  }
  return { offset: offset!, length: length! };
}

/**
 * A run's log-stream token (shared/log-stream.ts, which checks it), base64url: Node's synchronous HMAC,
 * where Web Crypto's sign would be a trip through libuv's thread pool on the path of every run's start.
 */
export function logStreamToken(secret: Uint8Array, runId: string): string {
  return createHmac("sha256", secret).update(logStreamMessage(runId)).digest("base64url");
}
