#!/usr/bin/env node
// The `dwop` command. Runs the prebuilt bundle, dist/dwop.mjs (`npm run build`, also run by
// `npm install`), while every source it was built from has the size and mtime it had then; otherwise
// (a source edited since, or no build) the TypeScript sources through tsx, which compiles them as they
// load and costs a second or more. Checking costs a stat per source, about a millisecond in all
// (bin/bundle.js).
import { bundleIsFresh } from "./bundle.js";
import { enablePrivateCompileCache } from "./compile-cache.js";

if (bundleIsFresh()) {
  // Node 22.1+ keeps V8's compiled code for the bundle between runs; Node 20 has no such cache.
  enablePrivateCompileCache();
  await import("../dist/dwop.mjs");
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import("../cli/main.ts");
}
