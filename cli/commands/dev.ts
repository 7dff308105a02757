import type { Config } from "../../shared/config.ts";
import { createLogger } from "../../shared/pino.ts";
import { startStack } from "../stack.ts";
import { EXIT } from "../exit.ts";

/** `dwop dev`: the whole stack as one long-running server, until SIGINT or SIGTERM. */
export async function devCommand(config: Config): Promise<number> {
  const logger = createLogger(config.DWOP_LOG_LEVEL);
  const stack = await startStack({
    config,
    logger,
    engine: true,
    say: (m) => process.stderr.write(`${m}\n`),
  });
  process.stderr.write(`dwop dev listening on ${stack.url}\n`);
  process.stderr.write(`dashboard: ${stack.url}/ui/ (sign in with the API token)\n`);
  process.stderr.write(
    stack.apiTokenFile
      ? `API token: export DWOP_API_TOKEN=$(cat ${stack.apiTokenFile})  (send it as Authorization: Bearer)\n`
      : "API token: DWOP_API_TOKEN (send it as Authorization: Bearer)\n",
  );
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"));
    process.once("SIGTERM", () => resolve("SIGTERM"));
  });
  process.stderr.write(`${signal}: stopping (running tasks get ${config.DWOP_SHUTDOWN_GRACE_SECONDS}s)\n`);
  await stack.stop();
  return EXIT.ok;
}
