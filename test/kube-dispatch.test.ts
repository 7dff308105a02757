// Dispatching to Kubernetes: a dispatcher killed between creating a Job and acking its message, a
// redelivered run left 'starting', the global cap on Jobs in flight, and the observer's lease.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, connect, type Server } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ClusterStore } from "../dispatcher/cluster-store.ts";
import { jobName } from "../shared/executors/kubernetes/names.ts";
import { RABBIT_URL } from "./support/engine.ts";
import { testFolder } from "./support/test-folder.ts";
import { waitFor } from "../tools/kube-sim/fixtures.ts";
import type { KubeSim } from "../tools/kube-sim/index.ts";
import { startKubeEngine, startWorkerSim, WORKER_IMAGE, type KubeEngine } from "./support/kube-engine.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

let sim: KubeSim;
let engine: KubeEngine | null = null;
let namespaces = 0;
const cleanups: (() => void)[] = [];

beforeAll(async () => {
  sim = await startWorkerSim();
});
afterAll(() => sim?.close());
beforeEach(() => sim.resetStats());
afterEach(async (ctx) => {
  for (const c of cleanups.splice(0)) c();
  await engine?.stop(ctx.task.result?.state === "pass");
  engine = null;
});

async function runsOf(e: KubeEngine, id: string) {
  return e.m.db<
    { name: string; attempt: number; status: string; job_name: string | null; dispatched: boolean }[]
  >`
    select t.name, r.attempt, r.status, r.job_name, r.dispatched_at is not null as dispatched
    from dwop.runs r join dwop.tasks t on t.id = r.task_id where r.workflow_id = ${id} order by t.position, r.attempt`;
}

/**
 * A TCP proxy to Postgres that stops forwarding, for good, the moment a client sends `word` (the text of
 * a query being prepared), and reports it. The query never reaches the database.
 */
async function tripwire(word: string, onTrip: () => void): Promise<{ port: number; server: Server }> {
  let tripped = false;
  const server = createServer((client) => {
    const upstream = connect(5432, "127.0.0.1");
    client.on("data", (chunk: Buffer) => {
      if (tripped) return;
      if (chunk.includes(word)) {
        tripped = true;
        onTrip();
        return;
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => client.write(chunk));
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { port: (server.address() as { port: number }).port, server };
}

describe("dispatching Jobs", () => {
  it("recovers a dispatcher killed between creating a Job and acking: redelivery, a 409, one Job", async () => {
    const e = (engine = await startKubeEngine("kube_killed_after_create", {
      sim,
      namespace: `disp-${++namespaces}`,
      replicas: 0,
    }));
    let child: ChildProcess | null = null;
    const proxy = await tripwire("mark_runs_dispatched", () => child?.kill("SIGKILL"));
    cleanups.push(() => proxy.server.close());
    const kubeconfig = join(await testFolder("dwop-kubeconfig-"), "config.json");
    await sim.writeKubeconfig(kubeconfig, e.namespace);
    child = spawn(process.execPath, ["--import", "tsx", "dispatcher/main.ts"], {
      cwd: ROOT,
      env: {
        ...process.env,
        DATABASE_URL: e.m.url.replace(":5432/", `:${proxy.port}/`),
        RABBITMQ_CONNECTION_URL: RABBIT_URL,
        DWOP_QUEUE: e.queue,
        DWOP_PUBLIC_URL: e.storageUrl,
        DWOP_STORAGE_SECRET: e.storageSecret,
        DWOP_EXECUTOR: "kubernetes",
        DWOP_NAMESPACE: e.namespace,
        DWOP_IMAGE: WORKER_IMAGE,
        KUBECONFIG: kubeconfig,
        DWOP_KUBE_LEASE_SECONDS: "3",
        DWOP_METRICS_PORT: "0",
        DWOP_LOG_LEVEL: "warn",
      },
      stdio: ["ignore", "inherit", "inherit"],
    });
    const exited = new Promise((r) => child!.once("exit", r));
    cleanups.push(() => child?.kill("SIGKILL"));

    const id = await e.submit("fun slow():\n    import time\n    time.sleep(2)\n    print('once')\n");
    await exited;
    const name = jobName(id, "slow", 1);
    expect(sim.job(name, e.namespace)).toBeDefined();
    expect((await runsOf(e, id)).map((r) => [r.status, r.dispatched])).toEqual([["starting", false]]);

    // The broker hands the unacknowledged message to a live dispatcher, which finds the run 'starting'.
    const survivor = e.replica("survivor");
    await survivor.consume();
    await waitFor("dispatched by the redelivery", async () => (await runsOf(e, id))[0]?.dispatched, 15_000);
    await survivor.observe();
    expect((await e.waitFor(id, 30_000)).status).toBe("succeeded");
    expect(await e.output(id, "slow")).toBe("once\n");
    const stats = sim.stats();
    expect(stats.requests["create jobs"]).toBe(2);
    expect(stats.jobsCreated).toBe(1);
    expect(await runsOf(e, id)).toEqual([
      { name: "slow", attempt: 1, status: "succeeded", job_name: name, dispatched: true },
    ]);
  });

  it("creates the missing Job of a redelivered run left 'starting'", async () => {
    const e = (engine = await startKubeEngine("kube_starting_no_job", {
      sim,
      namespace: `disp-${++namespaces}`,
      replicas: 0,
    }));
    const r = e.replica("only");
    await r.observe();
    const id = await e.submit("fun a():\n    print('a')\n");
    const [task] = await e.m.db<{ id: string }[]>`select id from dwop.tasks where workflow_id = ${id}`;
    // A dispatcher recorded the run and died before creating its Job; its message is delivered again.
    const started = await new ClusterStore(e.m.db).startClusterRun(
      { taskId: task!.id, attempt: 1 },
      "dead",
      "kubernetes",
      10,
    );
    expect(started.kind).toBe("created");
    await r.consume();
    expect((await e.waitFor(id)).status).toBe("succeeded");
    expect(sim.stats().jobsCreated).toBe(1);
    expect((await runsOf(e, id)).map((x) => x.status)).toEqual(["succeeded"]);
  });

  it("keeps Jobs in flight under the global cap across replicas", async () => {
    const e = (engine = await startKubeEngine("kube_cap", {
      sim,
      namespace: `disp-${++namespaces}`,
      replicas: 2,
      maxActiveRuns: 3,
    }));
    const tasks = Array.from(
      { length: 12 },
      (_, i) => `fun t${i}():\n    import time\n    time.sleep(0.3)\n    print(${i})\n`,
    );
    const id = await e.submit(tasks.join("\n"));
    expect((await e.waitFor(id, 60_000)).status).toBe("succeeded");
    const stats = sim.stats();
    expect(stats.jobsCreated).toBe(12);
    expect(stats.maxActiveJobs).toBeLessThanOrEqual(3);
    expect(stats.maxActiveJobs).toBeGreaterThanOrEqual(2);
  });
});

describe("the observer's lease", () => {
  it("is held by one holder at a time and taken over only once it expires (compare-and-set on database time)", async () => {
    const e = (engine = await startKubeEngine("kube_lease_sql", {
      sim,
      namespace: `disp-${++namespaces}`,
      replicas: 0,
    }));
    const at = (s: number) => new Date(Date.UTC(2030, 0, 1, 0, 0, s));
    const take = async (holder: string, s: number) =>
      (await e.m.db<{ ok: boolean }[]>`select dwop.acquire_lease('l', ${holder}, 10, ${at(s)}) as ok`)[0]!.ok;
    expect(await take("a", 0)).toBe(true);
    expect(await take("b", 5)).toBe(false);
    expect(await take("a", 8)).toBe(true); // renewed until 18
    expect(await take("b", 15)).toBe(false);
    expect(await take("b", 18)).toBe(true); // a stopped renewing: b takes over
    expect(await take("a", 19)).toBe(false);
  });

  it("lets one replica observe; another takes over when the leader stops, and finishes the workflow", async () => {
    const e = (engine = await startKubeEngine("kube_lease_handover", {
      sim,
      namespace: `disp-${++namespaces}`,
      replicas: 2,
    }));
    const leaders = e.replicas.filter((r) => r.parts.lease.isLeader);
    expect(leaders).toHaveLength(1);
    expect(e.replicas.filter((r) => r.parts.observer.observing)).toEqual(leaders);
    const chain = [
      "fun a():\n    import time\n    time.sleep(1)\n    print(1)\n",
      "fun b(x:a):\n    print(int(open('x').read()) + 1)\n",
    ];
    const id = await e.submit(chain.join("\n"));
    await waitFor(
      "a running",
      () => sim.pods(jobName(id, "a", 1), e.namespace)[0]?.status.phase === "Running",
      10_000,
    );
    const first = leaders[0]!;
    await first.parts.lease.stop();
    expect(first.parts.observer.observing).toBe(false);
    const second = e.replicas.find((r) => r !== first)!;
    await waitFor("the other replica leads", () => second.parts.lease.isLeader, 5000);
    expect((await e.waitFor(id, 30_000)).status).toBe("succeeded");
    expect(await e.output(id, "b")).toBe("2\n");
    await waitFor("the new leader's count", () => second.parts.observer.stats.succeeded >= 1);
    expect((await runsOf(e, id)).map((r) => r.status)).toEqual(["succeeded", "succeeded"]);
  });
});
