// The dispatcher as its own process (the Kubernetes Deployment, or a second dispatcher beside `dwop dev`).
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { connectBus } from "../shared/bus/from-config.ts";
import { databaseUrl, loadConfig, workerApiUrl, type Config } from "../shared/config.ts";
import { connectDb, waitForDatabase } from "../shared/db/connect.ts";
import { migrate } from "../shared/db/migrate.ts";
import { Store } from "../shared/db/store.ts";
import { readEnv } from "../shared/env.ts";
import type { Executor } from "../shared/executors/executor.ts";
import { announceSandbox, LocalExecutor, taskLimits } from "../shared/executors/local.ts";
import { resolvePython, WORKER_SCRIPT } from "../shared/executors/python.ts";
import type { Logger } from "../shared/log.ts";
import { createLogger } from "../shared/pino.ts";
import { storageFromConfig } from "../shared/storage/from-config.ts";
import { Dispatcher, dispatcherSettings } from "./dispatcher.ts";
import type { KubernetesParts } from "./kubernetes.ts";
import { DispatcherMetrics } from "./metrics.ts";
import { serveOps } from "./ops-server.ts";

const config = loadConfig(readEnv());
const logger = createLogger(config.DWOP_LOG_LEVEL, { format: config.DWOP_LOG_FORMAT });
const url = databaseUrl(config);
const storage = storageFromConfig(config);
if (!url || !storage) {
  logger.error(
    {},
    "the dispatcher needs DATABASE_URL, and SUPABASE_PROJECT_URL with SUPABASE_SERVICE_KEY (Supabase Storage) or DWOP_PUBLIC_URL with DWOP_STORAGE_SECRET (the `dwop dev` server's storage)",
  );
  process.exit(2);
}
const id = config.DWOP_DISPATCHER_ID ?? `${hostname()}-${process.pid}`;
const db = connectDb(url, { max: 10, applicationName: `dwop-dispatcher:${id}` });
await waitForDatabase(db, logger);
await migrate(db);
const store = new Store(db);
const bus = await connectBus(config, url, logger, `dwop-dispatcher:${id}`);
const home = resolve(config.DWOP_HOME);

const metrics = new DispatcherMetrics(db, bus, { exportsDatabase: () => kube?.lease.isLeader ?? true });
const kube: KubernetesParts | null =
  config.DWOP_EXECUTOR === "kubernetes" ? await kubernetes(config, logger) : null;
const executor: Executor = kube?.executor ?? (await localExecutor(config, logger));
const dispatcher = new Dispatcher(store, bus, executor, storage, {
  id,
  ...dispatcherSettings(config),
  apiUrl: workerApiUrl(config),
  maxActiveRuns: config.DWOP_KUBE_MAX_JOBS,
  logger,
});
let stopping = false;
const ops = await serveOps(config.DWOP_METRICS_HOST, config.DWOP_METRICS_PORT, {
  metrics: () => metrics.render(),
  contentType: metrics.contentType,
  healthy: () => true,
  ready: async () => !stopping && (await db`select 1`.then(() => true)),
  logger,
}).catch((err: unknown) => {
  // Without probes the kubelet restarts the pod, which is the right outcome there; locally, carry on.
  logger.error({ err, port: config.DWOP_METRICS_PORT }, "could not serve /metrics, /healthz and /readyz");
  return null;
});
await dispatcher.start();
await kube?.lease.start();
logger.info({ id, executor: executor.kind, opsPort: ops?.port ?? null }, "dispatcher started");

/** Imported only for this executor: the Kubernetes client alone holds ~70 MB of a local dispatcher's RSS. */
async function kubernetes(c: Config, log: Logger): Promise<KubernetesParts> {
  const { kubernetesParts, kubernetesSettings, loadKubeConfig } = await import("./kubernetes.ts");
  const onRequest = (call: string) => metrics.kubeRequests.inc({ call });
  return kubernetesParts(store, loadKubeConfig(c), kubernetesSettings(c), id, log, onRequest);
}

async function localExecutor(c: Config, log: Logger): Promise<Executor> {
  const executor = new LocalExecutor({
    python: await resolvePython(),
    workerScript: WORKER_SCRIPT,
    workRoot: join(home, "runs", id),
    sandbox: c.DWOP_TASK_SANDBOX,
    allow: c.DWOP_TASK_ALLOW,
    network: c.DWOP_TASK_NETWORK,
    limits: taskLimits(c),
    passEnv: Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith("PIP_"))) as Record<
      string,
      string
    >,
    logger: log,
  });
  await announceSandbox(executor, log);
  return executor;
}

async function shutdown(signal: string) {
  logger.info({ signal }, "stopping: no new tasks; running tasks get the grace period");
  stopping = true;
  await dispatcher.stop();
  await kube?.lease.stop();
  await executor.close();
  await bus.close();
  ops?.server.close();
  await db.end({ timeout: 5 });
  process.exit(0);
}
process.once("SIGTERM", () => void shutdown("SIGTERM"));
process.once("SIGINT", () => void shutdown("SIGINT"));
