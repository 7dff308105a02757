import { getJson } from "./api.ts";
import { fill, h } from "./dom.ts";
import { icon, label, shortId, span, when } from "./format.ts";
import type { Page } from "./router.ts";
import { TASK_STATE_ORDER, WORKFLOW_STATE_LIST, type SummaryPage, type WorkflowSummary } from "./types.ts";

const PAGE = 50;
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
    h("td", { "data-label": "State" }, h("span", { class: `badge state-${w.status}` }, icon(w.status), " ", label(w.status))),
    h(
      "td",
      { "data-label": "Name", class: "name-cell" },
      h("a", { href: `#/workflows/${w.id}`, class: "wf-name", "data-key": `wf:${w.id}` }, w.name),
      h("span", { class: "muted id" }, shortId(w.id)),
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
  const status = h(
    "select",
    { id: "status-filter", name: "status" },
    h("option", { value: "" }, "all states"),
    WORKFLOW_STATE_LIST.map((s) => h("option", { value: s }, label(s))),
  );
  status.value = query.get("status") ?? "";
  const search = h("input", { id: "search", type: "search", name: "q", placeholder: "name or id", autocomplete: "off" });
  search.value = query.get("q") ?? "";
  const tbody = h("tbody");
  const empty = h("p", { class: "muted", hidden: true });
  const more = h("button", { type: "button", hidden: true }, "Show more");
  const error = h("p", { class: "callout failure", role: "alert", hidden: true });
  const summary = h("p", { class: "muted", role: "status" });

  fill(
    root,
    h("div", { class: "page-head" }, h("div", { class: "title-row" }, h("h1", { tabindex: -1 }, "Workflows"), h("a", { href: "#/submit", class: "button primary" }, "Submit a workflow"))),
    h(
      "form",
      { class: "filters", role: "search", onsubmit: (e: Event) => e.preventDefault() },
      h("label", { for: "status-filter" }, "State"),
      status,
      h("label", { for: "search" }, "Search"),
      search,
    ),
    error,
    h(
      "table",
      { class: "workflows" },
      h("caption", { class: "sr-only" }, "Workflows, newest first"),
      h("thead", {}, h("tr", {}, ["State", "Name", "Owner", "Started", "Duration", "Tasks"].map((c) => h("th", { scope: "col" }, c)))),
      tbody,
    ),
    empty,
    summary,
    h("div", { class: "actions" }, more),
  );

  let shown = PAGE;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let seq = 0;

  async function load(): Promise<void> {
    const mine = ++seq;
    const q = new URLSearchParams({ limit: String(Math.min(100, shown)) });
    if (status.value) q.set("status", status.value);
    if (search.value.trim()) q.set("q", search.value.trim());
    try {
      const page = await getJson<SummaryPage>(`ui/api/workflows?${q}`);
      if (stopped || mine !== seq) return;
      error.hidden = true;
      update(page);
    } catch (err) {
      if (stopped || mine !== seq) return;
      error.hidden = false;
      error.textContent = `Could not load workflows: ${(err as Error).message}`;
    }
    if (!stopped && mine === seq) schedule();
  }

  /** The next read; a hidden tab waits without asking the server. */
  function schedule(): void {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => (document.hidden ? schedule() : void load()), POLL_MS);
  }

  /** Rows are replaced in place, by id, so focus and scroll stay where they were. */
  function update(page: SummaryPage): void {
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
    empty.hidden = page.workflows.length > 0;
    empty.textContent = status.value || search.value ? "No workflow matches." : "No workflows yet. Submit one to see it here.";
    more.hidden = page.nextCursor === null || shown >= 100;
    summary.textContent = page.workflows.length ? `${page.workflows.length} workflow${page.workflows.length === 1 ? "" : "s"} shown` : "";
  }

  function refilter(): void {
    const q = new URLSearchParams();
    if (status.value) q.set("status", status.value);
    if (search.value.trim()) q.set("q", search.value.trim());
    history.replaceState(null, "", `#/${q.size ? `?${q}` : ""}`);
    shown = PAGE;
    fill(tbody);
    void load();
  }
  let typing: ReturnType<typeof setTimeout> | null = null;
  status.addEventListener("change", refilter);
  search.addEventListener("input", () => {
    if (typing) clearTimeout(typing);
    typing = setTimeout(refilter, 250);
  });
  more.addEventListener("click", () => {
    shown = Math.min(100, shown + PAGE);
    void load();
  });

  document.title = "Workflows · DWOP";
  void load();
  root.querySelector<HTMLElement>("h1")?.focus({ preventScroll: true });
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (typing) clearTimeout(typing);
    },
  };
}
