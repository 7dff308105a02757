// 40 sequential trivial tasks end to end (local executor, a fresh Python process per task), and the hop
// latency from an upstream's run finishing to its downstream's process starting.
// Run: npx tsx bench/sequential.ts [--bus=rabbit|pgboss] [--tasks=40] [--sandbox=auto|off] [--network=internet|none]
import { startEngine } from "../test/support/engine.ts";
import { busesFromArgs, chainWorkflow, percentile } from "./stats.ts";

const n = Number(process.argv.find((a) => a.startsWith("--tasks="))?.slice(8) ?? 40);
const sandbox = process.argv.find((a) => a.startsWith("--sandbox="))?.slice(10) === "off" ? "off" : "auto";
const network =
  process.argv.find((a) => a.startsWith("--network="))?.slice(10) === "none" ? "none" : "internet";

for (const bus of busesFromArgs()) {
  const engine = await startEngine(`bench_seq_${bus}`, { bus, concurrency: 4, sandbox, network });
  try {
    // Warm up: the first Python start pays for disk caches.
    await engine.waitFor(await engine.submit(chainWorkflow(3)));
    const t0 = performance.now();
    const id = await engine.submit(chainWorkflow(n));
    const w = await engine.waitFor(id, 300_000);
    const wall = performance.now() - t0;
    const hops = await engine.m.db<{ ms: number }[]>`
      select extract(epoch from (down.started_at - up.finished_at)) * 1000 as ms
      from dwop.tasks t
      cross join lateral unnest(t.downstream_ids) d (id)
      join dwop.runs up on up.task_id = t.id
      join dwop.runs down on down.task_id = d.id
      where t.workflow_id = ${id}`;
    const ms = hops.map((h) => Number(h.ms));
    console.log(
      `${bus.padEnd(7)} sandbox ${sandbox.padEnd(4)} network ${sandbox === "off" ? "host    " : network.padEnd(8)} ${n} sequential tasks: ${(wall / 1000).toFixed(3)} s wall (${(wall / n).toFixed(1)} ms/task, ${w.status}); ` +
        `hop latency p50 ${percentile(ms, 50).toFixed(1)} ms, p99 ${percentile(ms, 99).toFixed(1)} ms, max ${Math.max(...ms).toFixed(1)} ms`,
    );
  } finally {
    await engine.stop(true);
  }
}
process.exit(0);
