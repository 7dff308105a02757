import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** A process a test starts (Deno, workerd through wrangler, a DWOP entrypoint), in its own group. */
export interface EdgeServer {
  url: string;
  /** stdout and stderr so far, for a failing test's message. */
  output(): string;
  stop(): Promise<void>;
}

export interface EdgeServerOptions {
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  port: number;
  /** A path that answers readyStatus (200 unless given) once the server is up; none: do not wait. */
  readyPath?: string;
  readyStatus?: number;
  readyTimeoutMs?: number;
  /** Output that means the server will never be ready (a build error of a watching dev server). */
  failOn?: RegExp;
}

const running = new Set<EdgeServer>();

/** Stops every server still running: for an afterEach, so a test that timed out leaves nothing behind. */
export async function stopEdgeServers(): Promise<void> {
  await Promise.all([...running].map((s) => s.stop()));
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Starts the command in its own process group and waits until `readyPath` answers. */
export async function startEdgeServer(options: EdgeServerOptions): Promise<EdgeServer> {
  const child = spawn(options.command, options.args, {
    cwd: options.cwd ?? ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", NO_COLOR: "1", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = `http://127.0.0.1:${options.port}`;
  const server: EdgeServer = {
    url,
    output: () => output,
    async stop() {
      running.delete(server);
      if (child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-child.pid!, "SIGTERM");
        } catch {
          // already gone
        }
        const killer = setTimeout(() => {
          try {
            process.kill(-child.pid!, "SIGKILL");
          } catch {
            // already gone
          }
        }, 5000);
        await exited;
        clearTimeout(killer);
      }
    },
  };

  running.add(server);
  if (options.readyPath === undefined) return server;
  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`${options.command} exited with ${child.exitCode}:\n${output}`);
    const res = await fetch(`${url}${options.readyPath}`).catch(() => null);
    if (res && res.status === (options.readyStatus ?? 200)) {
      await res.body?.cancel();
      return server;
    }
    await res?.body?.cancel();
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`${options.command} did not answer ${options.readyPath} in time:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
