// Whether dist/ (`npm run build`) was built from the sources as they are now: `dwop` runs the bundle
// only then, and the benchmarks refuse to measure the sources in its place.
import { readFileSync, statSync } from "node:fs";

const ROOT = new URL("..", import.meta.url);

/**
 * Whether every source dist/ was built from still has the size and mtime it had then (dist/sources.json):
 * a stat per source, about a millisecond in all.
 */
export function bundleIsFresh() {
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
