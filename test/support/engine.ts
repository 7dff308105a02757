import type { Logger } from "../../shared/log.ts";
import { serve, type ServerType } from "@hono/node-server";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Claimer } from "../../cron/claimer.ts";
import { Dispatcher } from "../../dispatcher/dispatcher.ts";
import { createApp } from "../../functions/app.ts";
import type { Bus } from "../../shared/bus/bus.ts";
import { PgBossBus } from "../../shared/bus/pgboss.ts";
import { RabbitBus } from "../../shared/bus/rabbit.ts";
import { deleteRabbitTopology, RABBIT_URL } from "./rabbit.ts";
import type { Db } from "../../shared/db/connect.ts";
import { Store, type WorkflowSummary } from "../../shared/db/store.ts";
import type { Executor } from "../../shared/executors/executor.ts";
import type { SandboxMode } from "../../shared/executors/fork-server.ts";
import { LocalExecutor } from "../../shared/executors/local.ts";
import { resolvePython, WORKER_SCRIPT } from "../../shared/executors/python.ts";
import {
  OUTPUT_BUCKET,
  TERMINAL_WORKFLOW_STATES,
  objectPaths,
  type WorkflowState,
} from "../../shared/model.ts";
import { LocalStorage } from "../../shared/storage/local.ts";
import type { Storage } from "../../shared/storage/storage.ts";
import { localStorageRoutes } from "../../shared/storage/local-routes.ts";
import { submitWorkflow } from "../../shared/submit.ts";
import { migratedDatabase, type MigratedDatabase } from "./migrated.ts";

export type BusKind = "rabbit" | "pgboss";
/** The machine's RabbitMQ, as test/support/rabbit.ts names it (DWOP_TEST_RABBITMQ_URL). */
export { RABBIT_URL };

export interface EngineOptions {
  bus: BusKind;
  dispatchers?: number;
  claimers?: number;
  concurrency?: number;
  /** Wraps each bus a claimer or a dispatcher publishes on (to duplicate messages, for example). */
  wrapPublisher?: (bus: Bus) => Bus;
  /** Another executor than local processes (the benchmarks' no-op executor), given the storage folder. */
  executor?: (storageRoot: string) => Executor;
  claimBatch?: number;
  /** The local executor's task sandbox ("auto" when not given). */
  sandbox?: SandboxMode;
  /** What sandboxed runs reach ("internet" when not given). */
  network?: "internet" | "none";
  /** Where the dispatchers and claimers log (a recording logger lets a test wait for what they did). */
  logger?: Logger;
  /** Dispatchers start a task each success made ready (startReady); true when not given. */
  startReady?: boolean;
  /** Claimers keep at most this many messages waiting in the bus (fair share); unset: no limit. */
  busBacklog?: number;
  /** DWOP_OWNER_MAX_RUNNING of the dispatchers and claimers; unset: no cap. */
  ownerMaxRunning?: number;
  /** What the dispatchers store runs' outputs and logs in, around the engine's storage (a failing disk). */
  wrapStorage?: (storage: LocalStorage) => Storage;
  /** The dispatchers' heartbeat (1 s when not given): a long one leaves a run's fate to the test. */
  heartbeatSeconds?: number;
  /** The dispatchers' own pool to the engine's database (through a proxy of the test's, say), else the engine's. */
  dispatcherDb?: (m: MigratedDatabase) => Db;
}

export interface Engine {
  m: MigratedDatabase;
  storage: LocalStorage;
  storageUrl: string;
  storageRoot: string;
  storageSecret: string;
  queue: string;
  newBus(): Promise<Bus>;
  submit(
    source: string,
    extra?: { requirements?: string; inputs?: Record<string, string>; owner?: string; priority?: number },
  ): Promise<string>;
  waitFor(workflowId: string, timeoutMs?: number): Promise<WorkflowSummary>;
  output(workflowId: string, task: string): Promise<string>;
  stop(passed: boolean): Promise<void>;
}

/**
 * The whole engine in this process against a fresh database and fresh queue names: storage (and the rest
 * of the API, where workers ship live logs) served over HTTP, N claimers and N dispatchers, each with its
 * own bus connection as separate processes would have.
 */
export async function startEngine(label: string, options: EngineOptions): Promise<Engine> {
  const m = await migratedDatabase(label);
  const queue = `dwop.test.${label.replace(/[^a-z0-9]+/gi, "_").slice(0, 30)}.${randomBytes(3).toString("hex")}`;
  const storageRoot = await mkdtemp(join(tmpdir(), "dwop-storage-"));
  const storageSecret = randomBytes(16).toString("hex");
  const storage = new LocalStorage({ root: storageRoot, secret: storageSecret });
  const app = createApp({ db: m.db, extraRoutes: localStorageRoutes(storage) });
  const { server, port } = await listen(app.fetch);
  const storageUrl = `http://127.0.0.1:${port}`;
  storage.setBaseUrl(storageUrl);

  const buses: Bus[] = [];
  const newBus = async () => {
    const bus =
      options.bus === "rabbit"
        ? await RabbitBus.connect({ url: RABBIT_URL, queue, connectionName: `test-${queue}` })
        : await PgBossBus.connect({ connectionString: m.url, queue, pollIntervalMs: 200 });
    buses.push(bus);
    return bus;
  };

  const python = await resolvePython();
  const stops: (() => Promise<void>)[] = [];
  for (let i = 0; i < (options.dispatchers ?? 1); i++) {
    const executor =
      options.executor?.(storageRoot) ??
      new LocalExecutor({
        python,
        workerScript: WORKER_SCRIPT,
        workRoot: join(storageRoot, `runs-${i}`),
        sandbox: options.sandbox,
        network: options.network,
      });
    // Through the same wrapper as a claimer, so faults injected on the bus reach both.
    const bus = await newBus();
    const stores = options.wrapStorage?.(storage) ?? storage;
    const ownDb = options.dispatcherDb?.(m);
    if (ownDb) stops.push(() => ownDb.end({ timeout: 1 }));
    const store = ownDb ? new Store(ownDb) : m.store;
    const d = new Dispatcher(store, options.wrapPublisher?.(bus) ?? bus, executor, stores, {
      id: `d${i}-${queue}`,
      concurrency: options.concurrency ?? 4,
      heartbeatSeconds: options.heartbeatSeconds ?? 1,
      lostAfterSeconds: 10,
      shutdownGraceSeconds: 5,
      signedUrlTtlSeconds: 300,
      logger: options.logger,
      apiUrl: storageUrl, // the engine's app: workers ship live logs to it
      startReady: options.startReady,
      ownerMaxRunning: options.ownerMaxRunning,
    });
    await d.start();
    stops.push(
      () => d.stop(),
      () => executor.close(),
    );
  }
  for (let i = 0; i < (options.claimers ?? 1); i++) {
    const bus = await newBus();
    const c = new Claimer(m.store, options.wrapPublisher ? options.wrapPublisher(bus) : bus, {
      id: `c${i}-${queue}`,
      batchSize: options.claimBatch ?? 100,
      leaseSeconds: 30,
      pollMs: 200,
      storage, // due schedules fire too
      logger: options.logger,
      busBacklog: options.busBacklog,
      ownerMaxRunning: options.ownerMaxRunning,
    });
    await c.start();
    stops.unshift(() => c.stop());
  }

  return {
    m,
    storage,
    storageUrl,
    storageRoot,
    storageSecret,
    queue,
    newBus,
    async submit(source, extra = {}) {
      const r = await submitWorkflow(
        { store: m.store, storage },
        { source, file: `${label}.workflow`, owner: "test", retryBackoffMs: 0, ...extra },
      );
      return r.id;
    },
    async waitFor(workflowId, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      // Polls the workflow's row alone and reads its tasks once it ended: the whole summary of a
      // 2,000-task workflow every 50 ms took a fifth of a core from the engine a benchmark measures.
      for (;;) {
        const [w] = await m.db<{ status: WorkflowState }[]>`
          select status from dwop.workflows where id = ${workflowId}`;
        if (w && TERMINAL_WORKFLOW_STATES.includes(w.status)) {
          const summary = await m.store.workflowSummary(workflowId);
          if (summary) return summary;
        }
        if (Date.now() > deadline) {
          const summary = await m.store.workflowSummary(workflowId);
          throw new Error(`workflow did not end in time: ${JSON.stringify(summary)}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async output(workflowId, task) {
      return readFile(join(storageRoot, OUTPUT_BUCKET, objectPaths.output(workflowId, task)), "utf8");
    },
    async stop(passed) {
      for (const stop of stops) await stop();
      for (const bus of buses) await bus.close();
      await new Promise<void>((r) => server.close(() => r()));
      await m.close(passed);
      // A passed test's queues go with its database (a failed one keeps both as evidence): each quorum
      // queue is a process of the broker, and a machine that runs the suite again and again piled them up.
      if (passed && options.bus === "rabbit") await deleteRabbitTopology(queue).catch(() => {});
      // And its storage folder (the runs' outputs and logs): a full run of the suite left 68 in /tmp.
      if (passed) await rm(storageRoot, { recursive: true, force: true }).catch(() => {});
    },
  };
}

function listen(
  fetch: (req: Request) => Response | Promise<Response>,
): Promise<{ server: ServerType; port: number }> {
  return new Promise((resolve) => {
    const server = serve({ fetch, hostname: "127.0.0.1", port: 0 }, (info) =>
      resolve({ server, port: info.port }),
    );
  });
}
