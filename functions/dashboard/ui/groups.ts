/**
 * Sibling groups: tasks that read the same upstreams and feed the same downstreams (the branches of a
 * fan-out, the shards of a map step). The graph draws a group as one node, "30 tasks: 28 ✓ 2 ✗", that
 * opens into a framed grid of its members; either way the group is one node of the layout, so a 30-way
 * fan-out costs one slot in its layer and its root and join stay side by side.
 *
 * Pure functions of names and edges; graph.ts draws them.
 */
import { icon } from "./format.ts";

/** Siblings fewer than this stay plain nodes: a frame around two or three tasks explains nothing. */
export const MIN_GROUP = 5;
/** Groups this big start collapsed; smaller ones start open. */
export const COLLAPSE_AT = 8;

export interface SiblingGroup {
  /** "group:<first member>": stable for a workflow, as its tasks never change. */
  id: string;
  members: string[];
}

/** The groups of `names` (in input order) with the same upstream set and the same downstream set. */
export function siblingGroups(
  names: readonly string[],
  edges: readonly { from: string; to: string }[],
  min = MIN_GROUP,
): SiblingGroup[] {
  const ups = new Map<string, Set<string>>(names.map((n) => [n, new Set()]));
  const downs = new Map<string, Set<string>>(names.map((n) => [n, new Set()]));
  for (const e of edges) {
    ups.get(e.to)?.add(e.from);
    downs.get(e.from)?.add(e.to);
  }
  const byKey = new Map<string, string[]>();
  for (const n of names) {
    const key = `${[...ups.get(n)!].sort().join("\n")}\u0001${[...downs.get(n)!].sort().join("\n")}`;
    (byKey.get(key) ?? byKey.set(key, []).get(key)!).push(n);
  }
  return [...byKey.values()]
    .filter((members) => members.length >= min)
    .map((members) => ({ id: `group:${members[0]}`, members }));
}

/** States in the order a group's counts are told: how it ended first, then what is still moving. */
const COUNT_ORDER = [
  "succeeded",
  "failed",
  "upstream_failed",
  "cancelled",
  "running",
  "dispatched",
  "queued",
  "pending",
];

/** The state a group is colored by: the one that needs a look first. */
const ATTENTION = [
  "failed",
  "running",
  "dispatched",
  "queued",
  "pending",
  "upstream_failed",
  "cancelled",
  "succeeded",
];

/** How many members are in each state, in the order they are told. */
export function groupCounts(states: readonly string[]): [state: string, count: number][] {
  const counts = new Map<string, number>();
  for (const s of states) counts.set(s, (counts.get(s) ?? 0) + 1);
  const known = COUNT_ORDER.filter((s) => counts.has(s)).map((s) => [s, counts.get(s)!] as [string, number]);
  const other = [...counts].filter(([s]) => !COUNT_ORDER.includes(s));
  return [...known, ...other];
}

/** `30 tasks: 28 ✓ 2 ✗`; just `30 tasks` before anything ran (the submit page's preview). */
export function groupSummary(states: readonly string[]): string {
  const parts = groupCounts(states)
    .filter(([s]) => s !== "preview")
    .map(([s, n]) => `${n} ${icon(s)}`);
  return parts.length ? `${states.length} tasks: ${parts.join(" ")}` : `${states.length} tasks`;
}

/** The state a group node is colored by. */
export function groupState(states: readonly string[]): string {
  return ATTENTION.find((s) => states.includes(s)) ?? states[0] ?? "pending";
}
