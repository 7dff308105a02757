import type { Logger } from "../../shared/log.ts";

export interface LogEntry {
  level: "debug" | "info" | "warn" | "error";
  msg: string | undefined;
  obj: object;
}

/** A Logger that keeps every entry (children's too), so a test can wait for what a component said. */
export function recordingLogger(): { logger: Logger; entries: LogEntry[]; count(msg: string): number } {
  const entries: LogEntry[] = [];
  const make = (bindings: object): Logger => ({
    debug: (obj, msg) => entries.push({ level: "debug", msg, obj: { ...bindings, ...obj } }),
    info: (obj, msg) => entries.push({ level: "info", msg, obj: { ...bindings, ...obj } }),
    warn: (obj, msg) => entries.push({ level: "warn", msg, obj: { ...bindings, ...obj } }),
    error: (obj, msg) => entries.push({ level: "error", msg, obj: { ...bindings, ...obj } }),
    child: (more) => make({ ...bindings, ...more }),
  });
  return { logger: make({}), entries, count: (msg) => entries.filter((e) => e.msg === msg).length };
}
