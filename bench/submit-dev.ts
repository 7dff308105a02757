// `POST /workflows` to 201 through `dwop dev`'s real HTTP API on the machine's Postgres, for fan-outs of
// 10,001 and 100,000 tasks (a root, n - 2 middles, a sink reading them all), with the server's peak RSS while
// each is submitted; then the largest one left to run for --run-seconds, with the server's peak RSS and what
// it got done; with --dispatcher, a lone `dwop dispatcher` (beside `dwop api` and `dwop claimer`) with
// 10,000 root tasks queued, and its peak RSS. CPU seconds of the server and of the database's backends are
// printed beside wall times: on a shared machine they are the figures to compare; and the page faults of
// each (in a paravirtualized guest, where each costs 25-45 us, they are most of that CPU). After each submit,
// one `GET /workflows/:id` of the whole workflow, with the server's peak RSS while it answers.
// Each round runs on a fresh stack. BENCH_NODE_ARGS: node flags for the server (with BENCH_TRACE=1 its
// output is shown, as for --trace-gc).
// Run: npx tsx bench/submit-dev.ts [--tasks=10001,100000] [--rounds=3] [--run-seconds=20] [--dispatcher]
//      [--bus=pgboss|rabbit] [--cpu-prof=DIR] (the server writes a V8 CPU profile there when it stops)
//      [--prefer=minimal] (the measured submit sends Prefer: return=minimal and gets {"id"} alone)
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../test/support/dev-process.ts";
import { migratedDatabase, type MigratedDatabase } from "../test/support/migrated.ts";
import { cpuSeconds, fanWorkflow, minorFaults, requireFreshBundle } from "./stats.ts";

requireFreshBundle();
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const sizes = (arg("tasks") ?? "10001,100000").split(",").map(Number);
const rounds = Number(arg("rounds") ?? 3);
const runSeconds = Number(arg("run-seconds") ?? 20);
const cpuProf = arg("cpu-prof");
const bus = arg("bus") ?? "pgboss";
/** `--prefer=minimal`: the measured submit asks for `{"id"}` alone (Prefer: return=minimal). */
const prefer = arg("prefer");
const MB = 1024 * 1024;
const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(" ");

/** One `dwop` process and the RSS figures the kernel keeps for it. */
class Part {
  readonly child: ChildProcess;
  private log = "";
  constructor(args: string[], env: Record<string, string>, nodeArgs: string[] = []) {
    this.child = spawn(process.execPath, [...nodeArgs, join(ROOT, "bin/dwop.js"), ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ["ignore", process.env.BENCH_TRACE ? "inherit" : "ignore", "pipe"],
    });
    this.child.stderr!.on("data", (c: Buffer) => {
      if (process.env.BENCH_TRACE) process.stderr.write(c);
      this.log = (this.log + c.toString()).slice(-20_000);
    });
  }
  async ready(text: string): Promise<void> {
    for (let i = 0; i < 600 && !this.log.includes(text); i++) {
      if (this.child.exitCode !== null) break;
      await sleep(100);
    }
    if (!this.log.includes(text)) throw new Error(`never said ${text}:\n${this.log}`);
  }
  private status(field: string): number {
    const text = readFileSync(`/proc/${this.child.pid}/status`, "utf8");
    return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)![1]) / 1024;
  }
  rss = () => this.status("VmRSS");
  /** The peak RSS since the last `resetPeak` (the kernel's VmHWM). */
  peak = () => this.status("VmHWM");
  resetPeak = () => writeFileSync(`/proc/${this.child.pid}/clear_refs`, "5");
  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill("SIGTERM");
    await exited;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * CPU seconds used by the server and by the Postgres backends of the stack's database while `work` runs:
 * figures that a shared machine's load does not inflate the way it does wall time.
 */
async function cpuDuring<T>(s: Stack, server: Part, work: () => Promise<T>) {
  const backends = async () =>
    (
      await s.m.db<{ pid: number }[]>`select pid from pg_stat_activity where datname = current_database()`
    ).map((r) => r.pid);
  const reading = (pid: number) => ({ cpu: cpuSeconds(pid), faults: minorFaults(pid) });
  const before = new Map((await backends()).map((pid) => [pid, reading(pid)]));
  const server0 = reading(server.child.pid!);
  const result = await work();
  const server1 = reading(server.child.pid!);
  let postgresCpu = 0;
  let postgresFaults = 0;
  for (const pid of new Set([...before.keys(), ...(await backends())])) {
    const now = reading(pid);
    postgresCpu += Math.max(0, now.cpu - (before.get(pid)?.cpu ?? 0));
    postgresFaults += Math.max(0, now.faults - (before.get(pid)?.faults ?? 0));
  }
  const serverCpu = server1.cpu - server0.cpu;
  return { result, serverCpu, postgresCpu, serverFaults: server1.faults - server0.faults, postgresFaults };
}

interface Stack {
  url: string;
  token: string;
  env: Record<string, string>;
  m: MigratedDatabase;
  home: string;
}

async function stack(label: string): Promise<Stack> {
  const m = await migratedDatabase(label);
  const home = await mkdtemp(join(tmpdir(), "dwop-bench-submit-dev-"));
  const port = await freePort();
  const token = randomBytes(16).toString("hex");
  const env: Record<string, string> = {
    DATABASE_URL: m.url,
    DWOP_HOME: home,
    DWOP_PORT: String(port),
    DWOP_PUBLIC_URL: `http://127.0.0.1:${port}`,
    DWOP_STORAGE_SECRET: randomBytes(16).toString("hex"),
    DWOP_API_TOKEN: token,
    DWOP_LOG_LEVEL: "warn",
    DWOP_MAX_TASKS_PER_WORKFLOW: "100000",
    DWOP_MAX_WORKFLOW_BYTES: String(32 * MB),
    DWOP_MAX_REQUEST_BYTES: String(64 * MB),
  };
  if (bus === "rabbit") {
    env.RABBITMQ_CONNECTION_URL = "amqp://guest:guest@127.0.0.1:5672";
    env.DWOP_QUEUE = `bench_submit_dev_${randomBytes(4).toString("hex")}`;
  }
  return { url: `http://127.0.0.1:${port}`, token, env, m, home };
}

async function submit(
  s: Stack,
  source: string,
  headers: Record<string, string> = {},
): Promise<{ id: string; to201: number; toBody: number }> {
  const form = new FormData();
  form.append("workflow", new Blob([source]), "fan.workflow");
  const started = performance.now();
  const res = await fetch(`${s.url}/workflows`, {
    method: "POST",
    headers: { authorization: `Bearer ${s.token}`, ...headers },
    body: form,
  });
  const to201 = performance.now() - started;
  const body = (await res.json()) as { id: string };
  const toBody = performance.now() - started;
  if (res.status !== 201) throw new Error(`${res.status}: ${JSON.stringify(body).slice(0, 500)}`);
  return { id: body.id, to201, toBody };
}

/** `GET /workflows/:id` of the whole workflow: its size, time, the server's CPU and peak RSS meanwhile. */
async function readBack(s: Stack, server: Part, id: string): Promise<string> {
  const before = server.rss();
  server.resetPeak();
  const cpu = cpuSeconds(server.child.pid!);
  const started = performance.now();
  const res = await fetch(`${s.url}/workflows/${id}`, { headers: { authorization: `Bearer ${s.token}` } });
  const body = await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`GET /workflows/${id}: ${res.status}`);
  return (
    `GET /workflows/:id: ${(body.byteLength / MB).toFixed(1)} MB in ${(performance.now() - started).toFixed(0)} ms, ` +
    `server CPU ${(cpuSeconds(server.child.pid!) - cpu).toFixed(2)} s, RSS ${before.toFixed(0)} -> peak ${server.peak().toFixed(0)} MB`
  );
}

async function cancel(s: Stack, id: string): Promise<void> {
  const res = await fetch(`${s.url}/workflows/${id}/cancel`, {
    method: "POST",
    headers: { authorization: `Bearer ${s.token}` },
  });
  await res.arrayBuffer();
}

async function counts(s: Stack, id: string): Promise<string> {
  const rows = await s.m.db<{ status: string; n: number }[]>`
    select status, count(*)::int as n from dwop.tasks where workflow_id = ${id} group by status order by status`;
  return rows.map((r) => `${r.status} ${r.n}`).join(", ");
}

/** Samples `part`'s RSS while `seconds` pass; returns the peak and the last sample. */
async function watch(part: Part, seconds: number): Promise<{ peak: number; last: number }> {
  part.resetPeak();
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) await sleep(250);
  return { peak: part.peak(), last: part.rss() };
}

/**
 * Each round on a fresh stack (database, home and `dwop dev`), warmed with one 100-task submit: a previous
 * round's workflow, even cancelled, keeps the claimer and the dispatcher busy with its messages.
 */
async function submitBench(): Promise<void> {
  for (const n of sizes) {
    const source = fanWorkflow(n - 2);
    for (let round = 1; round <= rounds; round++) {
      const s = await stack("bench_submit_dev");
      const nodeArgs = cpuProf
        ? ["--cpu-prof", `--cpu-prof-dir=${cpuProf}`]
        : (process.env.BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean);
      const dev = new Part(["dev"], s.env, nodeArgs);
      try {
        await dev.ready("dwop dev listening");
        await cancel(s, (await submit(s, fanWorkflow(98))).id);
        await sleep(2000);
        const before = dev.rss();
        dev.resetPeak();
        const {
          result: r,
          serverCpu,
          postgresCpu,
          serverFaults,
          postgresFaults,
        } = await cpuDuring(s, dev, () => submit(s, source, prefer ? { prefer: `return=${prefer}` } : {}));
        const peak = dev.peak();
        console.log(
          `${n} tasks (${(Buffer.byteLength(source) / MB).toFixed(2)} MB, ${bus}${prefer ? `, return=${prefer}` : ""}), round ${round}: 201 in ${r.to201.toFixed(0)} ms, ` +
            `body read ${r.toBody.toFixed(0)} ms | CPU: server ${serverCpu.toFixed(2)} s, Postgres ${postgresCpu.toFixed(2)} s | ` +
            `page faults: server ${serverFaults}, Postgres ${postgresFaults} | ` +
            `server RSS ${before.toFixed(0)} -> peak ${peak.toFixed(0)} MB | load ${load()}`,
        );
        console.log(`  ${await readBack(s, dev, r.id)}`);
        if (round === rounds && n === sizes.at(-1) && runSeconds > 0) {
          const { peak, last: rss } = await watch(dev, runSeconds);
          console.log(
            `${n} tasks running for ${runSeconds} s: server RSS peak ${peak.toFixed(0)} MB, now ${rss.toFixed(0)} MB; ` +
              `tasks: ${await counts(s, r.id)} | load ${load()}`,
          );
        }
      } finally {
        await dev.stop();
        await s.m.close(true);
        await rm(s.home, { recursive: true, force: true });
      }
    }
  }
}

async function dispatcherBench(): Promise<void> {
  const s = await stack("bench_submit_dev_dispatcher");
  const api = new Part(["api"], s.env);
  const parts = [api];
  try {
    await api.ready("dwop api listening");
    const claimer = new Part(["claimer"], s.env);
    const dispatcher = new Part(["dispatcher"], s.env);
    parts.push(claimer, dispatcher);
    await sleep(3000);
    console.log(`dispatcher (${bus}) up: RSS ${dispatcher.rss().toFixed(0)} MB | load ${load()}`);
    const source = Array.from({ length: 10_000 }, (_, i) => `fun t${i}():\n    pass\n`).join("");
    const r = await submit(s, source);
    console.log(`10,000 root tasks submitted: 201 in ${r.to201.toFixed(0)} ms`);
    const { peak, last } = await watch(dispatcher, runSeconds);
    console.log(
      `dispatcher with 10,000 tasks queued, over ${runSeconds} s: RSS peak ${peak.toFixed(0)} MB, now ${last.toFixed(0)} MB; ` +
        `tasks: ${await counts(s, r.id)} | load ${load()}`,
    );
    await cancel(s, r.id);
  } finally {
    for (const p of parts.reverse()) await p.stop();
    await s.m.close(true);
    await rm(s.home, { recursive: true, force: true });
  }
}

try {
  if (process.argv.includes("--dispatcher")) await dispatcherBench();
  else await submitBench();
} catch (err) {
  console.error(err);
  process.exitCode = 1;
}
process.exit();
