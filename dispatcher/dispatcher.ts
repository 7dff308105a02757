import type { Config } from "../shared/config.ts";
import type { Bus, Consumer, Delivery } from "../shared/bus/bus.ts";
import { Batcher, type Waiting } from "../shared/batcher.ts";
import type { StartRunResult, Store } from "../shared/db/store.ts";
import type { Executor, RunOutcome, WorkerEnv } from "../shared/executors/executor.ts";
import { silentLogger, type Logger } from "../shared/log.ts";
import { OUTPUT_BUCKET, objectPaths, type RunAssignment, type TaskMessage } from "../shared/model.ts";
import { placeUploadedOutput } from "./place-output.ts";
import { isPermanent, retryTransient } from "../shared/db/retry.ts";
import { Semaphore } from "../shared/semaphore.ts";
import type { Storage } from "../shared/storage/storage.ts";
import { ClusterStore } from "./cluster-store.ts";
import { signWorkerEnv, type LogStream } from "./worker-env.ts";
import { RunLogs } from "../shared/db/run-logs.ts";
import { registerDispatcher } from "./registration.ts";

/** Most deliveries one start_runs call takes. */
const START_BATCH = 128;

/** Longest a delivery waits for a free slot before it goes back to the queue. */
const SLOT_WAIT_MS = 2000;
/**
 * How long a dispatcher whose slots are all taken stays subscribed before it stops consuming. A short
 * run frees its slot within milliseconds: a dispatcher that unsubscribed and subscribed again each time
 * its slots filled (a channel closed and another opened, the deliveries in hand sent back) did so 45
 * times in 3,000 no-op runs, at a fifth of its throughput. A long run's dispatcher still stops soon, and
 * the deliveries it holds go back to the queue within SLOT_WAIT_MS, as before.
 */
const FULL_GRACE_MS = 250;
/**
 * A delivery held at the cluster cap asks again every CAP_POLL_MS for up to CAP_WAIT_MS (well within
 * RabbitMQ's consumer timeout and pg-boss's expiry), then goes back to the queue while this dispatcher
 * stops consuming for CAP_PAUSE_MS.
 */
const CAP_POLL_MS = 150;
const CAP_WAIT_MS = 10_000;
const CAP_PAUSE_MS = 1000;
/** Tries of a batched call that a deadlock or a serialization failure aborted, before its deliveries go back. */
const BATCH_TRIES = 3;
/** The deadline of an attempt whose task has no @timeout, unless the options say (DWOP_DEFAULT_TASK_TIMEOUT_SECONDS). */
export const DEFAULT_TASK_TIMEOUT_SECONDS = 3600;

/** A dispatcher's settings from the configuration (every process that runs one uses the same). */
export function dispatcherSettings(
  config: Config,
): Omit<DispatcherOptions, "id" | "apiUrl" | "maxActiveRuns" | "logger"> {
  return {
    concurrency: config.DWOP_CONCURRENCY,
    heartbeatSeconds: config.DWOP_HEARTBEAT_SECONDS,
    lostAfterSeconds: config.DWOP_LOST_AFTER_SECONDS,
    shutdownGraceSeconds: config.DWOP_SHUTDOWN_GRACE_SECONDS,
    signedUrlTtlSeconds: config.DWOP_SIGNED_URL_TTL_SECONDS,
    defaultTimeoutSeconds: config.DWOP_DEFAULT_TASK_TIMEOUT_SECONDS,
    ownerMaxRunning: config.DWOP_OWNER_MAX_RUNNING,
  };
}

export interface DispatcherOptions {
  id: string;
  /** Most runs held at once (for a cluster executor: Job creations in progress); also the bus prefetch. */
  concurrency: number;
  heartbeatSeconds: number;
  /** A dispatcher not heard from for this long is dead: its local runs are retried as lost. */
  lostAfterSeconds: number;
  /** On stop, how long running tasks may take to finish before they are stopped and retried elsewhere. */
  shutdownGraceSeconds: number;
  /** Workers' signed URLs live for the attempt's deadline plus this margin. */
  signedUrlTtlSeconds: number;
  /** The deadline of an attempt whose task has no @timeout (default DEFAULT_TASK_TIMEOUT_SECONDS). */
  defaultTimeoutSeconds?: number;
  /**
   * The API's URL as workers reach it: where they ship live logs (and ask for fresh upload URLs). Without
   * it a worker stores its log only when its attempt ends.
   */
  apiUrl?: string | null;
  /** Cluster executors: most runs active at once across every dispatcher (Jobs in flight). */
  maxActiveRuns?: number;
  /**
   * Start here, in the transaction that records a success, one task it made ready (complete_runs_and_start)
   * in the slot it frees. Unset: true; false leaves every ready task to the claimers and the bus.
   */
  startReady?: boolean;
  /**
   * Most runs of one owner active at once across every dispatcher (DWOP_OWNER_MAX_RUNNING; an API key's
   * maxRunning overrides it); unset or 0: no cap. A task over it, or whose pool is full, is parked.
   */
  ownerMaxRunning?: number;
  /**
   * This dispatcher's registration (registerDispatcher with the same id), begun by the process while the
   * executor started; unset, start() registers.
   */
  registration?: Promise<void>;
  logger?: Logger;
}

/**
 * Consumes task messages and runs each attempt on the executor: record the run (the duplicate check),
 * start it, mark it dispatched, and only then acknowledge.
 *
 * With a "process" executor (local child processes) a slot is held per run until the run ends, and this
 * dispatcher records the end: success through complete_runs (batched), failure through increase_attempt.
 * With a "cluster" executor (Kubernetes Jobs) the slot is freed once the Job is created; the cap on runs
 * in flight is global (start_cluster_run counts active runs in the database), and the cluster observer,
 * not this class, records each end.
 */
export class Dispatcher {
  private logStream: LogStream | null = null;
  private readonly slots: Semaphore;
  /**
   * Each success (with the job name of a run whose dispatch it records, see settle): whether this call
   * recorded it, and the run it started here (complete_runs_and_start).
   */
  private readonly completions: Batcher<Success, { recorded: boolean; next?: RunAssignment }>;
  /** Deliveries arriving while a start_runs is in flight go together in the next one. */
  private readonly starts: Batcher<TaskMessage, StartRunResult>;
  /** Runs the executor took while a mark_runs_dispatched is in flight go together in the next one. */
  private readonly dispatches: Batcher<Dispatch, void>;
  private readonly cluster: ClusterStore;
  private readonly settling = new Set<Promise<void>>();
  /** Runs of this process between start_runs and their recorded end: what the orphan reaper must spare. */
  private readonly held = new Set<string>();
  private readonly log: Logger;
  private consumer: Consumer | null = null;
  private adjustingFlow = false;
  private pausedUntil = 0;
  /** Since when every slot has been taken (null: one is free), and the look due when FULL_GRACE_MS ends. */
  private fullSince: number | null = null;
  private fullTimer: NodeJS.Timeout | null = null;
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  /** When the last heartbeat the database recorded was sent (performance.now()): see mayStore. */
  private beatSentAt = performance.now();
  /** Runs held while this dispatcher was silent long enough to be declared dead: see mayStore. */
  private readonly suspect = new Set<string>();
  private unlisten: (() => Promise<void>) | null = null;
  private stopping = false;

  constructor(
    private readonly store: Store,
    private readonly bus: Bus,
    private readonly executor: Executor,
    private readonly storage: Storage,
    private readonly options: DispatcherOptions,
  ) {
    this.slots = new Semaphore(options.concurrency);
    this.cluster = new ClusterStore(store.db);
    this.log = (options.logger ?? silentLogger).child({ component: "dispatcher", dispatcher: options.id });
    this.completions = new Batcher(
      async (successes): Promise<{ recorded: boolean; next?: RunAssignment }[]> => {
        const { completed, started } = await this.completeRuns(successes);
        const recorded = new Set(completed);
        // Each run started here takes the slot of one recorded success: slots are alike.
        return successes.map(({ runId }) =>
          recorded.has(runId) ? { recorded: true, next: started.shift() } : { recorded: false },
        );
      },
    );
    // A start batch holds an advisory lock per pool and per cap slot it takes until it commits: 128
    // deliveries keep that to at most 256 entries of Postgres's shared lock table.
    this.starts = new Batcher(
      (messages) =>
        retryDeadlock(() =>
          store.startRuns(messages, options.id, executor.kind, options.ownerMaxRunning || null),
        ),
      START_BATCH,
    );
    this.dispatches = new Batcher<Dispatch, void>(async (runs) => {
      await retryDeadlock(() => store.markRunsDispatched(runs, executor.runsIn === "process"));
      return runs.map(() => undefined);
    });
    executor.onFinished((run, outcome) => this.track(this.settle(run, outcome)));
  }

  /** Announces itself, retries what a previous life of this dispatcher left behind, then consumes. */
  async start(): Promise<void> {
    // The listener's own connection opens beside the rest (40 ms of a `dwop run`'s start here). Its
    // failure (a database refusing connections) is this start's, once the registration is done: handled
    // from now on, or Node ends the process for a rejection nobody awaits yet (found by the soak).
    const listening = this.store.db.listen("dwop_cancel", () => void this.stopCancelledRuns());
    listening.catch(() => {});
    try {
      // The registration's heartbeat went out before this (at most the process's start before).
      this.beatSentAt = performance.now();
      await this.register();
    } catch (err) {
      await listening.then((l) => l.unlisten()).catch(() => {});
      throw err;
    }
    const listener = await listening;
    this.unlisten = () => listener.unlisten();
    this.heartbeat = setInterval(() => void this.beat(), this.options.heartbeatSeconds * 1000);
    await this.adjustFlow();
  }

  /** The registration (registerDispatcher), unless the process began it, and the live logs' key. */
  private async register(): Promise<void> {
    const registered =
      this.options.registration ??
      registerDispatcher(this.store, {
        id: this.options.id,
        executor: this.executor,
        lostAfterSeconds: this.options.lostAfterSeconds,
        log: this.log,
      });
    registered.catch(() => {}); // thrown below, once the key is read
    if (this.options.apiUrl) {
      this.logStream = { apiUrl: this.options.apiUrl, key: await new RunLogs(this.store.db).streamKey() };
    }
    await registered;
  }

  /**
   * Consumes while a slot is free, and for FULL_GRACE_MS after the last one was taken. A delivery must
   * not wait long for a slot: RabbitMQ closes a channel whose delivery stays unacknowledged too long, and
   * pg-boss hands an unsettled job out again. So a dispatcher full for longer stops consuming, and the
   * few deliveries it already holds go back to the queue after SLOT_WAIT_MS, for a dispatcher with room.
   * At the cluster cap it pauses for CAP_PAUSE_MS.
   */
  private async adjustFlow(): Promise<void> {
    if (this.adjustingFlow) return;
    this.adjustingFlow = true;
    try {
      for (;;) {
        const wanted = !this.stopping && !this.fullTooLong() && Date.now() >= this.pausedUntil;
        if (wanted && !this.consumer) {
          this.consumer = await this.bus.consume((d) => this.handle(d), {
            prefetch: this.options.concurrency,
          });
        } else if (!wanted && this.consumer) {
          const consumer = this.consumer;
          this.consumer = null;
          await consumer.stop();
        } else {
          return;
        }
      }
    } catch (err) {
      this.log.error({ err }, "could not change consumption; retrying");
      setTimeout(() => void this.adjustFlow(), 1000);
    } finally {
      this.adjustingFlow = false;
    }
  }

  /** Whether every slot has been taken for FULL_GRACE_MS; within it, adjustFlow looks again when it ends. */
  private fullTooLong(): boolean {
    if (this.slots.available > 0) {
      this.fullSince = null;
      return false;
    }
    const now = Date.now();
    this.fullSince ??= now;
    const left = this.fullSince + FULL_GRACE_MS - now;
    if (left <= 0) return true;
    this.fullTimer ??= setTimeout(() => {
      this.fullTimer = null;
      void this.adjustFlow();
    }, left);
    return false;
  }

  private async beat(): Promise<void> {
    try {
      const sent = performance.now();
      this.noteSilence(sent);
      await this.store.heartbeat(this.options.id, this.executor.kind);
      this.beatSentAt = sent;
      await this.store.reapLostRuns(this.options.lostAfterSeconds, null);
      if (this.executor.runsIn === "process") {
        const held = this.heldRuns();
        const orphans = await this.store.reapOrphanedRuns(
          this.options.id,
          held,
          this.options.lostAfterSeconds,
        );
        if (orphans > 0)
          this.log.warn({ orphans }, "retried runs whose end this dispatcher failed to record");
      }
      await this.stopCancelledRuns();
    } catch (err) {
      this.log.error({ err }, "heartbeat failed");
    }
  }

  /** One delivery: resolves to acknowledge, rejects to have the bus deliver it again. */
  private async handle(delivery: Delivery): Promise<void> {
    if (!(await this.slots.acquire(SLOT_WAIT_MS))) throw new Error("no free slot; back to the queue");
    let holding = true;
    try {
      if (this.stopping) throw new Error("dispatcher is stopping");
      if (this.executor.runsIn === "cluster") {
        await this.dispatchToCluster(delivery.body);
        return;
      }
      const result = await this.starts.add(delivery.body);
      if (result.kind !== "created") {
        this.log.debug({ ...delivery.body, result: result.kind }, "nothing to run");
        return;
      }
      this.held.add(result.assignment.runId);
      let launched = false;
      try {
        await this.launch(result.assignment, () => {
          holding = false; // the slot now belongs to the run; settle() frees it
          launched = true;
        });
      } finally {
        if (!launched) this.forget(result.assignment.runId);
      }
    } finally {
      if (holding) this.slots.release();
      void this.adjustFlow();
    }
  }

  /**
   * Signs the run's URLs, starts it (calling `onStarted` once the executor took it) and marks it
   * dispatched. A start that failed is recorded as a failed attempt (infrastructure budget, unless it
   * can never work). A failure to record the dispatch after a start is thrown: the redelivery finds the run.
   */
  private async launch(assigned: RunAssignment, onStarted: () => void = () => {}): Promise<void> {
    const run = this.withDeadline(assigned);
    let started = false;
    try {
      const env = await this.workerEnv(run);
      const { jobName } = await this.executor.start(run, env);
      started = true;
      onStarted();
      await this.dispatches.add({ runId: run.runId, jobName });
    } catch (err) {
      if (started) throw err;
      await this.recordStartFailure(run, err);
    }
  }

  /** The run's environment: its signed URLs, and its small objects inline where the executor takes them. */
  private workerEnv(run: RunAssignment): Promise<WorkerEnv> {
    const { storage, executor, logStream } = this;
    return signWorkerEnv(storage, run, this.options.signedUrlTtlSeconds, logStream, executor.inlineBytes);
  }

  /**
   * The attempt with its deadline: the task's @timeout, else the default. Every attempt gets one, so a
   * local run is killed and a Job's activeDeadlineSeconds is set, and its signed URLs expire soon after.
   */
  private withDeadline(run: RunAssignment): RunAssignment {
    if (run.options.timeoutSeconds) return run;
    const timeoutSeconds = this.options.defaultTimeoutSeconds ?? DEFAULT_TASK_TIMEOUT_SECONDS;
    return { ...run, options: { ...run.options, timeoutSeconds } };
  }

  private async recordStartFailure(run: RunAssignment, err: unknown): Promise<void> {
    this.log.error({ err, runId: run.runId }, "could not start the run");
    const refused = (err as { nonRetryable?: unknown } | null)?.nonRetryable === true;
    await this.store.increaseAttempt(run.runId, {
      reason: refused ? "worker_error" : "lost",
      message: `could not start: ${err instanceof Error ? err.message : String(err)}`,
      exitCode: null,
      logTail: null,
      nonRetryable: refused,
    });
  }

  /**
   * A delivery for a cluster executor. A new run is created only while fewer than maxActiveRuns runs are
   * active everywhere; at the cap the delivery asks again for up to CAP_WAIT_MS, then goes back to the
   * queue while this dispatcher pauses. A redelivery whose run is still 'starting' (its dispatcher died
   * between recording the run and marking it dispatched) creates the Job if it is missing (a 409 if it
   * is not) and marks the run dispatched, under the run's row lock.
   */
  private async dispatchToCluster(message: TaskMessage): Promise<void> {
    const deadline = Date.now() + CAP_WAIT_MS;
    for (;;) {
      const max = this.options.maxActiveRuns ?? 100;
      const result = await this.cluster.startClusterRun(
        message,
        this.options.id,
        this.executor.kind,
        max,
        this.options.ownerMaxRunning || null,
      );
      if (result.kind === "created") {
        await this.launch(result.assignment);
        return;
      }
      if (result.kind === "duplicate") {
        if (result.status === "starting") await this.resumeStartingRun(result.assignment);
        return;
      }
      if (result.kind === "stale") return;
      if (Date.now() >= deadline || this.stopping) {
        this.pausedUntil = Date.now() + CAP_PAUSE_MS;
        setTimeout(() => void this.adjustFlow(), CAP_PAUSE_MS);
        throw new Error("runs in flight at the cluster cap; back to the queue");
      }
      await new Promise((r) => setTimeout(r, CAP_POLL_MS * (0.5 + Math.random())));
    }
  }

  private async resumeStartingRun(assigned: RunAssignment): Promise<void> {
    const run = this.withDeadline(assigned);
    const env = await this.workerEnv(run);
    const resumed = await this.cluster.resumeStartingRun(run.runId, async () => {
      return (await this.executor.start(run, env)).jobName;
    });
    this.log.info({ runId: run.runId, resumed }, "redelivered run found starting; its Job is created");
  }

  private async settle(run: RunAssignment, ended: RunOutcome): Promise<void> {
    let next: RunAssignment | undefined;
    let unmarked: Waiting<Dispatch, void> | null = null;
    try {
      const outcome = await this.storeResult(run, ended);
      // A success that ended before its dispatch was marked (the mark still waits for the batch before
      // it) records the dispatch itself: one transaction, not a mark and a success over the same rows,
      // the second waiting for the first's locks. The delivery is acknowledged once it is recorded.
      if (outcome.kind === "succeeded") unmarked = this.dispatches.withdraw((d) => d.runId === run.runId);
      const jobName = unmarked?.item.jobName ?? null;
      // A deadlock, a dropped connection or a database refusing connections must not leave the run
      // active forever: retry until recorded (the SQL is a compare-and-set, so a retry is harmless; a run
      // the lost answer had started here is this dispatcher's orphan, which its heartbeat retries).
      await this.untilAnswered(run, "recording a run's end", async () => {
        next = await this.record(run, outcome, jobName);
      });
      unmarked?.resolve();
    } catch (err) {
      // The run stays active in the database; the heartbeat's reaper or a restart retries it as lost.
      this.log.error({ err, runId: run.runId }, "could not record the end of a run");
      unmarked?.reject(err);
    } finally {
      this.forget(run.runId);
      if (next) {
        this.track(this.launchHere(next));
      } else {
        this.slots.release();
        void this.adjustFlow();
      }
    }
  }

  /**
   * Launches a run that a success recorded here started for its successor, in the slot it freed. Once
   * stopping, it is recorded lost instead (retried at once elsewhere), as a run stopped at shutdown is.
   */
  private async launchHere(run: RunAssignment): Promise<void> {
    this.held.add(run.runId);
    let launched = false;
    try {
      if (this.stopping) {
        await this.recordLost(run.runId, "the dispatcher shut down before the attempt started");
        return;
      }
      await this.launch(run, () => (launched = true));
    } catch (err) {
      // Started, its dispatch unrecorded: the run's end is recorded all the same (a starting run can end).
      this.log.error({ err, runId: run.runId }, "could not record a run's dispatch");
    } finally {
      if (!launched) {
        this.forget(run.runId);
        this.slots.release();
        void this.adjustFlow();
      }
    }
  }

  /**
   * Records successes; unless startReady is false or the dispatcher is stopping, also starts one task each
   * made ready (launched by settle).
   */
  private async completeRuns(
    successes: Success[],
  ): Promise<{ completed: string[]; started: RunAssignment[] }> {
    const runIds = successes.map((s) => s.runId);
    const jobNames = successes.map((s) => s.jobName);
    if (this.options.startReady === false || this.stopping) {
      return { completed: await this.store.completeRuns(runIds, jobNames), started: [] };
    }
    return this.store.completeRunsAndStart(
      runIds,
      this.options.id,
      this.executor.kind,
      this.options.ownerMaxRunning || null,
      jobNames,
    );
  }

  /**
   * Puts a successful run's output at its task's path, before its success is recorded: the output and
   * log a local run left to the dispatcher (RunOutcome's `result`) are stored there, the output a worker
   * uploaded itself is moved there (placeUploaded). A storage that fails them fails the attempt as a
   * failed upload does, an infrastructure loss; a log that cannot be stored does not fail the run.
   */
  private async storeResult(run: RunAssignment, outcome: RunOutcome): Promise<RunOutcome> {
    if (outcome.kind !== "succeeded" || !(outcome.result || outcome.uploaded)) return outcome;
    if (!outcome.result) return this.placeUploaded(run);
    if (!(await this.mayStore(run))) {
      this.dropLate(run);
      return { kind: "succeeded" };
    }
    const { output, log } = outcome.result;
    const wf = run.workflowId;
    const [stored, logged] = await Promise.allSettled([
      this.storage.put(OUTPUT_BUCKET, objectPaths.output(wf, run.taskName), output),
      this.storage.put(OUTPUT_BUCKET, objectPaths.log(wf, run.taskName, run.attempt), log),
    ]);
    if (logged.status === "rejected") {
      this.log.warn({ err: logged.reason, runId: run.runId }, "could not store a run's log");
    }
    return stored.status === "fulfilled" ? { kind: "succeeded" } : storingFailed(stored.reason);
  }

  /** Moves the output a worker uploaded itself to its task's path (placeUploadedOutput). */
  private async placeUploaded(run: RunAssignment): Promise<RunOutcome> {
    const placed = await this.untilAnswered(run, "moving a run's output into place", () =>
      placeUploadedOutput(this.store, this.storage, run.runId, run),
    );
    if (placed === "ended") this.dropLate(run);
    return typeof placed === "string" ? { kind: "succeeded" } : storingFailed(placed.failed);
  }

  /** A run that ended here after it was retried elsewhere: its success is refused too (the record's compare-and-set). */
  private dropLate(run: RunAssignment): void {
    this.log.warn(
      { runId: run.runId, task: run.taskName, attempt: run.attempt },
      "a run ended after it was declared lost and retried: its output is not stored",
    );
  }

  /**
   * Whether this dispatcher may still store a run's result at its task's fixed paths. A dispatcher silent
   * for DWOP_LOST_AFTER_SECONDS (paused, cut off from the database) is dead to the others, which retry its
   * runs; the attempt that then succeeds stores its output there, and this one's, ending later, must not
   * overwrite it. A run held through no such silence cannot have been retried: no query on its path (the
   * silence counts from the last heartbeat the database recorded, less one heartbeat's interval). One held
   * through one asks its own row, whether the silence is over or not.
   */
  private async mayStore(run: RunAssignment): Promise<boolean> {
    this.noteSilence(performance.now());
    if (!this.suspect.has(run.runId)) return true;
    // The database away all that time (no heartbeat got through): asked again until it answers, as the
    // record is, rather than leave a run that may have succeeded to be retried as lost.
    return this.untilAnswered(
      run,
      "asking whether a run is still this one's",
      async () => (await this.store.inactiveRuns([run.runId])).length === 0,
    );
  }

  /**
   * A statement about a run that ended here, again after a transient error (a deadlock, a dropped
   * connection, a database refusing connections) until it is answered or this dispatcher stops.
   */
  private untilAnswered<T>(run: RunAssignment, what: string, step: () => Promise<T>): Promise<T> {
    return retryTransient(step, {
      retryIf: (err) => !isPermanent(err),
      giveUp: () => this.stopping,
      onRetry: (err, attempt) => this.log.warn({ err, runId: run.runId, attempt }, `${what}; retrying`),
    });
  }

  /** The runs this dispatcher holds: its deliveries in hand and its executor's active runs. */
  private heldRuns(): string[] {
    return [...new Set([...this.held, ...this.executor.active()])];
  }

  /** A run this dispatcher no longer holds. */
  private forget(runId: string): void {
    this.held.delete(runId);
    this.suspect.delete(runId);
  }

  /**
   * At `now`: when the last recorded heartbeat is old enough for this dispatcher to be thought dead, every
   * run it holds becomes suspect (mayStore).
   */
  private noteSilence(now: number): void {
    const silent = (this.options.lostAfterSeconds - this.options.heartbeatSeconds) * 1000;
    if (now - this.beatSentAt < silent) return;
    for (const id of this.heldRuns()) this.suspect.add(id);
  }

  /**
   * Records a run's end (a success with the job name of its dispatch, if that was not marked); returns
   * the run its success started here, if any.
   */
  private async record(
    run: RunAssignment,
    outcome: RunOutcome,
    jobName: string | null,
  ): Promise<RunAssignment | undefined> {
    if (outcome.kind === "succeeded") {
      const { recorded, next } = await this.completions.add({ runId: run.runId, jobName });
      this.log.debug({ runId: run.runId, task: run.taskName, recorded }, "run succeeded");
      return next;
    }
    const next = await this.store.increaseAttempt(run.runId, {
      reason: outcome.reason,
      message: outcome.message,
      exitCode: outcome.exitCode,
      logTail: outcome.logTail,
      nonRetryable: outcome.nonRetryable,
    });
    this.log.info({ runId: run.runId, task: run.taskName, reason: outcome.reason, next }, "run failed");
  }

  /**
   * Kills this dispatcher's runs that are no longer active (cancelled). Never rejects: it runs from the
   * NOTIFY listener, where a rejection would go unhandled and stop the process; the next heartbeat looks
   * again after a failure (a database refusing connections, say).
   */
  private async stopCancelledRuns(): Promise<void> {
    try {
      const inactive = await this.store.inactiveRuns(this.executor.active());
      for (const runId of inactive) {
        // A killed run reports no outcome, so its slot is freed here.
        if (await this.executor.kill(runId)) {
          this.forget(runId);
          this.slots.release();
        }
      }
    } catch (err) {
      this.log.warn({ err }, "could not look for cancelled runs; the next heartbeat looks again");
    }
    void this.adjustFlow();
  }

  /** Records an attempt this dispatcher gives up as lost: retried at once, from the infrastructure budget. */
  private async recordLost(runId: string, message: string): Promise<void> {
    await this.store.increaseAttempt(runId, {
      reason: "lost",
      message,
      exitCode: null,
      logTail: null,
      nonRetryable: false,
    });
  }

  private track(p: Promise<void>): void {
    this.settling.add(p);
    void p.finally(() => this.settling.delete(p));
  }

  /**
   * Stops taking messages, lets running tasks finish within the grace period, then stops the rest and
   * records them as lost so another dispatcher runs them at once, and closes the listener. (A cluster
   * executor's runs are not this process's: only the deliveries in progress are waited for.)
   */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.fullTimer) clearTimeout(this.fullTimer);
    while (this.adjustingFlow) await new Promise((r) => setTimeout(r, 10));
    await this.adjustFlow();
    const deadline = Date.now() + this.options.shutdownGraceSeconds * 1000;
    while (this.executor.active().length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const runId of this.executor.active()) {
      await this.executor.kill(runId);
      await this.recordLost(runId, "the dispatcher shut down before the attempt finished").catch(
        (err: unknown) => this.log.error({ err, runId }, "could not record a stopped run"),
      );
    }
    await Promise.allSettled([...this.settling]);
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.unlisten?.().catch(() => {});
  }
}

/** A run the executor took, for mark_runs_dispatched. */
interface Dispatch {
  runId: string;
  jobName: string;
}

/** A run that succeeded, with its job name when its dispatch was never marked (null: it was). */
interface Success {
  runId: string;
  jobName: string | null;
}

/**
 * Runs a batched call again after a deadlock or a serialization failure (two batches that share a task
 * or a workflow can meet in either order): failing it would send every delivery of the batch back.
 */
function retryDeadlock<T>(fn: () => Promise<T>): Promise<T> {
  let tries = 0;
  return retryTransient(fn, {
    retryIf: (err) => /^(40P01|40001)$/.test(String((err as { code?: unknown } | null)?.code)),
    giveUp: () => ++tries >= BATCH_TRIES,
  });
}

/** A successful run whose output could not be put in place: lost, retried as an infrastructure failure. */
function storingFailed(err: unknown): RunOutcome {
  const message = `storing the output: ${(err as Error)?.message ?? String(err)}`;
  return { kind: "failed", reason: "lost", message, exitCode: null, logTail: "", nonRetryable: false };
}
