import { ApiError, getJson, postJson } from "./api.ts";
import { fill, h, rerender } from "./dom.ts";
import { dagView, type DagView } from "./graph.ts";
import { icon, label, span, when } from "./format.ts";
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
 * A workflow: its state and actions, the DAG colored by task state, the attempts on a timeline, and
 * the selected task's panel. Task states change as the event stream says, without a reload.
 */
export function workflowPage(root: HTMLElement, id: string, query: URLSearchParams): Page {
  let w: WorkflowDetail | null = null;
  let dag: DagView | null = null;
  let follow: Follow | null = null;
  let lastEvent: string | null = null;
  let selected = query.get("task");
  let stopped = false;
  let refreshTimer: ReturnType<typeof setTimeout> | null = null;
  const panel = new TaskPanel(id, (attempt) => setQuery(selected, attempt));

  const status = h("span", { class: "badge", role: "status", "aria-live": "polite" });
  const meta = h("p", { class: "meta" });
  const counts = h("p", { class: "counts" });
  const connection = h("span", { class: "connection muted" });
  const cancel = h("button", { type: "button", class: "danger" }, "Cancel");
  const retry = h("button", { type: "button", class: "primary" }, "Retry");
  const message = h("p", { class: "callout failure", role: "alert", hidden: true });
  const title = h("h1", { tabindex: -1 }, "Workflow");
  const graphSlot = h("div", { class: "graph-slot" });
  const timelineSlot = h("div", { class: "timeline-box" });

  fill(
    root,
    h(
      "header",
      { class: "page-head" },
      h("div", { class: "title-row" }, title, status, connection),
      meta,
      counts,
      h("div", { class: "actions" }, cancel, retry),
      message,
    ),
    h(
      "div",
      { class: "workflow-grid" },
      h(
        "div",
        { class: "workflow-main" },
        h("section", { class: "panel", "aria-label": "Task graph" }, graphSlot),
        h("section", { class: "panel", "aria-labelledby": "timeline-title" }, h("h2", { id: "timeline-title" }, "Attempts over time"), timelineSlot),
      ),
      panel.element,
    ),
  );

  function setQuery(task: string | null, attempt: number | null): void {
    const q = new URLSearchParams();
    if (task) q.set("task", task);
    if (attempt !== null) q.set("attempt", String(attempt));
    const hash = `#/workflows/${id}${q.size ? `?${q}` : ""}`;
    if (location.hash !== hash) history.replaceState(null, "", hash);
  }

  function select(name: string): void {
    selected = name;
    setQuery(name, null);
    panel.show(w?.tasks.find((t) => t.name === name) ?? null, null);
    dag?.select(name);
    render();
    const heading = panel.element.querySelector<HTMLElement>("#task-title");
    if (window.matchMedia("(max-width: 1099px)").matches) heading?.scrollIntoView({ block: "start" });
  }

  function render(): void {
    if (!w) return;
    document.title = `${w.name} · ${label(w.status)} · DWOP`;
    title.textContent = w.name;
    status.className = `badge state-${w.status}`;
    status.textContent = `${icon(w.status)} ${label(w.status)}`;
    fill(
      meta,
      h("span", {}, "id ", h("code", {}, w.id)),
      h("span", {}, `submitted ${when(w.createdAt)}`),
      h("span", {}, `took ${span(w.startedAt ?? w.createdAt, w.finishedAt)}`),
    );
    const byState = new Map<string, number>();
    for (const t of w.tasks) byState.set(t.status, (byState.get(t.status) ?? 0) + 1);
    fill(
      counts,
      `${w.tasks.length} tasks: `,
      TASK_STATE_ORDER.filter((s) => byState.has(s)).map((s) =>
        h("span", { class: `count state-${s}` }, `${icon(s)} ${byState.get(s)} ${label(s)}`),
      ),
    );
    cancel.hidden = ENDED.includes(w.status);
    retry.hidden = !(w.status === "failed" || w.status === "cancelled");
    if (!dag) {
      dag = dagView(w.tasks, select);
      fill(graphSlot, dag.element);
    }
    dag.update(w.tasks);
    dag.select(selected);
    rerender(timelineSlot, () => timeline(w!, selected, select));
    panel.show(w.tasks.find((t) => t.name === selected) ?? null);
  }

  async function refresh(): Promise<void> {
    try {
      w = await getJson<WorkflowDetail>(`workflows/${id}`);
    } catch (err) {
      if (stopped) return;
      if (err instanceof ApiError && err.status === 404 && !w) {
        fill(root, h("h1", { tabindex: -1 }, "Workflow not found"), h("p", {}, h("a", { href: "#/" }, "Back to the list")));
        return;
      }
      showMessage(err);
      return;
    }
    if (stopped) return;
    if (selected === null) {
      selected = w.tasks.find((t) => t.status === "failed")?.name ?? null;
      if (selected) panel.show(w.tasks.find((t) => t.name === selected) ?? null, Number(query.get("attempt")) || null);
    } else if (!panel.element.querySelector("#task-title")) {
      panel.show(w.tasks.find((t) => t.name === selected) ?? null, Number(query.get("attempt")) || null);
    }
    render();
    if (!ENDED.includes(w.status) && !follow) startFollowing();
    schedule(REFRESH_EVERY_MS);
  }

  function schedule(ms: number): void {
    if (stopped || (w && ENDED.includes(w.status) && ms === REFRESH_EVERY_MS)) return;
    if (refreshTimer) {
      if (ms === REFRESH_EVERY_MS) return;
      clearTimeout(refreshTimer);
    }
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      void refresh();
    }, ms);
  }

  /** An event changes the task's color at once; the full record (runs, times) follows shortly. */
  function onEvent(e: WorkflowEvent): void {
    lastEvent = e.id;
    if (!w) return;
    if (e.kind === "task" && e.task && e.status) {
      const t = w.tasks.find((x) => x.name === e.task);
      if (t) {
        t.status = e.status as typeof t.status;
        if (e.attempt !== null) t.attempt = e.attempt;
        dag?.update([t]);
      }
    } else if (e.kind === "workflow" && e.status) {
      w.status = e.status as typeof w.status;
      render();
    }
    schedule(REFRESH_AFTER_EVENT_MS);
  }

  function startFollowing(): void {
    follow = followEvents(
      id,
      {
        onEvent,
        onEnd: () => {
          follow = null;
          schedule(REFRESH_AFTER_EVENT_MS);
        },
        onConnection: (state) => {
          connection.textContent = state === "live" ? "● live" : state === "reconnecting" ? "reconnecting…" : "";
        },
      },
      lastEvent,
    );
  }

  function showMessage(err: unknown): void {
    message.hidden = false;
    message.textContent = err instanceof Error ? err.message : String(err);
  }

  async function act(action: "cancel" | "retry"): Promise<void> {
    if (action === "cancel" && !confirm("Cancel this workflow? Running tasks are stopped.")) return;
    message.hidden = true;
    const button = action === "cancel" ? cancel : retry;
    button.disabled = true;
    try {
      w = await postJson<WorkflowDetail>(`workflows/${id}/${action}`);
      render();
      if (!ENDED.includes(w.status) && !follow) startFollowing();
      schedule(REFRESH_AFTER_EVENT_MS);
    } catch (err) {
      showMessage(err);
    } finally {
      button.disabled = false;
    }
  }
  cancel.addEventListener("click", () => void act("cancel"));
  retry.addEventListener("click", () => void act("retry"));

  void refresh().then(() => title.focus({ preventScroll: true }));
  return {
    stop() {
      stopped = true;
      follow?.stop();
      if (refreshTimer) clearTimeout(refreshTimer);
    },
  };
}
