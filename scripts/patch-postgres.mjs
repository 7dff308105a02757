// Applies scripts/postgres-patch.mjs to the installed postgres.js: npm install's postinstall, and the
// dispatcher image's build. Idempotent.
import { patchPostgres, postgresRoot } from "./postgres-patch.mjs";

const root = postgresRoot();
const changed = patchPostgres(root);
if (changed > 0) console.log(`patched ${changed} files of ${root} (scripts/patch-postgres.mjs)`);
