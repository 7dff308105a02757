// Node-only: finds the Python interpreter and the worker script the local executor runs.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { readEnv, type EnvSource } from "../env.ts";

/** Absolute path of the worker's entry script, `worker/dwop_worker.py`. */
export const WORKER_SCRIPT = fileURLToPath(new URL("../../worker/dwop_worker.py", import.meta.url));

let discovered: Promise<string> | undefined;

/**
 * The interpreter to spawn: DWOP_PYTHON when set, else the real executable behind `python3` on PATH, asked
 * once per process. A pyenv shim costs ~200 ms a start, the interpreter itself ~25 ms.
 */
export function resolvePython(env: EnvSource = readEnv()): Promise<string> {
  const configured = env.DWOP_PYTHON?.trim();
  if (configured) return Promise.resolve(configured);
  discovered ??= askPython3().catch((err: unknown) => {
    discovered = undefined; // let a later call try again
    throw err;
  });
  return discovered;
}

function askPython3(): Promise<string> {
  return new Promise((resolve, reject) => {
    // -S: the interpreter's path is known before `site` runs, which takes 70 ms of the answer here.
    execFile(
      "python3",
      ["-S", "-c", "import sys;print(sys.executable)"],
      { timeout: 30_000 },
      (err, stdout) => {
        const path = stdout.trim();
        if (err || !path) {
          const why = err ? err.message : "it printed no path";
          reject(new Error(`cannot find the Python interpreter through python3 (${why}); set DWOP_PYTHON`));
        } else {
          resolve(path);
        }
      },
    );
  });
}
