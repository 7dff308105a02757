import type { Config } from "./config.ts";
import type { Store } from "./db/store.ts";
import { countTasks, parseWorkflow, workflowInputs } from "./dsl/index.ts";
import { silentLogger, type Logger } from "./log.ts";
import { CODE_BUCKET, objectPaths, type CodeRange, type TaskSpec, type WorkflowSpec } from "./model.ts";
import type { Semaphore } from "./semaphore.ts";
import type { Storage } from "./storage/storage.ts";

/** What one submission may hold: these guard the API's memory, time and storage. */
export interface SubmitLimits {
  /** Tasks per workflow, counted before the file is parsed. */
  maxTasks: number;
  /** UTF-8 bytes of the workflow file: parsing is synchronous, so this bounds how long it holds the server. */
  maxWorkflowBytes: number;
  /** `inputs.NAME` files per submission. */
  maxInputs: number;
}

export const DEFAULT_SUBMIT_LIMITS: SubmitLimits = {
  maxTasks: 10_000,
  maxWorkflowBytes: 1024 * 1024,
  maxInputs: 100,
};

/** The limits the configuration sets (DWOP_MAX_TASKS_PER_WORKFLOW, ...). */
export function submitLimits(config: Config): SubmitLimits {
  return {
    maxTasks: config.DWOP_MAX_TASKS_PER_WORKFLOW,
    maxWorkflowBytes: config.DWOP_MAX_WORKFLOW_BYTES,
    maxInputs: config.DWOP_MAX_INPUTS_PER_WORKFLOW,
  };
}

/** Objects of one submission stored at once. */
export const UPLOAD_CONCURRENCY = 16;

/** What a submission needs; `uploadSlots`, when given, bounds uploads across every submission at once. */
export interface SubmitDeps {
  store: Store;
  storage: Storage;
  logger?: Logger;
  uploadSlots?: Semaphore;
}

export interface SubmitRequest {
  source: string;
  /** Shown in DSL errors and used as the workflow's name (without its extension). */
  file: string;
  requirements?: string | null;
  /** Submit-time inputs, referenced in the DSL as `inputs.NAME`. */
  inputs?: Record<string, Uint8Array | string>;
  owner: string;
  /** Fixed id (idempotent submits); a new one is made when absent. */
  id?: string;
  retryBackoffMs: number;
  /** Each task's infrastructure retry budget (DWOP_MAX_INFRA_RETRIES); default 3. */
  maxInfraRetries?: number;
  /** The priority of the workflow's tasks that set no @priority (default 0). */
  priority?: number;
  /** The spec `checkSubmission` returned for this source, so the file is not parsed twice. */
  spec?: WorkflowSpec;
  limits?: SubmitLimits;
  /** The schedule that starts this workflow (marked on it, listed by `GET /workflows?schedule=`). */
  schedule?: string;
  /** With `schedule`: cancel its unfinished workflows in the transaction that makes this one. */
  cancelPrevious?: boolean;
}

export interface SubmitResult {
  id: string;
  created: boolean;
  spec: WorkflowSpec;
}

export class MissingInputError extends Error {
  constructor(readonly names: string[]) {
    super(`the workflow reads inputs that were not given: ${names.map((n) => `inputs.${n}`).join(", ")}`);
    this.name = "MissingInputError";
  }
}

/** A submission over a limit (`too_*`, answered 413) or with inputs no task reads (422). */
export class SubmissionRefused extends Error {
  constructor(
    readonly code: "too_many_tasks" | "workflow_too_large" | "too_many_inputs" | "unread_inputs",
    message: string,
    readonly details: Record<string, unknown>,
  ) {
    super(message);
    this.name = "SubmissionRefused";
  }
}

/**
 * Checks a submission before anything is stored, cheapest first: the file's size and its task count
 * (both without parsing), the number of inputs, then the parse (DslErrors), inputs read but not given
 * (MissingInputError) and, with `refuseUnread`, inputs given that no task reads (a webhook's payload is
 * given whether its workflow reads it or not). Returns the parsed spec.
 */
export function checkSubmission(
  source: string,
  file: string,
  inputNames: readonly string[],
  limits: SubmitLimits = DEFAULT_SUBMIT_LIMITS,
  options: { refuseUnread: boolean } = { refuseUnread: false },
): WorkflowSpec {
  checkWorkflowSize(source, limits);
  if (inputNames.length > limits.maxInputs) {
    const message = `${inputNames.length} inputs given; a workflow may have at most ${limits.maxInputs}`;
    throw new SubmissionRefused("too_many_inputs", message, {
      limit: limits.maxInputs,
      inputs: inputNames.length,
    });
  }
  const spec = parseWorkflow(source, file);
  const read = workflowInputs(spec);
  const missing = read.filter((name) => !inputNames.includes(name));
  if (missing.length > 0) throw new MissingInputError(missing);
  const unread = inputNames.filter((name) => !read.includes(name));
  if (options.refuseUnread && unread.length > 0) {
    const list = unread.map((n) => `inputs.${n}`).join(", ");
    throw new SubmissionRefused("unread_inputs", `no task reads ${list}`, { inputs: unread });
  }
  return spec;
}

/**
 * Refuses (SubmissionRefused) a workflow file over the byte limit or with more tasks than the limit,
 * without parsing it: both run in linear time and stop at the limit, before the synchronous parse.
 */
export function checkWorkflowSize(source: string, limits: SubmitLimits = DEFAULT_SUBMIT_LIMITS): void {
  if (utf8Length(source, limits.maxWorkflowBytes) > limits.maxWorkflowBytes) {
    const message = `the workflow file is larger than ${limits.maxWorkflowBytes} bytes`;
    throw new SubmissionRefused("workflow_too_large", message, { limit: limits.maxWorkflowBytes });
  }
  const tasks = countTasks(source, limits.maxTasks);
  if (tasks > limits.maxTasks) {
    const message = `the workflow has more than ${limits.maxTasks} tasks (the limit per workflow)`;
    throw new SubmissionRefused("too_many_tasks", message, { limit: limits.maxTasks, tasks });
  }
}

/** The UTF-8 length of `text`, exact up to `cap` (past it, any number over `cap`). */
function utf8Length(text: string, cap: number): number {
  if (text.length > cap) return text.length;
  if (text.length * 3 <= cap) return text.length;
  return new TextEncoder().encode(text).byteLength;
}

/**
 * Checks the workflow (see `checkSubmission`), uploads the code bundle, the requirements and the inputs
 * (UPLOAD_CONCURRENCY at a time), then records everything in one transaction. When an upload or the
 * transaction fails, the objects already stored are deleted again: a failed submission leaves no
 * workflow row and no object.
 */
export async function submitWorkflow(deps: SubmitDeps, req: SubmitRequest): Promise<SubmitResult> {
  const inputs = req.inputs ?? {};
  const spec = req.spec ?? checkSubmission(req.source, req.file, Object.keys(inputs), req.limits);
  const id = req.id ?? crypto.randomUUID();
  const hasRequirements = Boolean(req.requirements && req.requirements.trim() !== "");
  const bundle = codeBundle(sourceFileName(req.file), spec.tasks);
  const objects: [string, Uint8Array | string][] = [[objectPaths.codeBundle(id), bundle.bytes]];
  if (hasRequirements) objects.push([objectPaths.requirements(id), req.requirements!]);
  for (const [name, body] of Object.entries(inputs)) objects.push([objectPaths.input(id, name), body]);

  const stored: string[] = [];
  const cleanUp = () => removeObjects(deps, stored, req.id === undefined ? null : id);
  try {
    await eachLimited(objects, UPLOAD_CONCURRENCY, async ([key, body]) => {
      await deps.uploadSlots?.acquire();
      try {
        await deps.storage.put(CODE_BUCKET, key, body);
      } finally {
        deps.uploadSlots?.release();
      }
      stored.push(key);
    });
  } catch (err) {
    await cleanUp();
    throw err;
  }

  let created: boolean;
  try {
    created = await deps.store.submitWorkflow({
      id,
      owner: req.owner,
      name: workflowName(req.file),
      source: req.source,
      hasRequirements,
      inputs: Object.keys(inputs),
      tasks: spec.tasks,
      code: bundle.ranges,
      retryBackoffMs: req.retryBackoffMs,
      maxInfraRetries: req.maxInfraRetries,
      schedule: req.schedule,
      cancelPrevious: req.cancelPrevious,
      priority: req.priority,
    });
  } catch (err) {
    await cleanUp();
    throw err;
  }
  return { id, created, spec };
}

/**
 * Runs `work` on every item, at most `limit` at once; after the first failure no new item starts, and
 * the failure is thrown once those in flight have settled (so the caller knows what was stored).
 */
async function eachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | null = null;
  const lane = async () => {
    while (failure === null && next < items.length) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure) throw (failure as { err: unknown }).err;
}

/**
 * Deletes a failed submission's objects, best effort (a failed delete is logged, never thrown over the
 * submission's own error). With a caller-chosen id (an Idempotency-Key, a webhook delivery) a duplicate
 * request may have stored the same keys and recorded the workflow: then they are its objects and stay.
 */
async function removeObjects(deps: SubmitDeps, keys: string[], sharedId: string | null): Promise<void> {
  if (keys.length === 0) return;
  const log = deps.logger ?? silentLogger;
  try {
    if (sharedId !== null && (await deps.store.workflowSummary(sharedId)) !== null) return;
  } catch {
    // Unknown (the database is likely what failed): most likely no request recorded it, so delete.
  }
  try {
    await deps.storage.remove(CODE_BUCKET, keys);
  } catch (err) {
    log.error(
      { err, bucket: CODE_BUCKET, objects: keys.length },
      "could not delete a failed submission's objects",
    );
  }
}

/**
 * A task's stored code: a first line that says where the body is in the workflow file, then the body.
 * The worker compiles the body as that file, from the line below `fun`, so a traceback says
 * `File "etl.workflow", line 10, in transform`.
 */
export function codeObject(file: string, task: Pick<TaskSpec, "name" | "line" | "body">): string {
  return `${SOURCE_MARK}${JSON.stringify({ file, line: task.line, task: task.name })}\n${task.body}`;
}

/** Every task's code object, one after another, and each one's byte range in it. */
export interface CodeBundle {
  bytes: Uint8Array;
  ranges: CodeRange[];
}

/**
 * One object holding every task's code (`codeObject`), so a submit stores one object whatever its task
 * count; each worker reads its own range of it. The text is encoded once, and each range measured
 * without encoding it again.
 */
export function codeBundle(
  file: string,
  tasks: readonly Pick<TaskSpec, "name" | "line" | "body">[],
): CodeBundle {
  const ranges: CodeRange[] = [];
  const parts: string[] = [];
  let offset = 0;
  for (const task of tasks) {
    const part = codeObject(file, task);
    const length = utf8ByteLength(part);
    parts.push(part);
    ranges.push({ offset, length });
    offset += length;
  }
  const bytes = new TextEncoder().encode(parts.join(""));
  if (bytes.byteLength !== offset) throw new Error("the code bundle's ranges do not add up to its size");
  return { bytes, ranges };
}

/** The UTF-8 length of `text` (a lone surrogate counts as U+FFFD's 3 bytes, as TextEncoder writes it). */
function utf8ByteLength(text: string): number {
  let n = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        n += 2; // a pair: 2 UTF-16 units, 4 bytes
        i++;
      } else n += 2;
    } else n += 2;
  }
  return n;
}

/** The first line of a stored task's code (the worker reads it: worker/dwop_source.py). */
export const SOURCE_MARK = "# dwop-source: ";

function sourceFileName(file: string): string {
  return file.split(/[\\/]/).pop() || "workflow";
}

function workflowName(file: string): string {
  const base = file.split(/[\\/]/).pop() ?? file;
  return base.replace(/\.workflow$/, "") || "workflow";
}
