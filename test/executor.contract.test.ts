import { afterAll, beforeAll } from "vitest";
import { startEngine } from "./support/engine.ts";
import { executorContract } from "./support/executor-contract.ts";
import { startKubeEngine, startWorkerSim } from "./support/kube-engine.ts";
import type { KubeSim } from "../tools/kube-sim/index.ts";

let sim: KubeSim;
let namespaces = 0;
beforeAll(async () => {
  sim = await startWorkerSim();
});
afterAll(() => sim?.close());

executorContract("local processes", (label) => startEngine(label, { bus: "rabbit" }));
executorContract("Kubernetes Jobs (API simulator)", (label) =>
  startKubeEngine(label, { sim, namespace: `contract-${++namespaces}` }),
);
