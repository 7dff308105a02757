import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { groupState, groupSummary, siblingGroups } from "../functions/dashboard/ui/groups.ts";
import { countCrossings, isDummy, layoutDag, longestPathLayers } from "../functions/dashboard/ui/layout.ts";
import { placeLayout } from "../functions/dashboard/ui/placement.ts";

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

const chain = (n: number) => {
  const nodes = Array.from({ length: n }, (_, i) => `s${i}`);
  return { nodes, edges: nodes.slice(1).map((to, i) => edge(nodes[i]!, to)) };
};
const task = { w: 176, h: 34 };

describe("placing the layers on the page", () => {
  it("wraps a 40-task chain into serpentine bands that fit an 800 px box at a readable scale", () => {
    const { nodes, edges } = chain(40);
    const p = placeLayout(layoutDag(nodes, edges), () => task, { w: 800, h: 540 });
    expect(p.bands.length).toBeGreaterThan(4);
    expect(p.width * p.fitScale).toBeLessThanOrEqual(800);
    expect(p.height * p.fitScale).toBeLessThanOrEqual(540);
    // 12.5 px labels stay at least 10 px tall.
    expect(p.fitScale).toBeGreaterThanOrEqual(0.8);
    // Bands alternate direction, and each one's nodes go the way it runs.
    p.bands.forEach((b, i) => {
      expect(b.reversed).toBe(i % 2 === 1);
      const xs = nodes.slice(b.first, b.last + 1).map((n) => p.boxes.get(n)!.x);
      const sorted = [...xs].sort((a, c) => (b.reversed ? c - a : a - c));
      expect(xs).toEqual(sorted);
    });
    // A band's last task sits right above the next band's first: the turn between them is short.
    for (let i = 0; i + 1 < p.bands.length; i++) {
      const a = p.boxes.get(nodes[p.bands[i]!.last]!)!;
      const b = p.boxes.get(nodes[p.bands[i + 1]!.first]!)!;
      expect(a.x).toBe(b.x);
      expect(b.y).toBeGreaterThan(a.y);
    }
    expect(p.edges).toHaveLength(39);
  });

  it("keeps a graph that one band shows readably in one band, and never makes bands of one layer", () => {
    const { nodes, edges } = chain(4);
    expect(placeLayout(layoutDag(nodes, edges), () => task, { w: 800, h: 540 }).bands).toHaveLength(1);
    const wide = { w: 564, h: 444 };
    const fan = placeLayout(
      layoutDag(["root", "group", "join"], [edge("root", "group"), edge("group", "join")]),
      (id) => (id === "group" ? wide : task),
      { w: 780, h: 540 },
    );
    expect(fan.bands).toHaveLength(1);
    // Every node of a layer in its column, every layer right of the last.
    expect(fan.boxes.get("root")!.x + 176).toBeLessThan(fan.boxes.get("group")!.x);
    expect(fan.boxes.get("group")!.x + 564).toBeLessThan(fan.boxes.get("join")!.x);
  });

  it("routes an edge across bands through its dummies, in one path per edge", () => {
    const { nodes, edges } = chain(30);
    const layout = layoutDag(nodes, [...edges, edge("s0", "s29")]);
    const p = placeLayout(layout, () => task, { w: 800, h: 540 });
    expect(p.edges).toHaveLength(30);
    const long = p.edges[layout.paths.findIndex((x) => x.edge.to === "s29" && x.edge.from === "s0")]!;
    // One curve per layer it crosses.
    expect(long.match(/C/g)!.length).toBe(29);
    expect(long).not.toMatch(/NaN|undefined/);
  });
});

describe("sibling groups", () => {
  it("groups tasks with the same upstreams and downstreams, five or more", () => {
    const shards = Array.from({ length: 30 }, (_, i) => `shard_${i}`);
    const edges = shards.flatMap((s) => [edge("split", s), edge(s, "join")]);
    // Three siblings stay plain nodes.
    const few = ["a", "b", "c"].flatMap((s) => [edge("split", s), edge(s, "report")]);
    const groups = siblingGroups(
      ["split", ...shards, "a", "b", "c", "other", "join", "report"],
      [...edges, ...few, edge("split", "other")],
    );
    expect(groups).toEqual([{ id: "group:shard_0", members: shards }]);
  });

  it("says how many are in each state, and takes the color of what needs a look first", () => {
    const states = [...Array(28).fill("succeeded"), "failed", "failed"];
    expect(groupSummary(states)).toBe("30 tasks: 28 ✓ 2 ✗");
    // The submit page's preview has no states yet.
    expect(groupSummary(Array(12).fill("preview"))).toBe("12 tasks");
    expect(groupState(states)).toBe("failed");
    expect(groupState(["succeeded", "running"])).toBe("running");
    expect(groupState(["succeeded", "succeeded"])).toBe("succeeded");
  });
});
