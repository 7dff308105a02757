import { h, s } from "./dom.ts";
import { icon, label } from "./format.ts";
import { isDummy, layoutDag, type Layout } from "./layout.ts";
import type { TaskParam } from "./types.ts";

/** A node of the drawn graph: a task (with its state and attempt) or a workflow input. */
export interface GraphTask {
  name: string;
  params: TaskParam[];
  status: string;
  attempt: number;
}

const NODE_W = 176;
const NODE_H = 34;
const GAP_X = 64;
const GAP_Y = 14;
const DUMMY_H = 10;
const PAD = 12;
/** Characters of a name that fit in a node beside the state symbol and an attempt badge. */
const MAX_CHARS = 20;
const INPUT_PREFIX = "inputs.";

export interface DagView {
  /** The figure: a scrolling box holding the SVG, with a fit-to-width switch. */
  element: HTMLElement;
  /** Recolors nodes after state changes; the layout never changes for a workflow. */
  update(tasks: readonly GraphTask[]): void;
  select(name: string | null): void;
}

/** A name cut in the middle: names that share a long prefix still differ at their ends. */
function fitName(name: string): string {
  if (name.length <= MAX_CHARS) return name;
  const tail = Math.floor((MAX_CHARS - 1) / 2);
  return `${name.slice(0, MAX_CHARS - 1 - tail)}…${name.slice(-tail)}`;
}

type Point = { x: number; y: number };

/** Where each node (dummies included) goes, and the drawing's size. */
function place(layout: Layout): { at: (id: string) => Point; width: number; height: number } {
  // A long edge's dummy nodes take a thin slot, not a node's: long edges then cost little height.
  const slot = (id: string) => (isDummy(id) ? DUMMY_H : NODE_H + GAP_Y);
  const layerHeights = layout.layers.map((l) => l.reduce((sum, id) => sum + slot(id), 0));
  const tallest = Math.max(NODE_H + GAP_Y, ...layerHeights);
  const columns = layout.layers.length;
  const placed = new Map<string, Point>();
  layout.layers.forEach((l, layer) => {
    // Each layer is centred on the tallest one.
    let y = PAD + (tallest - layerHeights[layer]!) / 2;
    for (const id of l) {
      // A dummy's y is where its edge passes: the middle of its slot, less half a node (see edgePath).
      placed.set(id, {
        x: PAD + layer * (NODE_W + GAP_X),
        y: isDummy(id) ? y + DUMMY_H / 2 - NODE_H / 2 : y,
      });
      y += slot(id);
    }
  });
  return {
    at: (id) => placed.get(id)!,
    width: PAD * 2 + columns * NODE_W + Math.max(0, columns - 1) * GAP_X,
    height: PAD * 2 + tallest - GAP_Y,
  };
}

function arrowMarker(): SVGElement {
  return s(
    "defs",
    {},
    s(
      "marker",
      { id: "arrow", viewBox: "0 0 8 8", refX: 8, refY: 4, markerWidth: 7, markerHeight: 7, orient: "auto" },
      s("path", { d: "M0,0 L8,4 L0,8 z" }),
    ),
  );
}

/**
 * The workflow's DAG as SVG, upstream to the left. Nodes are one tab stop: arrow keys move between them
 * (left and right across layers, up and down within one), Enter or Space selects.
 */
export function dagView(tasks: readonly GraphTask[], onSelect: (name: string) => void): DagView {
  return new DagGraph(tasks, onSelect);
}

class DagGraph implements DagView {
  readonly element: HTMLElement;
  private readonly layout: Layout;
  private readonly nodes = new Map<string, SVGGElement>();

  constructor(
    tasks: readonly GraphTask[],
    private readonly onSelect: (name: string) => void,
  ) {
    const names = tasks.map((t) => t.name);
    const upstreams = new Set(tasks.flatMap((t) => t.params.map((p) => p.upstream)));
    const inputs = [...upstreams].filter((u) => u.startsWith(INPUT_PREFIX));
    const edges = tasks.flatMap((t) => t.params.map((p) => ({ from: p.upstream, to: t.name })));
    this.layout = layoutDag([...inputs, ...names], edges);
    const { at, width, height } = place(this.layout);

    const edgeGroup = s("g", { class: "edges" });
    for (const { via } of this.layout.paths) {
      edgeGroup.appendChild(s("path", { d: edgePath(via, at), class: "edge" }));
    }
    const nodeGroup = s("g", { class: "nodes" });
    for (const id of this.layout.layers.flat()) {
      if (isDummy(id)) continue;
      const g = this.drawNode(id, at(id));
      this.nodes.set(id, g);
      nodeGroup.appendChild(g);
    }
    const svg = s(
      "svg",
      {
        class: "dag",
        viewBox: `0 0 ${width} ${height}`,
        width,
        height,
        role: "group",
        "aria-label": `Task graph: ${names.length} tasks in ${this.layout.layers.length} layers`,
      },
      arrowMarker(),
      edgeGroup,
      nodeGroup,
    );
    this.element = this.figure(svg, width);
    this.focusable(names[0] ?? null);
    this.update(tasks);
    // A tall graph opens at its first root, not at the empty space above a short first layer.
    const first = this.layout.layers[0]?.find((id) => !isDummy(id));
    const box = this.element.querySelector(".dag-box")!;
    if (first) requestAnimationFrame(() => (box.scrollTop = Math.max(0, at(first).y - PAD)));
  }

  private drawNode(id: string, { x, y }: Point): SVGGElement {
    const isInput = id.startsWith(INPUT_PREFIX);
    const g = s(
      "g",
      {
        class: isInput ? "node input" : "node",
        transform: `translate(${x} ${y})`,
        tabindex: -1,
        role: isInput ? "img" : "button",
        "data-key": `node:${id}`,
        "data-task": isInput ? null : id,
      },
      s("title", {}, id),
      s("rect", { width: NODE_W, height: NODE_H, rx: isInput ? 2 : 7 }),
      s("text", { x: 10, y: NODE_H / 2, class: "icon" }, isInput ? "⇢" : ""),
      s("text", { x: 28, y: NODE_H / 2, class: "name" }, fitName(id)),
      s("text", { x: NODE_W - 8, y: NODE_H / 2, class: "badge", "text-anchor": "end" }),
    );
    if (!isInput) {
      g.addEventListener("click", () => this.onSelect(id));
      g.addEventListener("keydown", (e) => this.onKey(e, id));
    }
    return g;
  }

  /** The scrolling box around the drawing, and a switch to fit it to the width instead. */
  private figure(svg: SVGElement, width: number): HTMLElement {
    const box = h("div", { class: "dag-box" }, svg);
    if (width <= 900) box.classList.add("fit");
    const fit = h(
      "button",
      { type: "button", class: "small", "aria-pressed": String(width <= 900) },
      "Fit to width",
    );
    fit.addEventListener("click", () =>
      fit.setAttribute("aria-pressed", String(box.classList.toggle("fit"))),
    );
    const caption = h(
      "figcaption",
      {},
      h("span", {}, "Graph"),
      h("span", { class: "hint" }, "arrow keys move, Enter opens"),
      fit,
    );
    return h("figure", { class: "dag-figure" }, caption, box);
  }

  /** The one node that Tab reaches (a roving tab stop). */
  private focusable(name: string | null): void {
    for (const [id, g] of this.nodes) g.setAttribute("tabindex", id === name ? "0" : "-1");
  }

  private onKey(e: KeyboardEvent, id: string): void {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      this.onSelect(id);
      return;
    }
    const next = neighbour(this.layout, id, e.key);
    if (next) {
      e.preventDefault();
      this.focusable(next);
      this.nodes.get(next)?.focus();
    }
  }

  update(updated: readonly GraphTask[]): void {
    for (const t of updated) {
      const g = this.nodes.get(t.name);
      if (!g) continue;
      const selected = g.classList.contains("selected") ? " selected" : "";
      const attempt = t.attempt > 1 ? `, attempt ${t.attempt}` : "";
      g.setAttribute("class", `node state-${t.status}${selected}`);
      g.setAttribute("aria-label", `${t.name}: ${label(t.status)}${attempt}`);
      g.querySelector("title")!.textContent = `${t.name}\n${label(t.status)}${attempt}`;
      g.querySelector(".icon")!.textContent = icon(t.status);
      g.querySelector(".badge")!.textContent = t.attempt > 1 ? `×${t.attempt}` : "";
    }
  }

  select(name: string | null): void {
    for (const [id, g] of this.nodes) g.classList.toggle("selected", id === name);
    if (name && this.nodes.has(name)) this.focusable(name);
  }
}

/** The real node an arrow key leads to from `id`, skipping dummies; null at an edge of the graph. */
function neighbour(layout: Layout, id: string, key: string): string | null {
  const p = layout.position.get(id)!;
  const real = (layer: number) =>
    (layout.layers[layer] ?? []).filter((n) => !isDummy(n) && !n.startsWith(INPUT_PREFIX));
  if (key === "ArrowUp" || key === "ArrowDown") {
    const here = real(p.layer);
    const i = here.indexOf(id) + (key === "ArrowUp" ? -1 : 1);
    return here[i] ?? null;
  }
  if (key === "ArrowLeft" || key === "ArrowRight") {
    const step = key === "ArrowLeft" ? -1 : 1;
    for (let l = p.layer + step; l >= 0 && l < layout.layers.length; l += step) {
      const there = real(l);
      if (there.length === 0) continue;
      // The node nearest in height to this one.
      const ratio = p.order / Math.max(1, layout.layers[p.layer]!.length - 1);
      return there[Math.round(ratio * (there.length - 1))] ?? null;
    }
  }
  return null;
}

/** A smooth path through an edge's nodes: out of a node's right side, into the next one's left side. */
function edgePath(via: readonly string[], at: (id: string) => { x: number; y: number }): string {
  const mid = NODE_H / 2;
  const first = at(via[0]!);
  let d = `M${first.x + NODE_W},${first.y + mid}`;
  for (let i = 1; i < via.length; i++) {
    const prev = at(via[i - 1]!);
    const here = at(via[i]!);
    const x0 = prev.x + NODE_W;
    const x1 = here.x;
    const cx = (x0 + x1) / 2;
    d += ` C${cx},${prev.y + mid} ${cx},${here.y + mid} ${x1},${here.y + mid}`;
    // Through a dummy, a straight line across its column to the next piece.
    if (isDummy(via[i]!)) d += ` L${here.x + NODE_W},${here.y + mid}`;
  }
  return d;
}
