// Jobs created per second against the Kubernetes API simulator, through the executor (the real client
// over HTTP), under the configured request limit (DWOP_KUBE_API_QPS / DWOP_KUBE_API_BURST), and without it.
// Run: npx tsx bench/kube-create-rate.ts [--jobs=300] [--qps=20] [--burst=40] [--parallel=16]
import { KubeApi } from "../shared/executors/kubernetes/api.ts";
import { KubernetesExecutor } from "../shared/executors/kubernetes/executor.ts";
import type { WorkerEnv } from "../shared/executors/executor.ts";
import { DEFAULT_TASK_OPTIONS } from "../shared/model.ts";
import { startKubeSim } from "../tools/kube-sim/index.ts";

const arg = (name: string, fallback: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const jobs = arg("jobs", 300);
const parallel = arg("parallel", 16);

const ENV: WorkerEnv = {
  DWOP_CODE_URL: "http://x/c",
  DWOP_INPUTS: "[]",
  DWOP_ATTEMPT: "1",
  DWOP_OUTPUT_URL: "http://x/o",
  DWOP_LOG_URL: "",
};

// The "worker" exits at once: this measures the API path, not the kubelet. So its pods stay host processes
// (`true`): 300 containers started at once would measure podman on two cores, not Job creation.
// bench/kube-fanout.ts is the one that runs real worker containers.
const sim = await startKubeSim({ images: { "noop:1": { command: ["true"] } } });

async function createAll(
  namespace: string,
  qps: number,
  burst: number,
): Promise<{ seconds: number; requests: number }> {
  const api = new KubeApi(sim.kubeConfig(namespace), { namespace, qps, burst });
  const executor = new KubernetesExecutor(api, {
    image: "noop:1",
    imagePullPolicy: "IfNotPresent",
    ttlSecondsAfterFinished: 60,
    runAsUser: 10001,
    defaultCpu: "500m",
    defaultMemory: "512Mi",
    volumeSizeLimit: "1Gi",
  });
  sim.resetStats();
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < jobs) {
        const i = next++;
        await executor.start(
          {
            runId: String(i + 1),
            workflowId: "00000000-0000-4000-8000-000000000000",
            taskId: String(i + 1),
            taskName: `t${i}`,
            attempt: 1,
            params: [],
            options: { ...DEFAULT_TASK_OPTIONS },
            code: { offset: 0, length: 0 },
            hasRequirements: false,
          },
          ENV,
        );
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { seconds, requests: sim.stats().requests["create jobs"] ?? 0 };
}

const limited = { qps: arg("qps", 20), burst: arg("burst", 40) };
for (const [label, limit] of [
  [`limit ${limited.qps} req/s, burst ${limited.burst}`, limited],
  ["effectively unlimited (10000 req/s)", { qps: 10_000, burst: 10_000 }],
] as const) {
  const { seconds, requests } = await createAll(`bench-${limit.qps}`, limit.qps, limit.burst);
  const expected =
    limit.qps < 10_000
      ? ` (bucket allows ${(limit.burst + limit.qps * seconds).toFixed(0)} in that time)`
      : "";
  console.log(
    `${label.padEnd(36)} ${jobs} Jobs in ${seconds.toFixed(2)} s: ${(jobs / seconds).toFixed(1)} Jobs/s, ` +
      `${requests} create requests${expected}`,
  );
}
await sim.close();
process.exit(0);
