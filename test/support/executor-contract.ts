import { afterEach, describe, expect, it } from "vitest";
import { RunLogs } from "../../shared/db/run-logs.ts";
import type { Engine } from "./engine.ts";
import { until } from "./until.ts";

/** Starts the engine of one test, its dispatchers running tasks on the executor under test. */
export type MakeEngine = (label: string) => Promise<Engine>;

interface RunRow {
  name: string;
  attempt: number;
  status: string;
  failure_reason: string | null;
  error: string | null;
}

async function runs(e: Engine, workflowId: string): Promise<RunRow[]> {
  return e.m.db<RunRow[]>`
    select t.name, r.attempt, r.status, r.failure_reason, r.error
    from dwop.runs r join dwop.tasks t on t.id = r.task_id
    where r.workflow_id = ${workflowId} order by t.position, r.attempt`;
}

/**
 * What every Executor must do, through the dispatcher that drives it and the real Python worker: run a
 * chain passing outputs along, one run per attempt; report a body's exception as its failure, a body
 * past its deadline as a timeout, each spending the task's own retries; stop a cancelled run. Run against
 * the local executor and the Kubernetes executor (on the API simulator), as the bus and storage suites
 * run against each of their adapters.
 */
export function executorContract(name: string, make: MakeEngine): void {
  describe(`Executor contract: ${name}`, () => {
    let engine: Engine | null = null;
    afterEach(async (ctx) => {
      await engine?.stop(ctx.task.result?.state === "pass");
      engine = null;
    });
    const start = async (label: string) => (engine = await make(label));

    it("runs a chain, each attempt once, passing each output to the next task", async () => {
      const e = await start("contract_chain");
      const id = await e.submit(
        'fun a():\n    print("x")\n\nfun b(i:a):\n    print(open("i").read().strip() * 2)\n\nfun c(i:b):\n    print(open("i").read().strip().upper())\n',
      );
      expect((await e.waitFor(id, 90_000)).status).toBe("succeeded");
      expect(await e.output(id, "c")).toBe("XX\n");
      expect((await runs(e, id)).map((r) => [r.name, r.attempt, r.status])).toEqual([
        ["a", 1, "succeeded"],
        ["b", 1, "succeeded"],
        ["c", 1, "succeeded"],
      ]);
    });

    it("reports a body's exception as the task's failure, retried on the task's own budget", async () => {
      const e = await start("contract_failure");
      const id = await e.submit('@retries(1)\nfun bad():\n    raise ValueError("boom")\n');
      const done = await e.waitFor(id, 90_000);
      expect(done.status).toBe("failed");
      expect(done.tasks[0]).toMatchObject({ status: "failed", error: "ValueError: boom" });
      expect(await runs(e, id)).toEqual([
        { name: "bad", attempt: 1, status: "failed", failure_reason: "exit_code", error: "ValueError: boom" },
        { name: "bad", attempt: 2, status: "failed", failure_reason: "exit_code", error: "ValueError: boom" },
      ]);
    });

    it("ends a body that runs past its deadline as a timeout", async () => {
      const e = await start("contract_timeout");
      const id = await e.submit("@timeout(2)\nfun slow():\n    import time\n    time.sleep(60)\n");
      const done = await e.waitFor(id, 90_000);
      expect(done.status).toBe("failed");
      expect((await runs(e, id)).map((r) => [r.status, r.failure_reason])).toEqual([["failed", "timeout"]]);
    });

    it("ships a running attempt's log live, and keeps it when the run is stopped", async () => {
      const e = await start("contract_live_log");
      const id = await e.submit('fun talk():\n    import time\n    print("started")\n    time.sleep(60)\n');
      const logs = new RunLogs(e.m.db);
      const live = async () => (await logs.read("test", id, "talk", 1, 0, 1024))?.data ?? new Uint8Array();
      await until(
        async () => new TextDecoder().decode(await live()) === "started\n",
        60_000,
        "the running task's first line in its live log",
      );
      expect(["dispatched", "running"]).toContain((await runs(e, id))[0]!.status);
      expect(await e.m.store.cancelWorkflow(id)).toBe(1);
      expect((await e.waitFor(id, 60_000)).status).toBe("cancelled");
      expect(new TextDecoder().decode(await live())).toBe("started\n");
    });

    it("stops a run whose workflow is cancelled", async () => {
      const e = await start("contract_cancel");
      const id = await e.submit("fun long():\n    import time\n    time.sleep(60)\n");
      await until(
        async () => (await runs(e, id)).some((r) => r.status === "running"),
        60_000,
        "the run to be running",
      );
      expect(await e.m.store.cancelWorkflow(id)).toBe(1);
      expect((await e.waitFor(id, 60_000)).status).toBe("cancelled");
      expect((await runs(e, id)).map((r) => r.status)).toEqual(["cancelled"]);
    });
  });
}
