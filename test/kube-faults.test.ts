// Faults on the Kubernetes path: watches that break or expire, Jobs deleted by someone else, pods
// OOM-killed, evicted, unschedulable or unable to pull their image, and cancellation.
import { BatchV1Api, type V1Job } from "@kubernetes/client-node";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { jobName } from "../shared/executors/kubernetes/names.ts";
import { shellJob, waitFor } from "../tools/kube-sim/fixtures.ts";
import type { KubeSim } from "../tools/kube-sim/index.ts";
import { startKubeEngine, startWorkerSim, type KubeEngine } from "./support/kube-engine.ts";
import type { KubernetesSettings } from "../dispatcher/kubernetes.ts";

let sim: KubeSim;
let engine: KubeEngine | null = null;
let namespaces = 0;

beforeAll(async () => {
  sim = await startWorkerSim({ images: { "busybox:1.36": {} } });
});
afterAll(() => sim?.close());
beforeEach(() => sim.resetStats());
afterEach(async (ctx) => {
  sim.setGoneMode("event");
  sim.setUnschedulable(false);
  await engine?.stop(ctx.task.result?.state === "pass");
  engine = null;
});

const start = async (label: string, settings: Partial<KubernetesSettings> = {}) => {
  engine = await startKubeEngine(label, { sim, namespace: `faults-${++namespaces}`, settings });
  return engine;
};

/** No periodic reconcile: what the watches alone make of a fault. */
const WATCH_ONLY = { reconcileSeconds: 3600 };

/** A fan-out whose tasks run long enough for faults to land mid-run. */
const FAN = [
  "fun root():\n    print(1)\n",
  ...[0, 1, 2, 3].map((i) => `fun w${i}(x:root):\n    import time\n    time.sleep(0.8)\n    print(${i})\n`),
  "fun sink(a:w0, b:w1, c:w2, d:w3):\n    print(sum(int(open(p).read()) for p in 'abcd'))\n",
].join("\n");

/** Every task ran exactly one attempt, which succeeded; the observer recorded each success once. */
async function expectEachOnce(e: KubeEngine, workflowId: string, tasks: number) {
  const rows = await e.m.db<{ name: string; runs: number; succeeded: number; events: number }[]>`
    select t.name, count(distinct r.id)::int as runs,
           count(distinct r.id) filter (where r.status = 'succeeded')::int as succeeded,
           (select count(*)::int from dwop.events v
            where v.workflow_id = t.workflow_id and v.task_name = t.name and v.status = 'succeeded') as events
    from dwop.tasks t left join dwop.runs r on r.task_id = t.id
    where t.workflow_id = ${workflowId} group by t.id`;
  expect(rows).toHaveLength(tasks);
  expect(rows.filter((r) => r.runs !== 1 || r.succeeded !== 1 || r.events !== 1)).toEqual([]);
  // The database may show the workflow ended a moment before the observer counts the last success.
  const stats = e.leader()!.parts.observer.stats;
  await waitFor("the observer's count", () => stats.succeeded >= tasks, 5000);
  await new Promise((r) => setTimeout(r, 200));
  expect(stats.succeeded).toBe(tasks);
}

const watchTotals = (e: KubeEngine) =>
  e
    .leader()!
    .parts.observer.watchStats()
    .reduce(
      (t, s) => ({
        expired: t.expired + s.expired,
        failures: t.failures + s.failures,
        lists: t.lists + s.lists,
      }),
      { expired: 0, failures: 0, lists: 0 },
    );

const running = (e: KubeEngine, id: string, task: string, attempt = 1) =>
  waitFor(
    `${task} running`,
    () => sim.pods(jobName(id, task, attempt), e.namespace)[0]?.status.phase === "Running",
    15_000,
  );

async function taskRuns(e: KubeEngine, id: string, task: string) {
  return e.m.db<
    {
      attempt: number;
      status: string;
      failure_reason: string | null;
      error: string | null;
      log_tail: string | null;
    }[]
  >`
    select r.attempt, r.status, r.failure_reason, r.error, r.log_tail from dwop.runs r
    join dwop.tasks t on t.id = r.task_id where t.workflow_id = ${id} and t.name = ${task} order by r.attempt`;
}

async function budgets(e: KubeEngine, id: string, task: string) {
  const [row] = await e.m.db<{ failures: number; infra_failures: number; status: string }[]>`
    select failures, infra_failures, status from dwop.tasks where workflow_id = ${id} and name = ${task}`;
  return row!;
}

describe("watches that fail mid-run", () => {
  it("loses no completion when watch sockets are cut and re-watching fails for a while", async () => {
    const e = await start("kube_watch_cut", WATCH_ONLY);
    const id = await e.submit(FAN);
    await running(e, id, "w0");
    // Both watches fail to come back for a second or two, while the fan-out's tasks end.
    sim.failNext(12, { path: /watch=true/, status: 500 });
    expect(sim.closeWatches()).toBeGreaterThanOrEqual(2);
    expect((await e.waitFor(id)).status).toBe("succeeded");
    expect(await e.output(id, "sink")).toBe("6\n");
    await expectEachOnce(e, id, 6);
    expect(watchTotals(e).failures).toBeGreaterThanOrEqual(2);
  });

  it.each(["event", "http"] as const)(
    "lists again when the resourceVersion expired (410 as %s)",
    async (as) => {
      const e = await start(`kube_watch_410_${as}`, WATCH_ONLY);
      const id = await e.submit(FAN);
      await running(e, id, "w0");
      // A change in another namespace moves the resourceVersion past the last one these watches saw.
      const other = sim.kubeConfig(`elsewhere-${namespaces}`).makeApiClient(BatchV1Api);
      await other.createNamespacedJob({
        namespace: `elsewhere-${namespaces}`,
        body: shellJob("bump", "exit 0"),
      });
      const listsBefore = watchTotals(e).lists;
      // Re-watching fails for a while first, so tasks end unseen: only the list after the 410 finds them.
      sim.failNext(8, { path: /watch=true/, status: 503 });
      sim.expireHistory({ as });
      sim.closeWatches({ graceful: true });
      expect((await e.waitFor(id)).status).toBe("succeeded");
      await expectEachOnce(e, id, 6);
      expect(watchTotals(e).expired).toBeGreaterThanOrEqual(1);
      expect(watchTotals(e).lists).toBeGreaterThan(listsBefore);
    },
  );
});

describe("pods and Jobs that end badly", () => {
  /**
   * A task that runs long on its first attempt and quickly after; resolves once the first attempt's
   * body is running (so the fault hits it mid-run, not while the worker starts).
   */
  async function slowOnce(e: KubeEngine) {
    // Each attempt is a fresh pod (a container with nothing of the last one's): the attempt number says which.
    const id = await e.submit(
      [
        "fun t():",
        "    import os, time",
        "    print('working', flush=True)",
        "    if os.environ['DWOP_ATTEMPT'] == '1':",
        "        time.sleep(30)",
        "    print('done')",
      ].join("\n"),
    );
    await firstAttemptWorking(e, id);
    return id;
  }

  /** Until task t's first attempt has logged "working": its body is running then (the log tail keeps it). */
  async function firstAttemptWorking(e: KubeEngine, id: string): Promise<void> {
    const api = e.replicas[0]!.parts.api;
    await waitFor(
      "the first line logged",
      async () => {
        const pod = sim.pods(jobName(id, "t", 1), e.namespace)[0]?.metadata.name;
        return pod && (await api.readLogTail(pod, "worker", 10))?.includes("working");
      },
      15_000,
    );
  }

  it("retries a run whose Job someone deleted as lost, found by the reconcile", async () => {
    const e = await start("kube_job_deleted");
    const id = await slowOnce(e);
    expect(sim.deleteJob(jobName(id, "t", 1), { namespace: e.namespace })).toBe(true);
    expect((await e.waitFor(id, 30_000)).status).toBe("succeeded");
    const runs = await taskRuns(e, id, "t");
    expect(runs.map((r) => [r.status, r.failure_reason])).toEqual([
      ["lost", "lost"],
      ["succeeded", null],
    ]);
    expect(await budgets(e, id, "t")).toMatchObject({ failures: 0, infra_failures: 1 });
    expect(e.leader()!.parts.observer.stats.lost).toBe(1);
  });

  it.each([
    ["OOMKilled", "oom_killed", (job: string, ns: string) => sim.oomKill(job, { namespace: ns })],
    ["Evicted", "evicted", (job: string, ns: string) => sim.evictPod(job, { namespace: ns })],
  ] as const)("classifies %s and retries it from the infrastructure budget", async (_what, reason, fault) => {
    const e = await start(`kube_${reason}`);
    const id = await slowOnce(e);
    expect(fault(jobName(id, "t", 1), e.namespace)).toBe(true);
    expect((await e.waitFor(id, 30_000)).status).toBe("succeeded");
    const [first, second] = await taskRuns(e, id, "t");
    expect(first).toMatchObject({ status: "failed", failure_reason: reason });
    expect(first!.log_tail).toContain("working");
    expect(second).toMatchObject({ status: "succeeded" });
    // retries(0): only the infrastructure budget can have paid for the second attempt.
    expect(await budgets(e, id, "t")).toMatchObject({ failures: 0, infra_failures: 1, status: "succeeded" });
  });

  it("fails an image that cannot be pulled after the configured time, from the infrastructure budget", async () => {
    const e = await start("kube_image_pull");
    const id = await e.submit('@image("registry.example/missing:1")\nfun t():\n    print("never")\n');
    const w = await e.waitFor(id, 30_000);
    expect(w.status).toBe("failed");
    const runs = await taskRuns(e, id, "t");
    // max_infra_retries is 3: four attempts, each failed for its image, none spending the task's retries.
    expect(runs.map((r) => r.failure_reason)).toEqual([
      "image_pull",
      "image_pull",
      "image_pull",
      "image_pull",
    ]);
    expect(runs[0]!.error).toMatch(/ErrImagePull|ImagePullBackOff/);
    expect(await budgets(e, id, "t")).toMatchObject({ failures: 0, infra_failures: 4 });
    await waitFor("Jobs deleted", () => sim.stats().activeJobs === 0, 5000);
  });

  it("judges a Pending pod by the observer's clock: left alone before the limit, failed past it", async () => {
    // The production limit (5 minutes), crossed by moving the observer's clock and running one pass.
    let skewMs = 0;
    const e = await start("kube_pending_clock", {
      pendingTimeoutSeconds: 300,
      now: () => Date.now() + skewMs,
    });
    sim.setUnschedulable("0/3 nodes are available: 3 Insufficient cpu.");
    const submittedAt = Date.now(); // the pod is made after this
    const id = await e.submit("fun t():\n    print('fits later')\n");
    const observer = e.leader()!.parts.observer;
    const job = () => sim.job(jobName(id, "t", 1), e.namespace) as unknown as V1Job;
    const verdictAt = (skew: number) => {
      skewMs = skew; // synchronous: no timer of the observer runs in between
      const kind = job() ? observer.judge(job()).kind : "none";
      skewMs = 0;
      return kind;
    };
    // The observer has seen the unschedulable pod once its verdict past the limit is "failed".
    await waitFor("the observer sees the pending pod", () => verdictAt(301_000) === "failed", 15_000);

    // Just under the limit however long the pod has waited by now (a loaded machine took seconds to get
    // here), less a second more for timestamps kept to the second.
    skewMs = 298_000 - (Date.now() - submittedAt);
    observer.judgeWaiting();
    expect(observer.judge(job()).kind).toBe("waiting");
    const before = await taskRuns(e, id, "t");
    expect(before).toHaveLength(1);
    expect(["starting", "dispatched"]).toContain(before[0]!.status);

    skewMs = 301_000;
    observer.judgeWaiting();
    await waitFor(
      "failed as unschedulable",
      async () => (await taskRuns(e, id, "t"))[0]?.status === "failed",
      15_000,
    );
    expect((await taskRuns(e, id, "t"))[0]).toMatchObject({ failure_reason: "unschedulable" });
    skewMs = 0;
    sim.setUnschedulable(false);
    expect((await e.waitFor(id, 30_000)).status).toBe("succeeded");
  });

  it("keeps the replacement's output when a pod whose run was retried as lost succeeds after it", async () => {
    // A pod on a node cut off from the cluster goes on after its run was given up on, the deletion of its
    // Job never reaching it: here the verdict comes from the test, and no reconcile deletes the Job. Its
    // worker uploads its output with its own URL when it ends.
    const e = await start("kube_late_pod", WATCH_ONLY);
    const id = await e.submit(
      "fun t():\n    import os, time\n    attempt = os.environ['DWOP_ATTEMPT']\n" +
        "    print('working', flush=True)\n    time.sleep(3 if attempt == '1' else 0)\n    print('attempt', attempt)\n",
    );
    await firstAttemptWorking(e, id);
    const [first] = await e.m.db<{ id: string }[]>`
      select r.id from dwop.runs r join dwop.tasks t on t.id = r.task_id
      where t.workflow_id = ${id} and r.attempt = 1`;
    const lost = {
      reason: "lost" as const,
      message: "the node stopped answering",
      exitCode: null,
      logTail: null,
    };
    expect(await e.m.store.increaseAttempt(first!.id, { ...lost, nonRetryable: false })).toBe("retried");
    expect((await e.waitFor(id, 30_000)).status).toBe("succeeded");
    expect(await e.output(id, "t")).toBe("working\nattempt 2\n");
    const stats = e.leader()!.parts.observer.stats;
    await waitFor("the late Job's end seen", () => stats.alreadyRecorded >= 1, 15_000);
    expect(await e.output(id, "t")).toBe("working\nattempt 2\n");
    const runs = await taskRuns(e, id, "t");
    expect(runs.map((r) => [r.attempt, r.status])).toEqual([
      [1, "lost"],
      [2, "succeeded"],
    ]);
  });

  it("records a success whose first record failed after its output was moved into place", async () => {
    const e = await start("kube_record_again");
    const store = e.m.store;
    const completeRuns = store.completeRuns.bind(store);
    let failed = 0;
    store.completeRuns = async (ids) => {
      if (failed++ === 0) throw Object.assign(new Error("connection reset"), { code: "ECONNRESET" });
      return completeRuns(ids);
    };
    const id = await e.submit('@retries(0)\nfun t():\n    print("x" * 100000)\n');
    expect((await e.waitFor(id, 30_000)).status).toBe("succeeded");
    expect(failed).toBeGreaterThan(1);
    const runs = await taskRuns(e, id, "t");
    expect(runs.map((r) => [r.attempt, r.status])).toEqual([[1, "succeeded"]]);
    expect(await e.output(id, "t")).toBe(`${"x".repeat(100000)}\n`);
  });

  it("deletes a cancelled workflow's Jobs and records the task cancelled", async () => {
    const e = await start("kube_cancel");
    const id = await slowOnce(e);
    await e.m.store.cancelWorkflow(id);
    await waitFor("Job deleted", () => !sim.job(jobName(id, "t", 1), e.namespace), 5000);
    await waitFor("process gone", () => sim.stats().runningProcesses === 0, 5000);
    const runs = await taskRuns(e, id, "t");
    expect(runs.map((r) => r.status)).toEqual(["cancelled"]);
    expect((await e.m.store.workflowSummary(id))?.status).toBe("cancelled");
  });
});
