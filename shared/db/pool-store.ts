import type { Db } from "./connect.ts";

/** A pool as GET /pools shows it: its size, the runs holding a slot, and the tasks queued for one. */
export interface PoolRow {
  name: string;
  slots: number;
  running: number;
  waiting: number;
  createdAt: Date;
  updatedAt: Date;
}

const POOL_COLUMNS = `name, slots, running, waiting, created_at as "createdAt", updated_at as "updatedAt"`;

/** Typed calls to the SQL functions of pools and owner caps (migration 20261205000200). */
export class PoolStore {
  constructor(private readonly db: Db) {}

  async list(): Promise<PoolRow[]> {
    return this.db<PoolRow[]>`select ${this.db.unsafe(POOL_COLUMNS)} from dwop.pool_list()`;
  }

  /** Makes or resizes a pool; tasks parked for it are reoffered when it grows. */
  async set(name: string, slots: number): Promise<PoolRow> {
    const [row] = await this.db<PoolRow[]>`
      select ${this.db.unsafe(POOL_COLUMNS)} from dwop.set_pool(${name}, ${slots})`;
    if (!row) throw new Error("set_pool returned no row");
    return row;
  }

  async delete(name: string): Promise<"deleted" | "not_found" | "in_use"> {
    const [row] = await this.db<{ result: "deleted" | "not_found" | "in_use" }[]>`
      select dwop.delete_pool(${name}) as result`;
    return row?.result ?? "not_found";
  }

  /** Sets (null: clears) the cap on running tasks that key `id` gives its owner; false for no live key. */
  async setKeyMaxRunning(id: string, maxRunning: number | null): Promise<boolean> {
    const [row] = await this.db<{ ok: boolean }[]>`
      select dwop.set_key_max_running(${id}, ${maxRunning}) as ok`;
    return row?.ok ?? false;
  }
}
