// How long `dwop` takes to start, from the bundle (`npm run build`) and from the sources through tsx,
// beside `node -e 0`: `dwop --help`, `dwop status ID` against a running `dwop dev`, and a dispatcher's
// time to its "dispatcher started" line (what a crashed dispatcher's recovery waits for).
// Run: npm run build && npx tsx bench/startup.ts [--runs=10] [--dispatcher-runs=5]
import { execFileSync, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createTestDatabase } from "../test/support/db.ts";
import { freePort, spawnDwop } from "../test/support/dev-process.ts";
import { percentile, requireFreshBundle } from "./stats.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const arg = (name: string, fallback: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const RUNS = arg("runs", 10);
const DISPATCHER_RUNS = arg("dispatcher-runs", 5);

requireFreshBundle(); // the bundle's rows would measure the sources
const BUNDLE = [join(ROOT, "bin/dwop.js")];
const SOURCES = ["--import", "tsx", join(ROOT, "cli/main.ts")];
const load = () =>
  `load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}`;

interface Sample {
  wall: number;
  /** User plus system CPU milliseconds: on a loaded machine, steadier than the wall time. */
  cpu: number;
}

/**
 * `node ARGS` run to its exit, `runs` times after one warm-up, timed by bash's `time` (wall, and user
 * plus system CPU) so that nothing of this process's own spawning is counted.
 */
function time(args: string[], env: NodeJS.ProcessEnv, runs = RUNS): Sample[] {
  const quoted = [process.execPath, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  const script = `TIMEFORMAT='%R %U %S'; { time ${quoted} >/dev/null 2>&1; } 2>&1`;
  const once = (): Sample => {
    const out = execFileSync("bash", ["-c", script], { cwd: ROOT, env, encoding: "utf8" });
    const [real, user, sys] = out.trim().split("\n").at(-1)!.split(" ").map(Number);
    return { wall: real! * 1000, cpu: (user! + sys!) * 1000 };
  };
  once();
  return Array.from({ length: runs }, once);
}

/** When a process started (epoch ms, to 10 ms), from Linux's /proc: its spawn by this process not counted. */
/** Milliseconds from a dispatcher's process start to its "dispatcher started" log line; then it is stopped. */
async function dispatcherReady(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  // From the spawn, on the clock the log line's time is on. (The process's start time in /proc counts from
  // the boot time, which /proc/stat gives to the second and a guest's clock moves away from: it made a
  // dispatcher ~0.9 s slower than it was in a PVM guest.)
  const started = Date.now();
  const child = spawn(process.execPath, [...args, "dispatcher"], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let seen = "";
  const ms = await new Promise<number>((resolve, reject) => {
    child.stderr!.on("data", (chunk: Buffer) => {
      seen += chunk.toString();
      const line = seen.split("\n").find((l) => l.includes('"dispatcher started"'));
      if (line) resolve((JSON.parse(line) as { time: number }).time - started);
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

const ms = (n: number) => `${n.toFixed(0).padStart(5)} ms`;

/** p50 and min of the wall times (and of the CPU times when measured), and p50's excess over the floor. */
function line(label: string, samples: (Sample | number)[], floor: Sample): string {
  const wall = samples.map((s) => (typeof s === "number" ? s : s.wall));
  const cpu = samples.flatMap((s) => (typeof s === "number" ? [] : [s.cpu]));
  const p50 = percentile(wall, 50);
  const cpuText =
    cpu.length > 0
      ? `  cpu p50 ${ms(percentile(cpu, 50))} (+${(percentile(cpu, 50) - floor.cpu).toFixed(0)})`
      : "";
  return `${label.padEnd(34)} wall p50 ${ms(p50)} min ${ms(Math.min(...wall))} (+${(p50 - floor.wall).toFixed(0)} over node -e 0)${cpuText}`;
}

const database = await createTestDatabase("bench_startup", { migrated: true });
const home = await mkdtemp(join(tmpdir(), "dwop-bench-startup-"));
const dispatcherHome = await mkdtemp(join(tmpdir(), "dwop-bench-dispatcher-"));
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

  const nodeAlone = time(["-e", "0"], process.env);
  const floor = {
    wall: percentile(
      nodeAlone.map((s) => s.wall),
      50,
    ),
    cpu: percentile(
      nodeAlone.map((s) => s.cpu),
      50,
    ),
  };
  console.log(line("node -e 0", nodeAlone, floor));
  // What no start-up work can remove: Node, plus the server's answer to status's one request.
  const token = (await readFile(join(home, "api.token"), "utf8")).trim();
  const request = `await fetch("http://127.0.0.1:${port}/workflows/${id}", { headers: { authorization: "Bearer ${token}" } }).then((r) => r.text())`;
  console.log(
    line("node + the same request (fetch)", time(["--input-type=module", "-e", request], process.env), floor),
  );
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
    DWOP_HOME: dispatcherHome,
    DWOP_PUBLIC_URL: `http://127.0.0.1:${port}`,
    DWOP_STORAGE_SECRET: (await readFile(join(home, "storage.secret"), "utf8")).trim(),
    DWOP_METRICS_PORT: "0",
    DWOP_LOG_FORMAT: "json",
  };
  for (const [name, args] of [
    ["bundle", BUNDLE],
    ["sources (tsx)", SOURCES],
  ] as const) {
    const ready: number[] = [];
    for (let i = 0; i < DISPATCHER_RUNS; i++) ready.push(await dispatcherReady([...args], dispatcherEnv));
    console.log(line(`dispatcher ready, ${name}`, ready, floor));
  }
  console.log(`(${load()} at the end)`);
} finally {
  await dev.stop();
  await database.drop();
  await Promise.all([home, dispatcherHome].map((dir) => rm(dir, { recursive: true, force: true })));
}
process.exit(0);
