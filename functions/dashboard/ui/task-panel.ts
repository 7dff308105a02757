import { ApiError, call, download, getJson, readHead, readTail } from "./api.ts";
import { fill, h, rerender, type Child } from "./dom.ts";
import { icon, label, span, when } from "./format.ts";
import type { RunDetail, RunSummary, Task } from "./types.ts";

/** Lines of a log shown at once; the whole log is a download away. */
const TAIL_LINES = 200;
const TAIL_BYTES = 64 * 1024;
const OUTPUT_PREVIEW_BYTES = 64 * 1024;

const lastLines = (text: string, n: number) => {
  const lines = text.replace(/\n$/, "").split("\n");
  return { text: lines.slice(-n).join("\n"), cut: lines.length > n };
};

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
  private outputKey = "";
  private seq = 0;

  constructor(
    private readonly workflowId: string,
    private readonly onAttempt: (attempt: number | null) => void,
  ) {
    fill(this.element, h("p", { class: "muted" }, "Select a task in the graph or the timeline."));
  }

  /** Shows `task` (or updates it after a live change); `attempt` picks the log shown. */
  show(task: Task | null, attempt: number | null = this.chosen): void {
    const changedTask = task?.name !== this.task?.name;
    this.task = task;
    this.chosen = changedTask ? attempt : (attempt ?? this.chosen);
    if (!task) {
      fill(this.element, h("p", { class: "muted" }, "Select a task in the graph or the timeline."));
      this.logKey = this.outputKey = "";
      return;
    }
    if (changedTask || !this.element.contains(this.facts)) {
      // What a failure needs first: the reason and the log's last lines; then attempts and times.
      fill(this.element, this.head, this.log, this.facts, this.output);
      fill(this.log);
      fill(this.output);
      this.logKey = this.outputKey = "";
    }
    rerender(this.head, () => this.renderHead(task));
    rerender(this.facts, () => this.renderFacts(task));
    const run = this.shownRun(task);
    const logKey = run ? `${task.name}:${run.id}:${run.status}` : `${task.name}:none`;
    if (logKey !== this.logKey) {
      this.logKey = logKey;
      void this.loadLog(task, run);
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

  private renderHead(t: Task): Child {
    return [
      h(
        "header",
        { class: "panel-head" },
        h("h2", { id: "task-title", class: "task-title", tabindex: -1 }, t.name),
        h("span", { class: `badge state-${t.status}` }, icon(t.status), " ", label(t.status)),
      ),
      t.error
        ? h("p", { class: "callout failure", role: "note" }, h("strong", {}, "Failure: "), t.error)
        : null,
    ];
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

  private async loadLog(task: Task, run: RunSummary | null): Promise<void> {
    const seq = ++this.seq;
    const path = `workflows/${this.workflowId}/tasks/${encodeURIComponent(task.name)}/logs`;
    if (!run) {
      fill(this.log, h("h3", {}, "Log"), h("p", { class: "muted" }, "The task has not run yet."));
      return;
    }
    const heading = h("h3", {}, `Log · attempt ${run.attempt}`);
    fill(this.log, heading, h("p", { class: "muted" }, "Loading…"));
    let detail: RunDetail | null = null;
    let body: { text: string; cut: boolean } | null = null;
    let note = "";
    try {
      detail = await getJson<RunDetail>(`workflows/${this.workflowId}/runs/${run.id}`);
      if (detail.logTail) {
        // The dispatcher keeps a failed attempt's last 100 lines with the run.
        body = { text: detail.logTail, cut: detail.logTail.split("\n").length >= 100 };
      } else {
        const res = await call(`${path}?attempt=${run.attempt}`);
        const tail = await readTail(res, TAIL_BYTES);
        const lines = lastLines(tail.text, TAIL_LINES);
        body = { text: lines.text, cut: tail.cut || lines.cut };
      }
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 404)
        note = err instanceof Error ? err.message : String(err);
      else
        note = run.finishedAt
          ? "No log was stored for this attempt."
          : "The log is stored when the attempt ends.";
    }
    if (seq !== this.seq) return;
    // The task's own failure is shown above; an earlier attempt's, here.
    const reason =
      detail?.error && detail.error !== task.error
        ? h("p", { class: "callout failure" }, h("strong", {}, `Attempt ${run.attempt}: `), detail.error)
        : null;
    const pre = body
      ? h(
          "pre",
          { class: "log", tabindex: 0, "aria-label": `Last lines of the log of attempt ${run.attempt}` },
          body.text || "(empty)",
        )
      : h("p", { class: "muted" }, note);
    const dl = h("button", { type: "button", class: "small" }, "Download full log");
    dl.addEventListener("click", () => {
      void download(`${path}?attempt=${run.attempt}`, `${task.name}-attempt-${run.attempt}.log`).catch(
        (e: Error) => alert(e.message),
      );
    });
    fill(
      this.log,
      heading,
      reason,
      body?.cut ? h("p", { class: "muted" }, "The last lines; download the log for all of it.") : null,
      pre,
      body ? h("div", { class: "actions" }, dl) : null,
    );
    if (pre instanceof HTMLPreElement) pre.scrollTop = pre.scrollHeight;
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
