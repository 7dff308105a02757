import { Cron } from "croner";

/**
 * Cron expressions of schedules: five fields (minute, hour, day of month, month, day of week) or a
 * nickname such as `@daily`, read in an IANA time zone. Parsed by croner; day of month and day of week
 * both restricted means either (as Vixie cron).
 */

/** A cron expression or time zone that cannot be used: the message says what is wrong. */
export class CronError extends Error {
  constructor(
    readonly field: "cron" | "timezone",
    message: string,
  ) {
    super(message);
    this.name = "CronError";
  }
}

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

function parse(spec: CronSpec): Cron {
  checkTimezone(spec.timezone);
  const fields = spec.cron.trim().split(/\s+/);
  if (!spec.cron.trim().startsWith("@") && fields.length !== 5) {
    throw new CronError(
      "cron",
      `a cron expression has 5 fields (minute hour day-of-month month day-of-week); ${JSON.stringify(spec.cron)} has ${fields.length}`,
    );
  }
  try {
    return new Cron(spec.cron.trim(), { timezone: spec.timezone, mode: "5-part", paused: true });
  } catch (err) {
    const reason = err instanceof Error ? err.message.replace(/^CronPattern: /, "") : String(err);
    throw new CronError("cron", `invalid cron expression ${JSON.stringify(spec.cron)}: ${reason}`);
  }
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
