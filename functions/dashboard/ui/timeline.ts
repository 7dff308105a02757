import { h, type Child } from "./dom.ts";
import { duration, icon, label } from "./format.ts";
import type { RunSummary, WorkflowDetail } from "./types.ts";

const ms = (iso: string | null) => (iso ? Date.parse(iso) : NaN);

/** When the timeline starts and ends: the first attempt's start to the last one's end (or now). */
function bounds(w: WorkflowDetail, now: number): { t0: number; t1: number } {
  const runs = w.tasks.flatMap((t) => t.runs).filter((r) => r.startedAt);
  const t0 = Math.min(ms(w.startedAt ?? w.createdAt), ...runs.map((r) => ms(r.startedAt)));
  const ends = runs.map((r) => (r.finishedAt ? ms(r.finishedAt) : now));
  const t1 = Math.max(t0 + 1, w.finishedAt ? ms(w.finishedAt) : now, ...ends);
  return { t0, t1 };
}

function bar(r: RunSummary, t0: number, t1: number, now: number): Child {
  if (!r.startedAt) return null;
  const start = ms(r.startedAt);
  const end = r.finishedAt ? ms(r.finishedAt) : now;
  const left = ((start - t0) / (t1 - t0)) * 100;
  const width = Math.max(0.6, ((end - start) / (t1 - t0)) * 100);
  const reason = r.failureReason ? ` (${label(r.failureReason)})` : "";
  const text = `attempt ${r.attempt}: ${label(r.status)}${reason}, ${duration(end - start)}`;
  const el = h("span", { class: `run state-${r.status}`, title: text });
  // Through the CSSOM: the page's Content-Security-Policy refuses style attributes.
  el.style.left = `${left.toFixed(3)}%`;
  el.style.width = `${Math.min(width, 100 - left).toFixed(3)}%`;
  return el;
}

/**
 * One row per task, one bar per attempt on a shared time axis: retries, waits between tasks and the
 * slow task stand out at a glance. Each task name is a button that opens the task.
 */
export function timeline(
  w: WorkflowDetail,
  selected: string | null,
  onSelect: (name: string) => void,
): Child {
  const now = Date.now();
  const { t0, t1 } = bounds(w, now);
  const rows = w.tasks.map((t) => {
    const attempts = t.runs.length;
    return h(
      "li",
      { class: t.name === selected ? "selected" : null },
      h(
        "button",
        {
          type: "button",
          class: `tl-name state-${t.status}`,
          "data-key": `tl:${t.name}`,
          title: t.name,
          "aria-current": t.name === selected ? "true" : null,
          onclick: () => onSelect(t.name),
        },
        h("span", { class: "state-icon", "aria-hidden": "true" }, icon(t.status)),
        h("span", { class: "tl-label" }, t.name),
        h(
          "span",
          { class: "sr-only" },
          `, ${label(t.status)}, ${attempts} attempt${attempts === 1 ? "" : "s"}`,
        ),
      ),
      h(
        "span",
        { class: "tl-track", "aria-hidden": "true" },
        t.runs.map((r) => bar(r, t0, t1, now)),
      ),
    );
  });
  return [
    h(
      "div",
      { class: "tl-axis", "aria-hidden": "true" },
      h("span", {}, "0 s"),
      h("span", {}, duration((t1 - t0) / 2)),
      h("span", {}, duration(t1 - t0)),
    ),
    h("ol", { class: "timeline" }, rows),
  ];
}
