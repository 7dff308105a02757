import { blockedMessage } from "./blocked.ts";
import type { Store, TaskSummary, WorkflowSummary } from "../shared/db/store.ts";
import { TERMINAL_TASK_STATES, TERMINAL_WORKFLOW_STATES } from "../shared/model.ts";
import { DatabaseWatch, readStall, type Stall, type StallSettings } from "../functions/stall.ts";
import { palette, stateColor, type OutStream, type Palette } from "./terminal.ts";

/** What a progress line shows of a task, from the database (`dwop run`) or the API (`dwop submit --wait`). */
export interface ProgressTask {
  name: string;
  status: string;
  attempt: number;
  startedAt: Date | null;
  finishedAt: Date | null;
  error: string | null;
  /** For an `upstream_failed` task: the failed task that blocked it, when known. */
  blockedBy?: string | null;
}

const MARK: Record<string, string> = {
  pending: "·",
  queued: "○",
  dispatched: "◔",
  running: "◑",
  succeeded: "✓",
  failed: "✗",
  upstream_failed: "⊘",
  cancelled: "⊘",
};

const isDone = (status: string) => (TERMINAL_TASK_STATES as readonly string[]).includes(status);

/** `0.31s`, `12.4s`, `3m05s`. */
export function seconds(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)}s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

/** One task: state mark, name, state, attempt, duration (running ones count up), and the error. */
export function taskLine(t: ProgressTask, p: Palette = palette(false), now = Date.now()): string {
  // Never below zero: a success recorded in a transaction that began before the one that marked the run
  // started (and waited for its lock) carries the earlier time.
  const took = t.startedAt
    ? ` ${seconds(Math.max(0, (t.finishedAt?.getTime() ?? now) - t.startedAt.getTime()))}`
    : "";
  const attempt = t.attempt > 1 ? ` attempt ${t.attempt}` : "";
  const error =
    t.status === "failed" && t.error
      ? ` — ${t.error}`
      : t.status === "upstream_failed"
        ? ` — ${blockedMessage(t.error, t.blockedBy ?? null)}`
        : "";
  const paint = stateColor(p, t.status);
  return `${paint(MARK[t.status] ?? "?")} ${t.name} ${paint(t.status)}${attempt}${took ? p.dim(took) : ""}${error}`;
}

/** `stalled: <message> (since 12:03:04)`, the time in this machine's zone. */
export function stallLine(stall: Stall): string {
  return `stalled: ${stall.message} (since ${new Date(stall.since).toTimeString().slice(0, 8)})`;
}

/** `[######----] 6/10` over tasks that have ended. */
export function bar(tasks: readonly ProgressTask[], width = 24): string {
  const done = tasks.filter((t) => isDone(t.status)).length;
  const filled = Math.round((done / Math.max(1, tasks.length)) * width);
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${done}/${tasks.length}`;
}

// eslint-disable-next-line no-control-regex -- SGR sequences are what is measured away
const ANSI = /\x1b\[[0-9;]*m/g;
// eslint-disable-next-line no-control-regex -- split at SGR sequences, keeping them
const ANSI_PARTS = /(\x1b\[[0-9;]*m)/;

/** Cuts a line with color codes to `width` visible characters, so the terminal never wraps it. */
function fit(line: string, width: number): string {
  if (line.replace(ANSI, "").length <= width) return line;
  let visible = 0;
  let out = "";
  for (const part of line.split(ANSI_PARTS)) {
    if (part.startsWith("\x1b[")) {
      out += part;
      continue;
    }
    const room = width - 1 - visible;
    if (room <= 0) continue;
    out += part.slice(0, room);
    visible += Math.min(room, part.length);
  }
  return `${out}…\x1b[0m`;
}

export interface ProgressOptions {
  /** Colors (a terminal without NO_COLOR). */
  color: boolean;
  /** Redraw a block of lines in place (a terminal); otherwise print a line per change. */
  live: boolean;
  now?: () => number;
}

/**
 * Live progress of a workflow on stderr. On a terminal, a block of task lines (as many as fit, the
 * active and failed ones first) and a bar, redrawn in place as things change and as running tasks'
 * durations grow. Elsewhere (a pipe, a CI log), one line per task change, each with the bar.
 */
export class Progress {
  private readonly p: Palette;
  private readonly now: () => number;
  private readonly seen = new Map<string, string>();
  private tasks: readonly ProgressTask[] = [];
  private drawn = 0;
  private lastBlock = "";
  private timer: ReturnType<typeof setInterval> | null = null;
  private stalled: Stall | null = null;

  constructor(
    private readonly out: OutStream,
    private readonly options: ProgressOptions,
  ) {
    this.p = palette(options.color);
    this.now = options.now ?? Date.now;
  }

  /** The tasks' current states. */
  update(tasks: readonly ProgressTask[]): void {
    this.tasks = tasks;
    if (this.options.live) {
      this.timer ??= setInterval(() => this.redraw(), 250);
      this.timer.unref?.();
      this.redraw();
      return;
    }
    const shownBar = bar(tasks, 12); // once an update: a line each of 100,000 tasks counted them all each time
    for (const t of tasks) {
      const key = `${t.status}:${t.attempt}`;
      if (this.seen.get(t.name) === key) continue;
      this.seen.set(t.name, key);
      this.out.write(`${shownBar} ${taskLine(t, this.p, this.now())}\n`);
    }
  }

  /** The server's stall (null once tasks move again): a line under the bar, or a line when it changes. */
  stall(stall: Stall | null): void {
    const was = this.stalled;
    this.stalled = stall;
    if (this.options.live) {
      if (this.tasks.length) this.redraw();
      return;
    }
    if (stall) this.out.write(`${stallLine(stall)}\n`);
    else if (was) this.out.write("no longer stalled: tasks are moving again\n");
  }

  /** A line above the progress (the block is redrawn below it). */
  note(line: string): void {
    this.clear();
    this.out.write(`${line}\n`);
    this.lastBlock = "";
    if (this.options.live && this.tasks.length) this.redraw();
  }

  /** The last drawing, left on screen; stops the redraw timer. */
  finish(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.options.live && this.tasks.length) this.redraw();
  }

  private clear(): void {
    if (this.drawn > 0) this.out.write(`\x1b[${this.drawn}F\x1b[J`);
    this.drawn = 0;
  }

  private redraw(): void {
    const block = this.block();
    if (block.join("\n") === this.lastBlock) return;
    this.lastBlock = block.join("\n");
    this.clear();
    this.out.write(`${block.join("\n")}\n`);
    this.drawn = block.length;
  }

  /** The lines that fit the terminal: tasks by urgency (failed, active, then the rest in order). */
  private block(): string[] {
    // A terminal of unknown size (0 or none, as under `script`) is taken as 80x24.
    const width = Math.max(20, (this.out.columns || 80) - 1);
    const room = Math.max(3, (this.out.rows || 24) - (this.stalled ? 4 : 3));
    const rank = (t: ProgressTask) =>
      t.status === "failed" ? 0 : ["running", "dispatched", "queued"].includes(t.status) ? 1 : 2;
    let shown = this.tasks;
    let rest = "";
    if (shown.length > room) {
      // The first room - 1 of each rank in the workflow's order, a pass a rank: no sort of every task at
      // each redraw (88 ms for 100,000, four times a second).
      const keep = new Set<ProgressTask>();
      for (let r = 0; r <= 2 && keep.size < room - 1; r++) {
        for (const t of this.tasks) {
          if (keep.size === room - 1) break;
          if (rank(t) === r) keep.add(t);
        }
      }
      shown = this.tasks.filter((t) => keep.has(t));
      const counts = new Map<string, number>();
      for (const t of this.tasks) if (!keep.has(t)) counts.set(t.status, (counts.get(t.status) ?? 0) + 1);
      const hidden = this.tasks.length - keep.size;
      rest = this.p.dim(`… ${hidden} more: ${[...counts].map(([s, n]) => `${n} ${s}`).join(", ")}`);
    }
    const now = this.now();
    const lines = shown.map((t) => fit(taskLine(t, this.p, now), width));
    if (rest) lines.push(fit(rest, width));
    const running = this.tasks.filter((t) => t.status === "running").length;
    const failed = this.tasks.filter((t) => t.status === "failed").length;
    lines.push(
      fit(
        `${bar(this.tasks)}${running ? ` · ${running} running` : ""}${failed ? ` · ${this.p.red(`${failed} failed`)}` : ""}`,
        width,
      ),
    );
    if (this.stalled) lines.push(fit(this.p.red(stallLine(this.stalled)), width));
    return lines;
  }
}

/** How often `dwop run` asks the database whether publishing or dispatching has stalled. */
const STALL_POLL_MS = 2000;
/** The longest a follower waits to read a big workflow again (its end wakes it at once). */
const MAX_READ_SPACING_MS = 5000;

/**
 * How long a follower waits before it reads a workflow again: `floorMs`, or four times what its last read
 * and display took when that is longer (at most 5 s). A workflow's read costs the database and the
 * follower about 2.6 ms per 1,000 tasks (260 ms for 100,000); read every 100 ms, it took a core from the
 * engine running beside it (`dwop run`), where now it takes at most a fifth of one.
 */
export function readSpacing(floorMs: number, lastReadMs: number): number {
  return Math.max(floorMs, Math.min(MAX_READ_SPACING_MS, 4 * lastReadMs));
}

export interface FollowWorkflowOptions {
  pollMs?: number;
  /** The stall the database shows, as it changes (null once tasks move again). */
  onStall?: (stall: Stall | null) => void;
  stall?: StallSettings;
}

/**
 * Waits for a workflow to end, calling `onUpdate` whenever a task's state changed. Woken by the
 * database's `dwop_workflow_done` notification, with a short poll for the per-task progress.
 */
export async function followWorkflow(
  store: Store,
  workflowId: string,
  onUpdate: (tasks: TaskSummary[], w: WorkflowSummary) => void,
  options: FollowWorkflowOptions = {},
): Promise<WorkflowSummary> {
  const pollMs = options.pollMs ?? 100;
  let last = "";
  let wake: (() => void) | null = null;
  let lastStall = "null";
  let stallAt = 0;
  const watch = new DatabaseWatch();
  const listener = await store.db.listen("dwop_workflow_done", (id) => {
    if (id === workflowId) wake?.();
  });
  try {
    for (;;) {
      if (options.onStall && options.stall && Date.now() - stallAt >= STALL_POLL_MS) {
        stallAt = Date.now();
        const stall = await readStall(store.db, options.stall).then(
          (s) => (watch.reached(), s),
          (err: unknown) => watch.unreachable(err),
        );
        if (JSON.stringify(stall) !== lastStall) options.onStall(stall);
        lastStall = JSON.stringify(stall);
        if (stall?.what === "database") {
          await new Promise((r) => setTimeout(r, 1000));
          continue;
        }
      }
      const began = performance.now();
      const w = await store.workflowSummary(workflowId);
      if (!w) throw new Error(`workflow ${workflowId} not found`);
      const key = w.tasks.map((t) => `${t.status}:${t.attempt}`).join(",");
      if (key !== last) {
        last = key;
        onUpdate(w.tasks, w);
      }
      if (TERMINAL_WORKFLOW_STATES.includes(w.status)) return w;
      const spacing = readSpacing(pollMs, performance.now() - began);
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, spacing);
      });
    }
  } finally {
    await listener.unlisten().catch(() => {});
  }
}
