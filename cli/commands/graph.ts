import { existsSync } from "node:fs";
import type { Config } from "../../shared/config.ts";
import { parseWorkflow, toDot, toMermaid } from "../../shared/dsl/index.ts";
import { DEFAULT_TASK_OPTIONS, type TaskParam, type WorkflowSpec } from "../../shared/model.ts";
import { clientFromConfig } from "../client.ts";
import { CliError, EXIT } from "../exit.ts";
import { isWorkflowId } from "./args.ts";
import { readSource } from "./validate.ts";

const FILL: Record<string, string> = {
  pending: "#e5e7eb",
  queued: "#dbeafe",
  dispatched: "#93c5fd",
  running: "#60a5fa",
  succeeded: "#86efac",
  failed: "#fca5a5",
  upstream_failed: "#fcd34d",
  cancelled: "#d1d5db",
};

interface GraphSource {
  spec: WorkflowSpec;
  /** Task states, for a submitted workflow. */
  status: Map<string, string> | null;
}

/** A workflow file here, or a submitted workflow's id on DWOP_URL. */
async function load(config: Config, target: string): Promise<GraphSource> {
  if (existsSync(target) || !isWorkflowId(target)) {
    return { spec: parseWorkflow(await readSource(target), target), status: null };
  }
  const w = await clientFromConfig(config).workflow(target.toLowerCase());
  const tasks = w.tasks.map((t, i) => ({
    name: t.name,
    params: t.params as TaskParam[],
    body: "",
    options: DEFAULT_TASK_OPTIONS,
    line: i + 1,
  }));
  return { spec: { tasks }, status: new Map(w.tasks.map((t) => [t.name, t.status])) };
}

/** The graph as nodes and edges: `{"nodes": [{"name", "kind", "status"}], "edges": [{"from", "to", "param"}]}`. */
export function graphJson(source: GraphSource) {
  const inputs = new Set(
    source.spec.tasks.flatMap((t) => t.params.map((p) => p.upstream)).filter((u) => u.startsWith("inputs.")),
  );
  return {
    nodes: [
      ...[...inputs].map((name) => ({ name, kind: "input", status: null })),
      ...source.spec.tasks.map((t) => ({
        name: t.name,
        kind: "task",
        status: source.status?.get(t.name) ?? null,
      })),
    ],
    edges: source.spec.tasks.flatMap((t) =>
      t.params.map((p) => ({ from: p.upstream, to: t.name, param: p.name })),
    ),
  };
}

/**
 * `dwop graph FILE|ID [--format mermaid|dot]`: the DAG as Mermaid or Graphviz DOT; for a submitted
 * workflow, each task filled with its state's color.
 */
export async function graphCommand(
  config: Config,
  target: string,
  opts: { format: string; json?: boolean },
): Promise<number> {
  if (!["mermaid", "dot"].includes(opts.format))
    throw new CliError(`unknown format '${opts.format}' (mermaid or dot)`, EXIT.usage);
  const source = await load(config, target);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(graphJson(source))}\n`);
    return EXIT.ok;
  }
  const lines = [opts.format === "dot" ? toDot(source.spec) : toMermaid(source.spec)];
  if (source.status && opts.format === "mermaid") {
    // toMermaid names a task's node t_<name>.
    lines.push(...[...source.status].map(([name, s]) => `  style t_${name} fill:${FILL[s] ?? "#fff"}`));
  }
  let text = lines.join("\n");
  if (source.status && opts.format === "dot") {
    const styles = [...source.status].map(
      ([name, s]) => `  "${name}" [style=filled, fillcolor="${FILL[s] ?? "#fff"}"];`,
    );
    text = text.replace(/\}\s*$/, `${styles.join("\n")}\n}`);
  }
  process.stdout.write(`${text}\n`);
  return EXIT.ok;
}
