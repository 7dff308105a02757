// The faults the soak injects, and the seeded schedule that says when. Each fault acts on this run's
// own processes, connections, database and queue only: other tests share this machine's services.
import amqp from "amqplib";
import { execFile } from "node:child_process";
import { readdir, readFile, readlink } from "node:fs/promises";
import { promisify } from "node:util";
import postgres from "postgres";
import { PgBossBus } from "../shared/bus/pgboss.ts";
import { rabbitTopology } from "../shared/bus/rabbit.ts";
import type { ProcessSet } from "./processes.ts";
import type { Rng } from "./rng.ts";

const run = promisify(execFile);

export const LOCAL_FAULTS = {
  kill_api: 2,
  kill_claimer: 2,
  kill_dispatcher: 3,
  kill_several: 1,
  rabbit_close: 2,
  broker_restart: 0,
  pg_terminate: 2,
  pg_refuse: 1,
  duplicate_messages: 2,
  kill_worker: 2,
} as const;
export const KUBE_FAULTS = {
  kube_close_watches: 2,
  kube_410: 1,
  kube_api_errors: 2,
  kube_slow: 1,
  kube_delete_job: 1,
  kube_evict_pod: 1,
} as const;
export type FaultKind = keyof typeof LOCAL_FAULTS | keyof typeof KUBE_FAULTS;

export interface ScheduledFault {
  atMs: number;
  kind: FaultKind;
  /** Seeded choices the fault makes (which process, how long, which Job). */
  pick: number;
  durationMs: number;
}

/** The whole schedule, decided up front from the seed: replaying a seed replays the same faults. */
export function faultSchedule(
  rng: Rng,
  o: {
    startMs: number;
    endMs: number;
    meanGapMs: number;
    kube: boolean;
    brokerRestart: boolean;
    bus: ChaosBus;
  },
): ScheduledFault[] {
  const weights: Partial<Record<FaultKind, number>> = { ...LOCAL_FAULTS, ...(o.kube ? KUBE_FAULTS : {}) };
  if (o.brokerRestart) weights.broker_restart = 0.5;
  if (o.bus === "pgboss") weights.rabbit_close = weights.broker_restart = 0; // the bus is the database
  for (const k of Object.keys(weights) as FaultKind[]) if (!weights[k]) delete weights[k];
  const out: ScheduledFault[] = [];
  let t = o.startMs;
  for (;;) {
    t += Math.round(o.meanGapMs * (0.3 + 1.4 * rng.next()));
    if (t >= o.endMs) return out;
    const kind = rng.weighted(weights as Record<FaultKind, number>);
    out.push({ atMs: t, kind, pick: rng.int(0, 1_000_000), durationMs: rng.int(500, 4000) });
  }
}

/** The soak's bus: RabbitMQ, or pg-boss in the stack's own database (the embedded default's). */
export type ChaosBus = "rabbit" | "pgboss";

export interface FaultContext {
  processes: ProcessSet;
  bus: ChaosBus;
  /** The stack's database (pg-boss's too). */
  dbUrl: string;
  adminUrl: string;
  dbName: string;
  rabbitUrl: string;
  queue: string;
  /** Every RabbitMQ connection of this run has a name that contains it. */
  prefix: string;
  /** Worker processes of this run have their working folder under one of these. */
  workerRoots: string[];
  /** The simulator's control endpoint (Kubernetes pass). */
  kubeControl: string | null;
  /** Task messages published so far, to duplicate and reorder. */
  recentMessages(): Promise<{ taskId: string; attempt: number }[]>;
}

/** Carries out one fault; resolves with a short note of what it did. */
export async function inject(f: ScheduledFault, ctx: FaultContext): Promise<string> {
  const dwop = ctx.processes.names().filter((n) => n !== "kube-sim");
  const claimers = dwop.filter((n) => n.startsWith("claimer"));
  const dispatchers = dwop.filter((n) => n.startsWith("dispatcher"));
  switch (f.kind) {
    case "kill_api":
      await ctx.processes.killAndRestart("api", f.durationMs);
      return `api down ${f.durationMs}ms`;
    case "kill_claimer":
    case "kill_dispatcher": {
      const pool = f.kind === "kill_claimer" ? claimers : dispatchers;
      const name = pool[f.pick % pool.length]!;
      await ctx.processes.killAndRestart(name, f.durationMs % 2000);
      return name;
    }
    case "kill_several": {
      const n = 2 + (f.pick % 3);
      const victims = [...dwop].sort((a, b) => hash(a, f.pick) - hash(b, f.pick)).slice(0, n);
      await Promise.all(victims.map((v) => ctx.processes.killAndRestart(v, f.durationMs % 2500)));
      return victims.join("+");
    }
    case "rabbit_close":
      return `${await closeRabbitConnections(ctx.prefix)} connections closed`;
    case "broker_restart":
      await run("rabbitmqctl", ["stop_app"]);
      await sleep(f.durationMs);
      await run("rabbitmqctl", ["start_app"]);
      return `broker down ${f.durationMs}ms`;
    case "pg_terminate":
      return `${await terminateBackends(ctx)} backends terminated`;
    case "pg_refuse": {
      await admin(ctx, (sql) => sql.unsafe(`alter database "${ctx.dbName}" allow_connections false`));
      const n = await terminateBackends(ctx);
      await sleep(Math.min(f.durationMs, 3000));
      await admin(ctx, (sql) => sql.unsafe(`alter database "${ctx.dbName}" allow_connections true`));
      return `refused ${Math.min(f.durationMs, 3000)}ms, ${n} terminated`;
    }
    case "duplicate_messages":
      return duplicateMessages(ctx, f.pick);
    case "kill_worker":
      return killWorker(ctx, f.pick);
    case "kube_close_watches":
      return kube(ctx, { kind: "closeWatches" });
    case "kube_410":
      return kube(ctx, { kind: "expireHistory", pick: f.pick });
    case "kube_api_errors":
      return kube(ctx, { kind: "failNext", count: 1 + (f.pick % 8), status: [500, 503, 429][f.pick % 3] });
    case "kube_slow": {
      const note = await kube(ctx, { kind: "latency", ms: 200 + (f.pick % 800) });
      await sleep(f.durationMs);
      await kube(ctx, { kind: "latency", ms: 0 });
      return `${note} for ${f.durationMs}ms`;
    }
    case "kube_delete_job":
      return kube(ctx, { kind: "deleteJob", pick: f.pick });
    case "kube_evict_pod":
      return kube(ctx, { kind: "evictPod", pick: f.pick });
  }
}

function hash(s: string, seed: number): number {
  let h = seed >>> 0;
  for (const ch of s) h = Math.imul(h ^ ch.charCodeAt(0), 2654435761) >>> 0;
  return h;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function admin<T>(ctx: FaultContext, use: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(ctx.adminUrl, { max: 1, onnotice: () => {} });
  try {
    return await use(sql);
  } finally {
    await sql.end({ timeout: 2 });
  }
}

/** Terminates every backend connected to this run's database (and no other). */
function terminateBackends(ctx: FaultContext): Promise<number> {
  return admin(ctx, async (sql) => {
    const rows = await sql<{ n: number }[]>`
      select count(*) filter (where pg_terminate_backend(pid))::int as n
      from pg_stat_activity where datname = ${ctx.dbName} and pid <> pg_backend_pid()`;
    return rows[0]?.n ?? 0;
  });
}

/** Closes this run's RabbitMQ connections (by connection name), leaving other tests' alone. */
export async function closeRabbitConnections(prefix: string): Promise<number> {
  const { stdout } = await run("rabbitmqctl", [
    "list_connections",
    "pid",
    "client_properties",
    "-q",
    "--no-table-headers",
  ]);
  const pids = stdout
    .split("\n")
    .filter((line) => line.includes(`{"connection_name","`) && line.includes(prefix))
    .map((line) => line.split("\t")[0] ?? "")
    .filter((pid) => pid.startsWith("<"));
  await Promise.all(
    pids.map((pid) => run("rabbitmqctl", ["close_connection", pid, "chaos: forced close"]).catch(() => {})),
  );
  return pids.length;
}

/** Publishes extra copies of real task messages, older attempts after newer ones, straight to the queue. */
async function duplicateMessages(ctx: FaultContext, pick: number): Promise<string> {
  const messages = await ctx.recentMessages();
  if (messages.length === 0) return "no messages yet";
  const copies = messages.filter((_, i) => hash(String(i), pick) % 3 === 0).slice(0, 20);
  copies.reverse(); // reordered: the newest copies first, stale attempts last
  const twice = pick % 2 === 0;
  if (ctx.bus === "pgboss") {
    const bus = await PgBossBus.connect({ connectionString: ctx.dbUrl, queue: ctx.queue });
    try {
      const jobs = copies.flatMap((m, i) =>
        Array(twice ? 2 : 1).fill({ outboxId: `dup-${pick}-${i}`, body: m }),
      );
      if ((await bus.publish(jobs)).length !== jobs.length) throw new Error("pg-boss refused the copies");
      return `${jobs.length} copies`;
    } finally {
      await bus.close();
    }
  }
  const names = rabbitTopology(ctx.queue);
  const conn = await amqp.connect(ctx.rabbitUrl, {
    clientProperties: { connection_name: `${ctx.prefix}-chaos-dup` },
  });
  try {
    const ch = await conn.createConfirmChannel();
    for (const m of copies) {
      const body = Buffer.from(JSON.stringify({ taskId: m.taskId, attempt: m.attempt }));
      ch.publish(names.exchange, names.routingKey, body, {
        persistent: true,
        contentType: "application/json",
        messageId: `dup-${pick}`,
      });
      if (twice)
        ch.publish(names.exchange, names.routingKey, body, {
          persistent: true,
          contentType: "application/json",
        });
    }
    await ch.waitForConfirms();
  } finally {
    await conn.close().catch(() => {});
  }
  return `${copies.length * (twice ? 2 : 1)} copies`;
}

/**
 * SIGKILLs one running worker of this run: a process whose working folder is ours and whose parent's is
 * not (the body's parent is the worker). Found so in the task sandbox too, where the process outside the
 * namespace that leads the group has the fork server's folder, and the worker is its child. In a pod the
 * simulator runs as a container, the pod's folder is the working folder of `podman run` and of conmon,
 * its monitor, not of the worker: the worker is conmon's child (the container's first process). Killing
 * podman or conmon would be no Kubernetes fault (podman then loses the container's exit code).
 */
async function killWorker(ctx: FaultContext, pick: number): Promise<string> {
  const procs = new Map<number, { parent: number; name: string; ours: boolean }>();
  for (const entry of await readdir("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = await readFile(`/proc/${pid}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => "");
      procs.set(pid, { parent, name, ours: ctx.workerRoots.some((root) => cwd.startsWith(root)) });
    } catch {
      // Gone already.
    }
  }
  const monitor = (p: { name: string }) => p.name === "podman" || p.name === "conmon";
  const workers = [...procs]
    .filter(([, p]) => {
      const parent = procs.get(p.parent);
      if (parent && monitor(parent) && parent.ours) return true; // a container's first process
      return p.ours && !monitor(p) && !parent?.ours;
    })
    .map(([pid]) => pid);
  if (workers.length === 0) return "no worker running";
  workers.sort((a, b) => a - b);
  const victim = workers[pick % workers.length]!;
  try {
    process.kill(victim, "SIGKILL");
  } catch {
    return "worker ended first";
  }
  return `pid ${victim} of ${workers.length}`;
}

async function kube(ctx: FaultContext, body: Record<string, unknown>): Promise<string> {
  if (!ctx.kubeControl) return "no simulator";
  const res = await fetch(ctx.kubeControl, { method: "POST", body: JSON.stringify(body) });
  return JSON.stringify(await res.json());
}
