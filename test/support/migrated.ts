import { connectDb, type Db } from "../../shared/db/connect.ts";
import { Store } from "../../shared/db/store.ts";
import { createTestDatabase, type TestDatabase } from "./db.ts";

export interface MigratedDatabase extends TestDatabase {
  db: Db;
  store: Store;
  /** Closes the pool; drops the database only when the test passed (pass `passed`). */
  close(passed: boolean): Promise<void>;
}

/** A fresh database with DWOP's migrations applied (a clone of the migrated template), for one test. */
export async function migratedDatabase(label: string): Promise<MigratedDatabase> {
  const tdb = await createTestDatabase(label, { migrated: true });
  const db = connectDb(tdb.url, { max: 6, applicationName: `test:${label}` });
  return {
    ...tdb,
    db,
    store: new Store(db),
    async close(passed: boolean) {
      await db.end({ timeout: 5 });
      if (passed) await tdb.drop();
    },
  };
}
