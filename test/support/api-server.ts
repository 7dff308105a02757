import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createTestDatabase, type TestDatabase } from "./db.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const run = promisify(execFile);

/** `dwop dev` as its own process, against a fresh database, on a free port. */
export interface DevServer {
  url: string;
  token: string;
  home: string;
  database: TestDatabase;
  /** Everything the server wrote on stderr so far (for a failing test's message). */
  stderr(): string;
  stop(passed: boolean): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Builds the worker tests' tiny wheel (`dwoptiny`) into a folder, so requirements install offline. */
export async function buildTestWheel(folder: string): Promise<void> {
  const script =
    "import sys; sys.path.insert(0, 'worker/tests'); import test_worker; test_worker.build_wheel(sys.argv[1])";
  await run("python3", ["-c", script, folder], { cwd: ROOT });
}

/** Starts `node --import tsx cli/main.ts dev` (in cwd, the checkout by default) and waits until it listens. */
export async function startDevServer(
  label: string,
  env: Record<string, string> = {},
  cwd: string = ROOT,
): Promise<DevServer> {
  const database = await createTestDatabase(label);
  const home = await mkdtemp(join(tmpdir(), "dwop-dev-"));
  const port = await freePort();
  const token = randomBytes(24).toString("hex");
  const child = spawn(
    process.execPath,
    ["--import", import.meta.resolve("tsx"), join(ROOT, "cli/main.ts"), "dev"],
    {
      cwd,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        DATABASE_URL: database.url,
        DWOP_HOME: home,
        DWOP_PORT: String(port),
        DWOP_API_TOKEN: token,
        DWOP_LOG_LEVEL: "warn",
        DWOP_CLAIM_POLL_MS: "100",
        DWOP_EVENTS_POLL_MS: "100",
        ...env,
      },
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  await waitForListening(child, () => stderr);
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    home,
    database,
    stderr: () => stderr,
    async stop(passed) {
      await stopProcess(child);
      if (passed) {
        await database.drop();
        await rm(home, { recursive: true, force: true });
      }
    },
  };
}

function waitForListening(child: ChildProcess, stderr: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`dwop dev did not start:\n${stderr()}`)), 60_000);
    const onData = () => {
      if (stderr().includes("dwop dev listening on")) done();
    };
    const onExit = (code: number | null) => done(new Error(`dwop dev exited with ${code}:\n${stderr()}`));
    function done(err?: Error) {
      clearTimeout(timer);
      child.stderr!.off("data", onData);
      child.off("exit", onExit);
      if (err) reject(err);
      else resolve();
    }
    child.stderr!.on("data", onData);
    child.once("exit", onExit);
  });
}

/** SIGTERM, then SIGKILL if the process is still there after its grace period. */
async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 40_000);
  await exited;
  clearTimeout(timer);
}

/** Runs the real `curl` and returns its stdout; a failed transfer or an HTTP error status throws. */
export async function curl(args: string[]): Promise<string> {
  const { stdout } = await run("curl", ["-sS", "--fail-with-body", ...args], { maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}
