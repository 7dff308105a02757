// `npm run build:functions`: bundles each supabase/functions/<name>/index.ts, with everything it imports
// from functions/ and shared/ and node_modules, into supabase/functions/<name>/build/index.js. The
// bundle imports nothing but node: built-ins, so `supabase functions deploy --use-api` (which cannot
// follow imports out of supabase/functions/, supabase/cli#3467) deploys it as is.
import { build, type Plugin } from "esbuild";
import { readdir } from "node:fs/promises";
import { builtinModules } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const FUNCTIONS = fileURLToPath(new URL("./functions/", import.meta.url));
const NODE_GLOBALS = fileURLToPath(new URL("./node-globals.ts", import.meta.url));
const BUILTIN = new RegExp(`^(node:)?(${builtinModules.map((m) => m.replace(/[/]/g, "\\/")).join("|")})$`);

/** Deno resolves Node's built-in modules only under their `node:` names. */
const nodePrefix: Plugin = {
  name: "node-prefix",
  setup(b) {
    b.onResolve({ filter: BUILTIN }, (args) => ({
      path: args.path.replace(/^(node:)?/, "node:"),
      external: true,
    }));
  },
};

/** The functions: folders of supabase/functions/ with an index.ts; `_shared` and the like are not. */
export async function functionNames(): Promise<string[]> {
  const entries = await readdir(FUNCTIONS, { withFileTypes: true });
  const names = await Promise.all(
    entries
      .filter((e) => e.isDirectory() && !e.name.startsWith("_"))
      .map(async (e) => ((await readdir(join(FUNCTIONS, e.name))).includes("index.ts") ? e.name : null)),
  );
  return names.filter((n): n is string => n !== null).sort();
}

/** Bundles every function; returns the files written. */
export async function buildFunctions(): Promise<string[]> {
  const names = await functionNames();
  return Promise.all(
    names.map(async (name) => {
      const outfile = join(FUNCTIONS, name, "build", "index.js");
      await build({
        entryPoints: [join(FUNCTIONS, name, "index.ts")],
        outfile,
        bundle: true,
        format: "esm",
        platform: "node",
        target: "es2022",
        inject: [NODE_GLOBALS],
        plugins: [nodePrefix],
        legalComments: "none",
        banner: {
          js: `// Built by \`npm run build:functions\` from supabase/functions/${name}/index.ts; do not edit.`,
        },
        logLevel: "warning",
      });
      return outfile;
    }),
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const file of await buildFunctions()) console.log(`built ${file}`);
}
