// Node-only.
import pino from "pino";
import type { Logger } from "./log.ts";

/** `pretty`: one line a record for a person; `json`: pino's lines for a collector; `auto`: by stderr. */
export type LogFormat = "auto" | "pretty" | "json";

/** Where log lines go: stderr, or a stream the caller controls (a test, a switch that mutes them). */
export interface LogDestination {
  write(line: string): unknown;
  isTTY?: boolean;
}

export interface LoggerOptions {
  format?: LogFormat;
  destination?: LogDestination;
  /** Colors in pretty lines (default: on a terminal without NO_COLOR). */
  color?: boolean;
}

/**
 * Logs on stderr, so stdout stays for a command's own output (`--json`, `dwop output`): pretty lines on
 * a terminal, JSON when piped (a log collector, `kubectl logs`) or asked for. The pretty lines are
 * formatted here rather than by pino-pretty: a few dozen lines instead of a dependency with its own
 * worker thread, and no thread to outlive a Ctrl-C.
 */
export function createLogger(level: string, options: LoggerOptions = {}): Logger {
  const out = options.destination ?? process.stderr;
  const format = options.format ?? "auto";
  const pretty = format === "pretty" || (format === "auto" && Boolean(out.isTTY));
  const color = options.color ?? (Boolean(out.isTTY) && !process.env.NO_COLOR && process.env.TERM !== "dumb");
  const destination = pretty
    ? { write: (line: string) => out.write(prettyLine(line, color)) }
    : options.destination
      ? { write: (line: string) => out.write(line) }
      : pino.destination(2);
  return pino({ level, base: { app: "dwop" } }, destination);
}

const LEVELS: Record<number, [string, number]> = {
  10: ["TRACE", 2],
  20: ["DEBUG", 2],
  30: ["INFO ", 36],
  40: ["WARN ", 33],
  50: ["ERROR", 31],
  60: ["FATAL", 31],
};
/** Fields every record has, or that the line's head already shows. */
const HEAD = new Set(["level", "time", "pid", "hostname", "app", "msg", "component", "err"]);

/** One pino JSON record as `12:03:04 WARN  claimer: publish failed key=value`, plus an error's stack. */
export function prettyLine(json: string, color = false): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith("\n") ? json : `${json}\n`;
  }
  const paint = (code: number, text: string) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
  const time = new Date(typeof rec.time === "number" ? rec.time : Date.now()).toTimeString().slice(0, 8);
  const [name, code] = LEVELS[rec.level as number] ?? [String(rec.level), 0];
  const where = typeof rec.component === "string" ? `${rec.component}: ` : "";
  const fields = Object.entries(rec)
    .filter(([k]) => !HEAD.has(k))
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
  const err = rec.err as { message?: string; stack?: string } | undefined;
  const message = [rec.msg, err?.message && err.message !== rec.msg ? err.message : null]
    .filter((m) => typeof m === "string" && m)
    .join(": ");
  let line = `${paint(2, time)} ${paint(code, name)} ${where}${message}`;
  if (fields.length) line += ` ${paint(2, fields.join(" "))}`;
  // A stack only where it helps: errors, not the warnings an outage repeats every second.
  if (err?.stack && (rec.level as number) >= 50) {
    const frames = err.stack.split("\n").slice(1, 8);
    if (frames.length) line += `\n${paint(2, frames.join("\n"))}`;
  }
  return `${line}\n`;
}
