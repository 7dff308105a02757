import { getJson } from "./api.ts";
import { fill, h } from "./dom.ts";
import { icon, label, shortId, span, when } from "./format.ts";
import type { Page } from "./router.ts";
import {
  TASK_STATE_ORDER,
  WORKFLOW_STATE_LIST,
  type Schedule,
  type SummaryPage,
  type WorkflowSummary,
} from "./types.ts";

const PAGE = 50;
/** The API's largest page: a list longer than this is read in pages, each after the last's cursor. */
const API_PAGE = 100;
const POLL_MS = 2000;

/** Task counts by state: a bar in proportion, and the numbers in words for everyone. */
function taskCounts(w: WorkflowSummary): HTMLElement {
  const states = TASK_STATE_ORDER.filter((s) => (w.tasks[s] ?? 0) > 0);
  const bar = h("span", { class: "stack", "aria-hidden": "true" });
  for (const s of states) {
    const part = h("span", { class: `state-${s}` });
    part.style.flexGrow = String(w.tasks[s]);
    bar.appendChild(part);
  }
  return h(
    "span",
    { class: "task-counts" },
    bar,
    h(
      "span",
      { class: "count-text" },
      states.map((s) => h("span", { class: `count state-${s}`, title: label(s) }, `${icon(s)}${w.tasks[s]}`)),
    ),
    h("span", { class: "sr-only" }, states.map((s) => `${w.tasks[s]} ${label(s)}`).join(", ")),
  );
}

function row(w: WorkflowSummary): HTMLTableRowElement {
  return h(
    "tr",
    { "data-id": w.id },
    h(
      "td",
      { "data-label": "State" },
      h("span", { class: `badge state-${w.status}` }, icon(w.status), " ", label(w.status)),
    ),
    h(
      "td",
      { "data-label": "Name", class: "name-cell" },
      h("a", { href: `#/workflows/${w.id}`, class: "wf-name", "data-key": `wf:${w.id}` }, w.name),
      h("span", { class: "muted id" }, shortId(w.id)),
    ),
    h(
      "td",
      { "data-label": "Schedule", class: "schedule" },
      w.schedule
        ? h(
            "a",
            {
              href: `#/?schedule=${encodeURIComponent(w.schedule)}`,
              title: `only the runs of ${w.schedule}`,
            },
            w.schedule,
          )
        : h("span", { class: "muted" }, "—"),
    ),
    h("td", { "data-label": "Owner", class: "owner" }, w.owner),
    h("td", { "data-label": "Started" }, when(w.startedAt ?? w.createdAt)),
    h("td", { "data-label": "Duration" }, span(w.startedAt ?? w.createdAt, w.finishedAt)),
    h("td", { "data-label": "Tasks" }, taskCounts(w)),
  );
}

/**
 * The caller's workflows, newest first: filter by state, search by name or id, and see them change as
 * they run (the list is read again every two seconds while the tab is visible).
 */
export function listPage(root: HTMLElement, query: URLSearchParams): Page {
  return new ListPage(root, query);
}

class ListPage implements Page {
  private readonly status = h(
    "select",
    { id: "status-filter", name: "status" },
    h("option", { value: "" }, "all states"),
    WORKFLOW_STATE_LIST.map((s) => h("option", { value: s }, label(s))),
  );
  private readonly scheduleFilter = h(
    "select",
    { id: "schedule-filter", name: "schedule" },
    h("option", { value: "" }, "any or none"),
  );
  private readonly search = h("input", {
    id: "search",
    type: "search",
    name: "q",
    placeholder: "name or id",
    autocomplete: "off",
  });
  private readonly tbody = h("tbody");
  private readonly empty = h("p", { class: "muted", hidden: true });
  private readonly more = h("button", { type: "button", hidden: true }, "Show more");
  private readonly error = h("p", { class: "callout failure", role: "alert", hidden: true });
  private readonly summary = h("p", { class: "muted", role: "status" });
  /** How many rows are shown: a page more with each "Show more", read again on each refresh. */
  private shown = PAGE;
  private stopped = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private typing: ReturnType<typeof setTimeout> | null = null;
  private seq = 0;

  constructor(root: HTMLElement, query: URLSearchParams) {
    this.status.value = query.get("status") ?? "";
    this.search.value = query.get("q") ?? "";
    this.scheduleOption(query.get("schedule") ?? "");
    this.scheduleFilter.value = query.get("schedule") ?? "";
    this.layout(root);
    this.status.addEventListener("change", () => this.refilter());
    this.scheduleFilter.addEventListener("change", () => this.refilter());
    void this.loadSchedules();
    this.search.addEventListener("input", () => {
      if (this.typing) clearTimeout(this.typing);
      this.typing = setTimeout(() => this.refilter(), 250);
    });
    this.more.addEventListener("click", () => {
      this.shown += PAGE;
      void this.load();
    });
    document.title = "Workflows · DWOP";
    void this.load();
    root.querySelector<HTMLElement>("h1")?.focus({ preventScroll: true });
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.typing) clearTimeout(this.typing);
  }

  private layout(root: HTMLElement): void {
    const columns = ["State", "Name", "Schedule", "Owner", "Started", "Duration", "Tasks"];
    fill(
      root,
      h(
        "div",
        { class: "page-head" },
        h(
          "div",
          { class: "title-row" },
          h("h1", { tabindex: -1 }, "Workflows"),
          h("a", { href: "#/submit", class: "button primary" }, "Submit a workflow"),
        ),
      ),
      h(
        "form",
        { class: "filters", role: "search", onsubmit: (e: Event) => e.preventDefault() },
        h("label", { for: "status-filter" }, "State"),
        this.status,
        h("label", { for: "schedule-filter" }, "Schedule"),
        this.scheduleFilter,
        h("label", { for: "search" }, "Search"),
        this.search,
      ),
      this.error,
      h(
        "table",
        { class: "workflows" },
        h("caption", { class: "sr-only" }, "Workflows, newest first"),
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
      this.summary,
      h("div", { class: "actions" }, this.more),
    );
  }

  private filters(): URLSearchParams {
    const q = new URLSearchParams();
    if (this.status.value) q.set("status", this.status.value);
    if (this.scheduleFilter.value) q.set("schedule", this.scheduleFilter.value);
    if (this.search.value.trim()) q.set("q", this.search.value.trim());
    return q;
  }

  /** The filter's choices: the caller's schedules (a deleted one's runs keep its name: see the URL's). */
  private async loadSchedules(): Promise<void> {
    try {
      const { schedules } = await getJson<{ schedules: Schedule[] }>("schedules");
      if (this.stopped) return;
      for (const s of schedules) this.scheduleOption(s.name);
    } catch {
      // The filter still holds the URL's schedule; the list itself reports a failing API.
    }
  }

  private scheduleOption(name: string): void {
    if (!name || [...this.scheduleFilter.options].some((o) => o.value === name)) return;
    this.scheduleFilter.appendChild(h("option", { value: name }, name));
  }

  private async load(): Promise<void> {
    const mine = ++this.seq;
    try {
      const page = await this.read(this.shown);
      if (this.stopped || mine !== this.seq) return;
      this.error.hidden = true;
      this.update(page);
    } catch (err) {
      if (this.stopped || mine !== this.seq) return;
      this.error.hidden = false;
      this.error.textContent = `Could not load workflows: ${(err as Error).message}`;
    }
    if (!this.stopped && mine === this.seq) this.schedule();
  }

  /**
   * The first `count` rows, in pages of at most the API's 100, each after the previous one's cursor
   * (the API stops a page at 100 rows; a longer list follows `nextCursor`).
   */
  private async read(count: number): Promise<SummaryPage> {
    const workflows: WorkflowSummary[] = [];
    let cursor: string | null = null;
    for (;;) {
      const q = this.filters();
      q.set("limit", String(Math.min(API_PAGE, count - workflows.length)));
      if (cursor) q.set("cursor", cursor);
      const page: SummaryPage = await getJson<SummaryPage>(`ui/api/workflows?${q}`);
      workflows.push(...page.workflows);
      cursor = page.nextCursor;
      if (cursor === null || workflows.length >= count) return { ...page, workflows, nextCursor: cursor };
    }
  }

  /** The next read; a hidden tab waits without asking the server. */
  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => (document.hidden ? this.schedule() : void this.load()), POLL_MS);
  }

  /** Rows are replaced in place, by id, so focus and scroll stay where they were. */
  private update(page: SummaryPage): void {
    const tbody = this.tbody;
    const existing = new Map([...tbody.rows].map((r) => [r.dataset.id!, r]));
    let before: Element | null = tbody.firstElementChild;
    for (const w of page.workflows) {
      const fresh = row(w);
      const old = existing.get(w.id);
      existing.delete(w.id);
      if (old) {
        if (old.textContent !== fresh.textContent) old.replaceChildren(...fresh.childNodes);
        if (old !== before) tbody.insertBefore(old, before);
        before = old.nextElementSibling;
      } else {
        tbody.insertBefore(fresh, before);
      }
    }
    for (const gone of existing.values()) gone.remove();
    const n = page.workflows.length;
    this.empty.hidden = n > 0;
    this.empty.textContent =
      this.filters().size > 0 ? "No workflow matches." : "No workflows yet. Submit one to see it here.";
    this.more.hidden = page.nextCursor === null;
    this.summary.textContent = n ? `${n} workflow${n === 1 ? "" : "s"} shown` : "";
  }

  private refilter(): void {
    const q = this.filters();
    history.replaceState(null, "", `#/${q.size ? `?${q}` : ""}`);
    this.shown = PAGE;
    fill(this.tbody);
    void this.load();
  }
}
