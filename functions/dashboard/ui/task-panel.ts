import { call, download, getJson, readHead } from "./api.ts";
import { fill, h, rerender, type Child } from "./dom.ts";
import { icon, label, span, when } from "./format.ts";
import { LogTail } from "./log-tail.ts";
import type { RunDetail, RunSummary, Task } from "./types.ts";

const OUTPUT_PREVIEW_BYTES = 64 * 1024;
const RUN_ENDED = ["succeeded", "failed", "lost", "cancelled"];

/** The rest of the workflow, as far as the panel needs it: other tasks, and moving to one of them. */
export interface PanelContext {
  task(name: string): Task | null;
  select(name: string): void;
}

/**
 * The failed task that keeps an `upstream_failed` one from running: the one the server names in its
 * error (`blocked by failed upstream <name>`), else found by walking up through blocked upstreams.
 */
export function blockingUpstream(t: Task, ctx: PanelContext): { failed: string; via: string | null } | null {
  const named = /^blocked by failed upstream (\S+)/.exec(t.error ?? "")?.[1];
  if (named) return { failed: named, via: null };
  const seen = new Set<string>();
  const walk = (task: Task): string | null => {
    const ups = task.params.map((p) => ctx.task(p.upstream)).filter((u): u is Task => u !== null);
    const failed = ups.find((u) => u.status === "failed");
    if (failed) return failed.name;
    for (const u of ups.filter((x) => x.status === "upstream_failed" && !seen.has(x.name))) {
      seen.add(u.name);
      const found = walk(u);
      if (found) return found;
    }
    return null;
  };
  const failed = walk(t);
  if (!failed) return null;
  const direct = t.params.some((p) => p.upstream === failed);
  const via = direct
    ? null
    : (t.params.find((p) => ctx.task(p.upstream)?.status === "upstream_failed")?.upstream ?? null);
  return { failed, via };
}

/**
 * The selected task: its facts, every attempt, the log of one attempt (its last lines at once, the
 * whole log to download), and the output (a preview, and the whole to download).
 */
export class TaskPanel {
  readonly element = h("section", { class: "panel task-panel", "aria-labelledby": "task-title" });
  private readonly head = h("div");
  private readonly facts = h("div");
  private readonly log = h("div", { class: "log-section" });
  private readonly output = h("div", { class: "output-section" });
  private task: Task | null = null;
  /** The attempt whose log is shown; null follows the latest. */
  private chosen: number | null = null;
  private logKey = "";
  private reasonKey = "";
  private outputKey = "";
  private tail: LogTail | null = null;
  private readonly reason = h("div");

  constructor(
    private readonly workflowId: string,
    private readonly onAttempt: (attempt: number | null) => void,
    private readonly ctx: PanelContext,
  ) {
    fill(this.element, h("p", { class: "muted" }, "Select a task in the graph or the timeline."));
  }

  /** Shows `task` (or updates it after a live change); `attempt` picks the log shown. */
  show(task: Task | null, attempt: number | null = this.chosen): void {
    const changedTask = task?.name !== this.task?.name;
    this.task = task;
    this.chosen = changedTask ? attempt : (attempt ?? this.chosen);
    if (!task) {
      this.stop();
      fill(this.element, h("p", { class: "muted" }, "Select a task in the graph or the timeline."));
      this.logKey = this.reasonKey = this.outputKey = "";
      return;
    }
    if (changedTask || !this.element.contains(this.facts)) {
      // What a failure needs first: the reason and the log's last lines; then attempts and times.
      fill(this.element, this.head, this.log, this.facts, this.output);
      fill(this.log);
      fill(this.output);
      this.logKey = this.reasonKey = this.outputKey = "";
    }
    rerender(this.head, () => this.renderHead(task));
    rerender(this.facts, () => this.renderFacts(task));
    const run = this.shownRun(task);
    // The log of one attempt is followed from its start to its end: a new state does not reload it.
    const logKey = run ? `${task.name}:${run.id}` : `${task.name}:none:${task.status}`;
    if (logKey !== this.logKey) {
      this.logKey = logKey;
      this.loadLog(task, run);
    }
    const reasonKey = run ? `${run.id}:${run.status}` : "";
    if (reasonKey !== this.reasonKey) {
      this.reasonKey = reasonKey;
      void this.loadReason(task, run);
      // The attempt changed state (it may have ended): its follower asks at once, not in a second.
      this.tail?.nudge();
    }
    const outputKey = `${task.name}:${task.status}:${task.attempt}`;
    if (outputKey !== this.outputKey) {
      this.outputKey = outputKey;
      void this.loadOutput(task);
    }
  }

  private shownRun(task: Task): RunSummary | null {
    const runs = task.runs;
    return (
      (this.chosen !== null ? runs.find((r) => r.attempt === this.chosen) : undefined) ?? runs.at(-1) ?? null
    );
  }

  /** Stops following a log: the page is leaving. */
  stop(): void {
    this.tail?.stop();
    this.tail = null;
  }

  private renderHead(t: Task): Child {
    return [
      h(
        "header",
        { class: "panel-head" },
        h("h2", { id: "task-title", class: "task-title", tabindex: -1 }, t.name),
        h("span", { class: `badge state-${t.status}` }, icon(t.status), " ", label(t.status)),
      ),
      t.status === "upstream_failed" ? this.blocked(t) : this.failure(t),
      t.waiting ? h("p", { class: "callout waiting", role: "status" }, `Queued, ${t.waiting}.`) : null,
    ];
  }

  /** A failure's headline: the task's error (a Python exception's last line), then how it ended. */
  private failure(t: Task): Child {
    if (!t.error) return null;
    const last = t.runs.at(-1);
    const exit = last?.exitCode ?? null;
    const how = [
      last?.failureReason === "exit_code" && exit !== null
        ? `exit code ${exit}`
        : last?.failureReason
          ? label(last.failureReason)
          : null,
      last ? `attempt ${last.attempt}` : null,
    ].filter((part): part is string => part !== null && !t.error!.toLowerCase().includes(part.toLowerCase()));
    return h(
      "div",
      { class: "callout failure headline", role: "note" },
      h("p", { class: "error-line" }, t.error),
      how.length ? h("p", { class: "how" }, how.join(" · ")) : null,
    );
  }

  /** An upstream_failed task will never run: say so, and which failed upstream keeps it back. */
  private blocked(t: Task): Child {
    const b = blockingUpstream(t, this.ctx);
    const link = (name: string) =>
      h(
        "button",
        {
          type: "button",
          class: "link",
          "data-key": `upstream:${name}`,
          onclick: () => this.ctx.select(name),
        },
        name,
      );
    return h(
      "div",
      { class: "callout blocked", role: "note" },
      h(
        "p",
        { class: "error-line" },
        "Will not run: ",
        b ? ["blocked by failed upstream ", link(b.failed)] : (t.error ?? "an upstream failed."),
      ),
      b?.via ? h("p", { class: "how" }, "through ", link(b.via)) : null,
    );
  }

  private renderFacts(t: Task): Child {
    const reads = t.params.map((p) => h("li", {}, h("code", {}, p.name), " ← ", h("code", {}, p.upstream)));
    const shown = this.shownRun(t);
    const attempts =
      t.runs.length === 0
        ? h("p", { class: "muted" }, "No attempt yet.")
        : h(
            "table",
            { class: "attempts" },
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                ["#", "state", "reason", "exit", "took"].map((c) => h("th", { scope: "col" }, c)),
              ),
            ),
            h(
              "tbody",
              {},
              t.runs.map((r) =>
                h(
                  "tr",
                  { class: r.id === shown?.id ? "current" : null },
                  h(
                    "td",
                    {},
                    h(
                      "button",
                      {
                        type: "button",
                        class: "link",
                        "data-key": `attempt:${r.attempt}`,
                        "aria-pressed": String(r.id === shown?.id),
                        "aria-label": `Show the log of attempt ${r.attempt}`,
                        onclick: () => this.pickAttempt(r.attempt),
                      },
                      String(r.attempt),
                    ),
                  ),
                  h(
                    "td",
                    {},
                    h("span", { class: `badge state-${r.status}` }, icon(r.status), " ", label(r.status)),
                  ),
                  h("td", {}, r.failureReason ? label(r.failureReason) : ""),
                  h("td", {}, r.exitCode === null ? "" : String(r.exitCode)),
                  h("td", {}, span(r.startedAt, r.finishedAt)),
                ),
              ),
            ),
          );
    return [
      h("h3", {}, "Attempts"),
      attempts,
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Retries"),
        h("dd", {}, t.maxRetries === 0 ? "none" : `up to ${t.maxRetries} after a failure`),
        t.pool ? [h("dt", {}, "Pool"), h("dd", {}, t.pool)] : null,
        t.priority !== 0 ? [h("dt", {}, "Priority"), h("dd", {}, String(t.priority))] : null,
        h("dt", {}, "Duration"),
        h("dd", {}, span(t.startedAt, t.finishedAt)),
        h("dt", {}, "Queued"),
        h("dd", {}, when(t.queuedAt)),
        h("dt", {}, "Started"),
        h("dd", {}, when(t.startedAt)),
        h("dt", {}, "Finished"),
        h("dd", {}, when(t.finishedAt)),
      ),
      reads.length ? h("div", {}, h("h3", {}, "Reads"), h("ul", { class: "reads" }, reads)) : null,
    ];
  }

  private pickAttempt(attempt: number): void {
    this.chosen = attempt;
    this.onAttempt(attempt);
    if (this.task) this.show(this.task, attempt);
  }

  private loadLog(task: Task, run: RunSummary | null): void {
    this.tail?.stop();
    this.tail = null;
    if (!run) {
      const note =
        task.status === "upstream_failed"
          ? "This task will not run: an upstream failed."
          : task.status === "cancelled"
            ? "The workflow was cancelled before this task ran."
            : "The task has not run yet.";
      fill(this.log, h("h3", {}, "Log"), h("p", { class: "muted" }, note));
      return;
    }
    const path = `workflows/${this.workflowId}/tasks/${encodeURIComponent(task.name)}/logs`;
    const runId = run.id;
    const tail = new LogTail({
      path,
      attempt: run.attempt,
      ended: () => {
        const now = this.task?.runs.find((r) => r.id === runId);
        return now ? RUN_ENDED.includes(now.status) || now.finishedAt !== null : true;
      },
      // The dispatcher keeps a failed attempt's last 100 lines with the run.
      fallback: async () =>
        (await getJson<RunDetail>(`workflows/${this.workflowId}/runs/${runId}`)).logTail ?? null,
    });
    this.tail = tail;
    const dl = h("button", { type: "button", class: "small" }, "Download full log");
    dl.addEventListener("click", () => {
      void download(`${path}?attempt=${run.attempt}`, `${task.name}-attempt-${run.attempt}.log`).catch(
        (e: Error) => alert(e.message),
      );
    });
    fill(
      this.log,
      h("h3", {}, `Log · attempt ${run.attempt}`),
      this.reason,
      tail.element,
      h("div", { class: "actions" }, dl),
    );
    tail.start();
  }

  /** An earlier attempt's own failure (the task's is the headline above), once that attempt has ended. */
  private async loadReason(task: Task, run: RunSummary | null): Promise<void> {
    fill(this.reason);
    if (!run || !RUN_ENDED.includes(run.status) || run.status === "succeeded") return;
    const key = this.reasonKey;
    let detail: RunDetail;
    try {
      detail = await getJson<RunDetail>(`workflows/${this.workflowId}/runs/${run.id}`);
    } catch {
      return;
    }
    if (key !== this.reasonKey || !detail.error || detail.error === task.error) return;
    fill(
      this.reason,
      h("p", { class: "callout failure" }, h("strong", {}, `Attempt ${run.attempt}: `), detail.error),
    );
  }

  private async loadOutput(task: Task): Promise<void> {
    if (task.status !== "succeeded") {
      fill(this.output);
      return;
    }
    const path = `workflows/${this.workflowId}/tasks/${encodeURIComponent(task.name)}/output`;
    let content: Child;
    try {
      const head = await readHead(await call(path), OUTPUT_PREVIEW_BYTES);
      content = [
        h("pre", { class: "output", tabindex: 0, "aria-label": "Output preview" }, head.text || "(empty)"),
        head.more
          ? h("p", { class: "muted" }, `The first ${OUTPUT_PREVIEW_BYTES / 1024} KiB; download it for all.`)
          : null,
      ];
    } catch (err) {
      content = h("p", { class: "muted" }, err instanceof Error ? err.message : String(err));
    }
    if (this.task?.name !== task.name) return;
    const dl = h("button", { type: "button", class: "small" }, "Download output");
    dl.addEventListener("click", () => {
      void download(path, `${task.name}.output.txt`).catch((e: Error) => alert(e.message));
    });
    fill(this.output, h("h3", {}, "Output"), content, h("div", { class: "actions" }, dl));
  }
}
