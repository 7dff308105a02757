import { postgresPatchProblem } from "../shared/db/postgres-patch.ts";
import { CliError, EXIT } from "./exit.ts";

/**
 * Refuses (exit 2) to go on without postgres.js's patch (shared/db/postgres-patch.ts): `dwop run`, `dev`
 * and `api` check before they start anything.
 */
export function refuseUnpatchedPostgres(): void {
  const problem = postgresPatchProblem();
  if (problem) throw new CliError(problem, EXIT.usage);
}
