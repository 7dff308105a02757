import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./dev-process.ts";

/** A PgBouncer of the machine's (Debian's `pgbouncer`) in front of a PostgreSQL, for one test. */
export interface PgBouncer {
  port: number;
  /** Everything it wrote on stderr (its log), for a failing test's message. */
  log(): string;
  stop(): Promise<void>;
}

const BINARY = existsSync("/usr/sbin/pgbouncer") ? "/usr/sbin/pgbouncer" : "pgbouncer";

/**
 * Starts PgBouncer in transaction mode (each transaction on whichever of its `poolSize` server connections
 * is free, as a managed pooler's transaction port does) in front of host:port, trusting any user, and waits
 * until it listens. As root it runs as `postgres` (it refuses to run as root), so its folder is readable.
 */
export async function startPgBouncer(host: string, port: number, poolSize = 2): Promise<PgBouncer> {
  const folder = await mkdtemp(join(tmpdir(), "dwop-pgbouncer-"));
  await chmod(folder, 0o755);
  const listen = await freePort();
  const config = join(folder, "pgbouncer.ini");
  const users = join(folder, "users.txt");
  await writeFile(users, '"postgres" ""\n', { mode: 0o644 });
  await writeFile(
    config,
    [
      "[databases]",
      `* = host=${host} port=${port}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${listen}`,
      "unix_socket_dir =",
      "auth_type = trust",
      `auth_file = ${users}`,
      "pool_mode = transaction",
      `default_pool_size = ${poolSize}`,
      "",
    ].join("\n"),
    { mode: 0o644 },
  );
  const asRoot = process.getuid?.() === 0;
  const child = spawn(BINARY, [...(asRoot ? ["-u", "postgres"] : []), config], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  const listening = new Promise<void>((resolve, reject) => {
    child.stderr!.on("data", (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes("listening on 127.0.0.1")) resolve();
    });
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`pgbouncer exited with ${code}: ${log}`)));
  });
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  try {
    await listening;
  } catch (err) {
    await rm(folder, { recursive: true, force: true });
    throw err;
  }
  return {
    port: listen,
    log: () => log,
    async stop() {
      child.kill("SIGTERM");
      await exited;
      await rm(folder, { recursive: true, force: true });
    },
  };
}
