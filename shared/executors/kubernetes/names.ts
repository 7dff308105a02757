import { createHash } from "node:crypto";
import type { RunAssignment } from "../../model.ts";

/** The labels DWOP puts on every Job and its pods; the observer watches on MANAGED_BY. */
export const LABELS = {
  app: "app",
  managedBy: "app.kubernetes.io/managed-by",
  workflow: "dwop.io/workflow",
  task: "dwop.io/task",
  attempt: "dwop.io/attempt",
  runId: "dwop.io/run-id",
} as const;

/** Selects every Job (and pod) that DWOP created. */
export const MANAGED_SELECTOR = `${LABELS.managedBy}=dwop`;

/** The exact task name, kept beside the label (whose value may have been made label-safe). */
export const TASK_NAME_ANNOTATION = "dwop.io/task-name";

const MAX_NAME = 63;
const hash = (text: string, length: number) =>
  createHash("sha256").update(text).digest("hex").slice(0, length);

/**
 * The Job's name for one attempt: `dwop-<workflow prefix>-<task>-a<attempt>`, a DNS-1123 label of at most
 * 63 characters (the pods' job-name label is capped there). Deterministic, so a second create of the same
 * attempt is a 409. Where the name had to lose something (upper case letters folded, or truncated), a hash
 * of the exact workflow, task and attempt is appended, so two tasks never share a name.
 */
export function jobName(workflowId: string, taskName: string, attempt: number): string {
  const wf = workflowId
    .replace(/[^a-z0-9]/gi, "")
    .toLowerCase()
    .slice(0, 8);
  const slug = taskName.toLowerCase().replace(/_/g, "-");
  const tail = `-a${attempt}`;
  const plain = `dwop-${wf}-${slug}${tail}`;
  const lossy = slug !== taskName.replace(/_/g, "-");
  if (!lossy && plain.length <= MAX_NAME) return plain;
  const suffix = `-${hash(`${workflowId}/${taskName}/${attempt}`, 8)}`;
  const room = MAX_NAME - `dwop-${wf}-`.length - tail.length - suffix.length;
  const cut = slug.slice(0, room).replace(/-+$/, "");
  return `dwop-${wf}-${cut}${tail}${suffix}`;
}

/**
 * A label value for the task: label values must begin and end with a letter or digit, which a task
 * name (an identifier) need not. Trimmed underscores are replaced by a short hash to stay unique.
 */
export function taskLabel(taskName: string): string {
  const trimmed = taskName.replace(/^_+|_+$/g, "");
  if (trimmed === taskName) return taskName;
  return `${trimmed.slice(0, 56) || "t"}-${hash(taskName, 6)}`;
}

/** The labels of one attempt's Job and pod. */
export function runLabels(run: RunAssignment): Record<string, string> {
  return {
    [LABELS.app]: "dwop",
    [LABELS.managedBy]: "dwop",
    [LABELS.workflow]: run.workflowId,
    [LABELS.task]: taskLabel(run.taskName),
    [LABELS.attempt]: String(run.attempt),
    [LABELS.runId]: run.runId,
  };
}

/** The run a Job or pod belongs to, from its labels; null for an object without one. */
export function runIdOf(obj: { metadata?: { labels?: Record<string, string> } }): string | null {
  const id = obj.metadata?.labels?.[LABELS.runId];
  return id && /^\d+$/.test(id) ? id : null;
}

/** The attempt a Job runs, from its labels and annotation; null for a Job without them. */
export function attemptOf(job: {
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
}): { workflowId: string; taskName: string; attempt: number } | null {
  const labels = job.metadata?.labels ?? {};
  const taskName = job.metadata?.annotations?.[TASK_NAME_ANNOTATION];
  const workflowId = labels[LABELS.workflow];
  const attempt = Number(labels[LABELS.attempt]);
  if (!taskName || !workflowId || !Number.isSafeInteger(attempt) || attempt < 1) return null;
  return { workflowId, taskName, attempt };
}
