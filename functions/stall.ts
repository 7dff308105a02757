import * as z from "zod";
import type { Db } from "../shared/db/connect.ts";

// Stall visibility: whether the system has stopped moving tasks along, and since when. What the
// database records (dwop.system_stall: due outbox rows left unpublished, published tasks no live
// dispatcher picks up) is the authority, so the answer is the same wherever the API runs, Supabase Edge
// included, where the claimer's and dispatcher's own logs are out of sight. That the database itself
// cannot be reached only this process knows, from its own failed checks.

export const STALL_KINDS = ["publishing", "dispatching", "database"] as const;
export type StallKind = (typeof STALL_KINDS)[number];

export const Stall = z.object({
  since: z.string().meta({ description: "ISO time the stall began" }),
  what: z.enum(STALL_KINDS),
  message: z.string().meta({ description: "one human sentence" }),
});
export type Stall = z.infer<typeof Stall>;

/** /readyz's answer: `stall` is null while everything moves. */
export const Readiness = z.object({ status: z.string(), stall: Stall.nullable() });

export interface StallSettings {
  /** How long a due task may stay unpublished, or a published one without a run, before it is a stall. */
  afterSeconds: number;
  /** A dispatcher whose last heartbeat is older than this counts as gone (DWOP_LOST_AFTER_SECONDS). */
  aliveSeconds: number;
  /** DWOP_BUS_BACKLOG: while that many published tasks wait for a dispatcher, claimers hold the rest back. */
  busBacklog?: number;
}

export const DEFAULT_STALL_SETTINGS: StallSettings = { afterSeconds: 10, aliveSeconds: 30 };

const tasks = (n: number) => (n === 1 ? "1 task" : `${n} tasks`);

/** The stall the database's state shows, or null. Throws when the database cannot be queried. */
export async function readStall(db: Db, settings: StallSettings, now?: Date): Promise<Stall | null> {
  const [row] = await db<{ what: "publishing" | "dispatching"; since: Date; waiting: number }[]>`
    select what, since, waiting
    from dwop.system_stall(${settings.afterSeconds}, ${settings.aliveSeconds}, ${now ?? null},
                           ${settings.busBacklog ?? 0})`;
  if (!row) return null;
  const message =
    row.what === "publishing"
      ? `${tasks(row.waiting)} not published to the queue: is the broker down, or no claimer running?`
      : `${tasks(row.waiting)} published but not picked up: no dispatcher is running`;
  return { since: row.since.toISOString(), what: row.what, message };
}

/**
 * This process's view of the database: since when its checks have failed. Kept in memory, so on a
 * runtime that makes an app per request (workerd) "since" is that request's time.
 */
export class DatabaseWatch {
  private failingSince: number | null = null;

  constructor(private readonly now: () => number = Date.now) {}

  /** A check reached the database: any outage is over. */
  reached(): void {
    this.failingSince = null;
  }

  /** A check could not reach the database; the stall it means, dated from the first such check. */
  unreachable(err: unknown): Stall {
    this.failingSince ??= this.now();
    const code = (err as { code?: unknown })?.code;
    const why = typeof code === "string" ? ` (${code})` : "";
    return {
      since: new Date(this.failingSince).toISOString(),
      what: "database",
      message: `the database cannot be reached${why}`,
    };
  }
}
