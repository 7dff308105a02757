// The dispatcher image (dwop-dispatcher:dev, built from this tree) run as deploy/ would run it: the pod of
// deployment.yaml's template (user 1000, read-only root, no capabilities, /tmp emptyDir, limits) with the
// env its ConfigMap and Secret give, through the simulator's container runtime, against the machine's
// Postgres and RabbitMQ and the simulator's API. Two things differ from a cluster: the pod shares the
// host's network (the services are on 127.0.0.1), so the ops port is a free one rather than 9090; and a
// kubeconfig, mounted read-only, stands in for the service account's token.
import { loadAllYaml } from "@kubernetes/client-node";
import { closeSync, openSync } from "node:fs";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { OBSERVER_LEASE } from "../dispatcher/kubernetes.ts";
import { ClusterStore } from "../dispatcher/cluster-store.ts";
import { DISPATCHER_IMAGE } from "../scripts/images/build.ts";
import { readMigrations } from "../shared/db/migrate.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { RABBIT_URL } from "./support/engine.ts";
import { deleteRabbitTopology } from "./support/rabbit.ts";
import type { KubeSim, Pod } from "../tools/kube-sim/index.ts";
import type { LaunchedContainer, PodmanRuntime } from "../tools/kube-sim/podman-runtime.ts";
import { startKubeEngine, startWorkerSim, type KubeEngine } from "./support/kube-engine.ts";
import { ensureImages, workerContainers } from "../tools/kube-sim/worker-containers.ts";
import { until } from "./support/until.ts";

const DEPLOY = new URL("../deploy/", import.meta.url);

interface Probe {
  httpGet: { path: string };
  periodSeconds?: number;
  failureThreshold?: number;
}
interface Manifest {
  kind: string;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  spec?: { template: { metadata: Pod["metadata"]; spec: Pod["spec"] } };
}

const runtime = await workerContainers();
let sim: KubeSim;
let engine: KubeEngine | null = null;
let blank: TestDatabase | null = null;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  if (!runtime) return;
  await ensureImages([DISPATCHER_IMAGE]); // a first build installs the npm packages: give it time
  sim = await startWorkerSim({ containers: runtime });
}, 300_000);
afterAll(() => sim?.close());
afterEach(async (ctx) => {
  for (const c of cleanups.splice(0)) await c();
  const passed = ctx.task.result?.state === "pass";
  await engine?.stop(passed);
  if (passed) await blank?.drop();
  engine = blank = null;
});

async function manifests(): Promise<Manifest[]> {
  const docs: Manifest[] = [];
  for (const file of ["deployment.yaml", "configmap.yaml", "secret.yaml"]) {
    docs.push(...(loadAllYaml(await readFile(new URL(file, DEPLOY), "utf8")) as Manifest[]));
  }
  return docs;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

interface Started {
  container: LaunchedContainer;
  port: number;
  /** The deployment's probes, asked as the kubelet asks them (within its period × threshold). */
  probe(kind: "startupProbe" | "readinessProbe" | "livenessProbe"): Promise<boolean>;
  log(): Promise<string>;
}

/** Runs the Deployment's pod with `env` over what its ConfigMap and Secret say. */
async function runDispatcherPod(rt: PodmanRuntime, env: Record<string, string>): Promise<Started> {
  const docs = await manifests();
  const template = docs.find((d) => d.kind === "Deployment")!.spec!.template;
  const fromEnv = {
    ...docs.find((d) => d.kind === "ConfigMap")!.data,
    ...docs.find((d) => d.kind === "Secret")!.stringData,
  };
  const dir = await mkdtemp(join(tmpdir(), "dwop-dispatcher-pod-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const kubeconfig = join(dir, "kubeconfig.json");
  await sim.writeKubeconfig(kubeconfig, env.DWOP_NAMESPACE);
  await chmod(kubeconfig, 0o644); // as a projected service-account token is: readable by the pod's user
  const port = await freePort();
  const container = template.spec.containers[0]!;
  const pod: Pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { ...template.metadata, name: "dwop-dispatcher-smoke", namespace: "dwop" },
    spec: {
      ...template.spec,
      volumes: [
        ...((template.spec.volumes as object[]) ?? []),
        { name: "kubeconfig", hostPath: { path: kubeconfig, type: "File" } },
      ],
      containers: [
        {
          ...container,
          volumeMounts: [
            ...((container.volumeMounts as object[]) ?? []),
            { name: "kubeconfig", mountPath: "/var/run/dwop/kubeconfig", readOnly: true },
          ],
        },
      ],
    },
    status: { phase: "Pending" },
  };
  const logPath = join(dir, "container.log");
  const logFd = openSync(logPath, "a");
  const start = await rt.prepare({
    pod,
    container: pod.spec.containers[0]!,
    dir,
    env: {
      ...fromEnv,
      DWOP_DISPATCHER_ID: pod.metadata.name!, // the fieldRef to metadata.name
      KUBECONFIG: "/var/run/dwop/kubeconfig",
      DWOP_METRICS_HOST: "127.0.0.1",
      DWOP_METRICS_PORT: String(port),
      ...env,
    },
    logFd,
    terminationFile: join(dir, "termination-log"),
  });
  const launched = start();
  closeSync(logFd);
  cleanups.push(async () => {
    launched.signal("SIGKILL");
    await new Promise((r) => (launched.child.exitCode === null ? launched.child.once("exit", r) : r(null)));
  });
  const probe = async (kind: "startupProbe" | "readinessProbe" | "livenessProbe") => {
    const p = (pod.spec.containers[0] as unknown as Record<string, Probe>)[kind]!;
    const deadline = Date.now() + (p.periodSeconds ?? 10) * (p.failureThreshold ?? 3) * 1000;
    // Asked more often than periodSeconds (the test need not wait a period), never past the kubelet's limit.
    while (Date.now() < deadline) {
      const ok = await fetch(`http://127.0.0.1:${port}${p.httpGet.path}`, {
        signal: AbortSignal.timeout(3000),
      })
        .then((r) => r.status >= 200 && r.status < 400)
        .catch(() => false);
      if (ok) return true;
      if (launched.child.exitCode !== null) return false;
      await new Promise((r) => setTimeout(r, 200));
    }
    return false;
  };
  return { container: launched, port, probe, log: () => readFile(logPath, "utf8") };
}

async function exitCode(c: LaunchedContainer): Promise<number | null> {
  if (c.child.exitCode !== null) return c.child.exitCode;
  return new Promise((r) => c.child.once("exit", (code) => r(code)));
}

describe.skipIf(!runtime)("the dispatcher image, run as deploy/deployment.yaml runs it", () => {
  it("migrates an empty database, and its probes answer", async () => {
    blank = await createTestDatabase("image_migrate");
    const queue = `dwop.test.image_migrate.${process.pid}`;
    const d = await runDispatcherPod(runtime!, {
      DATABASE_URL: blank.url,
      RABBITMQ_CONNECTION_URL: RABBIT_URL,
      DWOP_QUEUE: queue,
      DWOP_NAMESPACE: "image-migrate",
      DWOP_PUBLIC_URL: "http://127.0.0.1:9", // never asked: no workflow runs here
      DWOP_STORAGE_SECRET: "a-test-secret-of-enough-length",
    });
    expect(await d.probe("startupProbe"), await d.log()).toBe(true);
    expect(await d.probe("readinessProbe")).toBe(true);
    const db = postgres(blank.url, { max: 1, onnotice: () => {} });
    try {
      // Every migration of this tree, applied by the image from its own copy of supabase/migrations.
      const [applied] = await db<
        { n: number }[]
      >`select count(*)::int as n from supabase_migrations.schema_migrations`;
      expect(applied!.n).toBe((await readMigrations()).length);
    } finally {
      await db.end();
    }
    d.container.signal("SIGTERM");
    expect(await exitCode(d.container), await d.log()).toBe(0);
    await deleteRabbitTopology(queue);
  });

  it("runs a workflow's Jobs as worker containers, and on SIGTERM exits 0 and releases its lease", async () => {
    const e = (engine = await startKubeEngine("image_dispatcher", {
      sim,
      namespace: "image-1",
      replicas: 0,
    }));
    const d = await runDispatcherPod(runtime!, {
      DATABASE_URL: e.m.url,
      RABBITMQ_CONNECTION_URL: RABBIT_URL,
      DWOP_QUEUE: e.queue,
      DWOP_NAMESPACE: e.namespace,
      DWOP_PUBLIC_URL: e.storageUrl,
      DWOP_STORAGE_SECRET: e.storageSecret,
      DWOP_KUBE_RECONCILE_SECONDS: "1",
    });
    expect(await d.probe("startupProbe"), await d.log()).toBe(true);
    expect(await d.probe("livenessProbe")).toBe(true);
    expect(await d.probe("readinessProbe")).toBe(true);

    const id = await e.submit(
      "fun a():\n    print(6 * 7)\n\nfun b(x:a):\n    print(int(open('x').read()) + 1)\n",
    );
    expect((await e.waitFor(id, 60_000)).status, await d.log()).toBe("succeeded");
    expect(await e.output(id, "b")).toBe("43\n");
    const [jobs] = await e.m.db<{ n: number }[]>`
      select count(*)::int as n from dwop.runs where workflow_id = ${id} and dispatcher_id = 'dwop-dispatcher-smoke'`;
    expect(jobs!.n).toBe(2);

    const cluster = new ClusterStore(e.m.db);
    await until(async () => (await cluster.leaseHolder(OBSERVER_LEASE)) === "dwop-dispatcher-smoke", 10_000);
    d.container.signal("SIGTERM");
    expect(await exitCode(d.container), await d.log()).toBe(0);
    expect(await cluster.leaseHolder(OBSERVER_LEASE)).toBeNull();
  });
});
