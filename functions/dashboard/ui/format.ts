import type { TaskState, WorkflowState } from "./types.ts";

/** `850 ms`, `4.2 s`, `3 m 12 s`, `2 h 05 m`. */
export function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} m ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} m`;
}

/** From `start` to `end` (or now, while it goes on); "—" before it starts. */
export function span(start: string | null, end: string | null, now = Date.now()): string {
  if (!start) return "—";
  return duration((end ? Date.parse(end) : now) - Date.parse(start));
}

/** The time of day for today's moments, the date and time for older ones. */
export function when(iso: string | null): string {
  if (!iso) return "—";
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return today ? time : `${d.toLocaleDateString()} ${time}`;
}

const ICON: Record<string, string> = {
  pending: "·",
  queued: "○",
  dispatched: "◔",
  running: "◑",
  succeeded: "✓",
  failed: "✗",
  upstream_failed: "⊘",
  cancelled: "■",
  starting: "○",
  lost: "?",
};

/** A symbol for each state, so a state never reads by its color alone. */
export function icon(state: string): string {
  return ICON[state] ?? "·";
}

export function label(state: TaskState | WorkflowState | string): string {
  return state.replace(/_/g, " ");
}

export const shortId = (id: string) => id.slice(0, 8);
