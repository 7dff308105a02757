// The engine with the Kubernetes executor against the API simulator: real client over HTTP, real worker
// processes run by the simulated kubelet, real Postgres and RabbitMQ.
import { execFileSync } from "node:child_process";
import { Dispatcher } from "../../dispatcher/dispatcher.ts";
import {
  kubernetesParts,
  type KubernetesParts,
  type KubernetesSettings,
} from "../../dispatcher/kubernetes.ts";
import type { Bus } from "../../shared/bus/bus.ts";
import { WORKER_SCRIPT } from "../../shared/executors/python.ts";
import type { Executor } from "../../shared/executors/executor.ts";
import { silentLogger } from "../../shared/log.ts";
import { startEngine, type Engine } from "./engine.ts";
import { startKubeSim, type KubeSim, type KubeSimOptions } from "../../tools/kube-sim/index.ts";
import { workerContainers } from "../../tools/kube-sim/worker-containers.ts";

export const WORKER_IMAGE = "dwop-pyworker:dev";

/** Settings that make every wait of the observer short enough for a test. */
export const FAST_SETTINGS: Omit<KubernetesSettings, "namespace"> = {
  image: WORKER_IMAGE,
  imagePullPolicy: "IfNotPresent",
  jobTtlSeconds: 3600,
  runAsUser: 10001,
  defaultCpu: "500m",
  defaultMemory: "512Mi",
  volumeSizeLimit: "1Gi",
  qps: 500,
  burst: 500,
  reconcileSeconds: 1,
  lostGraceSeconds: 2,
  imagePullTimeoutSeconds: 1,
  pendingTimeoutSeconds: 3,
  leaseSeconds: 3,
  watchBackoffMs: { initial: 50, max: 500 },
};

/**
 * A simulator whose worker image runs the real Python worker: as a real container of dwop-pyworker:dev
 * built from this tree when podman can run it (tools/kube-sim/worker-containers.ts), else as a host process.
 */
export async function startWorkerSim(options: KubeSimOptions = {}): Promise<KubeSim> {
  const python = execFileSync("python3", ["-c", "import sys; print(sys.executable)"], {
    encoding: "utf8",
  }).trim();
  return startKubeSim({
    imagePullBackOffMs: 50,
    ...options,
    containers: "containers" in options ? options.containers : await workerContainers(),
    images: {
      [WORKER_IMAGE]: { command: [python, WORKER_SCRIPT], env: { PYTHONUNBUFFERED: "1" } },
      ...options.images,
    },
  });
}

export interface Replica {
  id: string;
  parts: KubernetesParts;
  dispatcher: Dispatcher | null;
  bus: Bus | null;
  /** Starts consuming (the dispatcher half). */
  consume(): Promise<void>;
  /** Competes for the observer lease (the observer half). */
  observe(): Promise<void>;
  stop(): Promise<void>;
}

export interface KubeEngineOptions {
  sim: KubeSim;
  namespace: string;
  /** Replicas started at once, each consuming and competing for the lease (default 1). */
  replicas?: number;
  settings?: Partial<KubernetesSettings>;
  maxActiveRuns?: number;
  concurrency?: number;
  /** Wraps each replica's executor (to crash it at a chosen moment, say). */
  wrapExecutor?: (executor: Executor) => Executor;
}

export interface KubeEngine extends Engine {
  sim: KubeSim;
  namespace: string;
  replicas: Replica[];
  /** A replica that is not started: call consume() and/or observe(). */
  replica(id: string): Replica;
  /** The replica whose observer holds the lease, once one does. */
  leader(): Replica | undefined;
}

export async function startKubeEngine(label: string, o: KubeEngineOptions): Promise<KubeEngine> {
  const engine = await startEngine(label, { bus: "rabbit", dispatchers: 0 });
  const settings: KubernetesSettings = { ...FAST_SETTINGS, namespace: o.namespace, ...o.settings };
  const replicas: Replica[] = [];

  const replica = (id: string): Replica => {
    const parts = kubernetesParts(
      engine.m.store,
      engine.storage,
      o.sim.kubeConfig(o.namespace),
      settings,
      id,
      silentLogger,
    );
    const r: Replica = {
      id,
      parts,
      dispatcher: null,
      bus: null,
      async consume() {
        r.bus = await engine.newBus();
        const executor = o.wrapExecutor ? o.wrapExecutor(parts.executor) : parts.executor;
        r.dispatcher = new Dispatcher(engine.m.store, r.bus, executor, engine.storage, {
          id,
          concurrency: o.concurrency ?? 4,
          heartbeatSeconds: 1,
          lostAfterSeconds: 10,
          shutdownGraceSeconds: 5,
          signedUrlTtlSeconds: 300,
          maxActiveRuns: o.maxActiveRuns ?? 100,
          apiUrl: engine.storageUrl, // the engine's app: workers ship live logs to it
        });
        await r.dispatcher.start();
      },
      observe: () => parts.lease.start(),
      async stop() {
        await r.dispatcher?.stop();
        await parts.lease.stop();
      },
    };
    replicas.push(r);
    return r;
  };

  for (let i = 0; i < (o.replicas ?? 1); i++) {
    const r = replica(`r${i}-${engine.queue}`);
    await r.consume();
    await r.observe();
  }

  return {
    ...engine,
    sim: o.sim,
    namespace: o.namespace,
    replicas,
    replica,
    leader: () => replicas.find((r) => r.parts.lease.isLeader),
    async stop(passed: boolean) {
      for (const r of replicas) await r.stop();
      await engine.stop(passed);
    },
  };
}
