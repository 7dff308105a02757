import { h, s } from "./dom.ts";
import {
  arrowMarker,
  groupFrame,
  groupNode,
  inputNode,
  INPUT_PREFIX,
  nodeSize,
  paintGroup,
  paintTask,
  taskNode,
  type GraphTask,
} from "./graph-nodes.ts";
import { COLLAPSE_AT, groupState, siblingGroups, type SiblingGroup } from "./groups.ts";
import { isDummy, layoutDag, type Layout, type LayoutEdge } from "./layout.ts";
import { Minimap, type MiniItem } from "./minimap.ts";
import { PanZoom } from "./pan-zoom.ts";
import { placeLayout, type Box, type Placement, type Size } from "./placement.ts";

export type { GraphTask };

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
    return nodeSize(g ? g.members.length : null, this.open.has(id));
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
        if (id.startsWith(INPUT_PREFIX)) nodeGroup.appendChild(inputNode(id, box));
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

  private drawTask(name: string, box: Box, layer: number): SVGGElement {
    const g = taskNode(name, box);
    paintTask(g, this.tasks.get(name)!, name === this.selected);
    this.remember(`t:${name}`, g, box, layer);
    return g;
  }

  private drawGroup(group: SiblingGroup, box: Box, layer: number): SVGGElement {
    const g = groupNode(group, box);
    this.remember(`g:${group.id}`, g, box, layer);
    return g;
  }

  private drawFrame(group: SiblingGroup, box: Box, layer: number): SVGGElement {
    const { frame, head, headBox, cells } = groupFrame(group, box);
    this.remember(`g:${group.id}`, head, headBox, layer);
    group.members.forEach((name, i) => frame.appendChild(this.drawTask(name, cells[i]!, layer)));
    return frame;
  }

  private remember(key: string, g: SVGGElement, box: Box, layer: number): void {
    this.items.set(key, g);
    this.boxes.set(key, box);
    this.columns[layer]!.push(key);
  }

  private paintGroup(group: SiblingGroup): void {
    const g = this.items.get(`g:${group.id}`);
    if (!g) return;
    const states = group.members.map((m) => this.tasks.get(m)!.status);
    paintGroup(g, states, this.open.has(group.id));
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
      if (g) paintTask(g, t, t.name === this.selected);
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
      if (g && n) paintTask(g, this.tasks.get(n)!, n === this.selected);
    }
    if (changed && name && this.items.has(`t:${name}`)) {
      this.tabStop = `t:${name}`;
      this.roving();
      if (reveal) this.pz.reveal(this.boxes.get(`t:${name}`)!);
    }
  }
}
