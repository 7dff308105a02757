import { until } from "./support/until.ts";
import { recordingLogger } from "./support/recording-logger.ts";
import { testFolder } from "./support/test-folder.ts";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Bus } from "../shared/bus/bus.ts";
import { forwarding } from "./support/bus-contract.ts";
import { startEngine, type BusKind, type Engine } from "./support/engine.ts";

const ETL = await readFile(new URL("../examples/etl.workflow", import.meta.url), "utf8");

let engine: Engine | null = null;
afterEach(async (ctx) => {
  await engine?.stop(ctx.task.result?.state === "pass");
  engine = null;
});

async function runsPerTask(workflowId: string): Promise<Record<string, { runs: number; succeeded: number }>> {
  const rows = await engine!.m.db<{ name: string; runs: number; succeeded: number }[]>`
    select t.name, count(r.id)::int as runs, count(r.id) filter (where r.status = 'succeeded')::int as succeeded
    from dwop.tasks t left join dwop.runs r on r.task_id = t.id
    where t.workflow_id = ${workflowId} group by t.name`;
  return Object.fromEntries(rows.map((r) => [r.name, { runs: r.runs, succeeded: r.succeeded }]));
}

describe.each<BusKind>(["rabbit", "pgboss"])("the engine on %s", (bus) => {
  it("runs the seed's extract/transform/load example to the right outputs", async () => {
    engine = await startEngine(`etl_${bus}`, { bus });
    const id = await engine.submit(ETL);
    const w = await engine.waitFor(id);
    expect(w.status).toBe("succeeded");
    expect(await engine.output(id, "load")).toBe(
      "Loading: LISBON 69.8F\nLoading: OSLO 39.2F\nLoading: LIMA 64.4F\n",
    );
    expect(JSON.parse(await engine.output(id, "extract"))).toHaveLength(3);
  });

  it("runs a diamond", async () => {
    engine = await startEngine(`diamond_${bus}`, { bus });
    const id = await engine.submit(
      await readFile(new URL("../examples/diamond.workflow", import.meta.url), "utf8"),
    );
    expect((await engine.waitFor(id)).status).toBe("succeeded");
    expect(await engine.output(id, "report")).toBe("sum of squares 385, sum of cubes 3025\n");
  });

  it("runs a 1 -> 100 -> 1 fan-out and fan-in", async () => {
    engine = await startEngine(`fan_${bus}`, { bus, concurrency: 8 });
    const workers = Array.from(
      { length: 100 },
      (_, i) => `fun w${i}(n:root):\n    print(int(open("n").read()) + ${i})\n`,
    );
    const params = Array.from({ length: 100 }, (_, i) => `p${i}:w${i}`).join(", ");
    const source = [
      "fun root():\n    print(1000)\n",
      ...workers,
      `fun total(${params}):\n    import glob\n    print(sum(int(open(f"p{i}").read()) for i in range(100)))\n`,
    ].join("\n");
    const id = await engine.submit(source);
    const w = await engine.waitFor(id, 120_000);
    expect(w.status).toBe("succeeded");
    expect(await engine.output(id, "total")).toBe(`${100 * 1000 + 4950}\n`);
    const runs = await runsPerTask(id);
    expect(Object.values(runs).every((r) => r.runs === 1 && r.succeeded === 1)).toBe(true);
  });

  it("retries a failing task, then fails its downstream while an independent branch finishes", async () => {
    engine = await startEngine(`fail_${bus}`, { bus });
    const source = [
      "@retries(2)",
      "fun flaky():",
      "    import sys",
      "    print('about to fail', file=sys.stderr)",
      "    for i in range(150):",
      "        print(f'line {i}')",
      "    sys.exit(3)",
      "",
      "fun after(x:flaky):\n    print('never')\n",
      "fun independent():\n    print('fine')\n",
      "fun independent_child(x:independent):\n    print(open('x').read().strip() + '!')\n",
    ].join("\n");
    const id = await engine.submit(source);
    const w = await engine.waitFor(id);
    expect(w.status).toBe("failed");
    const byName = Object.fromEntries(w.tasks.map((t) => [t.name, t]));
    expect(byName.flaky).toMatchObject({ status: "failed", attempts: 3 });
    expect(byName.after?.status).toBe("upstream_failed");
    expect(byName.independent_child?.status).toBe("succeeded");
    expect(await engine.output(id, "independent_child")).toBe("fine!\n");
    const runs = await engine.m.db<{ exit_code: number; failure_reason: string; log_tail: string }[]>`
      select exit_code, failure_reason, log_tail from dwop.runs r join dwop.tasks t on t.id = r.task_id
      where t.workflow_id = ${id} and t.name = 'flaky' order by r.attempt`;
    expect(runs).toHaveLength(3);
    for (const r of runs) {
      expect(r.exit_code).toBe(3);
      expect(r.failure_reason).toBe("exit_code");
      const lines = r.log_tail.split("\n");
      expect(lines.length).toBeLessThanOrEqual(100);
      expect(r.log_tail).toContain("line 149");
      expect(r.log_tail).not.toContain("line 10\n");
    }
  });

  it("runs each attempt once when every message is delivered twice", async () => {
    const marks = await testFolder("dwop-marks-");
    const twice = (bus: Bus): Bus => ({
      ...forwarding(bus),
      publish: async (messages) => {
        await bus.publish(messages);
        return bus.publish(messages);
      },
    });
    // Sandbox off: the bodies mark each run in a folder of the test's, which a sandboxed task cannot see.
    const log = recordingLogger();
    engine = await startEngine(`dup_${bus}`, {
      bus,
      dispatchers: 2,
      wrapPublisher: twice,
      startReady: false, // every task through the bus, so every one is delivered twice
      sandbox: "off",
      logger: log.logger,
    });
    const body = (name: string) =>
      `    open(${JSON.stringify(join(marks, "ran.log"))}, "a").write("${name}\\n")\n    print("${name}")\n`;
    const source = `fun a():\n${body("a")}\nfun b(x:a):\n${body("b")}\nfun c(x:a):\n${body("c")}\nfun d(x:b, y:c):\n${body("d")}`;
    const id = await engine.submit(source);
    expect((await engine.waitFor(id)).status).toBe("succeeded");
    // Each of the four duplicates is delivered and found to have nothing to run.
    await until(
      async () => log.count("nothing to run") >= 4,
      30_000,
      () => JSON.stringify(log.entries),
    );
    const ran = (await readFile(join(marks, "ran.log"), "utf8")).trim().split("\n").sort();
    expect(ran).toEqual(["a", "b", "c", "d"]);
    const runs = await runsPerTask(id);
    expect(Object.values(runs).every((r) => r.runs === 1)).toBe(true);
  });

  it("kills a task's whole process group at its timeout and records DeadlineExceeded", async () => {
    // Sandbox off, so the grandchild could leave its mark in the test's folder (the sandbox's own kill of
    // everything in its namespace is in worker/tests/test_forkserver.py).
    engine = await startEngine(`timeout_${bus}`, { bus, sandbox: "off" });
    const marks = await testFolder("dwop-timeout-");
    const grandchild = join(marks, "grandchild-alive");
    const source = [
      "@timeout(1)",
      "fun slow():",
      "    import subprocess, time",
      `    subprocess.Popen(["sh", "-c", "echo $$ > ${grandchild}.pid; sleep 3; touch ${grandchild}"])`,
      "    time.sleep(30)",
    ].join("\n");
    const id = await engine.submit(source);
    const w = await engine.waitFor(id);
    expect(w.tasks[0]).toMatchObject({ status: "failed", error: "timed out after 1s (DeadlineExceeded)" });
    // Gone, and gone before its mark: killed, not ended on its own after 3 s.
    const pid = await pidIn(`${grandchild}.pid`);
    await until(async () => !alive(pid), 10_000, `grandchild ${pid} to be gone`);
    await expect(readFile(grandchild)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("stops a running task when its workflow is cancelled", async () => {
    engine = await startEngine(`cancel_${bus}`, { bus, sandbox: "off" }); // the mark is in the test's folder
    const marks = await testFolder("dwop-cancel-");
    const done = join(marks, "finished");
    const id = await engine.submit(
      `fun long():\n    import os, time\n    open(${JSON.stringify(done + ".pid")}, "w").write(str(os.getpid()))\n    time.sleep(5); open(${JSON.stringify(done)}, "w")\n`,
    );
    for (;;) {
      const w = await engine.m.store.workflowSummary(id);
      if (w?.tasks[0]?.status === "running") break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await engine.m.store.cancelWorkflow(id)).toBe(1);
    expect((await engine.waitFor(id)).status).toBe("cancelled");
    // The body is gone, and before it wrote its mark.
    const pid = await pidIn(`${done}.pid`);
    await until(async () => !alive(pid), 10_000, `the body ${pid} to be gone`);
    await expect(readFile(done)).rejects.toMatchObject({ code: "ENOENT" });
    const [run] = await engine.m.db<{ status: string }[]>`select status from dwop.runs`;
    expect(run?.status).toBe("cancelled");
  });
});

/** The pid a process wrote, or 0 when it was stopped before it could write one. */
async function pidIn(file: string): Promise<number> {
  return Number(await readFile(file, "utf8").catch(() => "0"));
}

function alive(pid: number): boolean {
  if (pid === 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
