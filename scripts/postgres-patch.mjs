// Repairs postgres.js 3.4.9 where a connection lost in the middle of a statement takes the process down
// or hangs it (porsager/postgres#1208, #1154, #1066; the fix of the open PRs #1209 and #1176). Run by
// `npm install` (postinstall: scripts/patch-postgres.mjs) and by the dispatcher image's build; idempotent;
// fails naming the file and the text when the installed postgres is not the one this patch was written
// for. DWOP's server processes check at start that it was applied (shared/db/postgres-patch.ts): `npm
// install --ignore-scripts` skips it.
//
// The faults, each reproduced by test/db.connection-lost.test.ts:
//   - A write scheduled for a connection whose socket is gone (a transaction's ROLLBACK after its backend
//     was terminated, a query on a reserved connection) calls socket.write on null from a setImmediate:
//     an uncaught TypeError that ends the process, out of reach of any try/catch.
//   - A connection closed while a write was buffered keeps the stale timer and buffer: its later writes
//     are never sent and their queries wait forever.
//   - A connection closed after its error (ECONNRESET) keeps the statement in flight: a query sent on it
//     in between is never answered, and sql.end() waits for it forever.
//   - A connection closed while a statement ran keeps that statement's error (57P01 when its backend was
//     terminated): the first query after the pool reconnects it is failed with that stale error.
//   - A new connection whose array-type query fails (its backend terminated as it starts, the query
//     cancelled) leaves that failure as an unhandled rejection, which ends the process
//     (porsager/postgres#1192, #1205, #1223): `dwop api` died so in a chaos soak.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const VERSION = "3.4.9";

export const EDITS = {
  "connection.js": [
    [
      "  function nextWrite(fn) {\n    const x = socket.write(chunk, fn)",
      "  function nextWrite(fn) {\n" +
        "    if (!socket) {\n" +
        "      chunk = nextWriteTimer = null\n" +
        "      error(Errors.connection('CONNECTION_CLOSED', options))\n" +
        "      query = null\n" +
        "      return false\n" +
        "    }\n" +
        "    const x = socket.write(chunk, fn)",
    ],
    [
      "    clearImmediate(nextWriteTimer)\n    if (socket) {",
      "    clearImmediate(nextWriteTimer)\n    chunk = nextWriteTimer = null\n    if (socket) {",
    ],
    [
      "    clearImmediate(nextWriteTimer)\n    socket.removeListener('data', data)",
      "    clearImmediate(nextWriteTimer)\n    chunk = nextWriteTimer = null\n    socket.removeListener('data', data)",
    ],
    [
      "    !hadError && (query || sent.length) && error(Errors.connection('CONNECTION_CLOSED', options, socket))",
      "    ;(query || sent.length) && error(errorResponse || Errors.connection('CONNECTION_CLOSED', options, socket))\n" +
        "    query = results = errorResponse = null\n" +
        "    result = new Result()",
    ],
    [
      "        initial.reserve && (initial = null)\n        return fetchArrayTypes()\n",
      "        initial.reserve && (initial = null)\n" +
        "        // Its failure (the backend terminated, the statement cancelled) is the waiting query's already:\n" +
        "        // not an unhandled rejection, and the types are asked again before the connection takes another.\n" +
        "        return fetchArrayTypes().catch(() => needsTypes = true)\n",
    ],
    [
      "    if (query)\n      return // Consider opening if able and sent.length < 50\n\n",
      "    if (query)\n      return // Consider opening if able and sent.length < 50\n\n" +
        "    if (needsTypes)\n      return fetchArrayTypes().catch(() => needsTypes = true)\n\n",
    ],
  ],
  "index.js": [
    [
      "    sql.release = () => {\n      c.reserved = null\n      onopen(c)\n    }",
      "    sql.release = () => {\n      c.reserved = null\n      ;(c.queue === reserved || c.queue === full) && onopen(c)\n    }",
    ],
  ],
};

/** The package's three builds: ES modules (Node, Deno), CommonJS, and Cloudflare Workers. */
export const BUILDS = ["src", "cjs/src", "cf/src"];

/** The folder postgres.js is installed in, hoisted or not (its package.json is not among its exports). */
export function postgresRoot() {
  let root = dirname(createRequire(import.meta.url).resolve("postgres"));
  while (manifest(root)?.name !== "postgres") root = dirname(root);
  const { version } = manifest(root);
  if (version !== VERSION) {
    throw new Error(`scripts/postgres-patch.mjs: written for postgres ${VERSION}, ${root} is ${version}`);
  }
  return root;
}

/**
 * The files of the package at root (relative to it) that lack one of the edits, in the builds given (by
 * default all three): none once it is patched.
 */
export function unpatchedFiles(root, builds = BUILDS) {
  const missing = [];
  for (const build of builds) {
    for (const [file, edits] of Object.entries(EDITS)) {
      const text = readFileSync(join(root, build, file), "utf8");
      if (edits.some(([, to]) => !text.includes(to))) missing.push(join(build, file));
    }
  }
  return missing;
}

/** Makes the edits the package at root lacks; returns how many files it changed. */
export function patchPostgres(root) {
  let changed = 0;
  for (const build of BUILDS) {
    for (const [file, edits] of Object.entries(EDITS)) {
      const path = join(root, build, file);
      const before = readFileSync(path, "utf8");
      let text = before;
      for (const [from, to] of edits) {
        if (text.includes(to)) continue;
        const found = text.split(from).length - 1;
        if (found !== 1) throw new Error(`${path}: expected once, found ${found} times:\n${from}`);
        text = text.replace(from, to);
      }
      if (text !== before) {
        writeFileSync(path, text);
        changed += 1;
      }
    }
  }
  return changed;
}

function manifest(folder) {
  const path = join(folder, "package.json");
  if (folder === dirname(folder)) throw new Error("scripts/postgres-patch.mjs: postgres is not installed");
  return existsSync(path) ? JSON.parse(readFileSync(path, "utf8")) : null;
}
