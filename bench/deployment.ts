// DWOP as deployed, for the benchmarks: `dwop dev` (one process), or `dwop api`, `dwop claimer` and one or
// more dispatchers, each its own process, on a fresh database and queue.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { migratedDatabase, type MigratedDatabase } from "../test/support/migrated.ts";
import { deleteRabbitTopology, RABBIT_URL } from "../test/support/rabbit.ts";
import { freePort } from "../test/support/dev-process.ts";
import { childrenOf, cpuSeconds, requireFreshBundle, sum } from "./stats.ts";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** The node arguments that start `dwop ARGS` from this checkout (its bundle when fresh, see bin/dwop.js). */
export const dwop = (...args: string[]) => [join(ROOT, "bin/dwop.js"), ...args];

export interface Cpu {
  dwop: number;
  python: number;
  postgres: number;
}

export interface DeployOptions {
  /** "dev": `dwop dev`; "deployed": `dwop api`, `dwop claimer` and the dispatchers as processes of their own. */
  mode: "dev" | "deployed";
  /** The processes' DWOP_HOME is a folder of it named for the mode. */
  home: string;
  bus: "rabbit" | "pgboss";
  sandbox?: string;
  /** How many dispatcher processes ("deployed"; 1 when not given). */
  dispatchers?: number;
  /** The node arguments of a dispatcher ("deployed"): `dwop dispatcher` when not given. */
  dispatcher?: string[];
  /** Each process writes a V8 CPU profile into this folder when it stops. */
  cpuProf?: string;
  /** More environment for every process. */
  env?: Record<string, string>;
}

/** The orchestration benches' dispatchers: 64 runs a dispatcher at once (its bus prefetch), claims of 500. */
export const NOOP_SETTINGS = { concurrency: 64, claimBatch: 500 };

/**
 * `dwop api`, `dwop claimer` and `dispatchers` dispatcher processes whose executor reports each run a
 * success at once (bench/noop-dispatcher.ts), with NOOP_SETTINGS: the orchestration alone, as deployed.
 */
export function deployNoop(
  o: Pick<DeployOptions, "home" | "bus" | "cpuProf"> & { dispatchers: number },
): Promise<Deployment> {
  return deploy({
    ...o,
    mode: "deployed",
    sandbox: "off",
    dispatcher: ["--import", "tsx", join(ROOT, "bench/noop-dispatcher.ts")],
    env: {
      DWOP_CONCURRENCY: String(NOOP_SETTINGS.concurrency),
      DWOP_CLAIM_BATCH: String(NOOP_SETTINGS.claimBatch),
    },
  });
}

/** One DWOP deployment of processes on a fresh database and queue. */
export class Deployment {
  private readonly children: { name: string; child: ChildProcess }[] = [];
  url = "";
  readonly token = randomBytes(16).toString("hex");

  constructor(
    readonly m: MigratedDatabase,
    readonly queue: string,
    private readonly env: Record<string, string>,
    private readonly cpuProf?: string,
  ) {}

  /**
   * Starts node with argv as the process `name`; resolves when its stderr (or stdout) shows `ready` (at
   * once without one).
   */
  start(
    name: string,
    argv: string[],
    ready: RegExp | null,
    extra: Record<string, string> = {},
  ): Promise<string> {
    const nodeArgs = this.cpuProf ? ["--cpu-prof", `--cpu-prof-dir=${this.cpuProf}`] : [];
    const child = spawn(process.execPath, [...nodeArgs, ...argv], {
      cwd: ROOT,
      env: { ...process.env, ...this.env, ...extra },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.children.push({ name, child });
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
      child.once("exit", (code) => reject(new Error(`${argv.join(" ")} exited (${code}):\n${seen}`)));
    });
  }

  /** POST /workflows with the source; resolves with the workflow's id. */
  async submit(source: string, name = "bench"): Promise<string> {
    const res = await fetch(`${this.url}/workflows`, {
      method: "POST",
      headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json" },
      body: JSON.stringify({ workflow: source, name }),
    });
    if (res.status !== 201) throw new Error(`submit: HTTP ${res.status} ${await res.text()}`);
    return ((await res.json()) as { id: string }).id;
  }

  /**
   * Submits the source and resolves with the seconds from the request to the workflow's end (its NOTIFY),
   * and the wall clock (ms since the epoch, as the database's timestamps) at the request and at the NOTIFY.
   */
  async runTimed(
    source: string,
    name = "bench",
    timeoutMs = 600_000,
  ): Promise<{ id: string; seconds: number; submittedAt: number; seenAt: number }> {
    let done: (id: string) => void = () => {};
    const listener = await this.m.db.listen("dwop_workflow_done", (id) => done(id));
    try {
      const t0 = performance.now();
      const submittedAt = Date.now();
      const finished = new Promise<string>((resolve) => (done = resolve));
      const id = await this.submit(source, name);
      const timeout = new Promise<null>((r) => setTimeout(() => r(null), timeoutMs).unref());
      if ((await Promise.race([finished, timeout])) !== id) throw new Error(`workflow ${id} did not end`);
      const seconds = (performance.now() - t0) / 1000;
      const seenAt = Date.now();
      const [w] = await this.m.db<{ status: string }[]>`select status from dwop.workflows where id = ${id}`;
      if (w?.status !== "succeeded") throw new Error(`workflow ${id} ended ${w?.status}`);
      return { id, seconds, submittedAt, seenAt };
    } finally {
      await listener.unlisten();
    }
  }

  /**
   * CPU seconds so far: of its processes; of their Python children (the fork server, with the runs it has
   * reaped: workers, the sandboxes' processes, the bodies; not slirp4netns); of its database's backends.
   */
  async cpu(): Promise<Cpu> {
    const pids = this.children.map((c) => c.child.pid!);
    const backends = await this.m.db<{ pid: number }[]>`
      select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`;
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

  /** CPU seconds so far of each of its processes by name (`api`, `claimer`, `dispatcher 0`, ...). */
  cpuByProcess(): Map<string, number> {
    return new Map(this.children.map(({ name, child }) => [name, cpuSeconds(child.pid!)]));
  }

  /** Stops its processes (SIGTERM, then SIGKILL after 15 s), drops its database and its queue. */
  async stop(bus: "rabbit" | "pgboss"): Promise<void> {
    await Promise.all(
      this.children.map(
        ({ child: c }) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once("exit", () => resolve());
            c.kill("SIGTERM");
            setTimeout(() => c.kill("SIGKILL"), 15_000).unref();
          }),
      ),
    );
    await this.m.close(true);
    if (bus === "rabbit") await deleteRabbitTopology(this.queue).catch(() => {});
  }
}

/** Starts a deployment (see DeployOptions); resolves once it takes work. */
export async function deploy(o: DeployOptions): Promise<Deployment> {
  requireFreshBundle();
  const m = await migratedDatabase(`bench_${o.mode}`);
  const port = await freePort();
  const queue = `dwop.bench.${o.mode}.${randomBytes(3).toString("hex")}`;
  const env: Record<string, string> = {
    DATABASE_URL: m.url,
    ...(o.bus === "rabbit" ? { RABBITMQ_CONNECTION_URL: RABBIT_URL, DWOP_QUEUE: queue } : {}),
    DWOP_HOME: join(o.home, o.mode),
    DWOP_PORT: String(port),
    DWOP_PUBLIC_URL: `http://127.0.0.1:${port}`,
    DWOP_STORAGE_SECRET: randomBytes(16).toString("hex"),
    DWOP_TASK_SANDBOX: o.sandbox ?? "auto",
    DWOP_LOG_LEVEL: "warn",
    DWOP_METRICS_PORT: "0",
    ...o.env,
  };
  const d = new Deployment(m, queue, env, o.cpuProf);
  env.DWOP_API_TOKEN = d.token;
  if (o.mode === "dev") {
    await d.start("dev", dwop("dev"), /listening on (http\S+)/);
  } else {
    await d.start("api", dwop("api"), /^(http\S+)$/m);
    // Claimer and dispatchers print nothing at warn level: they are up once each has its heartbeat.
    await d.start("claimer", dwop("claimer"), null, { DWOP_CLAIMER_ID: `${queue}-c` });
    const dispatchers = o.dispatchers ?? 1;
    for (let i = 0; i < dispatchers; i++) {
      await d.start(`dispatcher ${i}`, o.dispatcher ?? dwop("dispatcher"), null, {
        DWOP_DISPATCHER_ID: `${queue}-d${i}`,
      });
    }
    for (let i = 0; ; i++) {
      const [row] = await m.db<{ n: number }[]>`select count(*)::int as n from dwop.dispatchers`;
      if (row!.n >= dispatchers) break;
      if (i > 600) throw new Error("the dispatchers did not start");
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  d.url = env.DWOP_PUBLIC_URL!;
  return d;
}
