/**
 * The simulated scheduler plus kubelet: binds a pod, "pulls" its image, runs its first container, and
 * writes each status transition to the store as the real kubelet would report it. The container is a
 * real one from the image in podman's store when a PodmanRuntime is given and has the image (the pod
 * spec honoured: see podman-runtime.ts); otherwise, for an image listed in `images`, a local process
 * group (the command, args and env of the spec; a fresh temp folder as working folder).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { constants } from "node:os";
import { join } from "node:path";
import type { Faults } from "./faults.ts";
import { ContainerConfigError, type PodmanRuntime } from "./podman-runtime.ts";
import { PodLog, lastBytes, tailLines } from "./pod-log.ts";
import { now, type ObjectStore } from "./store.ts";
import {
  condition,
  containerStatus,
  creatingStatus,
  runningStatus,
  terminalStatus,
  type ContainerEnd,
  type KillReason,
} from "./pod-status.ts";
import type { Container, ImageSpec, Pod } from "./types.ts";

export type { KillReason } from "./pod-status.ts";

export interface KubeletOptions {
  images: Record<string, ImageSpec>;
  baseEnv: Record<string, string>;
  workRoot: string;
  imagePullBackOffMs: number;
  timeScale: number;
  maxGracePeriodMs: number;
  /** Runs pods whose image podman has as real containers. */
  containers?: PodmanRuntime;
}

/** The container's process, however it runs: signals reach the whole container. */
interface Running {
  child: ChildProcess;
  signal(signal: "SIGTERM" | "SIGKILL"): void;
  /** Whether the kernel OOM-killed it (real containers only). */
  oomKilled?(): Promise<boolean>;
  /**
   * The container's own exit code, given its runner's (real containers: podman's own failures); null when
   * the runner failed and the container has none to give.
   */
  exitCode?(runnerCode: number): Promise<number | null>;
}

interface Runtime {
  namespace: string;
  name: string;
  /** Exists once the container is being created. */
  log?: PodLog;
  phase: "pending" | "running" | "terminated";
  waitingReason: string;
  /** The pod's own folder: work/ (the working folder), container.log, termination-log. */
  dir?: string;
  resultFile?: string;
  child?: Running;
  containerID?: string;
  startedAt?: string;
  kill?: KillReason;
  deleting: boolean;
  timers: Set<NodeJS.Timeout>;
}

export const NODE_NAME = "kube-sim-node";
const TERMINATION_MESSAGE_LIMIT = 4096;

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is already gone.
  }
}

/**
 * Removes a pod's folder. A container's runtime may still be letting go of it (podman's cleanup after
 * `--rm`): retried, and a folder that will not go is left behind rather than crashing the simulator.
 */
async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 }).catch((err: unknown) => {
    console.warn(`kube-sim: could not remove ${dir}: ${(err as Error).message}`);
  });
}

export class Kubelet {
  private readonly pods = new Map<string, Runtime>();

  constructor(
    private readonly store: ObjectStore,
    private readonly faults: Faults,
    private readonly options: KubeletOptions,
  ) {}

  /** Containers running now. */
  get running(): number {
    return [...this.pods.values()].filter((rt) => rt.phase === "running").length;
  }

  /** Takes a newly created pod: schedules it on the next tick. */
  admit(pod: Pod): void {
    const rt: Runtime = {
      namespace: pod.metadata.namespace!,
      name: pod.metadata.name!,
      phase: "pending",
      waitingReason: "ContainerCreating",
      deleting: false,
      timers: new Set(),
    };
    this.pods.set(`${rt.namespace}/${rt.name}`, rt);
    this.later(rt, 0, () => this.schedule(rt));
  }

  /** Schedules the pods left Pending while the cluster was unschedulable (the scheduler's retry). */
  retryScheduling(): void {
    for (const rt of this.pods.values()) {
      const pod = this.pod(rt);
      if (rt.phase === "pending" && pod && !pod.spec.nodeName) this.schedule(rt);
    }
  }

  /** The container's log and whether it has started; undefined when the pod is gone. */
  log(namespace: string, name: string): { log?: PodLog; waitingReason?: string } | undefined {
    const rt = this.pods.get(`${namespace}/${name}`);
    if (!rt) return undefined;
    return rt.phase === "pending" && !rt.kill
      ? { log: rt.log, waitingReason: rt.waitingReason }
      : { log: rt.log };
  }

  /** Stops the pod's container for `reason`; false when it has already ended. */
  kill(namespace: string, name: string, reason: KillReason): boolean {
    const rt = this.pods.get(`${namespace}/${name}`);
    if (!rt || rt.phase === "terminated" || rt.kill) return false;
    rt.kill = reason;
    for (const t of rt.timers) clearTimeout(t);
    rt.timers.clear();
    if (!rt.child) {
      this.terminateNeverStarted(rt);
      return true;
    }
    if (reason.kind === "delete") {
      rt.child.signal("SIGTERM");
      this.later(rt, reason.graceMs, () => rt.child!.signal("SIGKILL"));
    } else {
      rt.child.signal("SIGKILL");
    }
    return true;
  }

  /** Graceful deletion: deletionTimestamp now, SIGTERM, SIGKILL after the grace period, then the pod is gone. */
  deletePod(namespace: string, name: string, gracePeriodSeconds?: number): Pod | undefined {
    const rt = this.pods.get(`${namespace}/${name}`);
    const pod = this.store.get<Pod>("Pod", namespace, name);
    if (!pod) return undefined;
    if (!rt) return this.store.remove<Pod>("Pod", namespace, name);
    if (rt.deleting) return pod;
    rt.deleting = true;
    const seconds = gracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30;
    const graceMs = Math.min(seconds * 1000 * this.options.timeScale, this.options.maxGracePeriodMs);
    const updated = this.store.update<Pod>("Pod", namespace, name, (p) => {
      p.metadata.deletionTimestamp = new Date(Date.now() + seconds * 1000)
        .toISOString()
        .replace(/\.\d{3}Z$/, "Z");
      p.metadata.deletionGracePeriodSeconds = seconds;
    });
    // A container still running (or already being killed) ends first; `finish` then removes the pod.
    if (rt.phase === "terminated") this.forget(rt);
    else this.kill(namespace, name, { kind: "delete", graceMs });
    return updated;
  }

  /** Kills every process and removes every pod folder. */
  async close(): Promise<void> {
    const all = [...this.pods.values()];
    this.pods.clear();
    for (const rt of all) {
      for (const t of rt.timers) clearTimeout(t);
      if (rt.child) rt.child.signal("SIGKILL");
    }
    await this.options.containers?.close();
    await Promise.all(all.map((rt) => (rt.dir ? removeDir(rt.dir) : undefined)));
  }

  /** Whether the pod left the kubelet (deleted) since rt was read. */
  private gone(rt: Runtime): boolean {
    return !this.pods.has(`${rt.namespace}/${rt.name}`);
  }

  private pod(rt: Runtime): Pod | undefined {
    return this.store.get<Pod>("Pod", rt.namespace, rt.name);
  }

  private update(rt: Runtime, change: (pod: Pod) => void): void {
    this.store.update<Pod>("Pod", rt.namespace, rt.name, change);
  }

  private later(rt: Runtime, ms: number, run: () => void): void {
    const timer = setTimeout(() => {
      rt.timers.delete(timer);
      run();
    }, ms);
    rt.timers.add(timer);
  }

  private schedule(rt: Runtime): void {
    // Both the first tick and retryScheduling may get here: bind once.
    if (rt.kill || rt.deleting || this.pod(rt)?.spec.nodeName) return;
    const unschedulable = this.faults.unschedulable;
    if (unschedulable !== undefined) {
      const pod = this.pod(rt);
      if (pod?.status.conditions?.[0]?.reason !== "Unschedulable") {
        this.update(
          rt,
          (p) => (p.status.conditions = [condition("PodScheduled", "False", "Unschedulable", unschedulable)]),
        );
      }
      return;
    }
    this.update(rt, (p) => {
      p.spec.nodeName = NODE_NAME;
      p.status.conditions = [condition("PodScheduled", "True")];
    });
    this.later(rt, 0, () => void this.createContainer(rt));
  }

  private async createContainer(rt: Runtime): Promise<void> {
    const pod = this.pod(rt);
    const container = pod?.spec.containers[0];
    if (!pod || !container || rt.kill) return;
    this.update(rt, (p) => (p.status = creatingStatus(p.status, container)));
    const failing = this.faults.failingImages.has(container.image ?? "");
    const real = !failing && (await this.options.containers?.has(container.image ?? ""));
    const image = this.options.images[container.image ?? ""];
    if (!real && (!image || image.pull === "fail" || failing)) {
      this.failPull(rt, container);
      return;
    }
    const dir = await mkdtemp(join(this.options.workRoot, `kube-sim-${rt.name}-`));
    await mkdir(join(dir, "work"));
    if (rt.kill || this.gone(rt)) {
      await removeDir(dir);
      return;
    }
    rt.dir = dir;
    rt.log = new PodLog(join(dir, "container.log"));
    if (real) await this.runContainer(rt, pod, container);
    else this.run(rt, pod, container, image!);
  }

  private failPull(rt: Runtime, container: Container): void {
    const image = container.image ?? "";
    const setWaiting = (reason: string, message: string) => {
      rt.waitingReason = reason;
      this.update(
        rt,
        (p) => (p.status.containerStatuses = [containerStatus(container, { waiting: { reason, message } })]),
      );
    };
    setWaiting("ErrImagePull", `failed to pull and unpack image "${image}": ${image}: not found`);
    this.later(rt, this.options.imagePullBackOffMs, () =>
      setWaiting("ImagePullBackOff", `Back-off pulling image "${image}"`),
    );
  }

  private run(rt: Runtime, pod: Pod, container: Container, image: ImageSpec): void {
    const command = container.command ?? image.command ?? [];
    const args = container.args ?? (container.command ? [] : (image.args ?? []));
    const termPath = container.terminationMessagePath ?? "/dev/termination-log";
    rt.resultFile = join(rt.dir!, "termination-log");
    // The container's /dev/termination-log is this pod's own file: every mention of the path is rewritten.
    const mapPath = (s: string) => s.split(termPath).join(rt.resultFile!);
    const env: Record<string, string> = { ...this.options.baseEnv, ...image.env, HOSTNAME: rt.name };
    for (const e of container.env ?? [])
      env[e.name] = mapPath(e.value ?? this.fieldRef(pod, e.valueFrom?.fieldRef?.fieldPath));
    env.DWOP_RESULT_FILE ??= rt.resultFile;
    const argv = [...command, ...args].map(mapPath);
    rt.containerID = `containerd://${randomBytes(32).toString("hex")}`;
    if (argv.length === 0) {
      this.finish(rt, container, { exitCode: 128, reason: "StartError", message: "no command specified" });
      return;
    }
    const out = rt.log!.openForContainer();
    let child: ChildProcess;
    try {
      child = spawn(argv[0]!, argv.slice(1), {
        cwd: join(rt.dir!, "work"),
        env,
        detached: true,
        stdio: ["ignore", out, out],
      });
    } catch (err) {
      // Arguments Node refuses outright (a NUL byte, say): the runtime could not create the task.
      const message = `failed to create containerd task: ${(err as Error).message}`;
      this.finish(rt, container, { exitCode: 128, reason: "StartError", message });
      return;
    } finally {
      closeSync(out);
    }
    rt.child = { child, signal: (sig) => killGroup(child, sig) };
    this.watch(rt, container, argv[0]!);
  }

  /** The container from its image, through podman, with the spec's env (the image brings its own). */
  private async runContainer(rt: Runtime, pod: Pod, container: Container): Promise<void> {
    const env: Record<string, string> = {};
    for (const e of container.env ?? [])
      env[e.name] = e.value ?? this.fieldRef(pod, e.valueFrom?.fieldRef?.fieldPath);
    rt.resultFile = join(rt.dir!, "termination-log");
    rt.containerID = `containerd://${randomBytes(32).toString("hex")}`;
    const logFd = rt.log!.openForContainer();
    try {
      const start = await this.options.containers!.prepare({
        pod,
        container,
        dir: rt.dir!,
        env,
        logFd,
        terminationFile: rt.resultFile,
      });
      if (this.gone(rt)) {
        await removeDir(rt.dir!); // gone while it was prepared: what prepare wrote goes too
        return;
      }
      if (rt.kill) return; // ended (never started) while it was prepared
      rt.child = start();
      this.watch(rt, container, container.image!);
    } catch (err) {
      if (this.gone(rt)) {
        // Deleted while it was prepared: its folder went from under prepare (ENOENT), and what prepare made after goes too.
        await removeDir(rt.dir!);
        return;
      }
      if (!(err instanceof ContainerConfigError)) throw err;
      rt.waitingReason = "CreateContainerConfigError";
      this.update(rt, (p) => {
        p.status.containerStatuses = [
          containerStatus(container, { waiting: { reason: rt.waitingReason, message: err.message } }),
        ];
      });
      return;
    } finally {
      closeSync(logFd);
    }
  }

  /** Follows the container's process to its end. */
  private watch(rt: Runtime, container: Container, program: string): void {
    const { child } = rt.child!;
    child.on("spawn", () => this.started(rt, container));
    child.on("error", (err: NodeJS.ErrnoException) => {
      if (rt.phase !== "pending") return;
      const message = `failed to create containerd task: exec: "${program}": ${err.code === "ENOENT" ? "executable file not found in $PATH" : err.message}`;
      this.finish(rt, container, { exitCode: 128, reason: "StartError", message });
    });
    // The container ends with its PID 1: whatever that process left behind goes with it.
    child.on("exit", () => killGroup(child, "SIGKILL"));
    child.on("close", (code, signal) => {
      if (rt.phase !== "running") return;
      const exitCode = code ?? 128 + (signal ? constants.signals[signal] : 9);
      void this.exited(rt, container, exitCode);
    });
  }

  private fieldRef(pod: Pod, path: string | undefined): string {
    if (path === "metadata.name") return pod.metadata.name ?? "";
    if (path === "metadata.namespace") return pod.metadata.namespace ?? "";
    if (path === "metadata.uid") return pod.metadata.uid ?? "";
    if (path === "spec.nodeName") return NODE_NAME;
    return "";
  }

  private started(rt: Runtime, container: Container): void {
    rt.phase = "running";
    rt.startedAt = now();
    this.update(rt, (p) => (p.status = runningStatus(p.status, container, rt.startedAt!, rt.containerID!)));
  }

  private async exited(rt: Runtime, container: Container, runnerCode: number): Promise<void> {
    rt.phase = "terminated";
    const own = rt.child?.exitCode ? await rt.child.exitCode(runnerCode) : runnerCode;
    let message = await readFile(rt.resultFile!, "utf8").catch(() => "");
    message = lastBytes(message, TERMINATION_MESSAGE_LIMIT);
    if (own === null && !message && !rt.kill) {
      // The runtime failed, not a process of the container (podman under load, seen in the chaos soak),
      // nothing ran far enough to leave a termination message, and the simulator killed nothing (a kill
      // keeps its own reason below, whatever podman answered): what a kubelet reports when containerd
      // cannot start a container's task.
      const why = `the container runtime failed to run the container (podman exited ${runnerCode})`;
      this.finish(rt, container, { exitCode: 128, reason: "StartError", message: why });
      return;
    }
    const exitCode = own ?? runnerCode;
    if (!message && exitCode !== 0 && container.terminationMessagePolicy === "FallbackToLogsOnError") {
      message = lastBytes(tailLines(await rt.log!.text(), 80), 2048);
    }
    const oom = rt.kill?.kind === "oom" || ((await rt.child?.oomKilled?.()) ?? false);
    const reason = oom ? "OOMKilled" : exitCode === 0 ? "Completed" : "Error";
    // oomKill() stands for the kernel killing PID 1; a real OOM kill keeps the exit code the container had.
    this.finish(rt, container, { exitCode: rt.kill?.kind === "oom" ? 137 : exitCode, reason, message });
  }

  /** The pod's terminal status; then, when it is being deleted, its removal. */
  private finish(rt: Runtime, container: Container, end: ContainerEnd): void {
    rt.phase = "terminated";
    rt.log?.end();
    const ran = rt.startedAt ? { startedAt: rt.startedAt, containerID: rt.containerID! } : undefined;
    this.update(rt, (p) => (p.status = terminalStatus(p.status, container, end, rt.kill, ran)));
    if (rt.deleting) this.forget(rt);
  }

  /** A container stopped before it ever ran (pending, pulling, unschedulable). */
  private terminateNeverStarted(rt: Runtime): void {
    const container = this.pod(rt)?.spec.containers[0];
    if (!container) return;
    this.finish(rt, container, {
      exitCode: 137,
      reason: "ContainerStatusUnknown",
      message: "The container could not be located when the pod was terminated",
    });
  }

  /** The pod leaves the store, and its log and folder with it. */
  private forget(rt: Runtime): void {
    this.pods.delete(`${rt.namespace}/${rt.name}`);
    for (const t of rt.timers) clearTimeout(t);
    this.store.remove<Pod>("Pod", rt.namespace, rt.name);
    if (rt.dir) void removeDir(rt.dir);
  }
}
