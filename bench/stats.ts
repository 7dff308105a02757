/** The p-th percentile (0..100) of a list of numbers, nearest-rank. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** A chain workflow `t0 -> t1 -> ... -> t(n-1)` of trivial tasks. */
export function chainWorkflow(n: number, body = "print(1)"): string {
  return Array.from({ length: n }, (_, i) =>
    i === 0 ? `fun t0():\n    ${body}\n` : `fun t${i}(x:t${i - 1}):\n    ${body}\n`,
  ).join("\n");
}

/** A fan-out `root -> n tasks -> sink`. */
export function fanWorkflow(n: number): string {
  const middle = Array.from({ length: n }, (_, i) => `fun m${i}(x:root):\n    pass\n`);
  const sink = `fun sink(${Array.from({ length: n }, (_, i) => `p${i}:m${i}`).join(", ")}):\n    pass\n`;
  return ["fun root():\n    pass\n", ...middle, sink].join("\n");
}

export function busesFromArgs(): ("rabbit" | "pgboss")[] {
  const arg = process.argv.find((a) => a.startsWith("--bus="));
  return arg ? [arg.slice(6) as "rabbit" | "pgboss"] : ["rabbit", "pgboss"];
}
