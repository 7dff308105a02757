// The 40-task chain on the real path, beside Snakemake and Celery run in the same invocation.
// Each task computes fibo(10) and reads its upstream's output. DWOP runs as deployed: `dwop dev` (one
// process) or `dwop api` + `dwop claimer` + `dwop dispatcher` (three), each its own process; the chain
// is submitted over HTTP and timed from the submit request to the workflow's end (its NOTIFY). The
// per-task split comes from the database's timestamps of each task's outbox row and run.
// Run: npx tsx bench/chain.ts [--mode=dev|deployed|both] [--tasks=40] [--rounds=3] [--sandbox=auto|off]
//                             [--bus=rabbit|pgboss] [--baselines=yes|no] [--cpu-prof=DIR]
// --cpu-prof: each DWOP process writes a V8 CPU profile into DIR when it stops.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { migratedDatabase, type MigratedDatabase } from "../test/support/migrated.ts";
import { deleteRabbitTopology, RABBIT_URL } from "../test/support/rabbit.ts";
import { freePort } from "../test/support/dev-process.ts";
import { childrenOf, cpuSeconds, fileCreationMs, machineCpu, percentile } from "./stats.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const arg = (name: string, fallback: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const n = Number(arg("tasks", "40"));
const rounds = Number(arg("rounds", "3"));
const sandbox = arg("sandbox", "auto");
const bus = arg("bus", "rabbit");
const cpuProf = arg("cpu-prof", "");
const modes = arg("mode", "both") === "both" ? ["dev", "deployed"] : [arg("mode", "dev")];
const FIBO = "fibo = lambda n: n if n < 2 else fibo(n - 1) + fibo(n - 2)";

/** The chain in DWOP's DSL: t0 prints fibo(10); each next task adds its upstream's output times 0. */
function chainSource(tasks: number): string {
  return Array.from({ length: tasks }, (_, i) =>
    i === 0
      ? `fun t0():\n    ${FIBO}\n    print(fibo(10))\n`
      : `fun t${i}(x:t${i - 1}):\n    ${FIBO}\n    print(fibo(10) + int(open("x").read()) * 0)\n`,
  ).join("\n");
}

const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
const median = (xs: number[]) => percentile(xs, 50);

interface Cpu {
  dwop: number;
  python: number;
  postgres: number;
}

interface Split {
  /** The task's outbox row written (its upstream's success recorded) to its run row (start_runs). */
  toRun: number[];
  /** The run row to the process started (mark_runs_dispatched, after the fork server's answer). */
  toStart: number[];
  /** The process started to the success recorded: the worker, its exit seen, complete_runs. */
  worker: number[];
}

/**
 * The whole machine's CPU over the timed rounds alone (begin/end around each): per task, and how busy its
 * cores were. A chain is one task after another, so a machine near full is where each contender's own
 * CPU per task, not its waits, sets its time.
 */
class MachineCpu {
  private busy = 0;
  private wall = 0;
  private start = { busy: 0, at: 0 };

  begin(): void {
    this.start = { busy: machineCpu().busy, at: performance.now() };
  }

  end(): void {
    this.busy += machineCpu().busy - this.start.busy;
    this.wall += (performance.now() - this.start.at) / 1000;
  }

  line(tasks: number): string {
    const { cores } = machineCpu();
    const busy = ((100 * this.busy) / (this.wall * cores)).toFixed(0);
    return `the machine (everything on it): ${((this.busy * 1000) / tasks).toFixed(1)} ms of CPU a task; its ${cores} cores ${busy} % busy`;
  }
}

/** One DWOP deployment of processes on a fresh database and queue. */
class Deployment {
  private readonly children: ChildProcess[] = [];
  url = "";
  readonly token = randomBytes(16).toString("hex");

  constructor(
    readonly m: MigratedDatabase,
    private readonly env: Record<string, string>,
  ) {}

  /** Starts `dwop ARGS`; resolves when its stderr (or stdout) shows `ready` (at once without one). */
  start(args: string[], ready: RegExp | null, extra: Record<string, string> = {}): Promise<string> {
    const nodeArgs = cpuProf ? ["--cpu-prof", `--cpu-prof-dir=${cpuProf}`] : [];
    const child = spawn(process.execPath, [...nodeArgs, join(ROOT, "bin/dwop.js"), ...args], {
      cwd: ROOT,
      env: { ...process.env, ...this.env, ...extra },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.children.push(child);
    let seen = "";
    return new Promise((resolve, reject) => {
      if (!ready) resolve("");
      const look = (chunk: Buffer) => {
        seen += chunk.toString();
        const match = ready?.exec(seen);
        if (match) resolve(match[1] ?? match[0]);
      };
      child.stdout!.on("data", look);
      child.stderr!.on("data", look);
      child.once("exit", (code) => reject(new Error(`dwop ${args[0]} exited (${code}):\n${seen}`)));
    });
  }

  async submit(source: string): Promise<string> {
    const res = await fetch(`${this.url}/workflows`, {
      method: "POST",
      headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json" },
      body: JSON.stringify({ workflow: source, name: "chain" }),
    });
    if (res.status !== 201) throw new Error(`submit: HTTP ${res.status} ${await res.text()}`);
    return ((await res.json()) as { id: string }).id;
  }

  /** Submits the chain and resolves with the seconds from the request to the workflow's end. */
  async runChain(tasks: number): Promise<{ id: string; seconds: number }> {
    let done: (id: string) => void = () => {};
    const listener = await this.m.db.listen("dwop_workflow_done", (id) => done(id));
    try {
      const t0 = performance.now();
      const finished = new Promise<string>((resolve) => (done = resolve));
      const id = await this.submit(chainSource(tasks));
      const timeout = new Promise<null>((r) => setTimeout(() => r(null), 120_000).unref());
      if ((await Promise.race([finished, timeout])) !== id) throw new Error(`workflow ${id} did not end`);
      const seconds = (performance.now() - t0) / 1000;
      const [w] = await this.m.db<{ status: string }[]>`select status from dwop.workflows where id = ${id}`;
      if (w?.status !== "succeeded") throw new Error(`workflow ${id} ended ${w?.status}`);
      return { id, seconds };
    } finally {
      await listener.unlisten();
    }
  }

  /** Per task after the first: its outbox row to its run row, to the process started, to finished. */
  async split(id: string): Promise<Split> {
    const rows = await this.m.db<{ toRun: number; toStart: number; worker: number }[]>`
      select extract(epoch from r.created_at - o.created_at) * 1000 as "toRun",
             extract(epoch from r.started_at - r.created_at) * 1000 as "toStart",
             extract(epoch from r.finished_at - r.started_at) * 1000 as worker
      from dwop.tasks t
      join dwop.runs r on r.task_id = t.id
      join dwop.outbox o on o.topic = 'task.ready' and o.payload ->> 'taskId' = t.id::text
      where t.workflow_id = ${id} and cardinality(t.upstream_ids) > 0`;
    return {
      toRun: rows.map((r) => Number(r.toRun)),
      toStart: rows.map((r) => Number(r.toStart)),
      worker: rows.map((r) => Number(r.worker)),
    };
  }

  /**
   * CPU seconds so far: of its processes; of their Python children (the fork server, with the runs it has
   * reaped: workers, the sandboxes' processes, the bodies; not slirp4netns); of its database's backends.
   */
  async cpu(): Promise<Cpu> {
    const pids = this.children.map((c) => c.pid!);
    const backends = await this.m.db<{ pid: number }[]>`
      select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`;
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    return {
      dwop: sum(pids.map((pid) => cpuSeconds(pid))),
      // The fork server, and its zygote, which reaps the spare workers.
      python: sum(
        pids
          .flatMap(childrenOf)
          .flatMap((pid) => [pid, ...childrenOf(pid)])
          .map((pid) => cpuSeconds(pid, true)),
      ),
      postgres: sum(backends.map((b) => cpuSeconds(b.pid))),
    };
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once("exit", () => resolve());
            c.kill("SIGTERM");
            setTimeout(() => c.kill("SIGKILL"), 15_000).unref();
          }),
      ),
    );
  }
}

async function deploy(mode: string, home: string): Promise<Deployment> {
  const m = await migratedDatabase(`bench_chain_${mode}`);
  const port = await freePort();
  const queue = `dwop.bench.chain.${randomBytes(3).toString("hex")}`;
  const env: Record<string, string> = {
    DATABASE_URL: m.url,
    ...(bus === "rabbit" ? { RABBITMQ_CONNECTION_URL: RABBIT_URL, DWOP_QUEUE: queue } : {}),
    DWOP_HOME: join(home, mode),
    DWOP_PORT: String(port),
    DWOP_PUBLIC_URL: `http://127.0.0.1:${port}`,
    DWOP_STORAGE_SECRET: randomBytes(16).toString("hex"),
    DWOP_TASK_SANDBOX: sandbox,
    DWOP_LOG_LEVEL: "warn",
    DWOP_METRICS_PORT: "0",
  };
  const d = new Deployment(m, env);
  env.DWOP_API_TOKEN = d.token;
  if (mode === "dev") {
    await d.start(["dev"], /listening on (http\S+)/);
  } else {
    await d.start(["api"], /^(http\S+)$/m);
    // Claimer and dispatcher print nothing at warn level: they are up once the dispatcher has a heartbeat.
    await d.start(["claimer"], null, { DWOP_CLAIMER_ID: `${queue}-c` });
    await d.start(["dispatcher"], null, { DWOP_DISPATCHER_ID: `${queue}-d` });
    for (let i = 0; ; i++) {
      const [row] = await m.db<{ n: number }[]>`select count(*)::int as n from dwop.dispatchers`;
      if (row!.n > 0) break;
      if (i > 600) throw new Error("the dispatcher did not start");
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  d.url = env.DWOP_PUBLIC_URL!;
  (d as { queue?: string }).queue = queue;
  return d;
}

async function benchDwop(mode: string, home: string): Promise<number> {
  const d = await deploy(mode, home);
  try {
    await d.runChain(3); // warm: the fork server, the first Python start, connections
    const times: number[] = [];
    const split: Split = { toRun: [], toStart: [], worker: [] };
    const cpu0 = await d.cpu();
    const machine = new MachineCpu();
    for (let i = 0; i < rounds; i++) {
      machine.begin();
      const { id, seconds } = await d.runChain(n);
      machine.end();
      times.push(seconds);
      const s = await d.split(id);
      for (const k of Object.keys(split) as (keyof Split)[]) split[k].push(...s[k]);
    }
    const cpu1 = await d.cpu();
    const made = fileCreationMs(join(home, mode, "storage", ".tmp")); // where the storage makes its files
    const perTask = (k: keyof Cpu) => (((cpu1[k] - cpu0[k]) * 1000) / (rounds * n)).toFixed(1);
    const p = (xs: number[]) => `${median(xs).toFixed(1)}/${percentile(xs, 99).toFixed(1)}`;
    console.log(
      `dwop ${mode.padEnd(8)} ${bus} sandbox ${sandbox}: ${n} tasks ${times.map((t) => t.toFixed(3)).join(" ")} s, ` +
        `median ${median(times).toFixed(3)} s (${((median(times) * 1000) / n).toFixed(1)} ms/task); load ${load()}`,
    );
    // The storage makes two files a task (its output and log): where that is slow, so is every task.
    console.log(`  a small file made where its storage makes them (two a task): ${made.toFixed(2)} ms`);
    console.log(
      `  per task p50/p99 ms: outbox row -> run row ${p(split.toRun)}, run row -> process started ${p(split.toStart)}, ` +
        `started -> success recorded (worker) ${p(split.worker)}; the next task's outbox row is written in that transaction`,
    );
    console.log(
      `  CPU ms per task: dwop ${perTask("dwop")}, its Python ${perTask("python")} (fork server, workers, ` +
        `sandboxes, bodies; slirp4netns not counted), Postgres backends ${perTask("postgres")}`,
    );
    console.log(`  ${machine.line(rounds * n)}`);
    return median(times);
  } finally {
    await d.stop();
    await d.m.close(true);
    const queue = (d as { queue?: string }).queue;
    if (bus === "rabbit" && queue) await deleteRabbitTopology(queue).catch(() => {});
  }
}

function run(cmd: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    child.once("exit", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}:\n${out}`)),
    );
  });
}

/** Snakemake 7 (Debian), a Python process per rule, from a clean folder each round. */
async function benchSnakemake(home: string): Promise<number> {
  const dir = join(home, "snakemake");
  await mkdir(dir, { recursive: true });
  const rules = Array.from({ length: n }, (_, i) => {
    const up = i === 0 ? "0" : `int(open('t${i - 1}.txt').read()) * 0`;
    return (
      `rule t${i}:\n` +
      (i === 0 ? "" : `    input: "t${i - 1}.txt"\n`) +
      `    output: "t${i}.txt"\n` +
      `    shell: "/usr/bin/python3 -c \\"${FIBO}; print(fibo(10) + ${up})\\" > {output}"\n`
    );
  });
  await writeFile(join(dir, "Snakefile"), rules.join("\n"));
  const times: number[] = [];
  const machine = new MachineCpu();
  for (let i = 0; i <= rounds; i++) {
    await run("sh", ["-c", "rm -rf t*.txt .snakemake"], dir);
    const t0 = performance.now();
    if (i > 0) machine.begin();
    await run(
      "/usr/bin/python3",
      ["/usr/bin/snakemake", "--cores", "1", "--quiet", "all", "--", `t${n - 1}.txt`],
      dir,
    );
    if (i > 0) machine.end();
    if (i > 0) times.push((performance.now() - t0) / 1000); // the first round warms the disk cache
  }
  console.log(
    `snakemake 7 (a process per rule): ${n} tasks ${times.map((t) => t.toFixed(3)).join(" ")} s, median ${median(times).toFixed(3)} s; load ${load()}`,
  );
  const made = fileCreationMs(dir);
  console.log(
    `  a small file made in its folder (it makes one a rule, and its metadata): ${made.toFixed(2)} ms`,
  );
  console.log(`  ${machine.line(rounds * n)}`);
  return median(times);
}

/** Celery 5 (Debian) on this RabbitMQ, one warm solo worker, the chain passing results along. */
async function benchCelery(): Promise<number> {
  const queue = `dwop.bench.celery.${randomBytes(3).toString("hex")}`;
  const script = join(ROOT, "bench/baselines/celery_chain.py");
  const worker = spawn("/usr/bin/python3", [script, "worker", queue], { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  worker.stderr.on("data", (c: Buffer) => (log += c.toString()));
  worker.stdout.on("data", (c: Buffer) => (log += c.toString()));
  try {
    const times: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const out = await run("/usr/bin/python3", [script, "chain", queue, String(n)], ROOT);
      times.push(Number(out.trim().split("\n").pop()));
    }
    console.log(
      `celery 5 (warm worker, rpc results): ${n} tasks ${times.map((t) => t.toFixed(3)).join(" ")} s, median ${median(times).toFixed(3)} s; load ${load()}`,
    );
    return median(times);
  } catch (err) {
    console.log(`celery failed: ${String(err)}\n${log}`);
    return Number.NaN;
  } finally {
    worker.kill("SIGTERM");
    await new Promise((r) => worker.once("exit", r));
    await run("rabbitmqctl", ["delete_queue", queue], ROOT).catch(() => "");
  }
}

const home = await mkdtemp(join(tmpdir(), "dwop-bench-chain-"));
await mkdir(home, { recursive: true, mode: 0o755 });
try {
  const baselines = arg("baselines", "yes") === "yes";
  const snakemake = baselines ? await benchSnakemake(home) : Number.NaN;
  const celery = baselines ? await benchCelery() : Number.NaN;
  for (const mode of modes) {
    const dwop = await benchDwop(mode, home);
    if (baselines) {
      console.log(
        `  dwop ${mode} / snakemake = ${(dwop / snakemake).toFixed(2)} (goal <= 0.25), / celery = ${(dwop / celery).toFixed(1)}`,
      );
    }
  }
} finally {
  await rm(home, { recursive: true, force: true });
}
process.exit(0);
