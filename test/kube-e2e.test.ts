// Workflows end to end on the Kubernetes executor: client -> simulator -> real worker containers (or,
// where podman cannot run them, host processes: see test/support/podman.ts).
import { readFile } from "node:fs/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "./support/kube-sim/fixtures.ts";
import type { KubeSim } from "./support/kube-sim/index.ts";
import { startKubeEngine, startWorkerSim, type KubeEngine } from "./support/kube-engine.ts";

let sim: KubeSim;
let engine: KubeEngine | null = null;
let namespaces = 0;

beforeAll(async () => {
  sim = await startWorkerSim();
});
afterAll(() => sim?.close());
afterEach(async (ctx) => {
  await engine?.stop(ctx.task.result?.state === "pass");
  engine = null;
});

const start = async (label: string) => {
  engine = await startKubeEngine(label, { sim, namespace: `e2e-${++namespaces}` });
  return engine;
};

async function runs(e: KubeEngine, workflowId: string) {
  return e.m.db<
    {
      name: string;
      attempt: number;
      status: string;
      job_name: string | null;
      failure_reason: string | null;
      exit_code: number | null;
      error: string | null;
      log_tail: string | null;
      dispatched: boolean;
      started: boolean;
    }[]
  >`select t.name, r.attempt, r.status, r.job_name, r.failure_reason, r.exit_code, r.error, r.log_tail,
           r.dispatched_at is not null as dispatched, r.started_at is not null as started
    from dwop.runs r join dwop.tasks t on t.id = r.task_id
    where r.workflow_id = ${workflowId} order by t.position, r.attempt`;
}

/** Jobs left in the engine's namespace (the observer deletes each once its result is recorded). */
async function jobsLeft(e: KubeEngine): Promise<number> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const left = e.replicas[0]!.parts.api.listJobs("app=dwop").then((l) => l.items.length);
    const n = await left;
    if (n === 0 || Date.now() > deadline) return n;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("the Kubernetes executor, end to end", () => {
  it("runs a chain: each task one Job, outputs passed along, Jobs deleted once recorded", async () => {
    const e = await start("kube_chain");
    const id = await e.submit(
      [
        "fun a():\n    print(2)\n",
        "fun b(x:a):\n    print(int(open('x').read()) * 10)\n",
        "fun c(y:b):\n    print(int(open('y').read()) + 1)\n",
      ].join("\n"),
    );
    expect((await e.waitFor(id)).status).toBe("succeeded");
    expect(await e.output(id, "c")).toBe("21\n");
    const rows = await runs(e, id);
    expect(rows.map((r) => [r.name, r.attempt, r.status, r.dispatched, r.started])).toEqual([
      ["a", 1, "succeeded", true, true],
      ["b", 1, "succeeded", true, true],
      ["c", 1, "succeeded", true, true],
    ]);
    expect(rows.every((r) => /^dwop-[0-9a-f]{8}-[abc]-a1$/.test(r.job_name ?? ""))).toBe(true);
    const stats = e.leader()!.parts.observer.stats;
    await waitFor("the observer's count", () => stats.succeeded === 3);
    expect(stats).toMatchObject({ succeeded: 3, failed: 0 });
    expect(await jobsLeft(e)).toBe(0);
  });

  it("runs a diamond", async () => {
    const e = await start("kube_diamond");
    const source = await readFile(new URL("../examples/diamond.workflow", import.meta.url), "utf8");
    const id = await e.submit(source);
    expect((await e.waitFor(id)).status).toBe("succeeded");
    expect(await e.output(id, "report")).toBe("sum of squares 385, sum of cubes 3025\n");
    expect(sim.stats().jobsCreated).toBeGreaterThanOrEqual(4);
  });

  it("retries a failed attempt to success, keeping the failure's exit code, message and log tail", async () => {
    const e = await start("kube_retry");
    // Each attempt is a fresh pod (a container with nothing of the last one's): the attempt number says which.
    const source = [
      "@retries(1)",
      "fun flaky():",
      "    import os, sys",
      "    for i in range(150):",
      "        print(f'line {i}')",
      "    if os.environ['DWOP_ATTEMPT'] == '1':",
      "        sys.exit(3)",
      "    print('second time lucky')",
    ].join("\n");
    const id = await e.submit(source);
    const w = await e.waitFor(id);
    expect(w.status).toBe("succeeded");
    expect(await e.output(id, "flaky")).toContain("second time lucky");
    const [first, second] = await runs(e, id);
    expect(first).toMatchObject({ attempt: 1, status: "failed", failure_reason: "exit_code", exit_code: 3 });
    expect(first!.job_name).not.toBe(second!.job_name);
    expect(second).toMatchObject({ attempt: 2, status: "succeeded" });
    // The log tail was read before the Job went, and is all that is left of it.
    expect(sim.job(first!.job_name!)).toBeUndefined();
    const lines = first!.log_tail!.trimEnd().split("\n");
    expect(lines.length).toBeLessThanOrEqual(100);
    expect(first!.log_tail).toContain("line 149");
    expect(first!.log_tail).not.toContain("line 10\n");
    const [task] = await e.m.db<{ failures: number; infra_failures: number }[]>`
      select failures, infra_failures from dwop.tasks where workflow_id = ${id}`;
    expect(task).toEqual({ failures: 1, infra_failures: 0 });
  });

  it("ends a task at its timeout with DeadlineExceeded, from the Job's activeDeadlineSeconds", async () => {
    const e = await start("kube_timeout");
    const source =
      "@timeout(1)\nfun slow():\n    import time\n    print('started', flush=True)\n    time.sleep(30)\n";
    const id = await e.submit(source);
    const w = await e.waitFor(id);
    expect(w.tasks[0]).toMatchObject({ status: "failed", error: "timed out after 1s (DeadlineExceeded)" });
    const [run] = await runs(e, id);
    expect(run).toMatchObject({ status: "failed", failure_reason: "timeout" });
    expect(run!.log_tail).toContain("started");
    expect(await jobsLeft(e)).toBe(0);
    expect(sim.stats().runningProcesses).toBe(0);
  });

  it("fails a task for good when the worker reports a non-retryable failure (termination message)", async () => {
    const e = await start("kube_nonretryable");
    // Requirements pip cannot even parse: the worker reports requirements_failed, nonRetryable, in its
    // failure JSON, which reaches the observer as the container's termination message.
    const id = await e.submit("@retries(3)\nfun needs():\n    print('never')\n", {
      requirements: "=== not a requirement\n",
    });
    const w = await e.waitFor(id);
    expect(w.status).toBe("failed");
    const rows = await runs(e, id);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ failure_reason: "worker_error", status: "failed" });
    expect(rows[0]!.error).toContain("pip install");
  });
});
