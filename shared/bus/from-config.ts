import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import type { Bus } from "./bus.ts";

/**
 * Loads the chosen adapter's client now, for a process that has time while it waits for its database
 * (pg-boss and its driver took 80 ms to load here): connectBus then finds them loaded.
 */
export function preloadBus(config: Pick<Config, "RABBITMQ_CONNECTION_URL">): void {
  const loading = config.RABBITMQ_CONNECTION_URL ? import("./rabbit.ts") : import("./pgboss.ts");
  loading.catch(() => {}); // connectBus's own import reports a failure
}

/**
 * RabbitMQ when RABBITMQ_CONNECTION_URL is set; otherwise pg-boss in the same Postgres as the state.
 * Only the chosen adapter's client is loaded (each is a CommonJS package of dozens of modules).
 */
export async function connectBus(
  config: Config,
  databaseUrl: string,
  logger: Logger,
  name = "dwop",
  /** The process will consume (a dispatcher): a pg-boss bus then opens its consumers' connection as it connects. */
  consumes = false,
): Promise<Bus> {
  if (config.RABBITMQ_CONNECTION_URL) {
    const { RabbitBus } = await import("./rabbit.ts");
    return RabbitBus.connect({
      url: config.RABBITMQ_CONNECTION_URL,
      queue: config.DWOP_QUEUE,
      quorum: config.DWOP_RABBITMQ_QUORUM === "true",
      connectionName: name,
      logger,
    });
  }
  const { PgBossBus } = await import("./pgboss.ts");
  return PgBossBus.connect({ connectionString: databaseUrl, queue: config.DWOP_QUEUE, consumes, logger });
}
