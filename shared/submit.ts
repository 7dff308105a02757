import type { Store } from "./db/store.ts";
import { parseWorkflow, workflowInputs } from "./dsl/index.ts";
import { CODE_BUCKET, objectPaths, type WorkflowSpec } from "./model.ts";
import type { Storage } from "./storage/storage.ts";

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

/**
 * Parses and validates the workflow (throws DslErrors), uploads each task's code, the requirements and
 * the inputs, then records everything in one transaction. A failed upload leaves no workflow row.
 */
export async function submitWorkflow(
  deps: { store: Store; storage: Storage },
  req: SubmitRequest,
): Promise<SubmitResult> {
  const spec = parseWorkflow(req.source, req.file);
  const inputs = req.inputs ?? {};
  const missing = workflowInputs(spec).filter((name) => !Object.hasOwn(inputs, name));
  if (missing.length > 0) throw new MissingInputError(missing);

  const id = req.id ?? crypto.randomUUID();
  const hasRequirements = Boolean(req.requirements && req.requirements.trim() !== "");
  const uploads: Promise<void>[] = spec.tasks.map((t) =>
    deps.storage.put(CODE_BUCKET, objectPaths.code(id, t.name), t.body),
  );
  if (hasRequirements)
    uploads.push(deps.storage.put(CODE_BUCKET, objectPaths.requirements(id), req.requirements!));
  for (const [name, body] of Object.entries(inputs)) {
    uploads.push(deps.storage.put(CODE_BUCKET, objectPaths.input(id, name), body));
  }
  await Promise.all(uploads);

  const created = await deps.store.submitWorkflow({
    id,
    owner: req.owner,
    name: workflowName(req.file),
    source: req.source,
    hasRequirements,
    inputs: Object.keys(inputs),
    tasks: spec.tasks,
    retryBackoffMs: req.retryBackoffMs,
  });
  return { id, created, spec };
}

function workflowName(file: string): string {
  const base = file.split(/[\\/]/).pop() ?? file;
  return base.replace(/\.workflow$/, "") || "workflow";
}
