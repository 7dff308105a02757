import { ApiError, getJson, postJson } from "./api.ts";
import { fill, h, rerender } from "./dom.ts";
import { icon, label, span, when } from "./format.ts";
import { dagView, type DagView } from "./graph.ts";
import { followEvents, type Follow } from "./live.ts";
import type { Page } from "./router.ts";
import { TaskPanel } from "./task-panel.ts";
import { timeline } from "./timeline.ts";
import { TASK_STATE_ORDER, type WorkflowDetail, type WorkflowEvent } from "./types.ts";

const ENDED = ["succeeded", "failed", "cancelled"];
/** How soon after an event the whole workflow is read again (events come in bursts). */
const REFRESH_AFTER_EVENT_MS = 250;
/** A slow read while the workflow runs: running durations move on, and a missed event is caught. */
const REFRESH_EVERY_MS = 5000;
/**
 * The next whole read waits at least this many times as long as the last one took: a workflow of
 * thousands of tasks (megabytes a read, a tenth of a second of the server's each) is read every few
 * seconds while its events stream, not after each burst, so one page open on it never takes more than a
 * small share of the server. A small workflow's reads, milliseconds each, keep the delays above.
 */
const READ_COST_FACTOR = 20;

/**
 * A workflow: its state and actions, the DAG colored by task state, the attempts on a timeline, and
 * the selected task's panel. Task states change as the event stream says, without a reload.
 */
export function workflowPage(root: HTMLElement, id: string, query: URLSearchParams): Page {
  return new WorkflowPage(root, id, query);
}

class WorkflowPage implements Page {
  private w: WorkflowDetail | null = null;
  private dag: DagView | null = null;
  private follow: Follow | null = null;
  private lastEvent: string | null = null;
  private selected: string | null;
  private stopped = false;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  /** When the last whole read ended, and how long it took (performance.now() milliseconds). */
  private lastRead = { end: 0, took: 0 };
  /** The tasks by name, as of the last read (an event names its task). */
  private byName = new Map<string, WorkflowDetail["tasks"][number]>();
  private readonly panel: TaskPanel;
  private readonly status = h("span", { class: "badge", role: "status", "aria-live": "polite" });
  private readonly meta = h("p", { class: "meta" });
  private readonly counts = h("p", { class: "counts" });
  private readonly connection = h("span", { class: "connection muted" });
  private readonly cancel = h("button", { type: "button", class: "danger" }, "Cancel");
  private readonly retry = h("button", { type: "button", class: "primary" }, "Retry");
  private readonly message = h("p", { class: "callout failure", role: "alert", hidden: true });
  private readonly title = h("h1", { tabindex: -1 }, "Workflow");
  private readonly graphSlot = h("div", { class: "graph-slot" });
  private readonly timelineSlot = h("div", { class: "timeline-box" });

  constructor(
    private readonly root: HTMLElement,
    private readonly id: string,
    private readonly query: URLSearchParams,
  ) {
    this.selected = query.get("task");
    this.panel = new TaskPanel(id, (attempt) => this.setQuery(this.selected, attempt), {
      task: (name) => this.task(name),
      select: this.select,
    });
    this.layout();
    this.cancel.addEventListener("click", () => void this.act("cancel"));
    this.retry.addEventListener("click", () => void this.act("retry"));
    void this.refresh().then(() => this.title.focus({ preventScroll: true }));
  }

  stop(): void {
    this.stopped = true;
    this.follow?.stop();
    this.panel.stop();
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
  }

  private layout(): void {
    fill(
      this.root,
      h(
        "header",
        { class: "page-head" },
        h("div", { class: "title-row" }, this.title, this.status, this.connection),
        this.meta,
        this.counts,
        h("div", { class: "actions" }, this.cancel, this.retry),
        this.message,
      ),
      h(
        "div",
        { class: "workflow-grid" },
        h(
          "div",
          { class: "workflow-main" },
          h("section", { class: "panel", "aria-label": "Task graph" }, this.graphSlot),
          h(
            "section",
            { class: "panel", "aria-labelledby": "timeline-title" },
            h("h2", { id: "timeline-title" }, "Attempts over time"),
            this.timelineSlot,
          ),
        ),
        this.panel.element,
      ),
    );
  }

  /** The selected task and attempt live in the URL, so a link or a reload opens the same view. */
  private setQuery(task: string | null, attempt: number | null): void {
    const q = new URLSearchParams();
    if (task) q.set("task", task);
    if (attempt !== null) q.set("attempt", String(attempt));
    const hash = `#/workflows/${this.id}${q.size ? `?${q}` : ""}`;
    if (location.hash !== hash) history.replaceState(null, "", hash);
  }

  private readonly select = (name: string): void => {
    this.selected = name;
    this.setQuery(name, null);
    this.panel.show(this.task(name), null);
    this.render();
    // On a narrow screen the panel is below the graph: bring it into view.
    if (window.matchMedia("(max-width: 1099px)").matches) {
      this.panel.element.querySelector("#task-title")?.scrollIntoView({ block: "start" });
    }
  };

  private task(name: string | null) {
    return (name !== null && this.byName.get(name)) || null;
  }

  private render(): void {
    const w = this.w;
    if (!w) return;
    document.title = `${w.name} · ${label(w.status)} · DWOP`;
    this.title.textContent = w.name;
    this.status.className = `badge state-${w.status}`;
    this.status.textContent = `${icon(w.status)} ${label(w.status)}`;
    fill(
      this.meta,
      h("span", {}, "id ", h("code", {}, w.id)),
      h("span", {}, `submitted ${when(w.createdAt)}`),
      h("span", {}, `took ${span(w.startedAt ?? w.createdAt, w.finishedAt)}`),
    );
    const byState = new Map<string, number>();
    for (const t of w.tasks) byState.set(t.status, (byState.get(t.status) ?? 0) + 1);
    fill(
      this.counts,
      `${w.tasks.length} tasks: `,
      TASK_STATE_ORDER.filter((s) => byState.has(s)).map((s) =>
        h("span", { class: `count state-${s}` }, `${icon(s)} ${byState.get(s)} ${label(s)}`),
      ),
    );
    this.cancel.hidden = ENDED.includes(w.status);
    this.retry.hidden = !(w.status === "failed" || w.status === "cancelled");
    if (!this.dag) {
      this.dag = dagView(w.tasks, this.select);
      fill(this.graphSlot, this.dag.element);
    }
    this.dag.update(w.tasks);
    this.dag.select(this.selected);
    rerender(this.timelineSlot, () => timeline(w, this.selected, this.select));
    this.panel.show(this.task(this.selected));
  }

  private async refresh(): Promise<void> {
    const start = performance.now();
    try {
      this.w = await getJson<WorkflowDetail>(`workflows/${this.id}`);
      this.lastRead = { end: performance.now(), took: performance.now() - start };
      this.byName = new Map(this.w.tasks.map((t) => [t.name, t]));
    } catch (err) {
      if (this.stopped) return;
      if (err instanceof ApiError && err.status === 404 && !this.w) {
        fill(
          this.root,
          h("h1", { tabindex: -1 }, "Workflow not found"),
          h("p", {}, h("a", { href: "#/" }, "Back to the list")),
        );
        return;
      }
      this.showMessage(err);
      return;
    }
    if (this.stopped) return;
    const attempt = Number(this.query.get("attempt")) || null;
    if (this.selected === null) {
      // Opening a failed workflow shows what failed.
      this.selected = this.w.tasks.find((t) => t.status === "failed")?.name ?? null;
      if (this.selected) this.panel.show(this.task(this.selected), attempt);
    } else if (!this.panel.element.querySelector("#task-title")) {
      this.panel.show(this.task(this.selected), attempt);
    }
    this.render();
    if (!ENDED.includes(this.w.status) && !this.follow) this.startFollowing();
    this.schedule(REFRESH_EVERY_MS);
  }

  /**
   * The next read: soon after an event (replacing a later one), or the slow backstop while running; never
   * sooner than READ_COST_FACTOR times the last read's duration after it.
   */
  private schedule(ms: number): void {
    const ended = this.w !== null && ENDED.includes(this.w.status);
    if (this.stopped || (ended && ms === REFRESH_EVERY_MS)) return;
    if (this.refreshTimer) {
      if (ms === REFRESH_EVERY_MS) return;
      clearTimeout(this.refreshTimer);
    }
    const earliest = this.lastRead.end + READ_COST_FACTOR * this.lastRead.took - performance.now();
    this.refreshTimer = setTimeout(
      () => {
        this.refreshTimer = null;
        void this.refresh();
      },
      Math.max(ms, earliest),
    );
  }

  /** An event changes the task's color at once; the full record (runs, times) follows shortly. */
  private readonly onEvent = (e: WorkflowEvent): void => {
    this.lastEvent = e.id;
    const w = this.w;
    if (!w) return;
    if (e.kind === "task" && e.task && e.status) {
      const t = this.task(e.task);
      if (t) {
        t.status = e.status as typeof t.status;
        if (e.attempt !== null) t.attempt = e.attempt;
        this.dag?.update([t]);
      }
    } else if (e.kind === "workflow" && e.status) {
      w.status = e.status as typeof w.status;
      this.render();
    }
    this.schedule(REFRESH_AFTER_EVENT_MS);
  };

  private startFollowing(): void {
    this.follow = followEvents(
      this.id,
      {
        onEvent: this.onEvent,
        onEnd: () => {
          this.follow = null;
          this.schedule(REFRESH_AFTER_EVENT_MS);
        },
        onConnection: (state) => {
          this.connection.textContent =
            state === "live" ? "● live" : state === "reconnecting" ? "reconnecting…" : "";
        },
      },
      this.lastEvent,
    );
  }

  private showMessage(err: unknown): void {
    this.message.hidden = false;
    this.message.textContent = err instanceof Error ? err.message : String(err);
  }

  private async act(action: "cancel" | "retry"): Promise<void> {
    if (action === "cancel" && !confirm("Cancel this workflow? Running tasks are stopped.")) return;
    this.message.hidden = true;
    const button = action === "cancel" ? this.cancel : this.retry;
    button.disabled = true;
    try {
      this.w = await postJson<WorkflowDetail>(`workflows/${this.id}/${action}`);
      this.render();
      // A retried workflow runs again: follow its events from where the last stream ended.
      if (!ENDED.includes(this.w.status) && !this.follow) this.startFollowing();
      this.schedule(REFRESH_AFTER_EVENT_MS);
    } catch (err) {
      this.showMessage(err);
    } finally {
      button.disabled = false;
    }
  }
}
