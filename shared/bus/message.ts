import type { Logger } from "../log.ts";
import type { TaskMessage } from "../model.ts";

/** Reads a task message from a decoded body; null when it is not `{taskId: string, attempt: positive int}`. */
export function toTaskMessage(value: unknown): TaskMessage | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const { taskId, attempt } = value as Record<string, unknown>;
  if (typeof taskId !== "string" || taskId === "") return null;
  if (typeof attempt !== "number" || !Number.isSafeInteger(attempt) || attempt < 1) return null;
  return { taskId, attempt };
}

/** Parses a message body as the broker delivers it; null when it is not valid JSON of a task message. */
export function parseTaskMessage(content: Buffer | string): TaskMessage | null {
  try {
    return toTaskMessage(JSON.parse(content.toString()));
  } catch {
    return null;
  }
}

/** The body the bus writes: only the fields of a task message, whatever else the object carries. */
export function encodeTaskMessage(message: TaskMessage): string {
  return JSON.stringify({ taskId: message.taskId, attempt: message.attempt });
}

/** The logging calls the buses make: any `Logger` (pino) fits. */
export type BusLogger = Pick<Logger, "info" | "warn" | "error">;

/** Writes warnings and errors to stderr, one JSON line each, and drops info. */
export const stderrLogger: BusLogger = {
  info() {},
  warn: (details, message) => console.error(JSON.stringify({ level: "warn", msg: message, ...details })),
  error: (details, message) => console.error(JSON.stringify({ level: "error", msg: message, ...details })),
};

/** An error's message, for log lines. */
export function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
