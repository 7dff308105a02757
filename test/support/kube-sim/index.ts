/**
 * A Kubernetes API simulator for tests: a real HTTP server speaking the Jobs, Pods, pod-log and watch
 * subset of the API that @kubernetes/client-node uses, with a job controller and a kubelet that run each
 * Job's container as a local process. See README.md beside this file for what it simulates and how.
 */
import type { KubeConfig } from "@kubernetes/client-node";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { Faults, type FailSpec, type GoneMode } from "./faults.ts";
import { JobController, type PropagationPolicy } from "./jobs.ts";
import { kubeConfigFor, writeKubeconfigFile } from "./kubeconfig.ts";
import { Kubelet } from "./kubelet.ts";
import { ApiServer } from "./server.ts";
import { Stats, type KubeSimStats } from "./stats.ts";
import { ObjectStore } from "./store.ts";
import type { Job, KubeSimOptions, Pod } from "./types.ts";
import { WatchHub } from "./watch.ts";

export type { FailSpec, GoneMode } from "./faults.ts";
export type { KubeSimStats } from "./stats.ts";
export { PodmanRuntime } from "./podman-runtime.ts";
export type { ImageSpec, Job, KubeSimOptions, Pod } from "./types.ts";

const isTerminal = (pod: Pod) => pod.status.phase === "Succeeded" || pod.status.phase === "Failed";

export class KubeSim {
  readonly url: string;

  private constructor(
    private readonly server: ApiServer,
    private readonly store: ObjectStore,
    private readonly jobs: JobController,
    private readonly kubelet: Kubelet,
    private readonly watches: WatchHub,
    private readonly faults: Faults,
    private readonly counters: Stats,
    readonly token: string,
  ) {
    const { port } = server.http.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}`;
  }

  /** Starts a simulator on a free loopback port. */
  static async start(options: KubeSimOptions = {}): Promise<KubeSim> {
    const token = options.token ?? "kube-sim-token";
    const timeScale = options.timeScale ?? 1;
    const store = new ObjectStore(options.historySize ?? 1000);
    const faults = new Faults();
    const stats = new Stats();
    const kubelet = new Kubelet(store, faults, {
      images: options.images ?? {},
      baseEnv: options.baseEnv ?? { PATH: process.env.PATH ?? "/usr/bin:/bin" },
      workRoot: options.workRoot ?? tmpdir(),
      imagePullBackOffMs: options.imagePullBackOffMs ?? 200,
      timeScale,
      maxGracePeriodMs: options.maxGracePeriodMs ?? 2000,
      containers: options.containers,
    });
    const jobs = new JobController(store, kubelet, stats, {
      timeScale,
      podRetryDelayMs: options.podRetryDelayMs ?? 100,
    });
    const watches = new WatchHub(store, faults, options.bookmarkIntervalMs ?? 5000);
    const server = new ApiServer({ store, jobs, kubelet, watches, faults, stats, token });
    await new Promise<void>((resolve, reject) => {
      server.http.once("error", reject);
      server.http.listen(0, "127.0.0.1", resolve);
    });
    return new KubeSim(server, store, jobs, kubelet, watches, faults, stats, token);
  }

  /** A client configuration for this simulator, with `namespace` as its context's namespace. */
  kubeConfig(namespace = "default"): KubeConfig {
    return kubeConfigFor(this.url, this.token, namespace);
  }

  /** Writes a kubeconfig file (JSON, which is YAML) for a separate process to use through KUBECONFIG. */
  writeKubeconfig(path: string, namespace = "default"): Promise<void> {
    return writeKubeconfigFile(path, this.url, this.token, namespace);
  }

  /** The store's current resourceVersion. */
  get resourceVersion(): number {
    return this.store.resourceVersion;
  }

  // ---- inspection -------------------------------------------------------------------------------

  job(name: string, namespace?: string): Job | undefined {
    return this.store
      .list<Job>("Job")
      .find(
        (j) => j.metadata.name === name && (namespace === undefined || j.metadata.namespace === namespace),
      );
  }

  /** The Job's pods, oldest first. */
  pods(jobName: string, namespace?: string): Pod[] {
    const job = this.job(jobName, namespace);
    if (!job) return [];
    return this.jobs
      .podsOf(job)
      .sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion));
  }

  stats(): KubeSimStats {
    return this.counters.snapshot(this.watches.count, this.kubelet.running);
  }

  resetStats(): void {
    this.counters.reset();
  }

  // ---- faults -----------------------------------------------------------------------------------

  /** Ends every open watch; abruptly (socket destroyed mid-stream) unless `graceful`. Returns how many. */
  closeWatches(options: { graceful?: boolean } = {}): number {
    return this.watches.closeAll(options.graceful ?? false);
  }

  /**
   * Forgets the event history: a watch from any resourceVersion older than the current one is refused
   * with 410 Expired, as an ERROR event on a 200 stream (the API server's way) or as an HTTP 410.
   */
  expireHistory(options: { as?: GoneMode } = {}): void {
    if (options.as) this.faults.goneAs = options.as;
    this.store.expireHistory();
  }

  /** How a too-old watch is refused from now on (default "event"). */
  setGoneMode(mode: GoneMode): void {
    this.faults.goneAs = mode;
  }

  /** Keeps only the last `size` events for watch resumption. */
  setHistorySize(size: number): void {
    this.store.setHistorySize(size);
  }

  /** The next `count` requests matching `spec` fail with its status; nothing changes on the server. */
  failNext(count: number, spec: FailSpec): void {
    this.faults.failNext(count, spec);
  }

  /** Delays every request (watches: their headers) by `ms`; 0 turns it off. */
  latency(ms: number): void {
    this.faults.latencyMs = ms;
  }

  /** The node evicts the Job's running pod: phase Failed, reason Evicted, process killed. */
  evictPod(jobName: string, options: { namespace?: string; message?: string } = {}): boolean {
    const message =
      options.message ?? "The node was low on resource: memory. Threshold quantity: 100Mi, available: 42Mi. ";
    return this.killActive(jobName, options.namespace, { kind: "evict", message });
  }

  /** The kernel OOM-kills the Job's container: exit code 137, reason OOMKilled. */
  oomKill(jobName: string, options: { namespace?: string } = {}): boolean {
    return this.killActive(jobName, options.namespace, { kind: "oom" });
  }

  /** Pulls of `image` fail from now on (also the case for any image not in `options.images`). */
  failImagePull(image: string): void {
    this.faults.failingImages.add(image);
  }

  /** A message: new pods stay Pending, PodScheduled=False/Unschedulable. False: schedule them again. */
  setUnschedulable(message: string | false): void {
    this.faults.unschedulable = message === false ? undefined : message;
    if (message === false) this.kubelet.retryScheduling();
  }

  /** Someone else deletes the Job (default Background: its pods and processes go too). */
  deleteJob(
    name: string,
    options: { namespace?: string; propagationPolicy?: PropagationPolicy } = {},
  ): boolean {
    const job = this.job(name, options.namespace);
    if (!job) return false;
    this.jobs.delete(job.metadata.namespace!, name, options.propagationPolicy ?? "Background");
    return true;
  }

  /** Sends a BOOKMARK now on every watch that allows them; returns how many. */
  sendBookmarks(): number {
    return this.watches.sendBookmarks();
  }

  /** Stops the server, ends watches, kills every process and removes the pods' folders. */
  async close(): Promise<void> {
    this.watches.closeAll(false);
    this.jobs.close();
    await this.kubelet.close();
    await new Promise<void>((resolve) => {
      this.server.http.close(() => resolve());
      this.server.http.closeAllConnections();
    });
  }

  private killActive(
    jobName: string,
    namespace: string | undefined,
    reason: Parameters<Kubelet["kill"]>[2],
  ): boolean {
    const pod = this.pods(jobName, namespace).find((p) => !isTerminal(p));
    if (!pod) return false;
    return this.kubelet.kill(pod.metadata.namespace!, pod.metadata.name!, reason);
  }
}

/** Starts a Kubernetes API simulator on 127.0.0.1 (see KubeSim). */
export function startKubeSim(options: KubeSimOptions = {}): Promise<KubeSim> {
  return KubeSim.start(options);
}
