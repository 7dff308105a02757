// The outbox claimer as its own process (on Supabase too: its pg_cron job only wakes claimers, see
// supabase/migrations/20261126000520_outbox_backstop.sql).
import { hostname } from "node:os";
import { connectBus } from "../shared/bus/from-config.ts";
import { databaseUrl, loadConfig } from "../shared/config.ts";
import { connectDb, retryWhileStarting, waitForDatabase } from "../shared/db/connect.ts";
import { deadConnectionOptions } from "../shared/db/dead-connections.ts";
import { migrate } from "../shared/db/migrate.ts";
import { postgresPatchProblem } from "../shared/db/postgres-patch.ts";
import { Store } from "../shared/db/store.ts";
import { readEnv } from "../shared/env.ts";
import { createLogger } from "../shared/pino.ts";
import { storageFromConfig } from "../shared/storage/from-config.ts";
import { Claimer, claimerSettings } from "./claimer.ts";

const config = loadConfig(readEnv());
const logger = createLogger(config.DWOP_LOG_LEVEL, { format: config.DWOP_LOG_FORMAT });
const url = databaseUrl(config);
if (!url) {
  logger.error({}, "the claimer needs DATABASE_URL");
  process.exit(2);
}
const unpatched = postgresPatchProblem();
if (unpatched) {
  logger.error({}, unpatched);
  process.exit(2);
}
const id = config.DWOP_CLAIMER_ID ?? `claimer-${hostname()}-${process.pid}`;
const db = connectDb(url, {
  max: 4,
  applicationName: `dwop-claimer:${id}`,
  ...deadConnectionOptions(logger),
});
await waitForDatabase(db, logger);
await retryWhileStarting("the migrations", () => migrate(db), logger);
const bus = await retryWhileStarting(
  "the bus's connection",
  () => connectBus(config, url, logger, `dwop-claimer:${id}`),
  logger,
);
// Scheduled workflows' code goes to storage; without storage configured this claimer fires no schedules.
const storage = storageFromConfig(config);
if (!storage) logger.warn({}, "no storage configured: this claimer fires no schedules");
const claimer = new Claimer(new Store(db), bus, { id, ...claimerSettings(config), storage, logger });
await retryWhileStarting("the claimer's start", () => claimer.start(), logger);
logger.info({ id }, "claimer started");

async function shutdown() {
  await claimer.stop();
  await bus.close();
  await db.end({ timeout: 5 });
  process.exit(0);
}
process.once("SIGTERM", () => void shutdown());
process.once("SIGINT", () => void shutdown());
