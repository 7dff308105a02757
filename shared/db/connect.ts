import postgres from "postgres";

/** The database handle every part of DWOP is given (postgres.js over DATABASE_URL). */
export type Db = postgres.Sql;

export interface ConnectOptions {
  /** Most connections in the pool. */
  max?: number;
  /** Name shown in pg_stat_activity, so an operator can tell DWOP's processes apart. */
  applicationName?: string;
}

/** Opens a pool. Bigint ids come back as strings; notices are not printed. */
export function connectDb(url: string, options: ConnectOptions = {}): Db {
  return postgres(url, {
    max: options.max ?? 10,
    onnotice: () => {},
    connection: { application_name: options.applicationName ?? "dwop" },
    // Supabase's pooler in transaction mode cannot keep prepared statements.
    prepare: !/pooler\.supabase/.test(url),
  });
}

/** How long a starting process waits for its database (restarting, failing over, refusing connections). */
export const DATABASE_WAIT_MS = 60_000;

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
  for (let attempt = 1; ; attempt++) {
    try {
      await db`select 1`;
      return;
    } catch (err) {
      const code = (err as { code?: unknown } | null)?.code;
      // 28xxx: authentication; 3D000: no such database.
      if ((typeof code === "string" && /^(28|3D)/.test(code)) || Date.now() >= deadline) throw err;
      const delay = Math.min(100 * 2 ** (attempt - 1), 2000);
      log.warn({ err, attempt, retryInMs: delay }, "the database is not answering yet; waiting");
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
