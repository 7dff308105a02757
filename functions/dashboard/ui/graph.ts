import { h, s } from "./dom.ts";
import { icon, label } from "./format.ts";
import {
  COLLAPSE_AT,
  groupCounts,
  groupState,
  groupSummary,
  siblingGroups,
  type SiblingGroup,
} from "./groups.ts";
import { isDummy, layoutDag, type Layout, type LayoutEdge } from "./layout.ts";
import { Minimap, type MiniItem } from "./minimap.ts";
import { PanZoom } from "./pan-zoom.ts";
import { placeLayout, type Box, type Placement, type Size } from "./placement.ts";
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
const GROUP_H = 46;
/** An open group: its members in a grid inside a frame with a header. */
const FRAME_PAD = 8;
const FRAME_HEAD = 28;
const CELL_GAP_X = 10;
const CELL_GAP_Y = 8;
/** Characters of a name that fit in a node beside the state symbol and an attempt badge. */
const MAX_CHARS = 20;
const INPUT_PREFIX = "inputs.";
/** Below this fit scale labels are unreadable: the graph opens at 100% at its start instead. */
const MIN_FIT = 0.5;
const MIN_VIEW_H = 160;

export interface DagView {
  /** The figure: the graph in a zoomable box, its controls and its overview. */
  element: HTMLElement;
  /** Recolors nodes after state changes; the layout never changes for a workflow. */
  update(tasks: readonly GraphTask[]): void;
  select(name: string | null): void;
}

/** A name cut in the middle: names that share a long prefix still differ at their ends. */
function fitName(name: string, max = MAX_CHARS): string {
  if (name.length <= max) return name;
  const tail = Math.floor((max - 1) / 2);
  return `${name.slice(0, max - 1 - tail)}…${name.slice(-tail)}`;
}

/** The longest start the names share, if it says something (`shard_` of shard_0..shard_29). */
function commonPrefix(names: readonly string[]): string {
  let p = names[0] ?? "";
  for (const n of names) while (!n.startsWith(p)) p = p.slice(0, -1);
  return p.length >= 2 ? p : "";
}

/** Columns of an open group's grid: one up to six members, then about square on screen. */
const gridColumns = (n: number) =>
  n <= 6 ? 1 : Math.max(1, Math.round(Math.sqrt((n * (NODE_H + CELL_GAP_Y)) / (NODE_W + CELL_GAP_X))));

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

/** The tallest the graph's box gets: most of the window, so the page around it stays reachable. */
const maxViewHeight = () => Math.round(Math.max(280, Math.min(window.innerHeight * 0.68, 900)));

/** The graph's width before it is on the page (the workflow page's main column), for the first layout. */
function guessWidth(): number {
  const w = window.innerWidth;
  return Math.max(280, w >= 1100 ? w * 0.66 - 60 : w - 40);
}

/**
 * The workflow's DAG as SVG, upstream first, wrapped into serpentine bands when long, with big sibling
 * groups collapsed, in a box that zooms and pans (pan-zoom.ts) with an overview (minimap.ts). Nodes are one
 * tab stop: arrow keys move between them, Enter or Space selects a task or opens and closes a group.
 */
export function dagView(tasks: readonly GraphTask[], onSelect: (name: string) => void): DagView {
  return new DagGraph(tasks, onSelect);
}

class DagGraph implements DagView {
  readonly element: HTMLElement;
  private readonly tasks = new Map<string, GraphTask>();
  private readonly layout: Layout;
  private readonly groups = new Map<string, SiblingGroup>();
  private readonly groupOf = new Map<string, SiblingGroup>();
  private readonly open = new Set<string>();
  private placement!: Placement;
  /** Drawn focusable things by key (`t:<task>`, `g:<group>`), and each layer's keys in order. */
  private readonly items = new Map<string, SVGGElement>();
  private columns: string[][] = [];
  private readonly boxes = new Map<string, Box>();
  private tabStop: string | null = null;
  private selected: string | null = null;
  private readonly drawnStates = new Map<string, string>();
  private placedWidth = 0;
  private readonly svg: SVGSVGElement;
  private readonly view = h("div", { class: "dag-view" });
  private readonly pz: PanZoom;
  private readonly minimap: Minimap;
  private readonly observer = new ResizeObserver(() => this.resized());
  private readonly zoomLevel = h("output", { class: "zoom-level", "aria-live": "off" });

  constructor(
    tasks: readonly GraphTask[],
    private readonly onSelect: (name: string) => void,
  ) {
    for (const t of tasks) this.tasks.set(t.name, t);
    const names = tasks.map((t) => t.name);
    const upstreams = new Set(tasks.flatMap((t) => t.params.map((p) => p.upstream)));
    const inputs = [...upstreams].filter((u) => u.startsWith(INPUT_PREFIX));
    const edges = tasks.flatMap((t) => t.params.map((p) => ({ from: p.upstream, to: t.name })));
    for (const g of siblingGroups(names, edges)) {
      this.groups.set(g.id, g);
      for (const m of g.members) this.groupOf.set(m, g);
      if (g.members.length < COLLAPSE_AT) this.open.add(g.id);
    }
    // A group is one node of the layout whether open or not: opening it never moves its layer.
    const rep = (n: string) => this.groupOf.get(n)?.id ?? n;
    const nodes = [...new Set([...inputs, ...names.map(rep)])];
    const seen = new Set<string>();
    const layoutEdges: LayoutEdge[] = [];
    for (const e of edges) {
      const edge = { from: rep(e.from), to: rep(e.to) };
      const key = `${edge.from}\n${edge.to}`;
      if (!seen.has(key)) layoutEdges.push(edge);
      seen.add(key);
    }
    this.layout = layoutDag(nodes, layoutEdges);

    this.svg = s("svg", {
      class: "dag",
      role: "group",
      "aria-label": `Task graph: ${names.length} tasks in ${this.layout.layers.length} layers`,
    });
    this.minimap = new Minimap((at) => this.pz.centerOn(at));
    this.view.append(this.svg, this.minimap.element);
    this.pz = new PanZoom(this.view, this.svg, () => this.viewChanged());
    this.svg.addEventListener("click", (e) => this.onClick(e));
    this.svg.addEventListener("keydown", (e) => this.onKey(e));
    this.svg.addEventListener("focusin", (e) => this.onFocus(e));
    this.view.addEventListener("keydown", (e) => this.onZoomKey(e));
    this.element = this.figure();
    this.draw(guessWidth());
    this.initialView();
    this.observer.observe(this.view);
  }

  private size(id: string): Size {
    const g = this.groups.get(id);
    if (!g) return { w: NODE_W, h: NODE_H };
    if (!this.open.has(id)) return { w: NODE_W, h: GROUP_H };
    const cols = gridColumns(g.members.length);
    const rows = Math.ceil(g.members.length / cols);
    return {
      w: 2 * FRAME_PAD + cols * NODE_W + (cols - 1) * CELL_GAP_X,
      h: FRAME_HEAD + rows * NODE_H + (rows - 1) * CELL_GAP_Y + FRAME_PAD,
    };
  }

  /** Places the graph for a box `width` wide and draws it whole: at start, on a resize, a group's toggle. */
  private draw(width: number): void {
    this.placedWidth = width;
    this.placement = placeLayout(this.layout, (id) => this.size(id), { w: width, h: maxViewHeight() });
    const p = this.placement;
    this.items.clear();
    this.boxes.clear();
    this.columns = this.layout.layers.map(() => []);
    const edgeGroup = s("g", { class: "edges" });
    for (const d of p.edges) edgeGroup.appendChild(s("path", { d, class: "edge" }));
    const nodeGroup = s("g", { class: "nodes" });
    this.layout.layers.forEach((layer, l) => {
      for (const id of layer) {
        if (isDummy(id)) continue;
        const box = p.boxes.get(id)!;
        const group = this.groups.get(id);
        if (id.startsWith(INPUT_PREFIX)) nodeGroup.appendChild(this.drawInput(id, box));
        else if (!group) nodeGroup.appendChild(this.drawTask(id, box, l));
        else if (this.open.has(id)) nodeGroup.appendChild(this.drawFrame(group, box, l));
        else nodeGroup.appendChild(this.drawGroup(group, box, l));
      }
    });
    this.svg.setAttribute("viewBox", `0 0 ${p.width} ${p.height}`);
    this.svg.setAttribute("width", String(p.width));
    this.svg.setAttribute("height", String(p.height));
    this.svg.dataset.bands = String(p.bands.length);
    this.svg.replaceChildren(arrowMarker(), edgeGroup, nodeGroup);
    for (const g of this.groups.values()) this.paintGroup(g);
    this.select(this.selected, false);
    if (!this.tabStop || !this.items.has(this.tabStop)) this.tabStop = this.columns.flat()[0] ?? null;
    this.roving();
    this.pz.setContent(p.width, p.height);
    this.minimap.setItems(p.width, p.height, this.miniItems());
  }

  /** The box as tall as the drawing needs at its first scale, up to most of the window. */
  private sizeBox(): boolean {
    const p = this.placement;
    const readable = p.fitScale >= MIN_FIT;
    const scale = readable ? p.fitScale : 1;
    const height = Math.max(MIN_VIEW_H, Math.min(maxViewHeight(), Math.ceil(p.height * scale) + 2));
    this.view.style.height = `${height}px`;
    return readable;
  }

  /** The first view: all of the drawing, or 100% at its start when all of it would be unreadable. */
  private initialView(): void {
    const p = this.placement;
    if (this.sizeBox()) {
      this.pz.fit();
    } else {
      // The first root at the top left, where reading starts.
      const first = this.layout.layers[0]?.find((id) => !isDummy(id));
      const at = first ? p.boxes.get(first)! : { x: 0, y: 0 };
      this.pz.showAt(1, { x: Math.max(0, at.x - 24), y: Math.max(0, at.y - 24) });
    }
    const selected = this.selected ? this.boxes.get(`t:${this.selected}`) : undefined;
    if (selected) this.pz.reveal(selected);
  }

  /** A new width: lay out again for it (the number of bands may change), unless the user moved the view. */
  private resized(): void {
    if (!this.view.isConnected) {
      this.observer.disconnect();
      return;
    }
    const width = this.view.clientWidth;
    if (!width || this.pz.moved) return;
    if (Math.abs(width - this.placedWidth) > 1) this.draw(width);
    this.initialView();
  }

  private viewChanged(): void {
    this.zoomLevel.textContent = `${Math.round(this.pz.scale * 100)}%`;
    const visible = this.pz.visible();
    const p = this.placement;
    const all = visible.x <= 1 && visible.y <= 1 && visible.x + visible.w >= p.width - 1;
    this.minimap.setView(visible, all && visible.y + visible.h >= p.height - 1);
  }

  private miniItems(): MiniItem[] {
    const items: MiniItem[] = [];
    for (const [key, box] of this.boxes) {
      const state = key.startsWith("g:")
        ? groupState(this.groups.get(key.slice(2))!.members.map((m) => this.tasks.get(m)!.status))
        : (this.tasks.get(key.slice(2))?.status ?? "pending");
      const frame = key.startsWith("g:") && this.open.has(key.slice(2));
      items.push({ ...box, state, frame });
    }
    return items;
  }

  private drawInput(id: string, { x, y }: Box): SVGGElement {
    return s(
      "g",
      { class: "node input", transform: `translate(${x} ${y})`, role: "img", "aria-label": id },
      s("title", {}, id),
      s("rect", { width: NODE_W, height: NODE_H, rx: 2 }),
      s("text", { x: 10, y: NODE_H / 2, class: "icon" }, "⇢"),
      s("text", { x: 28, y: NODE_H / 2, class: "name" }, fitName(id)),
    );
  }

  private drawTask(name: string, box: Box, layer: number): SVGGElement {
    const g = s(
      "g",
      {
        class: "node",
        transform: `translate(${box.x} ${box.y})`,
        tabindex: -1,
        role: "button",
        "data-key": `node:${name}`,
        "data-task": name,
      },
      s("title", {}, name),
      s("rect", { width: NODE_W, height: NODE_H, rx: 7 }),
      s("text", { x: 10, y: NODE_H / 2, class: "icon" }),
      s("text", { x: 28, y: NODE_H / 2, class: "name" }, fitName(name)),
      s("text", { x: NODE_W - 8, y: NODE_H / 2, class: "badge", "text-anchor": "end" }),
    );
    this.paintTask(g, this.tasks.get(name)!);
    this.remember(`t:${name}`, g, box, layer);
    return g;
  }

  private drawGroup(group: SiblingGroup, box: Box, layer: number): SVGGElement {
    const prefix = commonPrefix(group.members);
    const title = `${group.members.length} tasks${prefix ? ` · ${prefix}…` : ""}`;
    const g = s(
      "g",
      {
        class: "node group",
        transform: `translate(${box.x} ${box.y})`,
        tabindex: -1,
        role: "button",
        "aria-expanded": "false",
        "data-group": group.id,
      },
      s("title"),
      s("rect", { width: box.w, height: box.h, rx: 7 }),
      s("rect", { class: "stacked", x: 4, y: box.h - 2, width: box.w - 8, height: 4, rx: 2 }),
      s("text", { x: 10, y: 15, class: "name" }, `▸ ${fitName(title, 24)}`),
      s("text", { x: 10, y: 33, class: "counts" }),
    );
    this.remember(`g:${group.id}`, g, box, layer);
    return g;
  }

  private drawFrame(group: SiblingGroup, box: Box, layer: number): SVGGElement {
    const head = s(
      "g",
      {
        class: "frame-head",
        tabindex: -1,
        role: "button",
        "aria-expanded": "true",
        "data-group": group.id,
      },
      s("title"),
      s("rect", { width: box.w, height: FRAME_HEAD - 4, rx: 6 }),
      s("text", { x: 10, y: (FRAME_HEAD - 4) / 2, class: "counts" }),
    );
    const frame = s(
      "g",
      { class: "frame", "data-frame": group.id },
      s("rect", { class: "frame-box", x: box.x, y: box.y, width: box.w, height: box.h, rx: 8 }),
    );
    head.setAttribute("transform", `translate(${box.x} ${box.y})`);
    frame.appendChild(head);
    this.remember(`g:${group.id}`, head, { ...box, h: FRAME_HEAD }, layer);
    const cols = gridColumns(group.members.length);
    group.members.forEach((name, i) => {
      const cell: Box = {
        x: box.x + FRAME_PAD + (i % cols) * (NODE_W + CELL_GAP_X),
        y: box.y + FRAME_HEAD + Math.floor(i / cols) * (NODE_H + CELL_GAP_Y),
        w: NODE_W,
        h: NODE_H,
      };
      frame.appendChild(this.drawTask(name, cell, layer));
    });
    return frame;
  }

  private remember(key: string, g: SVGGElement, box: Box, layer: number): void {
    this.items.set(key, g);
    this.boxes.set(key, box);
    this.columns[layer]!.push(key);
  }

  private paintTask(g: SVGGElement, t: GraphTask): void {
    const selected = t.name === this.selected ? " selected" : "";
    const attempt = t.attempt > 1 ? `, attempt ${t.attempt}` : "";
    // The page hands over every task on each read: touch only the nodes that changed.
    const painted = `${t.status}:${t.attempt}${selected}`;
    if (g.dataset.painted === painted) return;
    g.dataset.painted = painted;
    g.setAttribute("class", `node state-${t.status}${selected}`);
    g.setAttribute("aria-label", `${t.name}: ${label(t.status)}${attempt}`);
    g.querySelector("title")!.textContent = `${t.name}\n${label(t.status)}${attempt}`;
    g.querySelector(".icon")!.textContent = icon(t.status);
    g.querySelector(".badge")!.textContent = t.attempt > 1 ? `×${t.attempt}` : "";
  }

  private paintGroup(group: SiblingGroup): void {
    const g = this.items.get(`g:${group.id}`);
    if (!g) return;
    const states = group.members.map((m) => this.tasks.get(m)!.status);
    const summary = groupSummary(states);
    const words = groupCounts(states)
      .map(([st, n]) => `${n} ${label(st)}`)
      .join(", ");
    const opened = this.open.has(group.id);
    const action = opened ? "press to collapse" : "press to expand";
    g.querySelector("title")!.textContent = `${summary}\nthe same upstreams and downstreams; ${action}`;
    g.setAttribute("aria-label", `Group of ${states.length} tasks: ${words}; ${action}`);
    const counts = groupCounts(states)
      .filter(([st]) => st !== "preview")
      .map(([st, n]) => `${n} ${icon(st)}`)
      .join("  ");
    g.querySelector(".counts")!.textContent = opened ? `▾ ${states.length} tasks: ${counts}` : counts;
    const state = groupState(states);
    g.setAttribute("class", opened ? `frame-head state-${state}` : `node group state-${state}`);
  }

  private figure(): HTMLElement {
    const button = (text: string, title: string, act: () => void) => {
      const b = h("button", { type: "button", class: "small", title, "aria-label": title }, text);
      b.addEventListener("click", act);
      return b;
    };
    const caption = h(
      "figcaption",
      {},
      h("span", {}, "Graph"),
      h("span", { class: "hint" }, "drag to pan, Ctrl+wheel or pinch to zoom, arrow keys move, Enter opens"),
      h(
        "span",
        { class: "zoom-controls", role: "group", "aria-label": "Zoom" },
        button("−", "Zoom out", () => this.pz.zoomBy(1 / 1.25)),
        this.zoomLevel,
        button("+", "Zoom in", () => this.pz.zoomBy(1.25)),
        button("Fit", "Fit the whole graph in view", () => this.pz.fit()),
        button("100%", "Actual size", () => this.pz.zoomTo(1)),
      ),
    );
    return h("figure", { class: "dag-figure" }, caption, this.view);
  }

  /** Keys of the graph's box: + and - zoom, 0 is 100%, F fits (arrow keys belong to the nodes). */
  private onZoomKey(e: KeyboardEvent): void {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const act: Record<string, () => void> = {
      "+": () => this.pz.zoomBy(1.25),
      "=": () => this.pz.zoomBy(1.25),
      "-": () => this.pz.zoomBy(1 / 1.25),
      "0": () => this.pz.zoomTo(1),
      f: () => this.pz.fit(),
    };
    const run = act[e.key];
    if (run) {
      e.preventDefault();
      run();
    }
  }

  private target(e: Event): { key: string; task?: string; group?: string } | null {
    const el = (e.target as Element).closest<SVGGElement>("[data-task], [data-group]");
    if (!el) return null;
    if (el.dataset.task) return { key: `t:${el.dataset.task}`, task: el.dataset.task };
    return { key: `g:${el.dataset.group}`, group: el.dataset.group! };
  }

  private onClick(e: MouseEvent): void {
    const t = this.target(e);
    if (t?.task) this.onSelect(t.task);
    else if (t?.group) this.toggle(t.group);
  }

  private onKey(e: KeyboardEvent): void {
    const t = this.target(e);
    if (!t) return;
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      if (t.task) this.onSelect(t.task);
      else this.toggle(t.group!);
      return;
    }
    const next = this.neighbour(t.key, e.key);
    if (next) {
      e.preventDefault();
      this.tabStop = next;
      this.roving();
      this.items.get(next)?.focus();
    }
  }

  private onFocus(e: FocusEvent): void {
    const t = this.target(e);
    const box = t && this.boxes.get(t.key);
    if (box) this.pz.reveal(box);
  }

  /** Opens or closes a group; the view stays where it is, moved only to keep the group in sight. */
  private toggle(id: string): void {
    if (this.open.has(id)) this.open.delete(id);
    else this.open.add(id);
    const focused = this.svg.contains(document.activeElement);
    this.tabStop = `g:${id}`;
    const scale = this.pz.scale;
    this.draw(this.placedWidth);
    if (this.sizeBox()) {
      // A graph that fits readably is shown whole again, the group in its new size included.
      this.pz.fit();
    } else {
      this.pz.zoomTo(scale);
      // The whole of an opened frame if it fits the view, else its head.
      const whole = this.placement.boxes.get(id)!;
      const fits = whole.h * this.pz.scale <= this.view.clientHeight - 32;
      this.pz.reveal(fits ? whole : this.boxes.get(`g:${id}`)!);
    }
    if (focused) this.items.get(`g:${id}`)?.focus({ preventScroll: true });
  }

  /** The one focusable thing that Tab reaches (a roving tab stop). */
  private roving(): void {
    for (const [key, g] of this.items) g.setAttribute("tabindex", key === this.tabStop ? "0" : "-1");
  }

  /**
   * Where an arrow key leads: up and down within a layer (an open group's members included), left and
   * right to the next layer on screen (a right-to-left band turns them round); null at an edge.
   */
  private neighbour(key: string, arrow: string): string | null {
    const layer = this.columns.findIndex((c) => c.includes(key));
    if (layer < 0) return null;
    const here = this.columns[layer]!;
    const i = here.indexOf(key);
    if (arrow === "ArrowUp" || arrow === "ArrowDown") return here[i + (arrow === "ArrowUp" ? -1 : 1)] ?? null;
    if (arrow !== "ArrowLeft" && arrow !== "ArrowRight") return null;
    const reversed = this.placement.bands[this.placement.bandOf[layer]!]!.reversed;
    const step = (arrow === "ArrowRight") !== reversed ? 1 : -1;
    for (let l = layer + step; l >= 0 && l < this.columns.length; l += step) {
      const there = this.columns[l]!;
      if (there.length === 0) continue;
      const ratio = i / Math.max(1, here.length - 1);
      return there[Math.round(ratio * (there.length - 1))] ?? null;
    }
    return null;
  }

  update(updated: readonly GraphTask[]): void {
    const groups = new Set<SiblingGroup>();
    let changed = false;
    for (const t of updated) {
      const known = this.tasks.get(t.name);
      if (!known) continue;
      // The page's live events change task objects in place: compare with what the overview drew.
      changed ||= this.drawnStates.get(t.name) !== t.status;
      this.drawnStates.set(t.name, t.status);
      this.tasks.set(t.name, t);
      const g = this.items.get(`t:${t.name}`);
      if (g) this.paintTask(g, t);
      const group = this.groupOf.get(t.name);
      if (group) groups.add(group);
    }
    for (const g of groups) this.paintGroup(g);
    if (changed) this.minimap.setItems(this.placement.width, this.placement.height, this.miniItems());
  }

  /** Marks `name` selected; a newly selected task in a closed group opens it, and comes into view. */
  select(name: string | null, reveal = true): void {
    const changed = name !== this.selected;
    const before = this.selected;
    this.selected = name;
    if (!changed && reveal) return;
    const group = name ? this.groupOf.get(name) : undefined;
    if (reveal && group && !this.open.has(group.id)) {
      this.open.add(group.id);
      this.draw(this.placedWidth);
      this.pz.setContent(this.placement.width, this.placement.height);
    }
    for (const n of [before, name]) {
      const g = n ? this.items.get(`t:${n}`) : undefined;
      if (g && n) this.paintTask(g, this.tasks.get(n)!);
    }
    if (changed && name && this.items.has(`t:${name}`)) {
      this.tabStop = `t:${name}`;
      this.roving();
      if (reveal) this.pz.reveal(this.boxes.get(`t:${name}`)!);
    }
  }
}
