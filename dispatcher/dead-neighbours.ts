// Node-only: looks at this machine's processes.
import { hostname } from "node:os";
import type { Db } from "../shared/db/connect.ts";
import { PID_NAMESPACE, processGone } from "../shared/executors/pids.ts";

/**
 * A local dispatcher's default id: this machine's name, its pid and that pid's namespace
 * (`HOST-PID-nNS`), then `suffix` if given; deadNeighbours reads them back.
 */
export function localDispatcherId(suffix?: string): string {
  return [hostname(), process.pid, `n${PID_NAMESPACE}`, ...(suffix ? [suffix] : [])].join("-");
}

/**
 * The ids of this machine's local dispatchers whose process is gone. A local dispatcher's id defaults to
 * `<host>-<pid>-n<pid namespace>[-...]` (localDispatcherId), and its runs are its child processes, which
 * died with it (PR_SET_PDEATHSIG): a dispatcher starting on the same machine can retry them at once instead
 * of waiting for the dead one's heartbeat to go stale. A pid that is alive again (reused) only means the
 * usual wait, and so does one of another pid namespace: a container run with the machine's hostname
 * (`--network host`) cannot see the machine's processes, nor the machine a container's. An id without a
 * namespace (before 2026-12-05) is judged as this namespace's.
 */
export async function deadNeighbours(db: Db, ownId: string, host = hostname()): Promise<string[]> {
  const rows = await db<{ id: string }[]>`
    select id from dwop.dispatchers
    where executor = 'local' and id <> ${ownId} and starts_with(id, ${`${host}-`})`;
  return rows
    .map((r) => r.id)
    .filter((id) => {
      const [pid, ...rest] = id.slice(host.length + 1).split("-");
      const namespace = rest.find((part) => /^n\d+$/.test(part))?.slice(1);
      return processGone(Number(pid), namespace);
    });
}
