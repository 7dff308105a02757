import { WORKFLOW_STATES, type WorkflowState } from "../../shared/model.ts";
import { CliError, EXIT } from "../exit.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TASK = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A workflow id argument, or a usage error (exit 2). */
export function workflowId(value: string): string {
  if (!UUID.test(value)) throw new CliError(`expected a workflow id (a UUID), got '${value}'`, EXIT.usage);
  return value.toLowerCase();
}

export const isWorkflowId = (value: string) => UUID.test(value);

export function taskName(value: string): string {
  if (!TASK.test(value)) throw new CliError(`expected a task name, got '${value}'`, EXIT.usage);
  return value;
}

export function workflowState(value: string | undefined): WorkflowState | undefined {
  if (value === undefined) return undefined;
  if (!(WORKFLOW_STATES as readonly string[]).includes(value)) {
    throw new CliError(`--status is one of ${WORKFLOW_STATES.join(", ")}`, EXIT.usage);
  }
  return value as WorkflowState;
}

export function positiveInt(
  value: string | undefined,
  flag: string,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new CliError(`${flag} wants a whole number from 1 to ${max}`, EXIT.usage);
  return n;
}
