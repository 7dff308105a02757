// How long `dwop` takes to start, from the bundle (`npm run build`) and from the sources through tsx,
// beside `node -e 0`: `dwop --help`, `dwop status ID` against a running `dwop dev`, and a dispatcher's
// time to its "dispatcher started" line (what a crashed dispatcher's recovery waits for).
// Run: npm run build && npx tsx bench/startup.ts [--runs=10] [--dispatcher-runs=5]
import { execFileSync, spawn } from "node:child_process";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createTestDatabase } from "../test/support/db.ts";
import { freePort, spawnDwop } from "../test/support/dev-process.ts";
import { percentile } from "./stats.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const arg = (name: string, fallback: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const RUNS = arg("runs", 10);
const DISPATCHER_RUNS = arg("dispatcher-runs", 5);

const BUNDLE = [join(ROOT, "bin/dwop.js")];
const SOURCES = ["--import", "tsx", join(ROOT, "cli/main.ts")];
const load = () =>
  `load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}`;

/** Wall milliseconds of `node ARGS` run to its exit, `runs` times after one warm-up. */
function time(args: string[], env: NodeJS.ProcessEnv, runs = RUNS): number[] {
  const once = () => {
    const t0 = performance.now();
    execFileSync(process.execPath, args, { cwd: ROOT, env, stdio: "ignore" });
    return performance.now() - t0;
  };
  once();
  return Array.from({ length: runs }, once);
}

/** Milliseconds from spawning a dispatcher to its "dispatcher started" line; then it is stopped. */
async function dispatcherReady(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [...args, "dispatcher"], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let seen = "";
  const ms = await new Promise<number>((resolve, reject) => {
    child.stderr!.on("data", (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes("dispatcher started")) resolve(performance.now() - t0);
    });
    child.once("exit", (code) =>
      reject(new Error(`the dispatcher exited (${code}) before it started:\n${seen}`)),
    );
  });
  child.removeAllListeners("exit");
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
  return ms;
}

function line(label: string, ms: number[], floor: number): string {
  const p50 = percentile(ms, 50);
  return `${label.padEnd(36)} p50 ${p50.toFixed(0).padStart(5)} ms  min ${Math.min(...ms)
    .toFixed(0)
    .padStart(5)} ms  (+${(p50 - floor).toFixed(0)} ms over node -e 0)`;
}

const database = await createTestDatabase("bench_startup", { migrated: true });
const home = await mkdtemp(join(tmpdir(), "dwop-bench-startup-"));
const port = await freePort();
const serverEnv = {
  DATABASE_URL: database.url,
  DWOP_HOME: home,
  DWOP_PORT: String(port),
  DWOP_LOG_LEVEL: "warn",
};
const dev = spawnDwop(["dev"], serverEnv);
try {
  await dev.waitFor("listening on");
  const clientEnv = { ...process.env, ...serverEnv, DWOP_URL: `http://127.0.0.1:${port}` };
  const submitted = execFileSync(process.execPath, [...BUNDLE, "submit", "examples/etl.workflow", "--wait"], {
    cwd: ROOT,
    env: clientEnv,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  });
  const id = submitted.trim().split("\n")[0]!;
  console.log(`node ${process.version}, ${load()}, ${RUNS} runs each (${DISPATCHER_RUNS} for dispatchers)`);

  const floor = percentile(time(["-e", "0"], process.env), 50);
  console.log(line("node -e 0", [floor], floor));
  for (const [name, args] of [
    ["bundle", BUNDLE],
    ["sources (tsx)", SOURCES],
  ] as const) {
    console.log(line(`dwop --help, ${name}`, time([...args, "--help"], process.env), floor));
    console.log(line(`dwop status ID, ${name}`, time([...args, "status", id], clientEnv), floor));
  }

  const dispatcherEnv = {
    ...process.env,
    DATABASE_URL: database.url,
    DWOP_HOME: await mkdtemp(join(tmpdir(), "dwop-bench-dispatcher-")),
    DWOP_PUBLIC_URL: `http://127.0.0.1:${port}`,
    DWOP_STORAGE_SECRET: (await readFile(join(home, "storage.secret"), "utf8")).trim(),
    DWOP_METRICS_PORT: "0",
    DWOP_LOG_FORMAT: "json",
  };
  for (const [name, args] of [
    ["bundle", BUNDLE],
    ["sources (tsx)", SOURCES],
  ] as const) {
    const ms: number[] = [];
    for (let i = 0; i < DISPATCHER_RUNS; i++) ms.push(await dispatcherReady([...args], dispatcherEnv));
    console.log(line(`dispatcher ready, ${name}`, ms, floor));
  }
  console.log(`(${load()} at the end)`);
} finally {
  await dev.stop();
  await database.drop();
}
process.exit(0);
