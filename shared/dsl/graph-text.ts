import type { WorkflowSpec } from "../model.ts";
import { inputRefName, isInputRef, workflowInputs } from "./inputs.ts";

/**
 * A Mermaid flowchart (for `dwop graph` and Markdown): one node per task and per workflow input, an edge
 * from each upstream to its reader labelled with the parameter. Node ids are prefixed so that a task
 * named like a Mermaid keyword (`end`) cannot break the chart.
 */
export function toMermaid(spec: WorkflowSpec): string {
  const id = (upstream: string) => (isInputRef(upstream) ? `i_${inputRefName(upstream)}` : `t_${upstream}`);
  const lines = ["flowchart TD"];
  for (const input of workflowInputs(spec)) lines.push(`  i_${input}[/"inputs.${mermaidText(input)}"/]`);
  for (const task of spec.tasks) lines.push(`  t_${task.name}["${mermaidText(task.name)}"]`);
  for (const task of spec.tasks) {
    for (const p of task.params)
      lines.push(`  ${id(p.upstream)} -->|"${mermaidText(p.name)}"| t_${task.name}`);
  }
  return lines.join("\n");
}

/** A Graphviz DOT digraph of the same nodes and edges; inputs are drawn as notes. */
export function toDot(spec: WorkflowSpec): string {
  const lines = ["digraph workflow {", "  node [shape=box];"];
  for (const input of workflowInputs(spec)) lines.push(`  ${dotText(`inputs.${input}`)} [shape=note];`);
  for (const task of spec.tasks) lines.push(`  ${dotText(task.name)};`);
  for (const task of spec.tasks) {
    for (const p of task.params)
      lines.push(`  ${dotText(p.upstream)} -> ${dotText(task.name)} [label=${dotText(p.name)}];`);
  }
  lines.push("}");
  return lines.join("\n");
}

// Parsed names never need escaping; a hand-built spec might.
function mermaidText(text: string): string {
  return text.replace(/"/g, "#quot;");
}

function dotText(text: string): string {
  return `"${text.replace(/[\\"]/g, (ch) => `\\${ch}`)}"`;
}
