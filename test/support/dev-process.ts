import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { until } from "./until.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** A `dwop` process whose output the test reads as it comes. */
export interface DwopProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (128 + N for a signal) once it has exited. */
  exited: Promise<number>;
  /** Waits (within `timeoutMs`) until stderr contains `text`. */
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<number>;
}

/** `dwop ARGS` as its own process, with exactly `env` (plus PATH and HOME), stdout and stderr piped. */
export function spawnDwop(args: string[], env: Record<string, string>, cwd: string = ROOT): DwopProcess {
  const child = spawn(process.execPath, [join(ROOT, "bin/dwop.js"), ...args], {
    cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout!.on("data", (c: Buffer) => (out += c.toString("utf8")));
  child.stderr!.on("data", (c: Buffer) => (err += c.toString("utf8")));
  const exited = new Promise<number>((resolve) =>
    child.once("exit", (code, signal) =>
      resolve(code ?? 128 + (signal === "SIGKILL" ? 9 : signal === "SIGTERM" ? 15 : 2)),
    ),
  );
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    async waitFor(text, timeoutMs = 60_000) {
      const seen = () => (typeof text === "string" ? err.includes(text) : text.test(err));
      await until(async () => seen() || child.exitCode !== null, timeoutMs).catch(() => {});
      if (!seen()) throw new Error(`stderr never showed ${String(text)}:\n${err}`);
    },
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 40_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** A port nothing listens on now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
