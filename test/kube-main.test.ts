// dispatcher/main.ts as its own process with DWOP_EXECUTOR=kubernetes: it runs workflows through the
// simulator, serves /metrics, /healthz and /readyz, and on SIGTERM drains and gives its lease up.
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { OBSERVER_LEASE } from "../dispatcher/kubernetes.ts";
import { ClusterStore } from "../dispatcher/cluster-store.ts";
import { RABBIT_URL } from "./support/engine.ts";
import { testFolder } from "./support/test-folder.ts";
import type { KubeSim } from "../tools/kube-sim/index.ts";
import { startKubeEngine, startWorkerSim, WORKER_IMAGE, type KubeEngine } from "./support/kube-engine.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

let sim: KubeSim;
let engine: KubeEngine | null = null;
let child: ChildProcess | null = null;

beforeAll(async () => {
  sim = await startWorkerSim();
});
afterAll(() => sim?.close());
afterEach(async (ctx) => {
  child?.kill("SIGKILL");
  await engine?.stop(ctx.task.result?.state === "pass");
  engine = null;
});

/** Starts the dispatcher process; resolves with the port of its ops server, from its start-up log line. */
async function startDispatcher(e: KubeEngine): Promise<number> {
  const kubeconfig = join(await testFolder("dwop-kubeconfig-"), "config.json");
  await sim.writeKubeconfig(kubeconfig, e.namespace);
  child = spawn(process.execPath, ["--import", "tsx", "dispatcher/main.ts"], {
    cwd: ROOT,
    env: {
      ...process.env,
      DATABASE_URL: e.m.url,
      RABBITMQ_CONNECTION_URL: RABBIT_URL,
      DWOP_QUEUE: e.queue,
      DWOP_PUBLIC_URL: e.storageUrl,
      DWOP_STORAGE_SECRET: e.storageSecret,
      DWOP_EXECUTOR: "kubernetes",
      DWOP_NAMESPACE: e.namespace,
      DWOP_IMAGE: WORKER_IMAGE,
      KUBECONFIG: kubeconfig,
      DWOP_DISPATCHER_ID: "main-under-test",
      DWOP_KUBE_RECONCILE_SECONDS: "1",
      DWOP_METRICS_HOST: "127.0.0.1",
      DWOP_METRICS_PORT: "0",
      DWOP_LOG_LEVEL: "info",
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const lines = createInterface(child.stderr!);
  return new Promise((resolve, reject) => {
    child!.once("exit", (code) => reject(new Error(`dispatcher exited with ${code}`)));
    lines.on("line", (line) => {
      const entry = JSON.parse(line) as { msg?: string; opsPort?: number };
      if (entry.msg === "dispatcher started" && entry.opsPort) resolve(entry.opsPort);
    });
  });
}

const get = (port: number, path: string) => fetch(`http://127.0.0.1:${port}${path}`);

/** The value of one series in a Prometheus text exposition, or undefined. */
function series(text: string, name: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

describe("the dispatcher process on Kubernetes", () => {
  it("runs a workflow, exports metrics, answers probes, and on SIGTERM exits 0 and releases its lease", async () => {
    const e = (engine = await startKubeEngine("kube_main", { sim, namespace: "main-1", replicas: 0 }));
    const port = await startDispatcher(e);
    expect((await get(port, "/healthz")).status).toBe(200);
    expect((await get(port, "/readyz")).status).toBe(200);
    expect((await get(port, "/metrics")).status).toBe(200); // the first scrape starts the finished-runs cursor

    const id = await e.submit(
      [
        "fun a():\n    print('a')\n",
        "@retries(1)\nfun b(x:a):\n    import os, sys\n    if os.environ['DWOP_ATTEMPT'] == '1':\n        sys.exit(4)\n    print('b')\n",
      ].join("\n"),
    );
    expect((await e.waitFor(id, 60_000)).status).toBe("succeeded");

    const text = await (await get(port, "/metrics")).text();
    expect(series(text, 'dwop_runs_finished_total{executor="kubernetes",state="succeeded"}')).toBe(2);
    expect(series(text, 'dwop_runs_finished_total{executor="kubernetes",state="failed"}')).toBe(1);
    expect(series(text, 'dwop_task_retries_total{reason="exit_code"}')).toBe(1);
    expect(series(text, 'dwop_run_stage_seconds_count{stage="started_to_finished"}')).toBe(3);
    expect(series(text, 'dwop_run_stage_seconds_count{stage="queued_to_dispatched"}')).toBeGreaterThanOrEqual(
      2,
    );
    expect(series(text, 'dwop_kube_api_requests_total{call="create jobs"}')).toBe(3);
    expect(series(text, "dwop_queue_depth")).toBe(0);
    expect(series(text, "dwop_outbox_lag_seconds")).toBeGreaterThanOrEqual(0);
    expect(text).toContain("dwop_dispatcher_process_cpu_seconds_total");

    const cluster = new ClusterStore(e.m.db);
    expect(await cluster.leaseHolder(OBSERVER_LEASE)).toBe("main-under-test");
    const exited = new Promise<number | null>((r) => child!.once("exit", r));
    child!.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(await cluster.leaseHolder(OBSERVER_LEASE)).toBeNull();
  });
});
