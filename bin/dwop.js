#!/usr/bin/env node
// The `dwop` command. Runs the prebuilt bundle, dist/dwop.mjs (`npm run build`, also run by
// `npm install`), while every source it was built from has the size and mtime it had then; otherwise
// (a source edited since, or no build) the TypeScript sources through tsx, which compiles them as they
// load and costs a second or more. Checking costs a stat per source, about a millisecond in all.
import { readFileSync, statSync } from "node:fs";
import { enablePrivateCompileCache } from "./compile-cache.js";

const ROOT = new URL("..", import.meta.url);

/** Whether dist/ was built from the sources as they are now. */
function bundleIsFresh() {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(new URL("dist/sources.json", ROOT), "utf8"));
  } catch {
    return false;
  }
  return manifest.sources.every(([path, size, mtimeMs]) => {
    const s = statSync(new URL(path, ROOT), { throwIfNoEntry: false });
    return s !== undefined && s.size === size && s.mtimeMs === mtimeMs;
  });
}

if (bundleIsFresh()) {
  // Node 22.1+ keeps V8's compiled code for the bundle between runs; Node 20 has no such cache.
  enablePrivateCompileCache();
  await import("../dist/dwop.mjs");
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import("../cli/main.ts");
}
