// The Kubernetes API simulator as a process of its own, so Jobs and their pods outlive killed
// dispatchers. Writes a kubeconfig to argv[2], keeps pod folders under argv[3], and serves a small
// control endpoint for the soak's faults. Prints "ready <apiUrl> <controlUrl>" once both listen.
// Pods run as real containers of dwop-pyworker:dev when podman can run them (test/support/podman.ts);
// argv[5], the soak's marker folder, is then the one host folder they see (read-only, at its own path).
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { resolvePython, WORKER_SCRIPT } from "../shared/executors/python.ts";
import { startKubeSim } from "../test/support/kube-sim/index.ts";
import { workerContainers } from "../test/support/podman.ts";

export const WORKER_IMAGE = "dwop-pyworker:dev";
const [kubeconfigPath, workRoot, namespace = "chaos", markerDir] = process.argv.slice(2);
if (!kubeconfigPath || !workRoot) {
  throw new Error("usage: kube-sim-process.ts <kubeconfig> <workRoot> [namespace] [markerDir]");
}

const python = await resolvePython();
const sim = await startKubeSim({
  workRoot,
  containers: await workerContainers({ nodeReadOnlyMounts: markerDir ? [markerDir] : [] }),
  imagePullBackOffMs: 50,
  images: { [WORKER_IMAGE]: { command: [python, WORKER_SCRIPT], env: { PYTHONUNBUFFERED: "1" } } },
});
await sim.writeKubeconfig(kubeconfigPath, namespace);

/** The Jobs the API lists now (the soak's view of "left behind"), read over the simulator's own API. */
async function jobNames(): Promise<{ name: string; active: boolean }[]> {
  const res = await fetch(`${sim.url}/apis/batch/v1/namespaces/${namespace}/jobs`, {
    headers: { authorization: `Bearer ${sim.token}` },
  });
  const list = (await res.json()) as {
    items: { metadata: { name: string }; status?: { active?: number } }[];
  };
  return list.items.map((j) => ({ name: j.metadata.name, active: (j.status?.active ?? 0) > 0 }));
}

interface FaultRequest {
  kind: string;
  pick?: number;
  count?: number;
  status?: number;
  ms?: number;
}

async function fault(f: FaultRequest): Promise<unknown> {
  switch (f.kind) {
    case "closeWatches":
      return { closed: sim.closeWatches() };
    case "expireHistory":
      sim.expireHistory({ as: (f.pick ?? 0) % 2 === 0 ? "event" : "http" });
      sim.closeWatches();
      return { expired: true };
    case "failNext":
      sim.failNext(f.count ?? 3, { status: f.status ?? 500 });
      return { failing: f.count ?? 3 };
    case "latency":
      sim.latency(f.ms ?? 0);
      return { latencyMs: f.ms ?? 0 };
    case "deleteJob":
    case "evictPod": {
      const active = (await jobNames()).filter((j) => j.active);
      if (active.length === 0) return { target: null };
      const target = active[(f.pick ?? 0) % active.length]!.name;
      const done =
        f.kind === "deleteJob" ? sim.deleteJob(target, { namespace }) : sim.evictPod(target, { namespace });
      return { target, done };
    }
    case "jobs":
      return { jobs: await jobNames() };
    case "stats":
      return sim.stats();
    default:
      throw new Error(`unknown fault ${f.kind}`);
  }
}

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

const control = createServer((req, res) => {
  void body(req)
    .then((text) => fault(JSON.parse(text || "{}") as FaultRequest))
    .then(
      (out) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(out));
      },
      (err: unknown) => {
        res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: String(err) }));
      },
    );
});
await new Promise<void>((r) => control.listen(0, "127.0.0.1", r));
const port = (control.address() as AddressInfo).port;
process.stdout.write(`ready ${sim.url} http://127.0.0.1:${port}\n`);

async function shutdown() {
  control.close();
  await sim.close();
  process.exitCode = 0;
}
process.once("SIGTERM", () => void shutdown());
process.once("SIGINT", () => void shutdown());
