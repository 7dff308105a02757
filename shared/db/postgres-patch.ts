// A server process's check that postgres.js is patched (scripts/patch-postgres.mjs, npm install's
// postinstall): unpatched, a connection lost in the middle of a statement can end the process or leave its
// queries waiting forever, and `npm install --ignore-scripts` (or `npm ci --ignore-scripts`) skips the patch.
// Node only: the Deno and Workers entrypoints never run it.
import { fileURLToPath } from "node:url";
import { postgresRoot, unpatchedFiles } from "../../scripts/postgres-patch.mjs";

/** Why this process must not start (the patch is missing, or the installed postgres.js is another version), or null. */
export function postgresPatchProblem(root?: string): string | null {
  let missing: string[];
  let at: string;
  try {
    at = root ?? postgresRoot();
    missing = unpatchedFiles(at, ["src"]); // the build Node imports
  } catch (err) {
    return `postgres.js cannot be checked: ${(err as Error).message}`;
  }
  if (missing.length === 0) return null;
  const script = fileURLToPath(new URL("../../scripts/patch-postgres.mjs", import.meta.url));
  const dwop = fileURLToPath(new URL("../..", import.meta.url));
  return (
    `postgres.js in ${at} is not patched (${missing.join(", ")}): without the patch a lost database ` +
    `connection can end this process or hang its queries. npm install applies it unless install scripts are ` +
    `off (--ignore-scripts), which also leaves the embedded PostgreSQL unable to start: run \`npm rebuild\` ` +
    `in ${dwop} (or \`node ${script}\` for the patch alone), then start again`
  );
}
