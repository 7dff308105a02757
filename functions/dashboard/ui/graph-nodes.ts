/**
 * The SVG of the graph's nodes: a task, a workflow input, a collapsed sibling group, and an open group's
 * frame with its members in a grid; and how each is painted for its state. graph.ts places and keeps them.
 */
import { s } from "./dom.ts";
import { icon, label } from "./format.ts";
import { groupCounts, groupState, groupSummary, type SiblingGroup } from "./groups.ts";
import type { Box, Size } from "./placement.ts";
import type { TaskParam } from "./types.ts";

/** A node of the drawn graph: a task (with its state and attempt) or a workflow input. */
export interface GraphTask {
  name: string;
  params: TaskParam[];
  status: string;
  attempt: number;
}

export const INPUT_PREFIX = "inputs.";
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

/** The size a node takes in the layout: a task or input, or a group (`members`), open or not. */
export function nodeSize(members: number | null, open: boolean): Size {
  if (members === null) return { w: NODE_W, h: NODE_H };
  if (!open) return { w: NODE_W, h: GROUP_H };
  const cols = gridColumns(members);
  const rows = Math.ceil(members / cols);
  return {
    w: 2 * FRAME_PAD + cols * NODE_W + (cols - 1) * CELL_GAP_X,
    h: FRAME_HEAD + rows * NODE_H + (rows - 1) * CELL_GAP_Y + FRAME_PAD,
  };
}

export function arrowMarker(): SVGElement {
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

export function inputNode(id: string, { x, y }: Box): SVGGElement {
  return s(
    "g",
    { class: "node input", transform: `translate(${x} ${y})`, role: "img", "aria-label": id },
    s("title", {}, id),
    s("rect", { width: NODE_W, height: NODE_H, rx: 2 }),
    s("text", { x: 10, y: NODE_H / 2, class: "icon" }, "⇢"),
    s("text", { x: 28, y: NODE_H / 2, class: "name" }, fitName(id)),
  );
}

/** A task's node, unpainted (see `paintTask`). */
export function taskNode(name: string, box: Box): SVGGElement {
  return s(
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
}

/** A collapsed group: one node, `30 tasks · shard_…` over its counts (see `paintGroup`). */
export function groupNode(group: SiblingGroup, box: Box): SVGGElement {
  const prefix = commonPrefix(group.members);
  const title = `${group.members.length} tasks${prefix ? ` · ${prefix}…` : ""}`;
  return s(
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
}

/** An open group: a frame, its head (which closes it), and where each member's node goes. */
export function groupFrame(
  group: SiblingGroup,
  box: Box,
): { frame: SVGGElement; head: SVGGElement; headBox: Box; cells: Box[] } {
  const head = s(
    "g",
    {
      class: "frame-head",
      transform: `translate(${box.x} ${box.y})`,
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
    head,
  );
  const cols = gridColumns(group.members.length);
  const cells = group.members.map((_, i) => ({
    x: box.x + FRAME_PAD + (i % cols) * (NODE_W + CELL_GAP_X),
    y: box.y + FRAME_HEAD + Math.floor(i / cols) * (NODE_H + CELL_GAP_Y),
    w: NODE_W,
    h: NODE_H,
  }));
  return { frame, head, headBox: { ...box, h: FRAME_HEAD }, cells };
}

/** Colors a task's node for its state; a node already showing this state is left alone. */
export function paintTask(g: SVGGElement, t: GraphTask, isSelected: boolean): void {
  const selected = isSelected ? " selected" : "";
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

/** A group's counts by state, in words for the accessibility tree, colored by what needs a look first. */
export function paintGroup(g: SVGGElement, states: readonly string[], opened: boolean): void {
  const summary = groupSummary(states);
  const words = groupCounts(states)
    .map(([st, n]) => `${n} ${label(st)}`)
    .join(", ");
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
