// A copy of the checkout's sources in a temporary folder, for tests that run `dwop` from a tree of their own
// (a bundle built there, a node_modules of their own) without touching the checkout's.
import { cp } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** What `dwop` runs from: bin/dwop.js and its modules, the sources, the migrations, postgres.js's patch; and package.json. */
const SOURCES = [
  "bin/dwop.js",
  "bin/bundle.js",
  "bin/compile-cache.js",
  "cli",
  "cron",
  "dispatcher",
  "functions",
  "shared",
  "worker",
  "supabase/migrations",
  "scripts/postgres-patch.mjs",
  "package.json",
];

/** Copies the sources into dir (node_modules is the caller's to provide). */
export async function copySources(dir: string): Promise<void> {
  for (const path of SOURCES) await cp(join(ROOT, path), join(dir, path), { recursive: true });
}
