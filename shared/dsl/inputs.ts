import type { WorkflowSpec } from "../model.ts";

/**
 * Workflow inputs are submit-time files (a form field, a webhook's payload) that a task reads like an
 * upstream's output: `fun f(data:inputs.payload):`. No task can be named `inputs`, so the two never clash.
 */
export const INPUT_PREFIX = "inputs.";

const INPUT_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** True when a parameter's upstream is a workflow input (`inputs.NAME`) rather than a task. */
export function isInputRef(upstream: string): boolean {
  return upstream.startsWith(INPUT_PREFIX) && INPUT_NAME.test(upstream.slice(INPUT_PREFIX.length));
}

/** `payload` for `inputs.payload`. */
export function inputRefName(upstream: string): string {
  return upstream.slice(INPUT_PREFIX.length);
}

/** The input names a workflow reads, each once, in the order tasks first read them. */
export function workflowInputs(spec: WorkflowSpec): string[] {
  const names = new Set<string>();
  for (const task of spec.tasks) {
    for (const p of task.params) if (isInputRef(p.upstream)) names.add(inputRefName(p.upstream));
  }
  return [...names];
}
