import { call, getJson } from "./api.ts";
import { fill, h } from "./dom.ts";
import { icon, label, shortId, when } from "./format.ts";
import type { Page } from "./router.ts";
import type { Schedule, ScheduleFire } from "./types.ts";

const POLL_MS = 5000;

/** A schedule's last runs, newest first: each a link to its workflow, its state as icon and words. */
function lastRuns(s: Schedule): HTMLElement {
  if (s.lastRuns.length === 0) return h("span", { class: "muted" }, "none yet");
  return h(
    "ul",
    { class: "last-runs" },
    s.lastRuns.map((r) =>
      h(
        "li",
        {},
        h(
          "a",
          {
            href: `#/workflows/${r.id}`,
            class: `badge state-${r.status}`,
            title: `${label(r.status)}, ${r.id}`,
          },
          icon(r.status),
          " ",
          when(r.createdAt),
        ),
        h("span", { class: "sr-only" }, ` ${label(r.status)} (${shortId(r.id)})`),
      ),
    ),
  );
}

const FIRES_SHOWN = 5;
const OUTCOME_ICON: Record<ScheduleFire["outcome"], string> = {
  started: "▶",
  failed: "✗",
  skipped_overlap: "⏭",
  missed: "⌀",
};
const OUTCOME_WORDS: Record<ScheduleFire["outcome"], string> = {
  started: "started",
  failed: "failed",
  skipped_overlap: "skipped (overlap)",
  missed: "missed",
};

/** A fire's time, or a missed record's range and count. */
function fireTimes(f: ScheduleFire): string {
  if (f.outcome !== "missed" || !f.missedThrough || f.missedThrough === f.fireAt) return when(f.fireAt);
  const count = f.missedCount === null ? "over 1000" : String(f.missedCount);
  return `${when(f.fireAt)} – ${when(f.missedThrough)} (${count})`;
}

/**
 * A schedule's last fire records, newest first: what became of each time (started, failed, skipped,
 * missed) and, in words, why; a started one links to its workflow.
 */
function lastFires(s: Schedule): HTMLElement {
  if (s.lastFires.length === 0) return h("span", { class: "muted" }, "none yet");
  return h(
    "ul",
    { class: "last-fires" },
    s.lastFires.slice(0, FIRES_SHOWN).map((f) => {
      const text = `${OUTCOME_ICON[f.outcome]} ${OUTCOME_WORDS[f.outcome]} ${fireTimes(f)}`;
      const attrs = { class: `fire fire-${f.outcome}`, "data-outcome": f.outcome, title: f.reason ?? "" };
      return h(
        "li",
        {},
        f.workflowId
          ? h("a", { ...attrs, href: `#/workflows/${f.workflowId}` }, text)
          : h("span", attrs, text),
        f.reason ? h("span", { class: "fire-reason muted" }, ` ${f.reason}`) : null,
      );
    }),
  );
}

/**
 * The caller's schedules: each one's expression and zone, when it fires next, its last runs, and a
 * button that pauses or resumes it. Read again every five seconds while the tab is visible.
 */
export function schedulesPage(root: HTMLElement): Page {
  return new SchedulesPage(root);
}

class SchedulesPage implements Page {
  private readonly tbody = h("tbody");
  private readonly empty = h(
    "p",
    { class: "muted", hidden: true },
    "No schedules yet. Create one with `dwop schedule add` or POST /schedules.",
  );
  private readonly error = h("p", { class: "callout failure", role: "alert", hidden: true });
  private stopped = false;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(root: HTMLElement) {
    const columns = ["Name", "When", "Next fire", "Overlap · catchup", "Last runs", "Last fires", ""];
    fill(
      root,
      h(
        "div",
        { class: "page-head" },
        h("div", { class: "title-row" }, h("h1", { tabindex: -1 }, "Schedules")),
      ),
      this.error,
      h(
        "table",
        { class: "schedules" },
        h("caption", { class: "sr-only" }, "Schedules, by name"),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            columns.map((c) => h("th", { scope: "col" }, c)),
          ),
        ),
        this.tbody,
      ),
      this.empty,
    );
    document.title = "Schedules · DWOP";
    void this.load();
    root.querySelector<HTMLElement>("h1")?.focus({ preventScroll: true });
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private async load(): Promise<void> {
    try {
      const { schedules } = await getJson<{ schedules: Schedule[] }>("schedules");
      if (this.stopped) return;
      this.error.hidden = true;
      fill(
        this.tbody,
        schedules.map((s) => this.row(s)),
      );
      this.empty.hidden = schedules.length > 0;
    } catch (err) {
      if (this.stopped) return;
      this.error.hidden = false;
      this.error.textContent = `Could not load schedules: ${(err as Error).message}`;
    }
    if (!this.stopped) this.schedule();
  }

  /** The next read; a hidden tab waits without asking the server. */
  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => (document.hidden ? this.schedule() : void this.load()), POLL_MS);
  }

  private row(s: Schedule): HTMLTableRowElement {
    const toggle = h(
      "button",
      { type: "button", class: "small", "data-key": `toggle:${s.name}` },
      s.paused ? "Resume" : "Pause",
    );
    toggle.addEventListener("click", () => void this.setPaused(s.name, !s.paused, toggle));
    return h(
      "tr",
      { "data-name": s.name },
      h(
        "td",
        { "data-label": "Name", class: "name-cell" },
        h("span", { class: "wf-name" }, s.name),
        h("a", { href: `#/?schedule=${encodeURIComponent(s.name)}`, class: "muted all-runs" }, "all runs"),
      ),
      h(
        "td",
        { "data-label": "When" },
        h("code", {}, s.cron),
        h("span", { class: "muted" }, ` ${s.timezone}`),
      ),
      h(
        "td",
        { "data-label": "Next fire", class: "next-fire" },
        s.paused ? h("span", { class: "badge" }, "paused") : when(s.nextFireAt),
      ),
      h("td", { "data-label": "Overlap · catchup" }, `${label(s.overlap)} · ${s.catchup}`),
      h("td", { "data-label": "Last runs" }, lastRuns(s)),
      h("td", { "data-label": "Last fires" }, lastFires(s)),
      h("td", {}, toggle),
    );
  }

  private async setPaused(name: string, paused: boolean, button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    try {
      await call(`schedules/${encodeURIComponent(name)}`, {
        method: "PATCH",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ paused }),
      });
    } catch (err) {
      this.error.hidden = false;
      this.error.textContent = `Could not ${paused ? "pause" : "resume"} ${name}: ${(err as Error).message}`;
    }
    await this.load();
  }
}
