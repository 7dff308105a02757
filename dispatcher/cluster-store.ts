import type { Db } from "../shared/db/connect.ts";
import { runAssignment, type StartRunRow } from "../shared/db/store.ts";
import type { RunAssignment, RunState, TaskMessage } from "../shared/model.ts";

/** What start_cluster_run found for a delivery. */
export type ClusterStartResult =
  | { kind: "created"; assignment: RunAssignment }
  /** The run was there already (a redelivery); `status` says whether its Job may still need creating. */
  | { kind: "duplicate"; status: RunState; assignment: RunAssignment }
  /** As many runs as the cap allows are active across all dispatchers. */
  | { kind: "at_capacity" }
  /** The task moved on (cancelled, or a newer attempt): nothing to run. */
  | { kind: "stale" };

/** start_cluster_run's row: start_runs's, with no run when the cap is reached. */
interface StartRow extends Omit<StartRunRow, "run_id"> {
  run_id: string | null;
  run_status: RunState | null;
  at_capacity: boolean;
}

/** Typed calls to the SQL functions of cluster executors: capped starts, leases, the reconcile's reads. */
export class ClusterStore {
  constructor(readonly db: Db) {}

  async startClusterRun(
    message: TaskMessage,
    dispatcherId: string,
    executor: string,
    maxActive: number,
    ownerMaxRunning: number | null = null,
  ): Promise<ClusterStartResult> {
    const [row] = await this.db<StartRow[]>`
      select * from dwop.start_cluster_run(${message.taskId}, ${message.attempt}, ${dispatcherId}, ${executor},
                                           ${maxActive}, p_owner_max_running => ${ownerMaxRunning})`;
    if (!row) return { kind: "stale" };
    if (row.at_capacity || row.run_id === null) return { kind: "at_capacity" };
    const assignment = runAssignment(message, { ...row, run_id: row.run_id });
    if (row.created) return { kind: "created", assignment };
    return { kind: "duplicate", status: row.run_status ?? "starting", assignment };
  }

  /**
   * Finishes starting a run left in 'starting' (its dispatcher died between recording it and marking it
   * dispatched): with the run's row locked, so its result cannot be recorded (and its Job deleted) while
   * `start` creates the Job again, calls `start` and marks the run dispatched. False when the run was no
   * longer starting.
   */
  async resumeStartingRun(runId: string, start: () => Promise<string>): Promise<boolean> {
    return this.db.begin(async (tx) => {
      const [row] = await tx<
        { status: RunState }[]
      >`select status from dwop.runs where id = ${runId} for update`;
      if (row?.status !== "starting") return false;
      const jobName = await start();
      await tx`select dwop.mark_runs_dispatched(array[${runId}]::bigint[], array[${jobName}], false)`;
      return true;
    });
  }

  /** Takes or renews a lease; true when `holder` holds it now. */
  async acquireLease(name: string, holder: string, ttlSeconds: number): Promise<boolean> {
    const [row] = await this.db<
      { ok: boolean }[]
    >`select dwop.acquire_lease(${name}, ${holder}, ${ttlSeconds}) as ok`;
    return row?.ok ?? false;
  }

  async releaseLease(name: string, holder: string): Promise<boolean> {
    const [row] = await this.db<{ ok: boolean }[]>`select dwop.release_lease(${name}, ${holder}) as ok`;
    return row?.ok ?? false;
  }

  async leaseHolder(name: string): Promise<string | null> {
    const [row] = await this.db<{ holder: string | null }[]>`select dwop.lease_holder(${name}) as holder`;
    return row?.holder ?? null;
  }

  /** Active runs of `executor` whose last transition is at least `minAgeSeconds` old. */
  async quietActiveRuns(
    executor: string,
    minAgeSeconds: number,
    now: Date | null = null,
  ): Promise<{ runId: string; status: RunState }[]> {
    return this.db<{ runId: string; status: RunState }[]>`
      select run_id as "runId", status from dwop.quiet_active_runs(${executor}, ${minAgeSeconds}, ${now})`;
  }

  /** The status of each run that exists, by id. */
  async runStatuses(runIds: string[]): Promise<Map<string, RunState>> {
    if (runIds.length === 0) return new Map();
    const rows = await this.db<{ run_id: string; status: RunState }[]>`
      select run_id, status from dwop.run_statuses(${runIds}::bigint[])`;
    return new Map(rows.map((r) => [r.run_id, r.status]));
  }
}
