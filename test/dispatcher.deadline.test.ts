// Every attempt has a deadline (the task's @timeout, else DWOP_DEFAULT_TASK_TIMEOUT_SECONDS), which both
// executors see in the assignment, and the worker's signed URLs expire a small margin after it.
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_TASK_TIMEOUT_SECONDS } from "../dispatcher/dispatcher.ts";
import { signWorkerEnv } from "../dispatcher/worker-env.ts";
import { loadConfig } from "../shared/config.ts";
import type { Executor, RunOutcome, StartedRun, WorkerEnv } from "../shared/executors/executor.ts";
import { buildJob } from "../shared/executors/kubernetes/job-spec.ts";
import type { RunAssignment } from "../shared/model.ts";
import { startEngine, type Engine } from "./support/engine.ts";

/** The margin test/support/engine.ts gives its dispatchers (signedUrlTtlSeconds). */
const MARGIN = 300;

/** Takes every attempt, keeps what it was given, and reports success at once (a process executor). */
class RecordingExecutor implements Executor {
  readonly kind = "local" as const;
  readonly started: { run: RunAssignment; env: WorkerEnv; at: number }[] = [];
  private readonly listeners: ((run: RunAssignment, outcome: RunOutcome) => void)[] = [];

  constructor(readonly runsIn: "process" | "cluster") {}

  async start(run: RunAssignment, env: WorkerEnv): Promise<StartedRun> {
    this.started.push({ run, env, at: Math.floor(Date.now() / 1000) });
    if (this.runsIn === "process") {
      setImmediate(() => this.listeners.forEach((l) => l(run, { kind: "succeeded" })));
    }
    return { jobName: `recorded-${run.runId}` };
  }

  async kill(): Promise<boolean> {
    return false;
  }

  active(): string[] {
    return [];
  }

  onFinished(listener: (run: RunAssignment, outcome: RunOutcome) => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {}
}

/** Every signed URL a worker was given, with the lifetime it was signed for. */
function lifetimes(env: WorkerEnv, signedAt: number): number[] {
  const inputs = (JSON.parse(env.DWOP_INPUTS) as { url: string }[]).map((i) => i.url);
  const urls = [env.DWOP_CODE_URL!, env.DWOP_OUTPUT_URL, env.DWOP_LOG_URL, ...inputs];
  return urls.map((u) => Number(new URL(u).searchParams.get("expires")) - signedAt);
}

let engine: Engine | null = null;
afterEach(async (ctx) => {
  await engine?.stop(ctx.task.result?.state === "pass");
  engine = null;
});

describe("an attempt's deadline", () => {
  it("is finite by default, and the signed URLs' margin after it is small", () => {
    const config = loadConfig({});
    expect(config.DWOP_DEFAULT_TASK_TIMEOUT_SECONDS).toBe(DEFAULT_TASK_TIMEOUT_SECONDS);
    expect(DEFAULT_TASK_TIMEOUT_SECONDS).toBe(3600);
    expect(config.DWOP_SIGNED_URL_TTL_SECONDS).toBe(300);
    expect(loadConfig({ DWOP_DEFAULT_TASK_TIMEOUT_SECONDS: "600" }).DWOP_DEFAULT_TASK_TIMEOUT_SECONDS).toBe(
      600,
    );
    expect(() => loadConfig({ DWOP_DEFAULT_TASK_TIMEOUT_SECONDS: "0" })).toThrow(/DEFAULT_TASK_TIMEOUT/);
  });

  it("is the task's @timeout, else the default; the worker's URLs live for it plus the margin", async () => {
    const recorder = new RecordingExecutor("process");
    engine = await startEngine("deadline", { bus: "pgboss", executor: () => recorder });
    const id = await engine.submit(
      "@timeout(90)\nfun bounded():\n    pass\n\nfun unbounded(x:bounded):\n    pass\n",
    );
    expect((await engine.waitFor(id)).status).toBe("succeeded");

    const bounded = recorder.started.find((s) => s.run.taskName === "bounded")!;
    const unbounded = recorder.started.find((s) => s.run.taskName === "unbounded")!;
    expect(bounded.run.options.timeoutSeconds).toBe(90);
    expect(unbounded.run.options.timeoutSeconds).toBe(DEFAULT_TASK_TIMEOUT_SECONDS);
    // Signed a moment before start() was called: within a second or two of the exact lifetime.
    for (const t of lifetimes(bounded.env, bounded.at)) expect(t).toBeGreaterThanOrEqual(90 + MARGIN - 2);
    for (const t of lifetimes(bounded.env, bounded.at)) expect(t).toBeLessThanOrEqual(90 + MARGIN);
    const unboundedLifetimes = lifetimes(unbounded.env, unbounded.at);
    expect(unboundedLifetimes).toHaveLength(4); // code, output, log and the input from `bounded`
    for (const t of unboundedLifetimes) {
      expect(t).toBeGreaterThanOrEqual(DEFAULT_TASK_TIMEOUT_SECONDS + MARGIN - 2);
      expect(t).toBeLessThanOrEqual(DEFAULT_TASK_TIMEOUT_SECONDS + MARGIN);
    }
  }, 60_000);

  it("reaches a cluster executor too, whose Job then carries it as activeDeadlineSeconds", async () => {
    const recorder = new RecordingExecutor("cluster");
    engine = await startEngine("deadline_kube", { bus: "pgboss", executor: () => recorder });
    await engine.submit("fun unbounded():\n    pass\n");
    for (let i = 0; i < 400 && recorder.started.length === 0; i++)
      await new Promise((r) => setTimeout(r, 50));
    const { run, env } = recorder.started[0]!;
    expect(run.options.timeoutSeconds).toBe(DEFAULT_TASK_TIMEOUT_SECONDS);
    const job = buildJob(run, env, {
      image: "dwop-pyworker:dev",
      imagePullPolicy: "IfNotPresent",
      ttlSecondsAfterFinished: 3600,
      runAsUser: 10001,
      defaultCpu: "500m",
      defaultMemory: "512Mi",
      volumeSizeLimit: "1Gi",
    });
    expect(job.spec?.activeDeadlineSeconds).toBe(DEFAULT_TASK_TIMEOUT_SECONDS);
  }, 60_000);

  it("is required to sign a worker's URLs", async () => {
    const run = { runId: "1", options: { timeoutSeconds: null } } as unknown as RunAssignment;
    const storage = { signUrl: async () => "unused" } as never;
    await expect(signWorkerEnv(storage, run, MARGIN)).rejects.toThrow(/no deadline/);
  });
});
