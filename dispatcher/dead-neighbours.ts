// Node-only: looks at this machine's processes.
import { hostname } from "node:os";
import type { Db } from "../shared/db/connect.ts";
import { processGone } from "../shared/executors/pids.ts";

/**
 * The ids of this machine's local dispatchers whose process is gone. A local dispatcher's id defaults to
 * `<host>-<pid>[-...]`, and its runs are its child processes, which died with it (PR_SET_PDEATHSIG): a
 * dispatcher starting on the same machine can retry them at once instead of waiting for the dead one's
 * heartbeat to go stale. A pid that is alive again (reused) only means the usual wait.
 */
export async function deadNeighbours(db: Db, ownId: string, host = hostname()): Promise<string[]> {
  const rows = await db<{ id: string }[]>`
    select id from dwop.dispatchers
    where executor = 'local' and id <> ${ownId} and starts_with(id, ${`${host}-`})`;
  return rows.map((r) => r.id).filter((id) => processGone(Number(id.slice(host.length + 1).split("-")[0])));
}
