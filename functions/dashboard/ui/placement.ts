/**
 * Where the layers of a layout go on the page. A DAG much wider than the view (a 40-task chain is 40
 * layers) is cut into bands of consecutive layers stacked top to bottom, serpentine: even bands run left
 * to right, odd bands right to left, so the edge from one band's last layer to the next band's first is
 * a short U-turn at the side instead of a line across the whole drawing. A drawing that one band shows
 * readably is not wrapped; else the number of bands is the one that lets the whole drawing fit the view
 * at the largest scale (never above 1).
 *
 * Pure: sizes in, boxes and edge paths out; graph.ts draws them.
 */
import { isDummy, type Layout } from "./layout.ts";

export interface Size {
  w: number;
  h: number;
}

export interface Box extends Size {
  x: number;
  y: number;
}

export interface Band {
  /** The band's first and last layer. */
  first: number;
  last: number;
  /** Right to left. */
  reversed: boolean;
  y: number;
  height: number;
}

export interface Placement {
  /** Each node's box; a dummy's box spans its column at the height its edge passes. */
  boxes: Map<string, Box>;
  bands: Band[];
  /** Band of each layer. */
  bandOf: number[];
  width: number;
  height: number;
  /** The largest scale at which the whole drawing fits the view it was placed for (at most 1). */
  fitScale: number;
  /** One SVG path per edge of the layout, in the order of `layout.paths`. */
  edges: string[];
}

export const GAP_X = 48;
export const GAP_Y = 14;
export const DUMMY_H = 10;
export const PAD_Y = 12;
/** Room at the sides for the U-turns between bands. */
export const PAD_X = 36;
export const BAND_GAP = 28;
const TURN = 22;
/** Bands cost the reader a turn: the drawing wraps only when one band would show below this scale... */
const WRAP_BELOW = 0.6;
/** ...and never into bands of one layer, which read as a column, not a row. */
const MIN_BAND_LAYERS = 2;

/** Height a node takes in its layer's stack. */
const slot = (id: string, size: Size) => (isDummy(id) ? DUMMY_H : size.h + GAP_Y);

interface Measured {
  columns: number[];
  layerHeights: number[];
}

function measure(layout: Layout, size: (id: string) => Size): Measured {
  const columns = layout.layers.map((l) =>
    Math.max(0, ...l.filter((id) => !isDummy(id)).map((id) => size(id).w)),
  );
  const layerHeights = layout.layers.map(
    (l) => l.reduce((sum, id) => sum + slot(id, size(id)), 0) - (isDummy(l.at(-1) ?? "\u0000") ? 0 : GAP_Y),
  );
  return { columns, layerHeights };
}

/** Layers of each band when `count` bands share `layers` layers as evenly as they can. */
function cut(layers: number, count: number): [number, number][] {
  const per = Math.ceil(layers / count);
  const bands: [number, number][] = [];
  for (let first = 0; first < layers; first += per) bands.push([first, Math.min(layers, first + per) - 1]);
  return bands;
}

function extent(m: Measured, bands: [number, number][]): Size {
  let w = 0;
  let h = 0;
  for (const [first, last] of bands) {
    let bw = 0;
    let bh = 0;
    for (let l = first; l <= last; l++) {
      bw += m.columns[l]! + (l > first ? GAP_X : 0);
      bh = Math.max(bh, m.layerHeights[l]!);
    }
    w = Math.max(w, bw);
    h += bh;
  }
  return { w: w + 2 * PAD_X, h: h + (bands.length - 1) * BAND_GAP + 2 * PAD_Y };
}

const scaleFor = (drawing: Size, view: Size) => Math.min(1, view.w / drawing.w, view.h / drawing.h);

/** Places `layout` for a view of `view` pixels; `size` gives each real node's size. */
export function placeLayout(layout: Layout, size: (id: string) => Size, view: Size): Placement {
  const m = measure(layout, size);
  const layers = layout.layers.length;
  let best = cut(layers, 1);
  let bestScale = scaleFor(extent(m, best), view);
  let lastCount = 1;
  const maxCount = bestScale < WRAP_BELOW ? Math.floor(layers / MIN_BAND_LAYERS) : 1;
  for (let count = 2; count <= maxCount && bestScale < 1; count++) {
    const bands = cut(layers, count);
    // Several counts give the same cut (40 layers in 14 or 15 bands of 3): try each cut once.
    if (bands.length === lastCount) continue;
    lastCount = bands.length;
    if (bands.at(-1)![1] - bands.at(-1)![0] + 1 < MIN_BAND_LAYERS) continue;
    const scale = scaleFor(extent(m, bands), view);
    if (scale > bestScale + 1e-9) {
      best = bands;
      bestScale = scale;
    }
  }
  return place(layout, size, m, best, bestScale);
}

function place(
  layout: Layout,
  size: (id: string) => Size,
  m: Measured,
  cuts: [number, number][],
  fitScale: number,
): Placement {
  const { w: width, h: height } = extent(m, cuts);
  const inner = width - 2 * PAD_X;
  const boxes = new Map<string, Box>();
  const bands: Band[] = [];
  const bandOf: number[] = [];
  let y = PAD_Y;
  cuts.forEach(([first, last], b) => {
    const reversed = b % 2 === 1;
    let bandHeight = 0;
    for (let l = first; l <= last; l++) bandHeight = Math.max(bandHeight, m.layerHeights[l]!);
    // Left-to-right bands start at the left edge, right-to-left ones at the right edge: each U-turn
    // joins two columns that sit one above the other.
    let offset = 0;
    for (let l = first; l <= last; l++) {
      bandOf[l] = b;
      const col = m.columns[l]!;
      const x = reversed ? PAD_X + inner - offset - col : PAD_X + offset;
      offset += col + GAP_X;
      let top = y + (bandHeight - m.layerHeights[l]!) / 2;
      for (const id of layout.layers[l]!) {
        if (isDummy(id)) {
          boxes.set(id, { x, y: top + DUMMY_H / 2, w: col, h: 0 });
        } else {
          const s = size(id);
          boxes.set(id, { x: x + (col - s.w) / 2, y: top, w: s.w, h: s.h });
        }
        top += slot(id, size(id));
      }
    }
    bands.push({ first, last, reversed, y, height: bandHeight });
    y += bandHeight + BAND_GAP;
  });
  const placement: Placement = { boxes, bands, bandOf, width, height, fitScale, edges: [] };
  placement.edges = layout.paths.map(({ via }) => edgePath(via, layout, placement));
  return placement;
}

/**
 * An edge through its nodes: out of each node's downstream side (right in a left-to-right band), into
 * the next one's upstream side; across a dummy's column in a straight line; between bands, a U-turn
 * round the side where the two bands meet.
 */
function edgePath(via: readonly string[], layout: Layout, p: Placement): string {
  const box = (id: string) => p.boxes.get(id)!;
  const reversed = (id: string) => p.bands[p.bandOf[layout.position.get(id)!.layer]!]!.reversed;
  const mid = (b: Box) => b.y + b.h / 2;
  const out = (id: string) => {
    const b = box(id);
    return { x: reversed(id) ? b.x : b.x + b.w, y: mid(b) };
  };
  const into = (id: string) => {
    const b = box(id);
    return { x: reversed(id) ? b.x + b.w : b.x, y: mid(b) };
  };
  const r = (n: number) => Math.round(n * 10) / 10;
  let at = out(via[0]!);
  let d = `M${r(at.x)},${r(at.y)}`;
  for (let i = 1; i < via.length; i++) {
    const prev = via[i - 1]!;
    const id = via[i]!;
    const to = into(id);
    if (reversed(prev) === reversed(id)) {
      const cx = (at.x + to.x) / 2;
      d += ` C${r(cx)},${r(at.y)} ${r(cx)},${r(to.y)} ${r(to.x)},${r(to.y)}`;
    } else {
      // Leaving a band at its end: both points are on the same side; bend round it.
      const right = !reversed(prev);
      const tx = right ? Math.max(at.x, to.x) + TURN : Math.min(at.x, to.x) - TURN;
      d += ` C${r(tx)},${r(at.y)} ${r(tx)},${r(to.y)} ${r(to.x)},${r(to.y)}`;
    }
    if (isDummy(id)) {
      at = out(id);
      d += ` L${r(at.x)},${r(at.y)}`;
    }
  }
  return d;
}
