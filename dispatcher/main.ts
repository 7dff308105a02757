// The dispatcher as its own process (the Kubernetes Deployment, or a second dispatcher beside `dwop dev`).
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { connectBus } from "../shared/bus/from-config.ts";
import { databaseUrl, loadConfig } from "../shared/config.ts";
import { connectDb } from "../shared/db/connect.ts";
import { migrate } from "../shared/db/migrate.ts";
import { Store } from "../shared/db/store.ts";
import { readEnv } from "../shared/env.ts";
import { LocalExecutor } from "../shared/executors/local.ts";
import { resolvePython, WORKER_SCRIPT } from "../shared/executors/python.ts";
import { createLogger } from "../shared/pino.ts";
import { LocalStorage } from "../shared/storage/local.ts";
import { Dispatcher } from "./dispatcher.ts";

const config = loadConfig(readEnv());
const logger = createLogger(config.DWOP_LOG_LEVEL);
const url = databaseUrl(config);
if (!url || !config.DWOP_PUBLIC_URL || !config.DWOP_STORAGE_SECRET) {
  logger.error({}, "the dispatcher needs DATABASE_URL, DWOP_PUBLIC_URL and DWOP_STORAGE_SECRET");
  process.exit(2);
}
const id = config.DWOP_DISPATCHER_ID ?? `${hostname()}-${process.pid}`;
const db = connectDb(url, { max: 10, applicationName: `dwop-dispatcher:${id}` });
await migrate(db);
const store = new Store(db);
const bus = await connectBus(config, url, logger, `dwop-dispatcher:${id}`);
const home = resolve(config.DWOP_HOME);
const storage = new LocalStorage({
  root: join(home, "storage"),
  secret: config.DWOP_STORAGE_SECRET,
  baseUrl: config.DWOP_PUBLIC_URL,
});
const executor = new LocalExecutor({
  python: await resolvePython(),
  workerScript: WORKER_SCRIPT,
  workRoot: join(home, "runs", id),
  passEnv: Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith("PIP_"))) as Record<string, string>,
  logger,
});
const dispatcher = new Dispatcher(store, bus, executor, storage, {
  id,
  concurrency: config.DWOP_CONCURRENCY,
  heartbeatSeconds: config.DWOP_HEARTBEAT_SECONDS,
  lostAfterSeconds: config.DWOP_LOST_AFTER_SECONDS,
  shutdownGraceSeconds: config.DWOP_SHUTDOWN_GRACE_SECONDS,
  signedUrlTtlSeconds: config.DWOP_SIGNED_URL_TTL_SECONDS,
  logger,
});
await dispatcher.start();
logger.info({ id }, "dispatcher started");

async function shutdown(signal: string) {
  logger.info({ signal }, "stopping: no new tasks; running tasks get the grace period");
  await dispatcher.stop();
  await executor.close();
  await bus.close();
  await db.end({ timeout: 5 });
  process.exit(0);
}
process.once("SIGTERM", () => void shutdown("SIGTERM"));
process.once("SIGINT", () => void shutdown("SIGINT"));
