// Node 22.1+ keeps V8's compiled code of the modules it loads between runs (module.enableCompileCache).
// Its default folder is `<tmpdir>/node-compile-cache`, which on a machine with other users is theirs to
// make first: a folder another user owns could hold compiled code that this process would then run as
// its own. So `dwop` keeps it in a folder of this user's only, or goes without.
import { lstatSync, mkdirSync } from "node:fs";
import module from "node:module";
import { homedir } from "node:os";
import { dirname, isAbsolute, join } from "node:path";

/**
 * Turns the compile cache on in `<XDG_CACHE_HOME or ~/.cache>/dwop/node-compile-cache` (0700) when that
 * folder and its parent are this user's and nobody else may write to them; returns the folder, or null
 * (no cache: Node 20, the user turned it off, or no private folder). NODE_COMPILE_CACHE, when set, is the
 * user's own choice, which Node has taken already.
 */
export function enablePrivateCompileCache(
  env = process.env,
  enable = module.enableCompileCache,
  uid = process.getuid?.(),
) {
  if (!enable || env.NODE_COMPILE_CACHE || env.NODE_DISABLE_COMPILE_CACHE) return null;
  let dir;
  try {
    const base = env.XDG_CACHE_HOME || join(homedir(), ".cache");
    if (!isAbsolute(base)) return null;
    dir = join(base, "dwop", "node-compile-cache");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const folder of [dirname(dir), dir]) {
      const s = lstatSync(folder);
      const private_ = s.isDirectory() && (uid === undefined || s.uid === uid) && (s.mode & 0o022) === 0;
      if (!private_) return null;
    }
  } catch {
    return null; // no home, or one that cannot hold it: no cache, as on Node 20
  }
  enable(dir);
  return dir;
}
