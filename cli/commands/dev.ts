import type { Config } from "../../shared/config.ts";
import { createLogger, type LogFormat } from "../../shared/pino.ts";
import { startStack } from "../stack.ts";
import { EXIT } from "../exit.ts";
import { refuseUnpatchedPostgres } from "../postgres-patched.ts";
import { handleShutdown, STOP_DEADLINE_MS } from "../shutdown.ts";
import { muteable } from "../terminal.ts";
import { positiveInt } from "./args.ts";

export interface DevOptions {
  port?: string;
  host?: string;
  logFormat?: LogFormat;
}

/**
 * `dwop dev`: the whole stack as one long-running server, until a signal. Ctrl-C stops it at once
 * (running tasks are recorded as lost and rerun at the next start); SIGTERM, a service manager's stop,
 * gives running tasks DWOP_SHUTDOWN_GRACE_SECONDS to finish first. `dwop api`: the same server without
 * its claimer and dispatcher (they run as `dwop claimer` and `dwop dispatcher`); it prints its URL on
 * stdout once it listens.
 */
export async function devCommand(
  base: Config,
  opts: DevOptions = {},
  part: "dev" | "api" = "dev",
): Promise<number> {
  refuseUnpatchedPostgres();
  const config: Config = {
    ...base,
    DWOP_PORT: opts.port === undefined ? base.DWOP_PORT : (positiveInt(opts.port, "--port", 65535) ?? 0),
    DWOP_HOST: opts.host ?? base.DWOP_HOST,
  };
  const stderr = muteable(process.stderr);
  const logger = createLogger(config.DWOP_LOG_LEVEL, {
    format: opts.logFormat ?? config.DWOP_LOG_FORMAT,
    destination: stderr,
  });
  const say = (m: string) => stderr.write(`${m}\n`);
  const stack = await startStack({ config, logger, engine: part === "dev", say });
  const grace = config.DWOP_SHUTDOWN_GRACE_SECONDS;
  const shutdown = handleShutdown({
    line: (signal) =>
      signal === "SIGTERM"
        ? `SIGTERM: stopping (running tasks get ${grace}s)`
        : `${signal}: stopped (running tasks rerun at the next start)`,
    mute: () => stderr.mute(),
    stop: (signal) => stack.stop({ fast: signal !== "SIGTERM" }),
    deadlineMs: (signal) => (signal === "SIGTERM" ? (grace + 10) * 1000 : STOP_DEADLINE_MS),
  });
  say(`dwop ${part} listening on ${stack.url}`);
  if (part === "api") process.stdout.write(`${stack.url}\n`);
  say(`dashboard: ${stack.url}/ui/ (sign in with the API token)`);
  say(
    stack.apiTokenFile
      ? `API token: export DWOP_API_TOKEN=$(cat ${stack.apiTokenFile})  (send it as Authorization: Bearer)`
      : "API token: DWOP_API_TOKEN (send it as Authorization: Bearer)",
  );
  await new Promise(() => {}); // until a signal; its handler exits the process
  shutdown.dispose();
  return EXIT.ok;
}
