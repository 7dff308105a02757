// The 40-task chain on the real path, beside Snakemake and Celery run in the same invocation.
// Each task computes fibo(10) and reads its upstream's output. DWOP runs as deployed: `dwop dev` (one
// process) or `dwop api` + `dwop claimer` + `dwop dispatcher` (three), each its own process; the chain
// is submitted over HTTP and timed from the submit request to the workflow's end (its NOTIFY). The
// per-task split comes from the database's timestamps of each task's outbox row and run.
// Run: npx tsx bench/chain.ts [--mode=dev|deployed|both] [--tasks=40] [--rounds=3] [--sandbox=auto|off]
//                             [--bus=rabbit|pgboss] [--baselines=yes|no] [--cpu-prof=DIR]
// --cpu-prof: each DWOP process writes a V8 CPU profile into DIR when it stops.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { deploy, ROOT, type Cpu, type Deployment } from "./deployment.ts";
import { fileCreationMs, machineCpu, percentile } from "./stats.ts";

const arg = (name: string, fallback: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const n = Number(arg("tasks", "40"));
const rounds = Number(arg("rounds", "3"));
const sandbox = arg("sandbox", "auto");
const bus = arg("bus", "rabbit") as "rabbit" | "pgboss";
const cpuProf = arg("cpu-prof", "");
const modes = (arg("mode", "both") === "both" ? ["dev", "deployed"] : [arg("mode", "dev")]) as (
  "dev" | "deployed"
)[];
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

interface Split {
  /** The task's outbox row written (its upstream's success recorded) to its run row (start_runs). */
  toRun: number[];
  /** The run row to the process started (mark_runs_dispatched, after the fork server's answer). */
  toStart: number[];
  /** The process started to the success recorded: the worker, its exit seen, complete_runs. */
  worker: number[];
  /** The submit request to the first task's process started: the submit, the first claim and dispatch. */
  first: number[];
  /** The same in steps: to the workflow's row (its transaction's start), to its first run row (the outbox
   * row claimed, published and delivered), to its process started. */
  firstSteps: number[][];
  /** The last task's success recorded to its workflow's end seen (the NOTIFY at the bench). */
  last: number[];
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

/**
 * Per task after the first: its outbox row to its run row, to the process started, to finished; and the
 * chain's two ends (the database's clock is the machine's, as Date.now()).
 */
async function split(
  d: Deployment,
  { id, submittedAt, seenAt }: { id: string; submittedAt: number; seenAt: number },
): Promise<Split> {
  const rows = await d.m.db<{ toRun: number; toStart: number; worker: number }[]>`
    select extract(epoch from r.created_at - o.created_at) * 1000 as "toRun",
           extract(epoch from r.started_at - r.created_at) * 1000 as "toStart",
           extract(epoch from r.finished_at - r.started_at) * 1000 as worker
    from dwop.tasks t
    join dwop.runs r on r.task_id = t.id
    join dwop.outbox o on o.topic = 'task.ready' and o.payload ->> 'taskId' = t.id::text
    where t.workflow_id = ${id} and cardinality(t.upstream_ids) > 0`;
  // The root's row, run and process start (its run is the chain's first), and the last success.
  const [ends] = await d.m.db<{ row: number; run: number; started: number; finished: number }[]>`
    select extract(epoch from w.created_at) * 1000 as row,
           extract(epoch from min(r.created_at)) * 1000 as run,
           extract(epoch from min(r.started_at)) * 1000 as started,
           extract(epoch from max(r.finished_at)) * 1000 as finished
    from dwop.workflows w
    join dwop.tasks t on t.workflow_id = w.id
    join dwop.runs r on r.task_id = t.id
    where w.id = ${id}
    group by w.created_at`;
  const marks = [submittedAt, ...[ends!.row, ends!.run, ends!.started].map(Number)];
  return {
    toRun: rows.map((r) => Number(r.toRun)),
    toStart: rows.map((r) => Number(r.toStart)),
    worker: rows.map((r) => Number(r.worker)),
    first: [marks[3]! - submittedAt],
    firstSteps: [marks.slice(1).map((at, i) => at - marks[i]!)],
    last: [seenAt - Number(ends!.finished)],
  };
}

async function benchDwop(mode: "dev" | "deployed", home: string): Promise<number> {
  const d = await deploy({ mode, home, bus, sandbox, cpuProf: cpuProf || undefined });
  try {
    await d.runTimed(chainSource(3), "chain"); // warm: the fork server, the first Python start, connections
    const times: number[] = [];
    const spans: Split = { toRun: [], toStart: [], worker: [], first: [], firstSteps: [], last: [] };
    const cpu0 = await d.cpu();
    const machine = new MachineCpu();
    for (let i = 0; i < rounds; i++) {
      machine.begin();
      const timed = await d.runTimed(chainSource(n), "chain");
      machine.end();
      times.push(timed.seconds);
      const s = await split(d, timed);
      for (const k of ["toRun", "toStart", "worker", "first", "last"] as const) spans[k].push(...s[k]);
      spans.firstSteps.push(...s.firstSteps);
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
      `  per task p50/p99 ms: outbox row -> run row ${p(spans.toRun)}, run row -> process started ${p(spans.toStart)}, ` +
        `started -> success recorded (worker) ${p(spans.worker)}; the next task's outbox row is written in that transaction`,
    );
    console.log(
      `  the chain's ends, p50 ms: submit request -> first process started ${median(spans.first).toFixed(1)} ` +
        `(${["workflow row", "run row", "started"]
          .map((step, i) => `${step} +${median(spans.firstSteps.map((s) => s[i]!)).toFixed(1)}`)
          .join(", ")}), ` +
        `last success recorded -> workflow's end seen ${median(spans.last).toFixed(1)}`,
    );
    console.log(
      `  CPU ms per task: dwop ${perTask("dwop")}, its Python ${perTask("python")} (fork server, workers, ` +
        `sandboxes, bodies; slirp4netns not counted), Postgres backends ${perTask("postgres")}`,
    );
    console.log(`  ${machine.line(rounds * n)}`);
    return median(times);
  } finally {
    await d.stop(bus);
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
async function benchSnakemake(home: string, label = ""): Promise<number> {
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
    `snakemake 7 (a process per rule)${label}: ${n} tasks ${times.map((t) => t.toFixed(3)).join(" ")} s, median ${median(times).toFixed(3)} s; load ${load()}`,
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
  const before = baselines ? await benchSnakemake(home) : Number.NaN;
  const celery = baselines ? await benchCelery() : Number.NaN;
  const dwop: [string, number][] = [];
  for (const mode of modes) dwop.push([mode, await benchDwop(mode, home)]);
  if (baselines) {
    // Snakemake again after DWOP, and the ratios to the mean of the two: a machine whose speed drifts over
    // minutes (seen here: a third) moves both sides of a ratio taken across that span alike.
    const after = await benchSnakemake(home, ", again");
    const snakemake = (before + after) / 2;
    console.log(`snakemake before and after DWOP: ${before.toFixed(3)} and ${after.toFixed(3)} s`);
    for (const [mode, seconds] of dwop) {
      console.log(
        `  dwop ${mode} / snakemake = ${(seconds / snakemake).toFixed(2)} (goal <= 0.25), / celery = ${(seconds / celery).toFixed(1)}`,
      );
    }
  }
} finally {
  await rm(home, { recursive: true, force: true });
}
process.exit(0);
