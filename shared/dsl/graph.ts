/**
 * Graph algorithms over tasks numbered in source order, each with the numbers of its upstreams.
 * All iterative and near-linear: a workflow may have 10,000 tasks in one chain.
 */

/**
 * Kahn's algorithm, always taking the earliest task (in source order) whose upstreams are all placed,
 * so a file already in dependency order keeps its order. Tasks in or behind a cycle are left out.
 */
export function topologicalOrder(upstreams: readonly (readonly number[])[]): number[] {
  const waiting = upstreams.map((ups) => ups.length);
  const downstreams = invert(upstreams);
  const ready = new MinHeap();
  waiting.forEach((count, task) => {
    if (count === 0) ready.push(task);
  });
  const order: number[] = [];
  for (let task = ready.pop(); task !== undefined; task = ready.pop()) {
    order.push(task);
    for (const d of downstreams[task] ?? []) {
      const left = (waiting[d] ?? 0) - 1;
      waiting[d] = left;
      if (left === 0) ready.push(d);
    }
  }
  return order;
}

/**
 * One cycle per strongly connected group of `tasks` (those a topological order left out), each the
 * shortest cycle through the group's earliest task, in the direction data flows, starting and ending
 * there without repeating it: [a, b, c] is a -> b -> c -> a.
 */
export function findCycles(upstreams: readonly (readonly number[])[], tasks: readonly number[]): number[][] {
  const inScope = new Uint8Array(upstreams.length);
  for (const t of tasks) inScope[t] = 1;
  const group = stronglyConnected(upstreams, inScope);
  const downstreams = invert(upstreams);
  const seenGroups = new Set<number>();
  const cycles: number[][] = [];
  for (const start of [...tasks].sort((a, b) => a - b)) {
    const g = group[start] ?? -1;
    if (seenGroups.has(g)) continue;
    seenGroups.add(g);
    const cycle = shortestCycle(start, downstreams, (t) => group[t] === g);
    if (cycle) cycles.push(cycle);
  }
  return cycles;
}

/** Breadth-first from `start` along downstream edges inside the group, back to `start`. */
function shortestCycle(
  start: number,
  downstreams: readonly (readonly number[])[],
  inGroup: (task: number) => boolean,
): number[] | null {
  const parent = new Map<number, number>([[start, -1]]);
  const queue = [start];
  for (let head = 0; head < queue.length; head++) {
    const task = queue[head] as number;
    for (const d of downstreams[task] ?? []) {
      if (d === start) return pathTo(task, parent);
      if (!inGroup(d) || parent.has(d)) continue;
      parent.set(d, task);
      queue.push(d);
    }
  }
  return null;
}

function pathTo(last: number, parent: ReadonlyMap<number, number>): number[] {
  const path: number[] = [];
  for (let t = last; t !== -1; t = parent.get(t) ?? -1) path.push(t);
  return path.reverse();
}

/** Tarjan's algorithm with an explicit stack; returns a group number per task (-1 outside the scope). */
function stronglyConnected(upstreams: readonly (readonly number[])[], inScope: Uint8Array): Int32Array {
  const n = upstreams.length;
  const index = new Int32Array(n).fill(-1);
  const low = new Int32Array(n);
  const group = new Int32Array(n).fill(-1);
  const onStack = new Uint8Array(n);
  const stack: number[] = [];
  let counter = 0;
  let groups = 0;
  const visit = (t: number) => {
    index[t] = low[t] = counter++;
    stack.push(t);
    onStack[t] = 1;
  };
  for (let root = 0; root < n; root++) {
    if (!inScope[root] || index[root] !== -1) continue;
    visit(root);
    const calls = [root];
    const next = [0];
    while (calls.length > 0) {
      const top = calls.length - 1;
      const t = calls[top] as number;
      const edge = next[top] as number;
      const u = upstreams[t]?.[edge];
      if (u !== undefined) {
        next[top] = edge + 1;
        if (!inScope[u]) continue;
        if (index[u] === -1) {
          visit(u);
          calls.push(u);
          next.push(0);
        } else if (onStack[u]) low[t] = Math.min(low[t] as number, index[u] as number);
        continue;
      }
      calls.pop();
      next.pop();
      const caller = calls[calls.length - 1];
      if (caller !== undefined) low[caller] = Math.min(low[caller] as number, low[t] as number);
      if (low[t] === index[t]) {
        for (let member = stack.pop(); member !== undefined; member = stack.pop()) {
          onStack[member] = 0;
          group[member] = groups;
          if (member === t) break;
        }
        groups++;
      }
    }
  }
  return group;
}

function invert(upstreams: readonly (readonly number[])[]): number[][] {
  const downstreams: number[][] = upstreams.map(() => []);
  upstreams.forEach((ups, task) => {
    for (const u of ups) downstreams[u]?.push(task);
  });
  return downstreams;
}

/** A binary min-heap of task numbers. */
class MinHeap {
  private readonly items: number[] = [];

  push(value: number): void {
    const items = this.items;
    items.push(value);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((items[parent] as number) <= value) break;
      items[i] = items[parent] as number;
      i = parent;
    }
    items[i] = value;
  }

  pop(): number | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= items.length) break;
      if (child + 1 < items.length && (items[child + 1] as number) < (items[child] as number)) child++;
      if ((items[child] as number) >= last) break;
      items[i] = items[child] as number;
      i = child;
    }
    items[i] = last;
    return top;
  }
}
