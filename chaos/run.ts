// One soak: the stack as separate processes, a seeded stream of workflows, a seeded fault schedule,
// then the invariants once everything settles.
import { randomBytes } from "node:crypto";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { memoryRootPath } from "../shared/executors/memory-root.ts";
import { TERMINAL_WORKFLOW_STATES, type WorkflowState } from "../shared/model.ts";
import { ADMIN_URL } from "../test/support/db.ts";
import { migratedDatabase } from "../test/support/migrated.ts";
import { deleteRabbitTopology, RABBIT_URL } from "../test/support/rabbit.ts";
import { ApiClient } from "./client.ts";
import { faultSchedule, inject, type ChaosBus, type FaultContext, type FaultKind } from "./faults.ts";
import { checkInvariants, type InvariantRow } from "./invariants.ts";
import { ProcessSet } from "./processes.ts";
import { Rng } from "./rng.ts";
import { planWorkflow, type PlannedWorkflow } from "./workload.ts";

export type Executor = "local" | "kubernetes";

export interface PassOptions {
  executor: Executor;
  bus: ChaosBus;
  seed: number;
  /** How long workflows are submitted and faults injected. */
  durationMs: number;
  /** How long to wait for everything to settle after the last fault. */
  settleTimeoutMs: number;
  meanFaultGapMs: number;
  maxInFlight: number;
  fanout: number;
  brokerRestart: boolean;
  say: (line: string) => void;
}

export interface PassReport {
  executor: Executor;
  bus: ChaosBus;
  seed: number;
  workflows: number;
  workflowsByStatus: Record<string, number>;
  shapes: Record<string, number>;
  tasks: number;
  runs: number;
  succeededTasks: number;
  faults: Record<string, number>;
  faultErrors: number;
  unexpectedExits: number;
  rows: InvariantRow[];
  details: string[];
  violations: number;
  settleMs: number | null;
  durationMs: number;
  /** Tasks succeeded per minute, from first submit to settled. */
  tasksPerMinute: number;
  logDir: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function runPass(o: PassOptions): Promise<PassReport> {
  const rng = new Rng(o.seed);
  const workRng = rng.fork();
  const faultRng = rng.fork();
  const hex = randomBytes(3).toString("hex");
  const prefix = `chaos-${hex}`;
  const queue = `dwop.chaos.${o.executor}.${o.bus}.${hex}`;
  const m = await migratedDatabase(`chaos_${o.executor}`);
  // The soak's own pool: no type fetch on connect, whose failure (a backend terminated while it
  // connects, which is one of the faults) postgres.js would leave as an unhandled rejection.
  const db = postgres(m.url, {
    max: 4,
    onnotice: () => {},
    fetch_types: false,
    connection: { application_name: "chaos-runner" },
  });
  const home = await mkdtemp(join(tmpdir(), `dwop-chaos-${o.executor}-`));
  // The stack's own home (storage, run folders) apart from the markers, which tasks are allowed to read
  // (DWOP_TASK_ALLOW: a folder that held the home would show runs its secrets, and is refused).
  const dwopHome = join(home, "dwop");
  // A pod sees the marker folder at its own path: under /tmp, which a task's uid can walk in any image
  // (an image's /root is 0700: a TMPDIR there left the retry shape's pods without their marker).
  const markerRoot = o.executor === "kubernetes" ? "/tmp" : tmpdir();
  const markerDir = await mkdtemp(join(markerRoot, `dwop-chaos-markers-${o.executor}-`));
  await chmod(markerDir, 0o755); // tasks run as a uid of their own
  const logDir = join(home, "logs");
  const podRoot = join(home, "pods");
  await Promise.all([logDir, podRoot].map((d) => mkdir(d, { recursive: true, mode: 0o755 })));
  const port = await freePort();
  const apiUrl = `http://127.0.0.1:${port}`;
  const token = randomBytes(16).toString("hex");
  const processes = new ProcessSet(logDir);
  o.say(`[${o.executor}] database ${m.name}, ${o.bus} queue ${queue}, home ${home}`);
  try {
    const env: Record<string, string> = {
      DATABASE_URL: m.url,
      ...(o.bus === "rabbit" ? { RABBITMQ_CONNECTION_URL: RABBIT_URL } : {}),
      DWOP_QUEUE: queue,
      DWOP_HOME: dwopHome,
      DWOP_PORT: String(port),
      DWOP_PUBLIC_URL: apiUrl,
      DWOP_STORAGE_SECRET: randomBytes(16).toString("hex"),
      DWOP_API_TOKEN: token,
      DWOP_LOG_LEVEL: "warn",
      DWOP_RETRY_BACKOFF_MS: "200",
      DWOP_CLAIM_LEASE_SECONDS: "5",
      DWOP_CLAIM_POLL_MS: "500",
      DWOP_HEARTBEAT_SECONDS: "1",
      DWOP_LOST_AFTER_SECONDS: "6",
      DWOP_METRICS_PORT: "0",
      DWOP_METRICS_HOST: "127.0.0.1",
      DWOP_CONCURRENCY: "4",
      DWOP_SHUTDOWN_GRACE_SECONDS: "2",
      // The retry shape's task reads the soak's "fix" marker: the one folder of the machine it may read.
      DWOP_TASK_ALLOW: markerDir,
    };
    let kubeControl: string | null = null;
    if (o.executor === "kubernetes") {
      const kubeconfig = join(home, "kubeconfig.json");
      const ready = await processes.start(
        {
          name: "kube-sim",
          script: "chaos/kube-sim-process.ts",
          // The marker folder: pods in containers see it read-only, as local runs do through DWOP_TASK_ALLOW.
          args: [kubeconfig, podRoot, "chaos", markerDir],
          env: {},
        },
        true,
      );
      if (!ready) throw new Error("the Kubernetes API simulator did not start");
      kubeControl = ready.split(" ")[2]!;
      Object.assign(env, {
        DWOP_EXECUTOR: "kubernetes",
        KUBECONFIG: kubeconfig,
        DWOP_NAMESPACE: "chaos",
        DWOP_KUBE_RECONCILE_SECONDS: "2",
        DWOP_KUBE_LOST_GRACE_SECONDS: "3",
        DWOP_KUBE_IMAGE_PULL_TIMEOUT_SECONDS: "20",
        DWOP_KUBE_PENDING_TIMEOUT_SECONDS: "60",
        DWOP_KUBE_LEASE_SECONDS: "3",
        DWOP_KUBE_API_QPS: "200",
        DWOP_KUBE_API_BURST: "400",
      });
    }

    // The parts as deployed: `dwop api`, `dwop claimer` and `dwop dispatcher` (the bundle, when
    // `npm run build` made it from these sources; the sources through tsx otherwise).
    const api = { name: "api", script: "bin/dwop.js", args: ["api"], env, ready: /^https?:\/\// };
    if (!(await processes.start(api, true))) {
      throw new Error(`the API did not start; see ${logDir}/api.log`);
    }
    const dispatcherIds = [0, 1].map((i) => `${prefix}-d${i}`);
    for (const i of [0, 1]) {
      await processes.start({
        name: `claimer-${i}`,
        script: "bin/dwop.js",
        args: ["claimer"],
        env: { ...env, DWOP_CLAIMER_ID: `${prefix}-c${i}` },
      });
      await processes.start({
        name: `dispatcher-${i}`,
        script: "bin/dwop.js",
        args: ["dispatcher"],
        env: { ...env, DWOP_DISPATCHER_ID: dispatcherIds[i]! },
      });
    }

    const client = new ApiClient(apiUrl, token);
    const plans = new Map<string, PlannedWorkflow>();
    const ids = new Map<string, string>();
    const started = Date.now();
    const faultsEnd = started + o.durationMs;
    const hardDeadline = faultsEnd + o.settleTimeoutMs;

    const statusOf = async (id: string): Promise<WorkflowState | null> => {
      try {
        const [row] = await db<
          { status: WorkflowState }[]
        >`select status from dwop.workflows where id = ${id}`;
        return row?.status ?? null;
      } catch {
        return null; // the database refuses connections for a moment (a fault)
      }
    };
    const waitTerminal = async (id: string): Promise<WorkflowState | null> => {
      while (Date.now() < hardDeadline) {
        const s = await statusOf(id);
        if (s && TERMINAL_WORKFLOW_STATES.includes(s)) return s;
        await sleep(500);
      }
      return null;
    };

    // One driver per workflow: submit, maybe cancel, wait for the end, maybe fix and retry from failure.
    const drive = async (plan: PlannedWorkflow) => {
      const id = await client.submit(plan.key, plan.source, `${prefix}-${plan.key}`, hardDeadline);
      ids.set(plan.key, id);
      if (plan.cancelAfterMs !== undefined) {
        await sleep(plan.cancelAfterMs);
        await client.act(id, "cancel", hardDeadline);
      }
      const end = await waitTerminal(id);
      if (plan.fixMarker && end === "failed") {
        await writeFile(plan.fixMarker, "fixed\n");
        await client.act(id, "retry", hardDeadline);
        await waitTerminal(id);
      }
    };

    const drivers: Promise<void>[] = [];
    let inFlight = 0;
    const driverErrors: string[] = [];
    const submitting = (async () => {
      for (let i = 0; Date.now() < faultsEnd - 5000; i++) {
        while (inFlight >= o.maxInFlight && Date.now() < faultsEnd) await sleep(200);
        const plan = planWorkflow(workRng, i, { markerDir, fanout: o.fanout });
        plans.set(plan.key, plan);
        inFlight++;
        drivers.push(
          drive(plan)
            .catch((err: unknown) => void driverErrors.push(`${plan.key}: ${String(err)}`))
            .finally(() => inFlight--),
        );
        await sleep(workRng.int(100, 1500));
      }
    })();

    const schedule = faultSchedule(faultRng, {
      startMs: 3000,
      endMs: o.durationMs,
      meanGapMs: o.meanFaultGapMs,
      kube: o.executor === "kubernetes",
      brokerRestart: o.brokerRestart,
      bus: o.bus,
    });
    const ctx: FaultContext = {
      processes,
      bus: o.bus,
      dbUrl: m.url,
      adminUrl: ADMIN_URL,
      dbName: m.name,
      rabbitUrl: RABBIT_URL,
      queue,
      prefix,
      // A dispatcher's run folders: on disk, or in memory when the code and inputs came inline (most).
      workerRoots: [
        join(dwopHome, "runs"),
        ...dispatcherIds.map((id) => memoryRootPath(join(dwopHome, "runs", id))),
        podRoot,
      ],
      kubeControl,
      recentMessages: async () =>
        db<{ taskId: string; attempt: number }[]>`
        select payload->>'taskId' as "taskId", (payload->>'attempt')::int as attempt
        from dwop.outbox where published_at is not null order by id desc limit 60`.catch(() => []),
    };
    const faults: Record<string, number> = {};
    let faultErrors = 0;
    let lastFaultEnd = started;
    for (const f of schedule) {
      await sleep(started + f.atMs - Date.now());
      const at = ((Date.now() - started) / 1000).toFixed(1);
      try {
        const note = await inject(f, ctx);
        faults[f.kind] = (faults[f.kind] ?? 0) + 1;
        o.say(`[${o.executor}] +${at}s ${f.kind}: ${note}`);
      } catch (err) {
        faultErrors++;
        o.say(`[${o.executor}] +${at}s ${f.kind} could not be injected: ${String(err)}`);
      }
      lastFaultEnd = Date.now();
    }
    await submitting;
    o.say(`[${o.executor}] faults over (${schedule.length}); ${plans.size} workflows submitted; settling`);
    await Promise.all(drivers);

    // Settled: every workflow ended, every outbox row published, no run open, no Job left.
    const jobsLeft = async () => {
      if (!kubeControl) return null;
      const res = await fetch(kubeControl, { method: "POST", body: JSON.stringify({ kind: "jobs" }) });
      return ((await res.json()) as { jobs: unknown[] }).jobs.length;
    };
    let settleMs: number | null = null;
    while (Date.now() < hardDeadline) {
      try {
        const [s] = await db<{ open_wf: number; open_outbox: number; open_runs: number }[]>`
        select (select count(*) from dwop.workflows where status not in ('succeeded', 'failed', 'cancelled'))::int as open_wf,
               (select count(*) from dwop.outbox where published_at is null)::int as open_outbox,
               (select count(*) from dwop.runs where status in ('starting', 'dispatched', 'running'))::int as open_runs`;
        if (s!.open_wf + s!.open_outbox + s!.open_runs === 0 && !(await jobsLeft())) {
          settleMs = Date.now() - lastFaultEnd;
          break;
        }
      } catch {
        // A connection the last fault broke; the pool reconnects.
      }
      await sleep(250);
    }
    const settledAt = Date.now();

    const verdict = await checkInvariants(db, join(dwopHome, "storage"), plans, await jobsLeft());
    if (settleMs === null) {
      verdict.rows.push({ name: "settled within the timeout", checked: 1, violations: 1 });
      verdict.details.push(`not settled ${o.settleTimeoutMs / 1000}s after the last fault`);
    }
    if (driverErrors.length > 0) {
      verdict.rows.push({
        name: "every API call answered",
        checked: plans.size,
        violations: driverErrors.length,
      });
      verdict.details.push(...driverErrors.slice(0, 10));
    }
    const [counts] = await db<{ tasks: number; runs: number; ok: number }[]>`
    select (select count(*) from dwop.tasks)::int as tasks, (select count(*) from dwop.runs)::int as runs,
           (select count(*) from dwop.tasks where status = 'succeeded')::int as ok`;
    const byStatus = await db<
      { status: string; n: number }[]
    >`select status, count(*)::int as n from dwop.workflows group by 1`;
    const shapes: Record<string, number> = {};
    for (const p of plans.values()) shapes[p.shape] = (shapes[p.shape] ?? 0) + 1;
    const violations = verdict.rows.filter((r) => !r.info).reduce((n, r) => n + r.violations, 0);

    await processes.stopAll();
    await db.end({ timeout: 5 });
    await m.close(violations === 0);
    if (violations === 0 && o.bus === "rabbit") await deleteRabbitTopology(queue).catch(() => {});
    // A process that exited on its own (a crash) is no violation, but its log is worth reading.
    if (violations === 0 && processes.unexpectedExits === 0) {
      await rm(home, { recursive: true, force: true }).catch(() => {});
      await rm(markerDir, { recursive: true, force: true }).catch(() => {});
    }
    const minutes = (settledAt - started) / 60_000;
    return {
      executor: o.executor,
      bus: o.bus,
      seed: o.seed,
      workflows: plans.size,
      workflowsByStatus: Object.fromEntries(byStatus.map((r) => [r.status, r.n])),
      shapes,
      tasks: counts!.tasks,
      runs: counts!.runs,
      succeededTasks: counts!.ok,
      faults: faults as Record<FaultKind, number>,
      faultErrors,
      unexpectedExits: processes.unexpectedExits,
      rows: verdict.rows,
      details: verdict.details,
      violations,
      settleMs,
      durationMs: settledAt - started,
      tasksPerMinute: counts!.ok / minutes,
      logDir,
    };
  } catch (err) {
    await processes.stopAll(1000);
    throw err;
  }
}
