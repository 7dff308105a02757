// The dispatcher as its own process (the Kubernetes Deployment, or a second dispatcher beside `dwop dev`):
// dispatcher/main.ts runs it; a benchmark runs it with an executor of its own (bench/noop-dispatcher.ts).
import { localDispatcherId } from "./dead-neighbours.ts";
import { join, resolve } from "node:path";
import { databaseUrl, loadConfig, workerApiUrl, type Config } from "../shared/config.ts";
import type { Store } from "../shared/db/store.ts";
import { readEnv } from "../shared/env.ts";
import type { Executor } from "../shared/executors/executor.ts";
import { LOCAL_EXECUTOR, startLocalExecutor } from "../shared/executors/local.ts";
import type { Logger } from "../shared/log.ts";
import { createLogger } from "../shared/pino.ts";
import { storageFromConfig } from "../shared/storage/from-config.ts";
import type { Storage } from "../shared/storage/storage.ts";
import type { KubernetesParts } from "./kubernetes.ts";
import { prepareHome } from "../shared/folders.ts";
import { postgresPatchProblem } from "../shared/db/postgres-patch.ts";

export interface DispatcherProcessOptions {
  /** Runs the tasks instead of the configured executor: a benchmark's no-op one, registered as local. */
  executor?: (config: Config, logger: Logger) => Promise<Executor>;
}

/** Runs a dispatcher until SIGTERM or SIGINT, then stops it gracefully and exits the process. */
export async function runDispatcher(options: DispatcherProcessOptions = {}): Promise<void> {
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
  const unpatched = postgresPatchProblem();
  if (unpatched) {
    logger.error({}, unpatched);
    process.exit(2);
  }
  const id = config.DWOP_DISPATCHER_ID ?? localDispatcherId();
  const home = resolve(config.DWOP_HOME);
  if (config.DWOP_EXECUTOR !== "kubernetes") await prepareHome(home); // where its runs' folders go
  // A restarted dispatcher is ready as soon as its slowest part is, so the parts start together: the local
  // executor's Python and fork server (its sandbox probe) or the Kubernetes client's modules (hundreds,
  // loaded only for that executor), beside the modules of the database, bus and dispatcher and the
  // database's answer.
  const local = options.executor
    ? settled(options.executor(config, logger))
    : config.DWOP_EXECUTOR === "kubernetes"
      ? null
      : settled(startLocalExecutor(config, join(home, "runs", id), logger));
  const kubeModule =
    !options.executor && config.DWOP_EXECUTOR === "kubernetes" ? settled(import("./kubernetes.ts")) : null;
  const [
    { connectBus },
    { connectDb, retryWhileStarting, waitForDatabase },
    { deadConnectionOptions },
    { migrate },
    { Store: StoreClass },
    { Dispatcher, dispatcherSettings },
    { DispatcherMetrics },
    { serveOps },
    { registerDispatcher },
  ] = await Promise.all([
    import("../shared/bus/from-config.ts"),
    import("../shared/db/connect.ts"),
    import("../shared/db/dead-connections.ts"),
    import("../shared/db/migrate.ts"),
    import("../shared/db/store.ts"),
    import("./dispatcher.ts"),
    import("./metrics.ts"),
    import("./ops-server.ts"),
    import("./registration.ts"),
  ]);
  const db = connectDb(url, {
    max: 10,
    applicationName: `dwop-dispatcher:${id}`,
    ...deadConnectionOptions(logger),
  });
  await waitForDatabase(db, logger);
  await retryWhileStarting("the migrations", () => migrate(db), logger);
  const store: Store = new StoreClass(db);
  // The registration needs only the database: it goes beside the executor's start and the bus's.
  const registration = local
    ? settled(
        retryWhileStarting(
          "the registration",
          () =>
            registerDispatcher(store, {
              id,
              executor: LOCAL_EXECUTOR,
              lostAfterSeconds: dispatcherSettings(config).lostAfterSeconds,
              log: logger.child({ component: "dispatcher", dispatcher: id }),
            }),
          logger,
        ),
      )
    : undefined;
  const bus = await retryWhileStarting(
    "the bus's connection",
    () => connectBus(config, url, logger, `dwop-dispatcher:${id}`, true),
    logger,
  );

  const metrics = new DispatcherMetrics(db, bus, { exportsDatabase: () => kube?.lease.isLeader ?? true });
  const kube: KubernetesParts | null = kubeModule
    ? kubernetes(config, storage, logger, await kubeModule)
    : null;
  const executor: Executor = kube?.executor ?? (await local!);
  const dispatcher = new Dispatcher(store, bus, executor, storage, {
    id,
    ...dispatcherSettings(config),
    apiUrl: workerApiUrl(config),
    maxActiveRuns: config.DWOP_KUBE_MAX_JOBS,
    registration,
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
  await retryWhileStarting("the dispatcher's start", () => dispatcher.start(), logger);
  await kube?.lease.start();
  logger.info({ id, executor: executor.kind, opsPort: ops?.port ?? null }, "dispatcher started");

  function kubernetes(
    c: Config,
    objects: Storage,
    log: Logger,
    k: typeof import("./kubernetes.ts"),
  ): KubernetesParts {
    const onRequest = (call: string) => metrics.kubeRequests.inc({ call });
    return k.kubernetesParts(
      store,
      objects,
      k.loadKubeConfig(c),
      k.kubernetesSettings(c),
      id,
      log,
      onRequest,
    );
  }

  /** The promise, marked as handled until awaited: a failure then surfaces where it is awaited. */
  function settled<T>(p: Promise<T>): Promise<T> {
    p.catch(() => {});
    return p;
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
}
