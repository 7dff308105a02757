// A 1,000-task fan-out on the Kubernetes executor against the API simulator, with at most 100 Jobs in
// flight: real client, the real Python worker in a container of dwop-pyworker:dev per pod (podman; with
// DWOP_KUBE_SIM_RUNTIME=process, or without podman, a host process), real Postgres and RabbitMQ, two
// dispatcher replicas.
// Run: npx tsx bench/kube-fanout.ts [--tasks=1000] [--max-jobs=100] [--qps=20] [--burst=40]
import { startKubeEngine, startWorkerSim } from "../test/support/kube-engine.ts";

const arg = (name: string, fallback: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const tasks = arg("tasks", 1000);
const maxJobs = arg("max-jobs", 100);
const qps = arg("qps", 20);
const burst = arg("burst", 40);

const sim = await startWorkerSim();
const engine = await startKubeEngine("bench_kube_fanout", {
  sim,
  namespace: "bench",
  replicas: 2,
  concurrency: 8,
  maxActiveRuns: maxJobs,
  settings: { qps, burst, reconcileSeconds: 30, lostGraceSeconds: 60, pendingTimeoutSeconds: 600 },
});
try {
  const children = Array.from(
    { length: tasks },
    (_, i) => `fun m${i}(x:root):\n    print(int(open("x").read()) + ${i})\n`,
  );
  const started = performance.now();
  const id = await engine.submit(["fun root():\n    print(1)\n", ...children].join("\n"));
  const w = await engine.waitFor(id, 1_800_000);
  const seconds = (performance.now() - started) / 1000;
  const stats = sim.stats();
  const [runs] = await engine.m.db<{ n: number; once: boolean }[]>`
    select count(*)::int as n, bool_and(attempt = 1) as once from dwop.runs where workflow_id = ${id}`;
  console.log(
    `${tasks + 1} tasks (root + ${tasks}) ${w.status} in ${seconds.toFixed(1)} s: ${((tasks + 1) / seconds).toFixed(1)} tasks/s; ` +
      `Jobs created ${stats.jobsCreated}, most in flight ${stats.maxActiveJobs} (cap ${maxJobs}); ` +
      `runs ${runs!.n}, all first attempts: ${runs!.once}; API requests ${JSON.stringify(stats.requests)} ` +
      `(limit ${qps} req/s, burst ${burst}, per replica)`,
  );
} finally {
  await engine.stop(true);
  await sim.close();
}
process.exit(0);
