import { execFile } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { DevServer } from "./api-server.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const run = promisify(execFile);

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `dwop ARGS` in `dir` with DWOP_URL and DWOP_TOKEN of `server` (and a DWOP_HOME of its own in `dir`),
 * stdout and stderr piped (no terminal): its exit code and output, whether it succeeded or not.
 */
export async function dwopClient(
  server: DevServer,
  dir: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(ROOT, "bin/dwop.js"), ...args], {
      cwd: dir,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        DWOP_URL: server.url,
        DWOP_TOKEN: server.token,
        DWOP_HOME: join(dir, "home"),
        ...env,
      },
      maxBuffer: 16 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
