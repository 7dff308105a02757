/**
 * Layered drawing of a DAG, left to right (the Sugiyama scheme, kept small):
 *
 * 1. Layers by longest path: a node sits one layer right of its furthest upstream, roots in layer 0.
 * 2. Each edge longer than one layer is cut into one-layer pieces through "dummy" nodes, so long edges
 *    take part in the ordering and bend around real nodes instead of crossing them.
 * 3. Order within layers: start from the input order, then sweep left to right and right to left, placing
 *    each node at the mean position (barycenter) of its neighbours in the layer just swept; keep the
 *    order with the fewest crossings seen.
 *
 * Pure functions of node ids and edges; the SVG drawing is graph.ts.
 */

export interface LayoutEdge {
  from: string;
  to: string;
}

export interface Layout {
  /** Each layer's node ids, top to bottom; dummy ids start with "\u0000". */
  layers: string[][];
  /** Layer and position within the layer of every node, dummies included. */
  position: Map<string, { layer: number; order: number }>;
  /** Every input edge as the chain of nodes it passes through, from `from` to `to`. */
  paths: { edge: LayoutEdge; via: string[] }[];
  crossings: number;
}

export const isDummy = (id: string) => id.startsWith("\u0000");

/** Layer of each node: 0 for roots, else one more than its furthest upstream. Ignores edges of a cycle. */
export function longestPathLayers(
  nodes: readonly string[],
  edges: readonly LayoutEdge[],
): Map<string, number> {
  const preds = new Map<string, string[]>(nodes.map((n) => [n, []]));
  const succs = new Map<string, string[]>(nodes.map((n) => [n, []]));
  for (const e of edges) {
    if (!preds.has(e.from) || !preds.has(e.to) || e.from === e.to) continue;
    preds.get(e.to)!.push(e.from);
    succs.get(e.from)!.push(e.to);
  }
  const waiting = new Map(nodes.map((n) => [n, preds.get(n)!.length]));
  const layer = new Map<string, number>();
  const ready = nodes.filter((n) => waiting.get(n) === 0);
  for (let i = 0; i < ready.length; i++) {
    const n = ready[i]!;
    layer.set(n, Math.max(0, ...preds.get(n)!.map((p) => (layer.get(p) ?? -1) + 1)));
    for (const s of succs.get(n)!) {
      const left = waiting.get(s)! - 1;
      waiting.set(s, left);
      if (left === 0) ready.push(s);
    }
  }
  // A cycle (never in a parsed workflow) would leave nodes unplaced: put them after everything.
  const last = Math.max(-1, ...layer.values()) + 1;
  for (const n of nodes) if (!layer.has(n)) layer.set(n, last);
  return layer;
}

/** Crossings between two adjacent layers, counted over every pair of edges between them. */
function crossingsBetween(
  upper: readonly string[],
  lower: readonly string[],
  edges: [string, string][],
): number {
  const a = new Map(upper.map((n, i) => [n, i]));
  const b = new Map(lower.map((n, i) => [n, i]));
  const pairs = edges
    .map(([x, y]) => [a.get(x), b.get(y)] as const)
    .filter((p): p is readonly [number, number] => p[0] !== undefined && p[1] !== undefined)
    .sort((p, q) => p[0] - q[0] || p[1] - q[1]);
  let count = 0;
  for (let i = 0; i < pairs.length; i++) {
    for (let j = i + 1; j < pairs.length; j++) {
      if (pairs[i]![0] < pairs[j]![0] && pairs[i]![1] > pairs[j]![1]) count++;
    }
  }
  return count;
}

/** Total crossings of an ordering, given the one-layer edges (u in layer k, v in layer k + 1). */
export function countCrossings(layers: readonly string[][], segments: readonly [string, string][]): number {
  const layerOf = new Map<string, number>();
  layers.forEach((l, i) => l.forEach((n) => layerOf.set(n, i)));
  const byLayer = layers.map(() => [] as [string, string][]);
  for (const seg of segments) byLayer[layerOf.get(seg[0]) ?? 0]?.push(seg);
  let total = 0;
  for (let i = 0; i + 1 < layers.length; i++)
    total += crossingsBetween(layers[i]!, layers[i + 1]!, byLayer[i]!);
  return total;
}

/** Reorders `layer` by the mean position of each node's neighbours in `fixed`; nodes without keep theirs. */
function barycenterSort(
  layer: string[],
  fixed: readonly string[],
  neighbours: Map<string, string[]>,
): string[] {
  const pos = new Map(fixed.map((n, i) => [n, i]));
  const keyed = layer.map((n, i) => {
    const ps = (neighbours.get(n) ?? []).map((m) => pos.get(m)).filter((p): p is number => p !== undefined);
    const scale = fixed.length / Math.max(1, layer.length);
    return { n, key: ps.length ? ps.reduce((x, y) => x + y, 0) / ps.length : i * scale, i };
  });
  keyed.sort((x, y) => x.key - y.key || x.i - y.i);
  return keyed.map((k) => k.n);
}

/** Lays a DAG out in layers, left to right; `sweeps` rounds of barycenter ordering (each both ways). */
export function layoutDag(nodes: readonly string[], edges: readonly LayoutEdge[], sweeps = 12): Layout {
  const layerOf = longestPathLayers(nodes, edges);
  const depth = Math.max(-1, ...layerOf.values()) + 1;
  let layers: string[][] = Array.from({ length: depth }, () => []);
  for (const n of nodes) layers[layerOf.get(n)!]!.push(n);

  const segments: [string, string][] = [];
  const paths: Layout["paths"] = [];
  let dummies = 0;
  for (const edge of edges) {
    const from = layerOf.get(edge.from);
    const to = layerOf.get(edge.to);
    if (from === undefined || to === undefined || to <= from) continue;
    const via = [edge.from];
    for (let l = from + 1; l < to; l++) {
      const dummy = `\u0000${dummies++}`;
      layers[l]!.push(dummy);
      via.push(dummy);
    }
    via.push(edge.to);
    for (let i = 0; i + 1 < via.length; i++) segments.push([via[i]!, via[i + 1]!]);
    paths.push({ edge, via });
  }

  const preds = new Map<string, string[]>();
  const succs = new Map<string, string[]>();
  for (const [u, v] of segments) {
    (preds.get(v) ?? preds.set(v, []).get(v)!).push(u);
    (succs.get(u) ?? succs.set(u, []).get(u)!).push(v);
  }

  let best = layers.map((l) => [...l]);
  let fewest = countCrossings(best, segments);
  for (let round = 0; round < sweeps && fewest > 0; round++) {
    for (let i = 1; i < layers.length; i++) layers[i] = barycenterSort(layers[i]!, layers[i - 1]!, preds);
    for (let i = layers.length - 2; i >= 0; i--)
      layers[i] = barycenterSort(layers[i]!, layers[i + 1]!, succs);
    const crossings = countCrossings(layers, segments);
    if (crossings < fewest) {
      fewest = crossings;
      best = layers.map((l) => [...l]);
    }
  }
  layers = best;

  const position = new Map<string, { layer: number; order: number }>();
  layers.forEach((l, layer) => l.forEach((n, order) => position.set(n, { layer, order })));
  return { layers, position, paths, crossings: fewest };
}
