// The Kubernetes API simulator, driven over HTTP by the real @kubernetes/client-node.
import {
  ApiException,
  BatchV1Api,
  CoreV1Api,
  KubeConfig,
  makeInformer,
  type V1Job,
} from "@kubernetes/client-node";
import { execFileSync } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  collectWatch,
  finishedCondition,
  shellJob,
  waitFor,
  type WatchedEvent,
} from "../tools/kube-sim/fixtures.ts";
import { startKubeSim, type KubeSim } from "../tools/kube-sim/index.ts";
import { PodmanRuntime, type PodmanLaunch } from "../tools/kube-sim/podman-runtime.ts";
import { deferred } from "./support/bus-contract.ts";

let sim: KubeSim;
let nsCount = 0;

beforeAll(async () => {
  // The python3 on PATH is a slow pyenv shim: resolve the real interpreter once.
  const python = execFileSync("python3", ["-c", "import sys; print(sys.executable)"], {
    encoding: "utf8",
  }).trim();
  sim = await startKubeSim({
    // Spec seconds become tenths: a 2 s deadline passes in 200 ms.
    timeScale: 0.1,
    imagePullBackOffMs: 50,
    images: {
      "busybox:1.36": {},
      "worker:dev": { command: ["sh", "-c", 'echo "from image $GREETING"'] },
      "dwop-pyworker:dev": {
        command: [python, join(import.meta.dirname, "../worker/dwop_worker.py")],
        env: { PYTHONUNBUFFERED: "1" },
      },
    },
  });
});
afterAll(() => sim?.close());

/** A namespace of its own per test, and clients for it. */
function clients() {
  const namespace = `ns-${++nsCount}`;
  const kc = sim.kubeConfig(namespace);
  return { namespace, kc, batch: kc.makeApiClient(BatchV1Api), core: kc.makeApiClient(CoreV1Api) };
}

const podOf = (job: string) => sim.pods(job)[0];
const terminated = (
  pod: { status?: { containerStatuses?: { state?: { terminated?: unknown } }[] } } | undefined,
) => pod?.status?.containerStatuses?.[0]?.state?.terminated;

async function rejection(p: Promise<unknown>): Promise<ApiException<string>> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiException);
  return err as ApiException<string>;
}

const jobsPath = (ns: string) => `/apis/batch/v1/namespaces/${ns}/jobs`;

/** The Job once it has its Complete or Failed condition. */
const finishedJob = (batch: BatchV1Api, namespace: string, name: string) =>
  waitFor(`${name} finished`, async () => {
    const job = await batch.readNamespacedJob({ name, namespace });
    return finishedCondition(job) && job;
  });

/** A Job whose container runs `image`'s entrypoint (no command) with `env`. */
function imageJob(name: string, image: string, env: Record<string, string>): V1Job {
  const body = shellJob(name, "unused");
  const container = body.spec!.template.spec!.containers[0]!;
  container.image = image;
  delete container.command;
  container.env = Object.entries(env).map(([k, value]) => ({ name: k, value }));
  return body;
}

describe("Jobs API", () => {
  it("creates, gets, lists by label selector and deletes Jobs", async () => {
    const { namespace, batch } = clients();
    const created = await batch.createNamespacedJob({
      namespace,
      body: shellJob("a", "exit 0", {}, { tier: "x" }),
    });
    expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(Number(created.metadata?.resourceVersion)).toBeGreaterThan(0);
    expect(created.metadata?.creationTimestamp).toBeInstanceOf(Date);
    expect(created.spec?.template.metadata?.labels?.["job-name"]).toBe("a");
    await batch.createNamespacedJob({ namespace, body: shellJob("b", "exit 0", {}, { tier: "y" }) });
    await batch.createNamespacedJob({
      namespace,
      body: shellJob("c", "exit 0", {}, { tier: "z", extra: "1" }),
    });

    const names = async (labelSelector: string) =>
      (await batch.listNamespacedJob({ namespace, labelSelector })).items.map((j) => j.metadata?.name);
    expect(await names("app=dwop")).toEqual(["a", "b", "c"]);
    expect(await names("tier!=x")).toEqual(["b", "c"]);
    expect(await names("tier in (x,z)")).toEqual(["a", "c"]);
    expect(await names("tier notin (x),extra")).toEqual(["c"]);
    expect(await names("app=dwop,!extra")).toEqual(["a", "b"]);
    const list = await batch.listNamespacedJob({ namespace });
    expect(Number(list.metadata?.resourceVersion)).toBeGreaterThanOrEqual(
      Number(created.metadata?.resourceVersion),
    );
    const page = await batch.listNamespacedJob({ namespace, limit: 2 });
    expect(page.items).toHaveLength(2);
    const rest = await batch.listNamespacedJob({ namespace, limit: 2, _continue: page.metadata?._continue });
    expect(rest.items.map((j) => j.metadata?.name)).toEqual(["c"]);

    expect((await batch.readNamespacedJob({ name: "b", namespace })).metadata?.name).toBe("b");
    const status = await batch.deleteNamespacedJob({ name: "b", namespace, propagationPolicy: "Background" });
    expect(status.status).toBe("Success");
    expect(await names("")).toEqual(["a", "c"]);
  });

  it("answers 409 and 404 with the API server's Status bodies", async () => {
    const { namespace, batch } = clients();
    await batch.createNamespacedJob({ namespace, body: shellJob("dup", "exit 0") });
    const conflict = await rejection(
      batch.createNamespacedJob({ namespace, body: shellJob("dup", "exit 0") }),
    );
    expect(conflict.code).toBe(409);
    expect(JSON.parse(conflict.body)).toEqual({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: 'jobs.batch "dup" already exists',
      reason: "AlreadyExists",
      details: { name: "dup", group: "batch", kind: "jobs" },
      code: 409,
    });
    const missing = await rejection(batch.readNamespacedJob({ name: "nope", namespace }));
    expect(missing.code).toBe(404);
    expect(JSON.parse(missing.body)).toMatchObject({
      reason: "NotFound",
      message: 'jobs.batch "nope" not found',
      code: 404,
    });
    const gone = await rejection(
      batch.deleteNamespacedJob({ name: "nope", namespace, propagationPolicy: "Background" }),
    );
    expect(gone.code).toBe(404);
    const bad = shellJob("Bad_Name", "exit 0");
    const invalid = await rejection(batch.createNamespacedJob({ namespace, body: bad }));
    expect(invalid.code).toBe(422);
    expect(JSON.parse(invalid.body)).toMatchObject({
      reason: "Invalid",
      details: { causes: [{ field: "metadata.name" }] },
    });
  });

  it("rejects a request without the kubeconfig's token", async () => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "c", server: sim.url, skipTLSVerify: true }],
      users: [{ name: "u", token: "wrong" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    const err = await rejection(kc.makeApiClient(BatchV1Api).listNamespacedJob({ namespace: "default" }));
    expect(err.code).toBe(401);
  });

  it("serves a kubeconfig file that another process's client can load", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kube-sim-kc-"));
    try {
      await sim.writeKubeconfig(join(dir, "config"), "from-file");
      const kc = new KubeConfig();
      kc.loadFromFile(join(dir, "config"));
      expect(kc.getContextObject(kc.getCurrentContext())?.namespace).toBe("from-file");
      const list = await kc.makeApiClient(BatchV1Api).listNamespacedJob({ namespace: "from-file" });
      expect(list.items).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("simulated job controller and kubelet", () => {
  it("runs a failing container: Failed Job, exit code, termination message, log with tailLines", async () => {
    const { namespace, batch, core } = clients();
    const script = 'echo one; echo two >&2; echo \'{"type":"x"}\' > /dev/termination-log; echo three; exit 3';
    await batch.createNamespacedJob({ namespace, body: shellJob("fails", script) });
    const job = await finishedJob(batch, namespace, "fails");
    expect(finishedCondition(job)).toMatchObject({ type: "Failed", reason: "BackoffLimitExceeded" });
    expect(job.status?.failed).toBe(1);
    const pods = await core.listNamespacedPod({ namespace, labelSelector: "job-name=fails" });
    expect(pods.items).toHaveLength(1);
    const pod = pods.items[0]!;
    expect(pod.status?.phase).toBe("Failed");
    expect(pod.status?.containerStatuses?.[0]?.state?.terminated).toMatchObject({
      exitCode: 3,
      reason: "Error",
      message: '{"type":"x"}\n',
    });
    const name = pod.metadata!.name!;
    expect(await core.readNamespacedPodLog({ name, namespace })).toBe("one\ntwo\nthree\n");
    expect(await core.readNamespacedPodLog({ name, namespace, container: "main", tailLines: 2 })).toBe(
      "two\nthree\n",
    );
  });

  it("runs a succeeding container from the image's entrypoint with only the spec's env and PATH", async () => {
    const { namespace, batch, core } = clients();
    await batch.createNamespacedJob({ namespace, body: imageJob("ok", "worker:dev", { GREETING: "hello" }) });
    const job = await finishedJob(batch, namespace, "ok");
    expect(finishedCondition(job)).toMatchObject({ type: "Complete", status: "True" });
    const pod = podOf("ok")!;
    expect(pod.status?.phase).toBe("Succeeded");
    expect(terminated(pod)).toMatchObject({ exitCode: 0, reason: "Completed" });
    expect(await core.readNamespacedPodLog({ name: pod.metadata.name!, namespace })).toBe(
      "from image hello\n",
    );

    process.env.KUBE_SIM_LEAK_CHECK = "1";
    await batch.createNamespacedJob({ namespace, body: shellJob("env", "env") });
    await waitFor("env job", () => terminated(podOf("env")));
    const env = await core.readNamespacedPodLog({ name: podOf("env")!.metadata.name!, namespace });
    delete process.env.KUBE_SIM_LEAK_CHECK;
    expect(env).toContain("PATH=");
    expect(env).toMatch(/DWOP_RESULT_FILE=\/.+termination-log/);
    expect(env).not.toContain("KUBE_SIM_LEAK_CHECK");
  });

  it("runs the real Python worker, whose failure JSON becomes the termination message", async () => {
    const { namespace, batch } = clients();
    // Bad inputs fail at once and for good (no download retries): enough to see the result file's path.
    // An empty log URL: the worker skips uploading its log (a refused upload would be retried for seconds).
    const url = "http://127.0.0.1:9/unused";
    const env = { DWOP_CODE_URL: url, DWOP_OUTPUT_URL: url, DWOP_LOG_URL: "", DWOP_INPUTS: "not json" };
    await batch.createNamespacedJob({ namespace, body: imageJob("py", "dwop-pyworker:dev", env) });
    const state = await waitFor(
      "worker exit",
      () => terminated(podOf("py")) as { exitCode: number; message?: string } | undefined,
    );
    expect(state.exitCode).toBe(70);
    expect(JSON.parse(state.message!)).toMatchObject({
      message: expect.stringContaining("DWOP_INPUTS"),
      nonRetryable: true,
    });
  });

  it("fails a container whose command does not exist with StartError", async () => {
    const { namespace, batch } = clients();
    const body = shellJob("nocmd", "");
    body.spec!.template.spec!.containers[0]!.command = ["/no/such/binary"];
    await batch.createNamespacedJob({ namespace, body });
    expect(finishedCondition(await finishedJob(batch, namespace, "nocmd"))).toMatchObject({ type: "Failed" });
    expect(terminated(podOf("nocmd"))).toMatchObject({ exitCode: 128, reason: "StartError" });
  });

  it("retries a failing pod up to backoffLimit", async () => {
    const { namespace, batch } = clients();
    await batch.createNamespacedJob({ namespace, body: shellJob("retry", "exit 1", { backoffLimit: 1 }) });
    const job = await finishedJob(batch, namespace, "retry");
    expect(job.status?.failed).toBe(2);
    expect(sim.pods("retry")).toHaveLength(2);
  });

  it("deletes pods with Background propagation (logs then 404) and orphans them by default", async () => {
    const { namespace, batch, core } = clients();
    await batch.createNamespacedJob({ namespace, body: shellJob("bg", "echo out; sleep 30") });
    const pod = await waitFor("running", () => podOf("bg")?.status.phase === "Running" && podOf("bg"));
    await waitFor(
      "log",
      async () => (await core.readNamespacedPodLog({ name: pod.metadata.name!, namespace })) === "out\n",
    );
    await batch.deleteNamespacedJob({ name: "bg", namespace, propagationPolicy: "Background" });
    const gone = await waitFor("pod deleted", async () => {
      const e = await core
        .readNamespacedPodLog({ name: pod.metadata.name!, namespace })
        .catch((err: unknown) => err);
      return e instanceof ApiException && e;
    });
    expect(gone.code).toBe(404);

    await batch.createNamespacedJob({ namespace, body: shellJob("orphan", "sleep 30") });
    await waitFor("running", () => podOf("orphan")?.status.phase === "Running");
    const podName = podOf("orphan")!.metadata.name!;
    const res = await batch.deleteNamespacedJobWithHttpInfo({ name: "orphan", namespace });
    expect(res.headers.warning).toContain("child pods are preserved");
    const orphan = await core.readNamespacedPod({ name: podName, namespace });
    expect(orphan.metadata?.ownerReferences ?? []).toEqual([]);
    expect(orphan.status?.phase).toBe("Running");
    await core.deleteNamespacedPod({ name: podName, namespace, gracePeriodSeconds: 0 });
    await waitFor(
      "orphan gone",
      async () => (await core.listNamespacedPod({ namespace })).items.length === 0,
    );
  });

  it("evicts, OOM-kills, fails image pulls, leaves pods unschedulable and enforces deadlines", async () => {
    const { namespace, batch, core } = clients();
    const create = (name: string, body: V1Job) =>
      batch.createNamespacedJob({ namespace, body: { ...body, metadata: { ...body.metadata, name } } });
    const running = (job: string) => waitFor(`${job} running`, () => podOf(job)?.status.phase === "Running");
    const jobDone = async (job: string) => finishedCondition(await finishedJob(batch, namespace, job));

    await create("evict", shellJob("", "sleep 30"));
    await running("evict");
    expect(sim.evictPod("evict")).toBe(true);
    expect(await jobDone("evict")).toMatchObject({ type: "Failed", reason: "BackoffLimitExceeded" });
    expect(podOf("evict")?.status).toMatchObject({ phase: "Failed", reason: "Evicted" });

    await create("oom", shellJob("", "sleep 30"));
    await running("oom");
    expect(sim.oomKill("oom")).toBe(true);
    await jobDone("oom");
    expect(terminated(podOf("oom"))).toMatchObject({ exitCode: 137, reason: "OOMKilled" });

    const pull = shellJob("", "exit 0");
    pull.spec!.template.spec!.containers[0]!.image = "missing:1";
    await create("pull", pull);
    const waiting = (reason: string) =>
      waitFor(reason, () => podOf("pull")?.status.containerStatuses?.[0]?.state.waiting?.reason === reason);
    await waiting("ErrImagePull");
    await waiting("ImagePullBackOff");
    expect(podOf("pull")?.status.phase).toBe("Pending");
    const logErr = await rejection(
      core.readNamespacedPodLog({ name: podOf("pull")!.metadata.name!, namespace }),
    );
    expect(logErr.code).toBe(400);

    sim.setUnschedulable("0/1 nodes are available: 1 Insufficient cpu.");
    await create("unsched", shellJob("", "exit 0"));
    await waitFor(
      "unschedulable",
      () => podOf("unsched")?.status.conditions?.[0]?.reason === "Unschedulable",
    );
    expect(podOf("unsched")?.status.conditions?.[0]).toMatchObject({ type: "PodScheduled", status: "False" });
    sim.setUnschedulable(false);
    expect(await jobDone("unsched")).toMatchObject({ type: "Complete" });

    await create("deadline", shellJob("", "sleep 30", { activeDeadlineSeconds: 2 }));
    expect(await jobDone("deadline")).toMatchObject({ type: "Failed", reason: "DeadlineExceeded" });
    expect(podOf("deadline")?.status).toMatchObject({ phase: "Failed", reason: "DeadlineExceeded" });
    expect(sim.stats().runningProcesses).toBe(0);
  });

  it("deletes a finished Job after ttlSecondsAfterFinished, and its pods", async () => {
    const { namespace, batch, core } = clients();
    await batch.createNamespacedJob({
      namespace,
      body: shellJob("ttl", "exit 0", { ttlSecondsAfterFinished: 1 }),
    });
    const err = await waitFor("ttl deletion", async () => {
      const e = await batch.readNamespacedJob({ name: "ttl", namespace }).catch((x: unknown) => x);
      return e instanceof ApiException && e;
    });
    expect(err.code).toBe(404);
    expect((await core.listNamespacedPod({ namespace })).items).toEqual([]);
  });
});

describe("watch", () => {
  it("delivers ADDED, MODIFIED and DELETED in resourceVersion order, and resumes from a resourceVersion", async () => {
    const { namespace, kc, batch } = clients();
    const start = (await batch.listNamespacedJob({ namespace })).metadata!.resourceVersion!;
    const w = await collectWatch(kc, jobsPath(namespace));
    await batch.createNamespacedJob({ namespace, body: shellJob("w", "exit 0") });
    await waitFor("Complete", () => w.events.some((e) => finishedCondition(e.object as V1Job)));
    await batch.deleteNamespacedJob({ name: "w", namespace, propagationPolicy: "Background" });
    await waitFor("DELETED", () => w.events.some((e) => e.type === "DELETED"));
    const types = w.events.map((e) => e.type);
    expect(types[0]).toBe("ADDED");
    expect(types.at(-1)).toBe("DELETED");
    expect(new Set(types.slice(1, -1))).toEqual(new Set(["MODIFIED"]));
    const rvs = w.events.map((e) => Number(e.object.metadata?.resourceVersion));
    expect([...rvs].sort((a, b) => a - b)).toEqual(rvs);
    w.controller.abort();

    const resumed = await collectWatch(kc, jobsPath(namespace), { resourceVersion: start });
    await waitFor("replay", () => resumed.events.length === w.events.length);
    expect(resumed.events.map((e) => e.object.metadata?.resourceVersion)).toEqual(rvs.map(String));
    resumed.controller.abort();
  });

  it("watches a Job's pods by label through Pending, Running and Succeeded", async () => {
    const { namespace, kc, batch } = clients();
    const w = await collectWatch(kc, `/api/v1/namespaces/${namespace}/pods`, { labelSelector: "job-name=p" });
    await batch.createNamespacedJob({ namespace, body: shellJob("other", "exit 0") });
    await batch.createNamespacedJob({ namespace, body: shellJob("p", "exit 0") });
    const phase = (e: WatchedEvent) => (e.object as { status?: { phase?: string } }).status?.phase;
    await waitFor("Succeeded", () => w.events.some((e) => phase(e) === "Succeeded"));
    expect(w.events.every((e) => e.object.metadata?.labels?.["job-name"] === "p")).toBe(true);
    expect(w.events[0]).toMatchObject({ type: "ADDED", object: { status: { phase: "Pending" } } });
    const phases = [...new Set(w.events.map(phase))];
    expect(phases).toEqual(["Pending", "Running", "Succeeded"]);
    w.controller.abort();
  });

  it("refuses an expired resourceVersion with 410: as an ERROR event, or as HTTP 410", async () => {
    const { namespace, kc, batch } = clients();
    const old = (await batch.listNamespacedJob({ namespace })).metadata!.resourceVersion!;
    await batch.createNamespacedJob({ namespace, body: shellJob("x", "exit 0") });
    sim.expireHistory();
    const asEvent = await collectWatch(kc, jobsPath(namespace), { resourceVersion: old });
    expect(await asEvent.done).toBeNull();
    expect(asEvent.events).toHaveLength(1);
    expect(asEvent.events[0]).toMatchObject({
      type: "ERROR",
      object: { kind: "Status", code: 410, reason: "Expired" },
    });

    sim.expireHistory({ as: "http" });
    const asHttp = await collectWatch(kc, jobsPath(namespace), { resourceVersion: old });
    expect(await asHttp.done).toMatchObject({ statusCode: 410 });
    sim.setGoneMode("event");
  });

  it("sends bookmarks, and closeWatches ends the client's watch through its done callback", async () => {
    const { namespace, kc } = clients();
    const w = await collectWatch(kc, jobsPath(namespace), { allowWatchBookmarks: true });
    const rv = sim.resourceVersion;
    expect(sim.sendBookmarks()).toBeGreaterThanOrEqual(1);
    await waitFor("bookmark", () => w.events.some((e) => e.type === "BOOKMARK"));
    // Other tests' pods may still be moving: the bookmark is at least as new as the moment it was sent.
    expect(Number(w.events[0]!.object.metadata?.resourceVersion)).toBeGreaterThanOrEqual(rv);
    expect(sim.closeWatches()).toBeGreaterThanOrEqual(1);
    await w.done;
    const graceful = await collectWatch(kc, jobsPath(namespace), { timeoutSeconds: 1 });
    expect(await graceful.done).toBeNull();
  });

  it("makeInformer lists, watches, and recovers after closeWatches and an expired history", async () => {
    const { namespace, kc, batch } = clients();
    await batch.createNamespacedJob({ namespace, body: shellJob("before", "exit 0") });
    const informer = makeInformer(kc, jobsPath(namespace), () => batch.listNamespacedJob({ namespace }));
    const deleted: string[] = [];
    let errors = 0;
    let stopped = false;
    informer.on("delete", (j) => deleted.push(j.metadata!.name!));
    // The client leaves restarting after an error to its user; this is its documented pattern. stop()
    // itself reports an AbortError through the same callback, hence the flag.
    informer.on("error", () => {
      if (stopped) return;
      errors++;
      setTimeout(() => void informer.start(), 20);
    });
    await informer.start();
    const names = () =>
      informer
        .list(namespace)
        .map((j) => j.metadata?.name)
        .sort();
    expect(names()).toEqual(["before"]);
    await batch.createNamespacedJob({ namespace, body: shellJob("live", "exit 0") });
    await waitFor("live", () => informer.get("live", namespace));

    sim.closeWatches();
    await batch.createNamespacedJob({ namespace, body: shellJob("missed", "exit 0") });
    await waitFor("missed after reconnect", () => informer.get("missed", namespace));
    expect(errors).toBe(1);

    sim.closeWatches({ graceful: true });
    sim.expireHistory();
    await batch.deleteNamespacedJob({ name: "before", namespace, propagationPolicy: "Background" });
    await waitFor("relisted", () => deleted.includes("before"));
    expect(names()).toEqual(["live", "missed"]);
    await waitFor("complete in cache", () => finishedCondition(informer.get("missed", namespace)));
    stopped = true;
    await informer.stop();
  });
});

describe("faults and counters", () => {
  it("fails and slows requests on demand, and counts them", async () => {
    const { namespace, batch } = clients();
    sim.resetStats();
    const ours = new RegExp(`/namespaces/${namespace}/jobs`);
    sim.failNext(1, { method: "POST", path: ours, status: 500 });
    const err = await rejection(batch.createNamespacedJob({ namespace, body: shellJob("f", "sleep 30") }));
    expect(err.code).toBe(500);
    expect(JSON.parse(err.body)).toMatchObject({ kind: "Status", reason: "InternalError", code: 500 });
    sim.failNext(1, { path: ours, status: 429, retryAfterSeconds: 1 });
    const busy = await rejection(batch.listNamespacedJob({ namespace }));
    expect(busy.code).toBe(429);
    expect(busy.headers["retry-after"]).toBe("1");
    expect((await batch.listNamespacedJob({ namespace })).items).toEqual([]);

    sim.latency(120);
    const t0 = Date.now();
    await batch.createNamespacedJob({ namespace, body: shellJob("f", "sleep 30") });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
    sim.latency(0);
    await batch.createNamespacedJob({ namespace, body: shellJob("g", "sleep 30") });
    await waitFor("both running", () => sim.stats().runningProcesses >= 2);
    sim.deleteJob("f");
    await waitFor("f gone", () => !sim.job("f", namespace) && sim.pods("f").length === 0);
    const stats = sim.stats();
    expect(stats.requests["create jobs"]).toBe(3);
    expect(stats.requests["list jobs"]).toBe(2);
    expect(stats.jobsCreated).toBe(2);
    expect(stats.maxActiveJobs).toBeGreaterThanOrEqual(2);
    await batch.deleteNamespacedJob({ name: "g", namespace, propagationPolicy: "Foreground" });
    await waitFor("g gone", () => !sim.job("g", namespace));
  });
});

describe("a pod deleted while its container is prepared", () => {
  /** Real containers for every image, whose preparation waits until the test lets it go on. */
  class HeldRuntime extends PodmanRuntime {
    preparing = deferred();
    proceed = deferred();
    override has(): Promise<boolean> {
      return Promise.resolve(true);
    }
    override async prepare(l: PodmanLaunch) {
      this.preparing.resolve();
      await this.proceed.promise;
      return super.prepare(l);
    }
  }

  it("ends quietly: the preparation that fails on the removed folder is no error, and no folder is left", async () => {
    // The CI failure: the pod's folder was removed under podman's preparation (ENOENT), and the kubelet
    // threw that out of a timer, an unhandled rejection.
    const workRoot = await mkdtemp(join(tmpdir(), "kube-sim-held-"));
    const containers = new HeldRuntime();
    const held = await startKubeSim({ workRoot, containers, images: {} });
    try {
      const namespace = "held";
      const batch = held.kubeConfig(namespace).makeApiClient(BatchV1Api);
      await batch.createNamespacedJob({ namespace, body: shellJob("held", "true") });
      await containers.preparing.promise;
      expect(await readdir(workRoot)).toHaveLength(1); // the pod's folder, made before the preparation
      await batch.deleteNamespacedJob({ name: "held", namespace, propagationPolicy: "Foreground" });
      await waitFor("pod gone", () => held.pods("held", namespace).length === 0);
      const unhandled: unknown[] = [];
      const hear = (reason: unknown) => unhandled.push(reason);
      process.on("unhandledRejection", hear);
      containers.proceed.resolve(); // its termination file is written into the removed folder: ENOENT
      await waitFor("folder removed", async () => (await readdir(workRoot)).length === 0);
      await new Promise((r) => setTimeout(r, 200));
      process.removeListener("unhandledRejection", hear);
      expect(unhandled).toEqual([]);
    } finally {
      await held.close();
      await rm(workRoot, { recursive: true, force: true });
    }
  });
});
