// The API (and the local storage it serves) as a process of its own, without a claimer or dispatcher:
// the soak kills and restarts it like any other part. Prints "ready <url>" once it listens.
import { startStack } from "../cli/stack.ts";
import { loadConfig } from "../shared/config.ts";
import { readEnv } from "../shared/env.ts";
import { createLogger } from "../shared/pino.ts";

const config = loadConfig(readEnv());
const logger = createLogger(config.DWOP_LOG_LEVEL);
const stack = await startStack({ config, logger, engine: false });
process.stdout.write(`ready ${stack.url}\n`);

async function shutdown() {
  await stack.stop();
  process.exitCode = 0;
}
process.once("SIGTERM", () => void shutdown());
process.once("SIGINT", () => void shutdown());
