import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectDb, type Db } from "../shared/db/connect.ts";
import { migrate } from "../shared/db/migrate.ts";
import { Store } from "../shared/db/store.ts";
import { submission, task } from "./support/factory.ts";
import { until } from "./support/until.ts";
import {
  startThrowawayCluster,
  throwawayUnavailable,
  type ThrowawayCluster,
} from "./support/throwaway-postgres.ts";

// pg_cron must be in shared_preload_libraries, a setting of the whole cluster: so a cluster of its own,
// never the machine's shared one.
const unavailable = throwawayUnavailable(["pg_cron"]);
const CRON_DB = "dwop_cron";

describe.skipIf(unavailable !== null)(
  `outbox backstop under pg_cron${unavailable ? ` (skipped: ${unavailable})` : ""}`,
  () => {
    let cluster: ThrowawayCluster;
    let db: Db;
    const notes: string[] = [];

    beforeAll(async () => {
      cluster = await startThrowawayCluster({
        shared_preload_libraries: "pg_cron",
        "cron.database_name": CRON_DB,
        "cron.use_background_workers": "on",
      });
      const admin = postgres(cluster.url("postgres"), { max: 1, onnotice: () => {} });
      await admin.unsafe(`create database ${CRON_DB}`);
      await admin.end();
      db = connectDb(cluster.url(CRON_DB), { max: 3 });
      await migrate(db);
      // A task that has waited a minute with no claimer: what the backstop is for.
      await new Store(db).submitWorkflow(submission([task("a")]));
      await db`update dwop.outbox set available_at = now() - interval '1 minute'`;
      await db.listen("dwop_outbox", (payload) => notes.push(payload));
    }, 60_000);
    afterAll(async () => {
      await db?.end({ timeout: 5 });
      await cluster?.stop();
    });

    it("enables pg_cron and schedules dwop.wake_stalled_outbox()", async () => {
      const [ext] = await db<
        { version: string }[]
      >`select extversion as version from pg_extension where extname = 'pg_cron'`;
      expect(ext, await cluster.log()).toBeDefined();
      const jobs = await db<{ schedule: string; command: string; active: boolean }[]>`
        select schedule, command, active from cron.job where jobname = 'dwop-outbox-backstop'`;
      // Every 10 seconds from pg_cron 1.5; an older one (Debian 12's is 1.4) schedules whole minutes only.
      const [, major = 0, minor = 0] = /^(\d+)\.(\d+)/.exec(ext!.version)?.map(Number) ?? [];
      const expected = major > 1 || minor >= 5 ? "10 seconds" : "* * * * *";
      expect(jobs).toEqual([
        { schedule: expected, command: "select dwop.wake_stalled_outbox()", active: true },
      ]);
    });

    it("runs it: a stalled outbox row wakes the claimers within the schedule", async () => {
      // At most a minute with pg_cron 1.4, whose first run comes at the next whole minute.
      const deadline = Date.now() + 65_000;
      while (!notes.includes("backstop")) {
        if (Date.now() > deadline) throw new Error(`no backstop NOTIFY in time\n${await cluster.log()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      // pg_cron records the run's end after the job's transaction (and its NOTIFY) committed.
      const statuses = async () =>
        (
          await db<{ status: string }[]>`
            select d.status from cron.job_run_details d join cron.job j using (jobid)
            where j.jobname = 'dwop-outbox-backstop'`
        ).map((r) => r.status);
      await until(async () => (await statuses()).includes("succeeded"), Math.max(0, deadline - Date.now()));
      expect(await statuses()).toContain("succeeded");
    }, 70_000);
  },
);
