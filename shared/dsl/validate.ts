import type { TaskSpec } from "../model.ts";
import type { ParsedTask } from "./ast.ts";
import { type Problems, printable, quote } from "./errors.ts";
import { findCycles, topologicalOrder } from "./graph.ts";
import { isInputRef } from "./inputs.ts";
import { Suggester } from "./suggest.ts";

/** Longer cycles are shown with their middle left out. */
const CYCLE_SHOWN = 12;

/**
 * The checks that need the whole file: duplicate tasks and parameters, unknown upstreams, cycles.
 * Returns the tasks in topological order; the caller uses them only when no problem was reported.
 */
export function validate(tasks: readonly ParsedTask[], problems: Problems): TaskSpec[] {
  const graph = uniqueTasks(tasks, problems);
  const names = new Set(tasks.map((t) => t.name));
  const suggester = new Suggester(names);
  for (const task of tasks) {
    checkParams(task, problems);
    checkUpstreams(task, names, problems, suggester);
  }
  const upstreams = edges(graph);
  const order = topologicalOrder(upstreams);
  if (order.length < graph.length) {
    const placed = new Set(order);
    const stuck = graph.map((_, i) => i).filter((i) => !placed.has(i));
    for (const cycle of findCycles(upstreams, stuck)) {
      reportCycle(
        cycle.map((i) => graph[i] as ParsedTask),
        problems,
      );
    }
  }
  return order.map((i) => toSpec(graph[i] as ParsedTask));
}

/** Each graph task's upstream tasks, by their position in `graph`, each once; inputs are no edges. */
function edges(graph: readonly ParsedTask[]): number[][] {
  const index = new Map(graph.map((t, i) => [t.name, i]));
  return graph.map((t) => {
    const ups = new Set<number>();
    for (const p of t.params) {
      const u = index.get(p.upstream);
      if (u !== undefined) ups.add(u);
    }
    return [...ups];
  });
}

/**
 * Reports every task whose name was taken earlier (ignoring case: task names end up in Kubernetes Job
 * names, which are lower case) and returns the tasks that can be nodes of the graph.
 */
function uniqueTasks(tasks: readonly ParsedTask[], problems: Problems): ParsedTask[] {
  const byFolded = new Map<string, ParsedTask>();
  const graph: ParsedTask[] = [];
  for (const task of tasks) {
    const folded = task.name.toLowerCase();
    const first = byFolded.get(folded);
    if (first) {
      const message =
        first.name === task.name
          ? `duplicate task ${quote(task.name)} (first defined on line ${first.line})`
          : `task ${quote(task.name)} differs from task ${quote(first.name)} (line ${first.line}) only in case`;
      problems.add(task.line, task.nameColumn, message);
      continue;
    }
    byFolded.set(folded, task);
    // A task whose header broke, or whose name is invalid, is known by name but is no node.
    if (task.complete && task.nameOk) graph.push(task);
  }
  return graph;
}

/** Two parameters of a task would be the same file (ignoring case, as macOS file systems do). */
function checkParams(task: ParsedTask, problems: Problems): void {
  const seen = new Map<string, string>();
  for (const p of task.params) {
    const folded = p.name.toLowerCase();
    const first = seen.get(folded);
    if (first === undefined) {
      seen.set(folded, p.name);
      continue;
    }
    const detail = first === p.name ? "" : ` (same file as ${quote(first)} where case is ignored)`;
    problems.add(
      task.line,
      p.nameColumn,
      `duplicate parameter ${quote(p.name)} in task ${quote(task.name)}${detail}`,
    );
  }
}

function checkUpstreams(
  task: ParsedTask,
  names: ReadonlySet<string>,
  problems: Problems,
  suggester: Suggester,
): void {
  for (const p of task.params) {
    if (!p.upstreamWellFormed || isInputRef(p.upstream) || names.has(p.upstream)) continue;
    const guess = suggester.closest(p.upstream);
    const hint = guess ? ` (did you mean ${quote(guess)}?)` : "";
    problems.add(task.line, p.upstreamColumn, `unknown upstream ${quote(p.upstream)}${hint}`);
  }
}

/** At the first task of the cycle, under the upstream that closes it: `cycle: a -> b -> a`. */
function reportCycle(cycle: readonly ParsedTask[], problems: Problems): void {
  const start = cycle[0] as ParsedTask;
  const last = cycle[cycle.length - 1] as ParsedTask;
  const closing = start.params.find((p) => p.upstream === last.name);
  const names = cycle.map((t) => printable(t.name));
  const shown =
    names.length <= CYCLE_SHOWN
      ? names
      : [
          ...names.slice(0, CYCLE_SHOWN / 2),
          `… (${names.length - CYCLE_SHOWN} more) …`,
          ...names.slice(-CYCLE_SHOWN / 2),
        ];
  problems.add(
    start.line,
    closing?.upstreamColumn ?? start.nameColumn,
    `cycle: ${[...shown, names[0]].join(" -> ")}`,
  );
}

function toSpec(task: ParsedTask): TaskSpec {
  return {
    name: task.name,
    params: task.params.map((p) => ({ name: p.name, upstream: p.upstream })),
    body: task.body,
    options: task.options,
    line: task.line,
  };
}
