// Node-only: runs each attempt as a local child process of the Python worker.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import type { FailureReason, RunAssignment, WorkerFailure } from "../model.ts";
import { silentLogger, type Logger } from "../log.ts";
import type { Executor, RunOutcome, StartedRun, WorkerEnv } from "./executor.ts";
import { LogTail } from "./log-tail.ts";

export interface LocalExecutorOptions {
  /** The real interpreter (see resolvePython), not the pyenv shim. */
  python: string;
  workerScript: string;
  /** Each run gets a fresh folder below this one, removed when the run ends. */
  workRoot: string;
  /** Extra variables the worker may see (PIP_* for offline installs, for example). */
  passEnv?: Record<string, string>;
  logger?: Logger;
}

interface LocalRun {
  assignment: RunAssignment;
  child: ChildProcess;
  dir: string;
  tail: LogTail;
  timedOut: boolean;
  killed: boolean;
  timer: ReturnType<typeof setTimeout> | null;
}

/** Variables of the dispatcher's own environment a task may see; nothing that holds a credential. */
const SAFE_ENV = ["PATH", "LANG", "LC_ALL", "TZ", "HOME"];

/**
 * Runs the worker as a child process in its own process group, so a timeout or a cancellation kills
 * the task's whole tree. The worker asks the kernel to kill it if the dispatcher dies, so a task never
 * outlives the dispatcher that would record it.
 */
export class LocalExecutor implements Executor {
  readonly kind = "local" as const;
  private readonly runs = new Map<string, LocalRun>();
  private readonly listeners: ((run: RunAssignment, outcome: RunOutcome) => void)[] = [];
  private readonly log: Logger;

  constructor(private readonly options: LocalExecutorOptions) {
    this.log = (options.logger ?? silentLogger).child({ component: "local-executor" });
  }

  async start(assignment: RunAssignment, env: WorkerEnv): Promise<StartedRun> {
    const existing = this.runs.get(assignment.runId);
    if (existing) return { jobName: `pid-${existing.child.pid}` };

    const dir = join(this.options.workRoot, `run-${assignment.runId}`);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const child = spawn(this.options.python, [this.options.workerScript], {
      cwd: dir,
      env: this.workerEnv(env, dir),
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const run: LocalRun = { assignment, child, dir, tail: new LogTail(100), timedOut: false, killed: false, timer: null };
    this.runs.set(assignment.runId, run);
    child.stdout?.on("data", (chunk: Buffer) => run.tail.push(chunk));
    child.stderr?.on("data", (chunk: Buffer) => run.tail.push(chunk));

    const spawned = new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", reject);
    });
    child.once("close", (code, signal) => void this.finish(run, code, signal));
    try {
      await spawned;
    } catch (err) {
      this.runs.delete(assignment.runId);
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    const timeout = assignment.options.timeoutSeconds;
    if (timeout) {
      run.timer = setTimeout(() => {
        run.timedOut = true;
        this.killGroup(run);
      }, timeout * 1000);
    }
    return { jobName: `pid-${child.pid}` };
  }

  private workerEnv(env: WorkerEnv, dir: string): Record<string, string> {
    const inherited: Record<string, string> = {};
    for (const key of SAFE_ENV) {
      const value = process.env[key];
      if (value !== undefined) inherited[key] = value;
    }
    return {
      ...inherited,
      ...this.options.passEnv,
      ...(env as unknown as Record<string, string>),
      HOME: dir,
      DWOP_RESULT_FILE: join(dir, ".dwop-result.json"),
      DWOP_DIE_WITH_PARENT: "1",
      PYTHONUNBUFFERED: "1",
    };
  }

  async kill(runId: string): Promise<boolean> {
    const run = this.runs.get(runId);
    if (!run || run.killed) return false;
    run.killed = true;
    this.killGroup(run);
    return true;
  }

  private killGroup(run: LocalRun): void {
    const pid = run.child.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }

  active(): string[] {
    return [...this.runs.keys()];
  }

  onFinished(listener: (run: RunAssignment, outcome: RunOutcome) => void): void {
    this.listeners.push(listener);
  }

  private async finish(run: LocalRun, code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    if (run.timer) clearTimeout(run.timer);
    const outcome = await this.outcome(run, code, signal);
    // Decided before the folder is removed: a kill() from now on finds no run and reports false.
    this.runs.delete(run.assignment.runId);
    const killed = run.killed;
    await rm(run.dir, { recursive: true, force: true }).catch(() => {});
    if (killed) return;
    for (const listener of this.listeners) listener(run.assignment, outcome);
  }

  private async outcome(run: LocalRun, code: number | null, signal: NodeJS.Signals | null): Promise<RunOutcome> {
    const logTail = run.tail.text();
    if (run.timedOut) {
      const seconds = run.assignment.options.timeoutSeconds;
      return failed("timeout", `timed out after ${seconds}s (DeadlineExceeded)`, null, logTail, false);
    }
    if (code === 0) return { kind: "succeeded" };
    const reported = await readFailure(join(run.dir, ".dwop-result.json"));
    if (reported) {
      const reason: FailureReason = reported.type === "task_failed" ? "exit_code" : "worker_error";
      return failed(reason, reported.message, reported.exitCode ?? code, logTail, reported.nonRetryable);
    }
    const message = signal ? `worker killed by ${signal}` : `worker exited with code ${code}`;
    this.log.warn({ runId: run.assignment.runId, code, signal }, "worker ended without a result file");
    return failed("worker_error", message, code, logTail, false);
  }

  async close(): Promise<void> {
    for (const run of this.runs.values()) {
      run.killed = true;
      this.killGroup(run);
    }
  }
}

function failed(
  reason: FailureReason,
  message: string,
  exitCode: number | null,
  logTail: string,
  nonRetryable: boolean,
): RunOutcome {
  return { kind: "failed", reason, message, exitCode, logTail, nonRetryable };
}

async function readFailure(path: string): Promise<WorkerFailure | null> {
  try {
    const parsed = JSON.parse(await readFile(path, "utf8")) as Partial<WorkerFailure>;
    if (typeof parsed.type !== "string" || typeof parsed.message !== "string") return null;
    return {
      type: parsed.type,
      message: parsed.message,
      exitCode: typeof parsed.exitCode === "number" ? parsed.exitCode : null,
      nonRetryable: parsed.nonRetryable === true,
    };
  } catch {
    return null;
  }
}
