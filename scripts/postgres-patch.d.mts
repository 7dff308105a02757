// Types of scripts/postgres-patch.mjs for the TypeScript that imports it (shared/db/postgres-patch.ts, its test).
/** By file name: each edit's text as postgres.js ships it, and as the patch leaves it. */
/** The package's three builds: ES modules (Node, Deno), CommonJS, and Cloudflare Workers. */
export declare const BUILDS: string[];
export declare const EDITS: Record<string, [from: string, to: string][]>;
/** The folder postgres.js is installed in; throws when it is not the version the edits are for. */
export declare function postgresRoot(): string;
/** The files of the package at root (relative to it) that lack one of the edits, in the builds given
 * ("src", "cjs/src", "cf/src"; by default all three): none once it is patched. */
export declare function unpatchedFiles(root: string, builds?: string[]): string[];
/** Makes the edits the package at root lacks; returns how many files it changed. */
export declare function patchPostgres(root: string): number;
