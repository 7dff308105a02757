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
