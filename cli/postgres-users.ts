// The DWOP processes that use a home's embedded PostgreSQL: a file each in `<home>/postgres-users`, named
// for its process (`<pid>-<n>`: one process may open the database twice). The last to leave stops the
// server; a killed process's file is ignored, and removed, by the next to look.
import { mkdirSync, readdirSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { processGone } from "../shared/executors/pids.ts";

export const USERS_DIR = "postgres-users";

let joined = 0;

/** Records this process as a user of the home's server (under the home's lock); returns its entry's name. */
export function joinUsers(root: string): string {
  const dir = join(root, USERS_DIR);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const name = `${process.pid}-${++joined}`;
  writeFileSync(join(dir, name), "", { mode: 0o600 });
  return name;
}

/**
 * Removes this process's entry `name` (under the home's lock), and the entries of processes that are gone;
 * returns how many live users are left.
 */
export function leaveUsers(root: string, name: string): number {
  removeEntry(root, name);
  return liveUsers(root);
}

/** How many live processes use the home's server; the entries of those that are gone are removed. */
export function liveUsers(root: string): number {
  let names: string[];
  try {
    names = readdirSync(join(root, USERS_DIR));
  } catch {
    return 0;
  }
  let live = 0;
  for (const name of names) {
    if (!/^\d+-\d+$/.test(name)) continue; // not an entry of ours
    if (processGone(Number.parseInt(name, 10))) removeEntry(root, name);
    else live++;
  }
  return live;
}

function removeEntry(root: string, name: string): void {
  try {
    unlinkSync(join(root, USERS_DIR, name));
  } catch {
    // gone already
  }
}
