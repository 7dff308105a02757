// Node-only: the dispatcher's Prometheus metrics (prom-client).
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Bus } from "../shared/bus/bus.ts";
import type { Db } from "../shared/db/connect.ts";

/** Finished runs read per scrape, at most (the rest are read at the next one). */
const PAGE = 1000;
const PAGES_PER_SCRAPE = 10;

interface FinishedRow {
  run_id: string;
  /** As text: a JS Date would drop the microseconds, and the cursor would read the last row again. */
  finished_at: string;
  executor: string | null;
  status: string;
  failure_reason: string | null;
  retried: boolean;
  queued_to_dispatched: number | null;
  dispatched_to_started: number | null;
  started_to_finished: number | null;
}

export interface MetricsOptions {
  /**
   * Whether this replica exports the database-wide series (runs, stage latencies, outbox, queue). Every
   * replica could, but then a sum over replicas would count each run once per replica: only the
   * observer's lease holder does (always true with a single dispatcher).
   */
  exportsDatabase: () => boolean;
}

/**
 * What /metrics serves. Database-wide series are refreshed at each scrape: gauges from
 * metrics_snapshot(), and counters and histograms from the runs finished since the last scrape (a
 * cursor on (finished_at, id)), so a run is observed once however often Prometheus scrapes.
 */
export class DispatcherMetrics {
  readonly registry = new Registry();
  /** Kubernetes API requests this process made, by "verb resource". */
  readonly kubeRequests: Counter<"call">;
  private readonly runsActive: Gauge<"executor" | "state">;
  private readonly workflowsOpen: Gauge<"state">;
  private readonly outboxDue: Gauge;
  private readonly outboxLag: Gauge;
  private readonly queueDepth: Gauge;
  private readonly runsFinished: Counter<"executor" | "state">;
  private readonly retries: Counter<"reason">;
  private readonly stages: Histogram<"stage">;
  private cursor: { at: string; id: string } | null = null;

  constructor(
    private readonly db: Db,
    private readonly bus: Bus,
    private readonly options: MetricsOptions,
  ) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: "dwop_dispatcher_" });
    this.kubeRequests = new Counter({
      name: "dwop_kube_api_requests_total",
      help: "Kubernetes API requests made by this dispatcher",
      labelNames: ["call"],
      registers,
    });
    this.runsActive = new Gauge({
      name: "dwop_runs_active",
      help: "Runs not yet ended, by executor and state",
      labelNames: ["executor", "state"],
      registers,
    });
    this.workflowsOpen = new Gauge({
      name: "dwop_workflows_open",
      help: "Workflows not yet ended, by state",
      labelNames: ["state"],
      registers,
    });
    this.outboxDue = new Gauge({
      name: "dwop_outbox_due",
      help: "Outbox rows due and not yet published",
      registers,
    });
    this.outboxLag = new Gauge({
      name: "dwop_outbox_lag_seconds",
      help: "How long the oldest due outbox row has waited to be published",
      registers,
    });
    this.queueDepth = new Gauge({
      name: "dwop_queue_depth",
      help: "Messages waiting in the task queue",
      registers,
    });
    this.runsFinished = new Counter({
      name: "dwop_runs_finished_total",
      help: "Runs that ended, by executor and final state",
      labelNames: ["executor", "state"],
      registers,
    });
    this.retries = new Counter({
      name: "dwop_task_retries_total",
      help: "Failed runs followed by another attempt, by failure reason",
      labelNames: ["reason"],
      registers,
    });
    this.stages = new Histogram({
      name: "dwop_run_stage_seconds",
      help: "Stage latencies of finished runs: queued_to_dispatched, dispatched_to_started, started_to_finished",
      labelNames: ["stage"],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
      registers,
    });
  }

  /** The text exposition, after refreshing the database-wide series. */
  async render(): Promise<string> {
    await this.refresh();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private async refresh(): Promise<void> {
    const dbSeries = [this.runsActive, this.workflowsOpen, this.outboxDue, this.outboxLag, this.queueDepth];
    if (!this.options.exportsDatabase()) {
      for (const m of [...dbSeries, this.runsFinished, this.retries, this.stages]) m.reset();
      this.cursor = null;
      return;
    }
    for (const m of dbSeries) m.reset();
    const snapshot = await this.db<{ metric: string; label: string | null; value: number }[]>`
      select metric, label, value from dwop.metrics_snapshot()`;
    for (const row of snapshot) this.setSnapshot(row.metric, row.label, row.value);
    this.queueDepth.set(await this.bus.depth());
    await this.readFinishedRuns();
  }

  private setSnapshot(metric: string, label: string | null, value: number): void {
    if (metric === "runs_active") {
      const [executor = "", state = ""] = (label ?? "").split("/");
      this.runsActive.set({ executor, state }, value);
    } else if (metric === "workflows_open") this.workflowsOpen.set({ state: label ?? "" }, value);
    else if (metric === "outbox_due") this.outboxDue.set(value);
    else if (metric === "outbox_lag_seconds") this.outboxLag.set(value);
  }

  private async readFinishedRuns(): Promise<void> {
    if (!this.cursor) {
      // Start from now: history before this replica began exporting is not replayed.
      const [row] = await this.db<{ now: string }[]>`select now()::text as now`;
      this.cursor = { at: row!.now, id: "0" };
      return;
    }
    for (let page = 0; page < PAGES_PER_SCRAPE; page++) {
      const rows: FinishedRow[] = await this.db<FinishedRow[]>`
        select run_id, finished_at::text as finished_at, executor, status, failure_reason, retried,
               queued_to_dispatched, dispatched_to_started, started_to_finished
        from dwop.finished_runs_since(${this.cursor.at}::timestamptz, ${this.cursor.id}::bigint, ${PAGE})`;
      for (const row of rows) this.observe(row);
      const last: FinishedRow | undefined = rows.at(-1);
      if (last) this.cursor = { at: last.finished_at, id: last.run_id };
      if (rows.length < PAGE) return;
    }
  }

  private observe(row: FinishedRow): void {
    this.runsFinished.inc({ executor: row.executor ?? "unknown", state: row.status });
    if (row.retried && row.failure_reason) this.retries.inc({ reason: row.failure_reason });
    const stages = {
      queued_to_dispatched: row.queued_to_dispatched,
      dispatched_to_started: row.dispatched_to_started,
      started_to_finished: row.started_to_finished,
    };
    for (const [stage, seconds] of Object.entries(stages)) {
      if (seconds !== null && seconds >= 0) this.stages.observe({ stage }, Number(seconds));
    }
  }
}
