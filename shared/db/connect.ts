import postgres from "postgres";
import { retryTransient } from "./retry.ts";

/** The database handle every part of DWOP is given (postgres.js over DATABASE_URL). */
export type Db = postgres.Sql;

export interface ConnectOptions {
  /** Most connections in the pool. */
  max?: number;
  /** Name shown in pg_stat_activity, so an operator can tell DWOP's processes apart. */
  applicationName?: string;
  /**
   * Node only: how the pool's TCP connections are opened (postgres.js's `socket` option), given the URL,
   * whose TLS they then speak themselves (postgres.js none of its own). Long-lived processes pass
   * deadConnectionOptions (shared/db/dead-connections.ts). Not used for a Unix socket.
   */
  connections?: (url: string) => SocketFactory;
}

/** What postgres.js's `socket` option takes (its types leave it out): a function giving a connected socket. */
export type SocketFactory = (target: {
  host: string[];
  port: number[];
  connect_timeout?: number;
  keep_alive?: number | null;
}) => Promise<unknown>;

/** How long a pooled connection may sit unused before it is closed. */
export const IDLE_TIMEOUT_SECONDS = 30;

/** Opens a pool. Bigint ids come back as strings; notices are not printed. */
export function connectDb(url: string, options: ConnectOptions = {}): Db {
  const target = postgresTarget(url);
  return postgres(target.url, {
    path: target.path,
    max: options.max ?? 10,
    onnotice: () => {},
    // An idle process keeps only what it listens on: pooled connections close after 30 s unused (a
    // burst after quiet then pays one connect, a few milliseconds).
    idle_timeout: IDLE_TIMEOUT_SECONDS,
    connection: { application_name: options.applicationName ?? "dwop" },
    prepare: preparesStatements(url),
    ...(options.connections && !target.path ? { ssl: false, socket: options.connections(target.url) } : {}),
  });
}

/**
 * Whether a pool to `url` names its statements and prepares each once per connection (postgres.js's
 * default). Not through Supabase's pooler, nor where the URL says `prepare=false` (postgres.js's own
 * parameter, which its options would otherwise override): a pooler in transaction mode hands each
 * transaction any of its server connections, where a statement prepared on another does not exist
 * (PgBouncer before 1.21, and later ones without `max_prepared_statements`).
 */
export function preparesStatements(url: string): boolean {
  if (/pooler\.supabase/.test(url)) return false;
  const q = url.indexOf("?");
  const prepare = q < 0 ? null : new URLSearchParams(url.slice(q + 1)).get("prepare");
  return prepare !== "false" && prepare !== "disable";
}

/**
 * What postgres.js 3.4 needs to reach a URL. It reads no Unix socket from a URL, where libpq and
 * node-postgres (pg-boss) take the socket's folder as `?host=/dir`: such a URL loses that parameter
 * (postgres.js would send it to the server as a setting) and the socket's path comes beside it.
 */
export function postgresTarget(url: string): { url: string; path?: string } {
  const q = url.indexOf("?");
  if (q < 0) return { url };
  const query = new URLSearchParams(url.slice(q + 1));
  const dir = query.get("host");
  if (!dir?.startsWith("/")) return { url };
  const base = url.slice(0, q);
  const authority = base.slice(base.indexOf("://") + 3).split("/")[0] ?? "";
  const port = query.get("port") ?? /:(\d+)$/.exec(authority.slice(authority.lastIndexOf("@") + 1))?.[1];
  query.delete("host");
  query.delete("port");
  const rest = query.toString();
  return { url: base + (rest ? `?${rest}` : ""), path: `${dir}/.s.PGSQL.${port ?? 5432}` };
}

/** How long a starting process waits for its database (restarting, failing over, refusing connections). */
export const DATABASE_WAIT_MS = 60_000;

/**
 * Runs one step of a process's start (its migrations, its registration, its bus's connection), again
 * after a transient error (isTransient: a connection dropped or refused) until `timeoutMs` have passed:
 * the database can go away again once waitForDatabase has passed, and a process that exits then restarts
 * only after its supervisor's back-off. Any other error, or the last one after the timeout, is thrown.
 * The step must be safe to run again after it failed half way.
 */
export async function retryWhileStarting<T>(
  what: string,
  step: () => Promise<T>,
  log: { warn(obj: object, msg?: string): void },
  timeoutMs = DATABASE_WAIT_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  return retryTransient(step, {
    giveUp: () => Date.now() >= deadline,
    maxDelayMs: 2000,
    onRetry: (err, attempt, retryInMs) =>
      log.warn(
        { err, attempt, retryInMs },
        `${what} failed: a connection was dropped or refused; trying again`,
      ),
  });
}

/**
 * Resolves once the database answers. A process that starts while its database restarts or refuses
 * connections waits for it (saying so) instead of dying; after `timeoutMs` the last error is thrown. Bad
 * credentials or a database that does not exist are thrown at once: waiting cannot fix them.
 */
export async function waitForDatabase(
  db: Db,
  log: { warn(obj: object, msg?: string): void },
  timeoutMs = DATABASE_WAIT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  await retryTransient(() => db`select 1`, {
    // 28xxx: authentication; 3D000: no such database.
    retryIf: (err) => !/^(28|3D)/.test(String((err as { code?: unknown } | null)?.code ?? "")),
    giveUp: () => Date.now() >= deadline,
    maxDelayMs: 2000,
    onRetry: (err, attempt, retryInMs) =>
      log.warn({ err, attempt, retryInMs }, "the database is not answering yet; waiting"),
  });
}
