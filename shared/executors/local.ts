// Node-only: runs each attempt as a fresh local process of the Python worker, forked by the fork server.
import {
  chmodSync,
  closeSync,
  constants,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readSync,
} from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { ConfigError, configSchema, type Config } from "../config.ts";
import type { FailureReason, RunAssignment, WorkerFailure } from "../model.ts";
import { silentLogger, type Logger } from "../log.ts";
import type { Executor, RunOutcome, RunResult, StartedRun, WorkerEnv } from "./executor.ts";
import { parseWorkerFailure, reasonForWorkerFailure } from "./worker-failure.ts";
import {
  ForkServer,
  type ForkedExit,
  type RunLimits,
  type SandboxMode,
  type SandboxStatus,
} from "./fork-server.ts";
import { parseCpu, parseMemory } from "../quantity.ts";
import { readLogTail } from "./log-tail.ts";
import { ensureMemoryRoot, memoryRoot, ownMemoryRoots, rmdirQuietly } from "./memory-root.ts";
import { resolvePython, WORKER_SCRIPT } from "./python.ts";
import { removeRunFolder, runFolderName, sweepRunFolders } from "./run-folders.ts";
import { makeFoldersSync, makePrivateFolder } from "../folders.ts";
import { shownSecret } from "./shown-folders.ts";

export interface LocalExecutorOptions {
  /** The real interpreter (see resolvePython), not the pyenv shim. */
  python: string;
  workerScript: string;
  /** Each run gets a fresh folder below this one (made 0700), removed when the run ends. */
  workRoot: string;
  /**
   * Where a run whose folder holds only small files keeps it instead (inMemory): a 0700 folder of a tmpfs.
   * Not given: memoryRoot(workRoot), the work root's folder in /dev/shm; null: every run's folder is on disk.
   */
  memoryRoot?: string | null;
  /** Extra variables the worker may see (PIP_* for offline installs, for example). */
  passEnv?: Record<string, string>;
  /** The task sandbox (see worker/dwop_sandbox.py); "auto" when not given. */
  sandbox?: SandboxMode;
  /**
   * Folders (absolute) a sandboxed task may read besides the system's and Python's. A PIP_FIND_LINKS
   * folder of passEnv is added by itself.
   */
  allow?: string[];
  /** What sandboxed runs reach (see SandboxSettings); "internet" when not given. */
  network?: "internet" | "none";
  /** What a run may use when its task does not say (@memory), in the sandbox. */
  limits?: Partial<DefaultLimits>;
  logger?: Logger;
}

/** The limits of a sandboxed run whose task sets none: bytes, and processes (threads count too). */
export interface DefaultLimits {
  memory: number;
  disk: number;
  processes: number;
}

interface LocalRun {
  assignment: RunAssignment;
  dir: string;
  /** The largest output and log the worker leaves in `dir` for the dispatcher to store (0: none). */
  inlineResultBytes: number;
  /** Resolves to the worker's pid, which is also its process group. */
  started: Promise<number>;
  pid: number | null;
  timedOut: boolean;
  killed: boolean;
  timer: ReturnType<typeof setTimeout> | null;
  /** Once its worker is forked: settles when its end is handled and its folder removed (finish). */
  ended: Promise<void> | null;
}

/** Variables of the dispatcher's own environment a task may see; nothing that holds a credential. */
const SAFE_ENV = ["PATH", "LANG", "LC_ALL", "TZ", "HOME"];
/**
 * Where a worker leaves its output and log for the dispatcher to store (WorkerEnv.DWOP_INLINE_RESULT_BYTES):
 * a line "<output bytes> <log bytes>", then the output, then the log.
 */
const OUTPUT_AND_LOG_FILE = ".dwop-output-and-log";
/** Where the fork server sends the worker's stdout and stderr, in the run's folder. */
const LOG_FILE = ".dwop-worker.log";
const RESULT_FILE = ".dwop-result.json";
/** The run's own temporary folder (TMPDIR), inside its folder: removed with it. */
const TMP_DIR = ".tmp";
const LOG_TAIL_LINES = 100;
/** The largest object a run gets in its env file rather than by URL (Executor.inlineBytes). */
const INLINE_OBJECT_BYTES = 64 * 1024;

/** What a local executor is, known before one has started (a dispatcher registers as one meanwhile). */
export const LOCAL_EXECUTOR = { kind: "local", runsIn: "process" } as const satisfies Pick<
  Executor,
  "kind" | "runsIn"
>;

/**
 * Runs each attempt as a fresh worker process in its own process group, so a timeout or a cancellation
 * kills the task's whole tree. The processes are forked by one long-lived fork server, which has paid
 * for Python's start once. The server dies with the dispatcher and each worker with the server, so a
 * task never outlives the dispatcher that would record it.
 */
export class LocalExecutor implements Executor {
  readonly kind = LOCAL_EXECUTOR.kind;
  readonly runsIn = LOCAL_EXECUTOR.runsIn;
  /** The env file takes them (see WorkerEnv.DWOP_CODE): a run's GETs of its small code and inputs are gone. */
  readonly inlineBytes = INLINE_OBJECT_BYTES;
  private readonly runs = new Map<string, LocalRun>();
  private readonly listeners: ((run: RunAssignment, outcome: RunOutcome) => void)[] = [];
  private readonly log: Logger;
  private readonly server: ForkServer;
  /** A run's limits where its task sets none: the options', else the configuration's defaults. */
  private readonly defaults: DefaultLimits;
  private workRootReady: Promise<void> | null = null;
  private readonly memoryRoot: string | null;

  constructor(private readonly options: LocalExecutorOptions) {
    this.log = (options.logger ?? silentLogger).child({ component: "local-executor" });
    this.defaults = { ...taskLimits(configSchema.parse({})), ...options.limits };
    this.memoryRoot = options.memoryRoot === undefined ? memoryRoot(options.workRoot) : options.memoryRoot;
    this.server = new ForkServer({
      python: options.python,
      workerScript: options.workerScript,
      // What every run gets that Python reads at start; HOME has no user site-packages, as a run's has not.
      env: { ...this.baseEnv(), HOME: resolve(options.workRoot) },
      sandbox: {
        mode: options.sandbox ?? "auto",
        allow: allowed(options),
        network: options.network ?? "internet",
        rootTemplate: rootTemplate(options.workRoot),
      },
      logger: options.logger,
    });
    this.server.warm();
  }

  /**
   * Whether runs start in the sandbox; fails when it is required and cannot be had. Call it at start, to
   * say so (and to stop there) before the first task.
   */
  async sandbox(): Promise<SandboxStatus> {
    const status = await this.server.sandbox();
    if (status.mode === "off" && this.options.sandbox === "required") {
      throw new Error(
        `DWOP_TASK_SANDBOX=required, but the task sandbox cannot be set up here: ${status.why}`,
      );
    }
    return status;
  }

  async start(assignment: RunAssignment, env: WorkerEnv): Promise<StartedRun> {
    const existing = this.runs.get(assignment.runId);
    if (existing) return { jobName: `pid-${await existing.started}` };

    const run: LocalRun = {
      assignment,
      dir: "", // launch() picks it
      inlineResultBytes: Number(env.DWOP_INLINE_RESULT_BYTES ?? 0),
      started: Promise.resolve(0), // replaced just below by the launch itself
      pid: null,
      timedOut: false,
      killed: false,
      timer: null,
      ended: null,
    };
    run.started = this.launch(run, env);
    this.runs.set(assignment.runId, run);
    try {
      return { jobName: `pid-${await run.started}` };
    } catch (err) {
      this.runs.delete(assignment.runId);
      if (run.dir) await rm(run.dir, { recursive: true, force: true });
      throw err;
    }
  }

  /**
   * Whether a sandboxed run's folder goes in memory: it holds small files only (the env file, the worker's
   * log, its result), as the body writes in a tmpfs of its own (the sandbox's /work and /tmp), when the code
   * and every input came in the env file (inline: nothing is downloaded into the folder). A run's folder on
   * disk is a few inodes made and freed, which some file systems pay dearly for (docs/configuration.md,
   * DWOP_HOME). The memory root is made again when it is gone (removed as empty by another process of this
   * user's, or by logind at the user's last logout), and not used when another user made it first.
   */
  private inMemory(inline: boolean): boolean {
    return inline && this.memoryRoot !== null && ensureMemoryRoot(this.memoryRoot);
  }

  /** Makes the work root 0700, once (again after a failure). */
  private prepareWorkRoot(): Promise<void> {
    const root = this.options.workRoot;
    this.workRootReady ??= makePrivateFolder(root).catch((err: unknown) => {
      this.workRootReady = null;
      throw err;
    });
    return this.workRootReady;
  }

  private async launch(run: LocalRun, env: WorkerEnv): Promise<number> {
    // The work root is 0700: no other user of the machine enters it. The run's folder is 0755 below it, so
    // the body, which runs as a uid of its own in the sandbox, can read what the worker downloaded there;
    // no other run sees it (the sandbox shows each run its own folder only).
    await this.prepareWorkRoot();
    // In the sandbox the body's TMPDIR is its own /tmp (a tmpfs of its disk limit): the folder's .tmp is
    // made only for a run outside it, one file system entry less on each sandboxed run's start.
    const sandboxed = (await this.server.sandbox()).mode === "namespaces";
    const inline = sandboxed && filesInline(env);
    // Unguessable (runFolderName), in memory when it holds small files only.
    const name = runFolderName(run.assignment.runId);
    let inMemory = this.inMemory(inline);
    run.dir = resolve(inMemory ? this.memoryRoot! : this.options.workRoot, name);
    // Synchronous: a few microseconds each on a local disk, where each await of fs/promises is a trip
    // through libuv's thread pool and back (~0.1-0.3 ms apiece on the path of every run's start).
    try {
      mkdirSync(run.dir, { mode: 0o755 });
    } catch (err) {
      if (!inMemory) throw err;
      // The memory root went since inMemory() made sure of it (another process of this user's removed it
      // as empty): on disk then.
      inMemory = false;
      run.dir = resolve(this.options.workRoot, name);
      mkdirSync(run.dir, { mode: 0o755 });
    }
    chmodSync(run.dir, 0o755);
    if (!sandboxed) mkdirSync(join(run.dir, TMP_DIR), { mode: 0o755 });
    const limits = runLimits(run.assignment, this.defaults);
    const worker = await this.server.fork(
      run.assignment.runId,
      run.dir,
      this.workerEnv(env, run.dir, sandboxed, inMemory),
      limits,
      inline,
    );
    run.pid = worker.pid;
    run.ended = worker.exited
      .then((exit) => this.finish(run, exit))
      .catch((err: unknown) =>
        this.log.error({ err, runId: run.assignment.runId }, "could not report a run's end"),
      );
    if (run.killed) {
      this.killGroup(run); // kill() came while the fork was on its way
    } else if (run.assignment.options.timeoutSeconds) {
      run.timer = setTimeout(() => {
        run.timedOut = true;
        this.killGroup(run);
      }, run.assignment.options.timeoutSeconds * 1000);
    }
    return worker.pid;
  }

  private baseEnv(): Record<string, string> {
    const inherited: Record<string, string> = {};
    for (const key of SAFE_ENV) {
      const value = process.env[key];
      if (value !== undefined) inherited[key] = value;
    }
    return { ...inherited, ...this.options.passEnv, DWOP_DIE_WITH_PARENT: "1", PYTHONUNBUFFERED: "1" };
  }

  private workerEnv(
    env: WorkerEnv,
    dir: string,
    sandboxed: boolean,
    inMemory: boolean,
  ): Record<string, string> {
    return {
      ...this.baseEnv(),
      ...(env as unknown as Record<string, string>),
      HOME: dir,
      // tempfile and most tools put their files here, in the run's own folder, not in the shared /tmp
      // (in the sandbox, the body's TMPDIR is its own /tmp).
      ...(sandboxed ? {} : { TMPDIR: join(dir, TMP_DIR) }),
      DWOP_RESULT_FILE: join(dir, RESULT_FILE),
      // A folder in memory keeps no large file: an output or log that outgrows memory goes to the disk's.
      ...(inMemory ? { DWOP_SPILL_FOLDER: resolve(this.options.workRoot) } : {}),
      DWOP_DIE_WITH_PARENT: "1",
      PYTHONUNBUFFERED: "1",
    };
  }

  /**
   * Removes the run folders that processes killed mid-run left in this executor's work root and memory
   * root, and in this user's other memory roots beside it (sweepRunFolders), which go too once empty: the
   * home of one may have been deleted since, and with it every process that would sweep it. Returns how
   * many run folders it removed.
   */
  async sweep(): Promise<number> {
    const own = this.memoryRoot;
    const others = own ? ownMemoryRoots(dirname(own)).filter((root) => root !== own) : [];
    const roots = [this.options.workRoot, ...(own ? [own] : []), ...others];
    const counts = await Promise.all(roots.map((root) => sweepRunFolders(root)));
    for (const root of others) rmdirQuietly(root);
    return counts.reduce((a, b) => a + b, 0);
  }

  async kill(runId: string): Promise<boolean> {
    const run = this.runs.get(runId);
    if (!run || run.killed) return false;
    run.killed = true;
    this.killGroup(run);
    return true;
  }

  private killGroup(run: LocalRun): void {
    if (run.pid === null) return; // launch() kills it once the pid is known
    try {
      process.kill(-run.pid, "SIGKILL");
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

  private async finish(run: LocalRun, exit: ForkedExit): Promise<void> {
    if (run.timer) clearTimeout(run.timer);
    const outcome = await this.outcome(run, exit);
    // From here on a kill() finds no run and reports false.
    this.runs.delete(run.assignment.runId);
    // Reported before the folder is removed, which the next task need not wait for.
    if (!run.killed) for (const listener of this.listeners) listener(run.assignment, outcome);
    await removeRunFolder(run.dir);
  }

  private async outcome(run: LocalRun, exit: ForkedExit): Promise<RunOutcome> {
    if (exit.code === 0 && !run.timedOut) {
      const result = readResult(run.dir, run.inlineResultBytes);
      return result ? { kind: "succeeded", result } : { kind: "succeeded", uploaded: true };
    }
    const logTail = await readLogTail(join(run.dir, LOG_FILE), LOG_TAIL_LINES);
    if (run.timedOut) {
      const seconds = run.assignment.options.timeoutSeconds;
      return failed("timeout", `timed out after ${seconds}s (DeadlineExceeded)`, null, logTail, false);
    }
    if (exit.serverDied) {
      return failed("lost", "the fork server died while the run was in flight", null, logTail, false);
    }
    const reported = await readFailure(join(run.dir, RESULT_FILE));
    if (reported) {
      return failed(
        reasonForWorkerFailure(reported.type),
        reported.message,
        reported.exitCode ?? exit.code,
        logTail,
        reported.nonRetryable,
      );
    }
    this.log.warn({ runId: run.assignment.runId, ...exit }, "worker ended without a result file");
    // Killed from outside (the kernel's OOM killer, an operator): the task did nothing wrong, so the
    // attempt is an infrastructure loss, as an evicted pod is, and spends no retry of the task's own.
    if (exit.signal) return failed("lost", `worker killed by ${exit.signal}`, null, logTail, false);
    return failed("worker_error", `worker exited with code ${exit.code}`, exit.code, logTail, false);
  }

  async close(): Promise<void> {
    const killed = [...this.runs.values()];
    for (const run of killed) {
      run.killed = true;
      this.killGroup(run);
    }
    await this.server.close();
    // Their folders go before close() returns: one in memory would stay until a later start's sweep, and
    // a process stops right after this (Ctrl-C's fast stop left them in /dev/shm).
    await Promise.allSettled(
      killed.map(async (run) => {
        await run.started.catch(() => {}); // a fork on its way when the server closed ends here
        if (run.ended)
          await run.ended; // finish() removes the folder
        else if (run.dir) await rm(run.dir, { recursive: true, force: true });
      }),
    );
    // Empty unless another process of the same work root has runs in it: then it stays.
    if (this.memoryRoot) rmdirQuietly(this.memoryRoot);
  }
}

/**
 * Says at start whether tasks run in the sandbox, with why not when they do not; throws (so the process
 * stops before its first task) when DWOP_TASK_SANDBOX=required cannot be met.
 */
async function announceSandbox(executor: LocalExecutor, log: Logger): Promise<void> {
  const status = await executor.sandbox();
  if (status.mode === "namespaces") {
    log.info(
      { sandbox: status.mode, network: status.network },
      "task sandbox: each run's body in its own namespaces and root",
    );
    if (status.networkWhy)
      log.warn({ why: status.networkWhy }, "tasks get no network (DWOP_TASK_NETWORK=internet)");
  } else if (status.why)
    log.warn({ why: status.why }, "task sandbox unavailable: tasks see what this user can");
  else log.warn({ sandbox: "off" }, "task sandbox off (DWOP_TASK_SANDBOX=off): tasks see what this user can");
}

/**
 * A local executor for `config`, its runs' folders under `workRoot`: its interpreter asked of `python3`
 * (unless DWOP_PYTHON is set), its fork server started and its sandbox said (announceSandbox), closed again
 * when that fails. A process that runs one (a dispatcher, `dwop run`, `dwop dev`) calls this first and
 * awaits it last, so that Python's start goes beside the database's.
 */
export async function startLocalExecutor(
  config: Pick<
    Config,
    | "DWOP_HOME"
    | "DWOP_TASK_SANDBOX"
    | "DWOP_TASK_ALLOW"
    | "DWOP_TASK_NETWORK"
    | "DWOP_TASK_MEMORY"
    | "DWOP_TASK_DISK"
    | "DWOP_TASK_PROCESSES"
  >,
  workRoot: string,
  logger: Logger,
): Promise<LocalExecutor> {
  const passEnv = pipEnv();
  if (config.DWOP_TASK_SANDBOX !== "off") {
    const secrets = [{ what: "DWOP_HOME", path: config.DWOP_HOME }];
    if (existsSync(".env")) secrets.push({ what: "the .env file", path: ".env" });
    const shown = shownSecret(allowed({ allow: config.DWOP_TASK_ALLOW, passEnv }), secrets);
    if (shown) throw new ConfigError([shown]);
  }
  const executor = new LocalExecutor({
    python: await resolvePython(),
    workerScript: WORKER_SCRIPT,
    workRoot,
    passEnv,
    sandbox: config.DWOP_TASK_SANDBOX,
    allow: config.DWOP_TASK_ALLOW,
    network: config.DWOP_TASK_NETWORK,
    limits: taskLimits(config),
    logger,
  });
  // Beside the fork server's start: the folders that killed processes left (they never removed their own).
  const swept = executor.sweep().then((removed) => {
    if (removed > 0) logger.info({ removed }, "removed the run folders of processes killed mid-run");
  });
  try {
    await announceSandbox(executor, logger);
  } catch (err) {
    await swept;
    await executor.close();
    throw err;
  }
  await swept;
  return executor;
}

/** Whether every file of a run (its code, each input) comes in its env, none by URL, and it has no requirements. */
function filesInline(env: WorkerEnv): boolean {
  if (env.DWOP_CODE === undefined || env.DWOP_REQUIREMENTS_URL) return false;
  try {
    const inputs = JSON.parse(env.DWOP_INPUTS) as { data?: unknown }[];
    return inputs.every((input) => typeof input.data === "string");
  } catch {
    return false;
  }
}

/** pip settings (an offline wheel folder, a private index) reach the worker; nothing else does. */
function pipEnv(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(process.env).filter(
      (e): e is [string, string] => e[0].startsWith("PIP_") && e[1] !== undefined,
    ),
  );
}

/** The default limits the configuration sets (DWOP_TASK_MEMORY, DWOP_TASK_DISK, DWOP_TASK_PROCESSES). */
export function taskLimits(
  config: Pick<Config, "DWOP_TASK_MEMORY" | "DWOP_TASK_DISK" | "DWOP_TASK_PROCESSES">,
) {
  return {
    memory: config.DWOP_TASK_MEMORY,
    disk: config.DWOP_TASK_DISK,
    processes: config.DWOP_TASK_PROCESSES,
  };
}

/**
 * What one run may use: the task's @memory (else the default), the disk and process defaults, and CPU
 * time for its @cpu over its whole timeout (none without @cpu: the timeout bounds wall-clock time).
 */
export function runLimits(run: RunAssignment, defaults: DefaultLimits): RunLimits {
  const { memory, cpu, timeoutSeconds } = run.options;
  const cores = cpu ? parseCpu(cpu) : null;
  return {
    memory: (memory ? parseMemory(memory) : null) ?? defaults.memory,
    disk: defaults.disk,
    processes: defaults.processes,
    cpuSeconds: cores && timeoutSeconds ? Math.max(1, Math.ceil(cores * timeoutSeconds)) : 0,
  };
}

/** The folders a sandboxed run may read besides the system's: the operator's, and a local wheel folder. */
function allowed(options: Pick<LocalExecutorOptions, "allow" | "passEnv">): string[] {
  const links = (options.passEnv?.PIP_FIND_LINKS ?? "").split(/\s+/).map((l) => l.replace(/^file:\/\//, ""));
  return [...(options.allow ?? []), ...links].filter((p) => p.startsWith("/")).map((p) => resolve(p));
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

/**
 * The empty folder of the work root the fork server mounts the runs' root template on (see
 * docs/task-sandbox.md), made here (0700, as the work root) before the server starts; undefined where it
 * cannot be made (each run then builds its root).
 */
function rootTemplate(workRoot: string): string | undefined {
  const folder = join(resolve(workRoot), ".root-template");
  try {
    makeFoldersSync(folder, 0o700);
    return folder;
  } catch {
    return undefined;
  }
}

/**
 * The output and log a successful worker left in its folder (null when it uploaded them). The file must
 * be a regular file of this user's, with one link, and hold each part within `limit` bytes: a body run
 * outside the sandbox shares the folder, and must not get the dispatcher to read another file for it.
 */
export function readResult(dir: string, limit: number): RunResult | null {
  if (limit <= 0) return null;
  let fd: number;
  try {
    fd = openSync(
      join(dir, OUTPUT_AND_LOG_FILE),
      constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
    );
  } catch {
    return null;
  }
  try {
    const info = fstatSync(fd);
    const most = 2 * limit + 2 * String(limit).length + 2; // both parts at the limit, and the sizes' line
    const own = info.isFile() && info.nlink === 1 && info.uid === process.getuid?.() && info.size <= most;
    if (!own) return null;
    const bytes = Buffer.alloc(info.size);
    if (readSync(fd, bytes, 0, info.size, 0) !== info.size) return null;
    const newline = bytes.indexOf(10);
    const sizes = /^(\d+) (\d+)$/.exec(bytes.subarray(0, Math.max(newline, 0)).toString("latin1"));
    const [output, log] = [Number(sizes?.[1]), Number(sizes?.[2])];
    if (!sizes || output > limit || log > limit || newline + 1 + output + log !== info.size) return null;
    const start = newline + 1;
    return { output: bytes.subarray(start, start + output), log: bytes.subarray(start + output) };
  } finally {
    closeSync(fd);
  }
}

async function readFailure(path: string): Promise<WorkerFailure | null> {
  return parseWorkerFailure(await readFile(path, "utf8").catch(() => undefined));
}
