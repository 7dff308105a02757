import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import type { Bus } from "./bus.ts";
import { PgBossBus } from "./pgboss.ts";
import { RabbitBus } from "./rabbit.ts";

/** RabbitMQ when RABBITMQ_CONNECTION_URL is set; otherwise pg-boss in the same Postgres as the state. */
export function connectBus(config: Config, databaseUrl: string, logger: Logger, name = "dwop"): Promise<Bus> {
  if (config.RABBITMQ_CONNECTION_URL) {
    return RabbitBus.connect({
      url: config.RABBITMQ_CONNECTION_URL,
      queue: config.DWOP_QUEUE,
      quorum: config.DWOP_RABBITMQ_QUORUM === "true",
      connectionName: name,
      logger,
    });
  }
  return PgBossBus.connect({ connectionString: databaseUrl, queue: config.DWOP_QUEUE, logger });
}
