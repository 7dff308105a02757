import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, chown, mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Debian's PostgreSQL binaries (the machine's own cluster runs from them too). */
export const PG_BIN = process.env.DWOP_TEST_PG_BIN ?? "/usr/lib/postgresql/15/bin";

/** A PostgreSQL cluster of its own under /tmp, on its own port: for settings the shared one must not get. */
export interface ThrowawayCluster {
  port: number;
  /** postgres://postgres@127.0.0.1:<port>/<database> */
  url(database: string): string;
  /** The server log so far (for a failing test's message). */
  log(): Promise<string>;
  stop(): Promise<void>;
}

/** Why a throwaway cluster cannot be made here, or null when it can. */
export function throwawayUnavailable(libraries: string[] = []): string | null {
  if (!existsSync(join(PG_BIN, "initdb"))) return `no initdb in ${PG_BIN}`;
  const lib = join(PG_BIN, "..", "lib");
  const missing = libraries.filter((l) => !existsSync(join(lib, `${l}.so`)));
  if (missing.length > 0) return `not installed: ${missing.join(", ")} (apt-get install postgresql-15-cron)`;
  if (process.getuid?.() !== 0) return "initdb runs as the postgres user, which needs root to switch to";
  return null;
}

/**
 * initdb (as the postgres user: PostgreSQL refuses to run as root) into a fresh folder under /tmp, then
 * starts it on a free loopback port with `settings` (e.g. shared_preload_libraries), trust auth.
 */
export async function startThrowawayCluster(settings: Record<string, string>): Promise<ThrowawayCluster> {
  const dir = await mkdtemp("/tmp/dwop-throwaway-pg-");
  await chmod(dir, 0o755);
  const { stdout: uid } = await run("id", ["-u", "postgres"]);
  const { stdout: gid } = await run("id", ["-g", "postgres"]);
  await chown(dir, Number(uid), Number(gid));
  const asPostgres = (cmd: string, args: string[]) =>
    run("runuser", ["-u", "postgres", "--", join(PG_BIN, cmd), ...args], { timeout: 60_000 });

  const data = join(dir, "data");
  const logFile = join(dir, "server.log");
  await asPostgres("initdb", ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"]);
  const port = await freePort();
  const options = [
    `-p ${port}`,
    `-k ${dir}`,
    "-c listen_addresses=127.0.0.1",
    "-c fsync=off",
    ...Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`),
  ].join(" ");
  try {
    await asPostgres("pg_ctl", ["-D", data, "-o", options, "-l", logFile, "-w", "-t", "30", "start"]);
  } catch (err) {
    const log = await readLog(logFile);
    await rm(dir, { recursive: true, force: true });
    throw new Error(`throwaway cluster did not start: ${String(err)}\n${log}`);
  }
  return {
    port,
    url: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    log: () => readLog(logFile),
    async stop() {
      await asPostgres("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]).catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function readLog(file: string): Promise<string> {
  return readFile(file, "utf8").catch(() => "");
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
