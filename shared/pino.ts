// Node-only.
import pino from "pino";
import type { Logger } from "./log.ts";

/** JSON logs on stderr, so stdout stays for a command's own output (`--json`, `dwop output`). */
export function createLogger(level: string): Logger {
  return pino({ level, base: { app: "dwop" } }, pino.destination(2));
}
