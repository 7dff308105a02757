import { Cron } from "croner";

/**
 * Cron expressions of schedules: five fields (minute, hour, day of month, month, day of week) or a
 * nickname such as `@daily`, read in an IANA time zone. Parsed by croner; day of month and day of week
 * both restricted means either (as Vixie cron).
 */

/** Where in an expression a CronError is: its field (1-5), the field's name and its first column (1-based). */
export interface CronPosition {
  field: number;
  name: string;
  column: number;
}

/** A cron expression or time zone that cannot be used: the message says what is wrong, and where. */
export class CronError extends Error {
  constructor(
    readonly field: "cron" | "timezone",
    message: string,
    readonly position: CronPosition | null = null,
  ) {
    super(message);
    this.name = "CronError";
  }
}

/** The five fields, with the values each takes (said in an error naming the field). */
const FIELDS = [
  { name: "minute", takes: "0-59" },
  { name: "hour", takes: "0-23" },
  { name: "day of month", takes: "1-31, L (the last day) or nW (the weekday nearest day n)" },
  { name: "month", takes: "1-12 or JAN-DEC" },
  { name: "day of week", takes: "0-7 (0 and 7 are Sunday), SUN-SAT, nL (the last) or n#k (the k-th)" },
] as const;

const NICKNAMES = ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"];

export interface CronSpec {
  cron: string;
  timezone: string;
}

/** Checks a time zone name (`Europe/Berlin`, `UTC`); a CronError names a bad one. */
export function checkTimezone(timezone: string): void {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: timezone });
  } catch {
    throw new CronError(
      "timezone",
      `unknown time zone ${JSON.stringify(timezone)}: use an IANA name such as UTC or Europe/Berlin`,
    );
  }
}

function cron(pattern: string, timezone: string): Cron {
  return new Cron(pattern, { timezone, mode: "5-part", paused: true });
}

function parse(spec: CronSpec): Cron {
  checkTimezone(spec.timezone);
  const text = spec.cron.trim();
  if (text.startsWith("@")) {
    if (!NICKNAMES.includes(text.toLowerCase())) {
      throw new CronError(
        "cron",
        `unknown cron nickname ${JSON.stringify(text)}: use one of ${NICKNAMES.join(", ")}, or 5 fields`,
      );
    }
    return cron(text, spec.timezone);
  }
  const fields = text.split(/\s+/);
  if (fields.length !== 5) {
    throw new CronError(
      "cron",
      `a cron expression has 5 fields (minute hour day-of-month month day-of-week); ${JSON.stringify(spec.cron)} has ${fields.length}`,
    );
  }
  try {
    return cron(text, spec.timezone);
  } catch (err) {
    throw (
      badField(spec.cron, fields) ??
      new CronError("cron", `invalid cron expression ${JSON.stringify(spec.cron)}: ${reason(err)}`)
    );
  }
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message.replace(/^CronPattern: /, "") : String(err);
}

/**
 * The first field croner refuses on its own (the others `*`), as an error naming its number, name,
 * column and the values it takes; null when each field passes alone. croner's own messages name a field
 * by an internal name with a value off by one (`day: 31` for 32), so they are not shown for a field.
 */
function badField(expression: string, fields: string[]): CronError | null {
  let column = expression.length - expression.trimStart().length + 1;
  for (const [i, value] of fields.entries()) {
    column = expression.indexOf(value, column - 1) + 1;
    const alone = fields.map((_, j) => (j === i ? value : "*")).join(" ");
    try {
      cron(alone, "UTC");
    } catch (err) {
      const { name, takes } = FIELDS[i]!;
      // croner's words help for a step of 0 or a backwards range; the rest say less than `takes`.
      const why = reason(err);
      const detail = /invalid value|illegal characters|not a number/i.test(why) ? "" : ` (${why})`;
      const message =
        `invalid cron expression ${JSON.stringify(expression)}: field ${i + 1} (${name}, column ${column}) ` +
        `is ${JSON.stringify(value)}${detail}; ${name} takes ${takes}, with *, lists a,b, ranges a-b and steps /n`;
      return new CronError("cron", message, { field: i + 1, name, column });
    }
    column += value.length;
  }
  return null;
}

/**
 * Checks an expression and its zone, and that the expression names some time after `now` (`0 0 30 2 *`
 * names none); throws a CronError saying what is wrong. Returns the first fire time after `now`.
 */
export function checkCron(spec: CronSpec, now: Date): Date {
  const next = parse(spec).nextRun(now);
  if (!next) throw new CronError("cron", `the cron expression ${JSON.stringify(spec.cron)} never fires`);
  return next;
}

/** The first fire time strictly after `after`, or null when there is none. */
export function nextFireAfter(spec: CronSpec, after: Date): Date | null {
  return parse(spec).nextRun(after);
}

/** The latest fire time at or before `at`, or null when there is none. */
export function latestFireAtOrBefore(spec: CronSpec, at: Date): Date | null {
  // previousRuns counts times strictly before its reference; a second later includes `at` itself.
  const [latest] = parse(spec).previousRuns(1, new Date(at.getTime() + 1000));
  return latest && latest.getTime() <= at.getTime() ? latest : null;
}

/** The latest fire time strictly before `before`, or null when there is none. */
export function latestFireBefore(spec: CronSpec, before: Date): Date | null {
  const [latest] = parse(spec).previousRuns(1, before);
  return latest && latest.getTime() < before.getTime() ? latest : null;
}

/**
 * How many fire times lie in `from`..`through` (both included, `from` counted whether or not the
 * expression names it), or null when more than `cap` do: each step costs tens of microseconds, so a
 * minutely schedule down for a month is not walked minute by minute.
 */
export function countFires(spec: CronSpec, from: Date, through: Date, cap: number): number | null {
  const cron = parse(spec);
  let count = 1;
  for (let t = cron.nextRun(from); t && t.getTime() <= through.getTime(); t = cron.nextRun(t)) {
    if (++count > cap) return null;
  }
  return count;
}
