import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { countCrossings, isDummy, layoutDag, longestPathLayers } from "../functions/dashboard/ui/layout.ts";

const edge = (from: string, to: string) => ({ from, to });

/** Every one-layer piece of every edge, as the layout drew it. */
function segments(layout: ReturnType<typeof layoutDag>): [string, string][] {
  return layout.paths.flatMap(({ via }) => via.slice(1).map((v, i) => [via[i]!, v] as [string, string]));
}

describe("the DAG layout", () => {
  it("puts each task one layer right of its furthest upstream", () => {
    const layers = longestPathLayers(
      ["a", "b", "c", "d"],
      [edge("a", "b"), edge("b", "c"), edge("a", "c"), edge("a", "d")],
    );
    expect(Object.fromEntries(layers)).toEqual({ a: 0, b: 1, c: 2, d: 1 });
  });

  it("routes an edge that spans layers through one dummy node per layer it skips", () => {
    const layout = layoutDag(
      ["a", "b", "c", "d"],
      [edge("a", "b"), edge("b", "c"), edge("c", "d"), edge("a", "d")],
    );
    const long = layout.paths.find((p) => p.edge.to === "d" && p.edge.from === "a")!;
    expect(long.via).toHaveLength(4);
    expect(long.via.slice(1, -1).every(isDummy)).toBe(true);
    expect(long.via.map((n) => layout.position.get(n)!.layer)).toEqual([0, 1, 2, 3]);
  });

  it("untangles crossings that the input order makes", () => {
    // a1 feeds b2 and a2 feeds b1: in input order the two edges cross; swapping one layer removes it.
    const nodes = ["a1", "a2", "b1", "b2"];
    const edges = [edge("a1", "b2"), edge("a2", "b1")];
    expect(
      countCrossings(
        [
          ["a1", "a2"],
          ["b1", "b2"],
        ],
        edges.map((e) => [e.from, e.to]),
      ),
    ).toBe(1);
    expect(layoutDag(nodes, edges).crossings).toBe(0);
  });

  it("never does worse than the input order, and places every node once, upstreams to the left", () => {
    const dag = fc.integer({ min: 1, max: 40 }).chain((n) =>
      fc.record({
        n: fc.constant(n),
        edges: fc.array(fc.tuple(fc.nat(n - 1), fc.nat(n - 1)), { maxLength: n * 2 }),
      }),
    );
    fc.assert(
      fc.property(dag, ({ n, edges }) => {
        const nodes = Array.from({ length: n }, (_, i) => `t${i}`);
        // Edges only from lower to higher index: a DAG.
        const es = edges.filter(([x, y]) => x < y).map(([x, y]) => edge(`t${x}`, `t${y}`));
        const layout = layoutDag(nodes, es);
        const placed = layout.layers.flat().filter((id) => !isDummy(id));
        expect(placed.sort()).toEqual([...nodes].sort());
        for (const e of es)
          expect(layout.position.get(e.from)!.layer).toBeLessThan(layout.position.get(e.to)!.layer);
        const inputOrder = layoutDag(nodes, es, 0);
        expect(layout.crossings).toBeLessThanOrEqual(inputOrder.crossings);
        expect(countCrossings(layout.layers, segments(layout))).toBe(layout.crossings);
      }),
      { numRuns: 200 },
    );
  });

  it("lays out 200 tasks quickly", () => {
    const nodes = Array.from({ length: 200 }, (_, i) => `t${i}`);
    const edges = nodes.slice(20).flatMap((n, i) => [edge(`t${i}`, n), edge(`t${(i * 7) % (i + 1)}`, n)]);
    const started = performance.now();
    const layout = layoutDag(nodes, edges);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(layout.layers.flat().filter((id) => !isDummy(id))).toHaveLength(200);
  });
});
