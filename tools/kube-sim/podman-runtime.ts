/**
 * The kubelet's container runtime when podman is there: each pod's container runs from its image as a
 * real OCI container (runc), with what the pod spec asks for: command, args, env, workingDir, the
 * security context (user, groups, read-only root, capabilities, no privilege escalation), emptyDir
 * volumes, the termination-message file and the memory and CPU limits. The pod shares the host's
 * network (see docs/kubernetes.md: the test's API server and storage on 127.0.0.1 stand in for the
 * cluster's services). An OOM kill is read from the kernel's log, as cAdvisor does for the kubelet.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { chmod, chown, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { podman, podmanEnv } from "../../scripts/images/podman.ts";
import { parseCpu, parseMemory } from "../../shared/quantity.ts";
import { OomWatch } from "./oom-watch.ts";
import type { Container, Pod } from "./types.ts";

/** Label on every container this runtime starts: `close()` finds them by it. */
const LABEL = "dwop.kube-sim";
/** The pid of the process that started it: a later runtime removes those whose process died. */
const PID_LABEL = "dwop.kube-sim.pid";

/** A container this runtime started: its `podman run` process, and how to signal and judge it. */
export interface LaunchedContainer {
  /** `podman run` in the foreground: it exits with the container's exit code. */
  child: ChildProcess;
  signal(signal: "SIGTERM" | "SIGKILL"): void;
  /** Whether the kernel OOM-killed a process of this container (asked once it has exited). */
  oomKilled(): Promise<boolean>;
  /**
   * The container's own exit code, given what `podman run` exited with; null when podman itself failed
   * and no container's code can be found (see containerExitCode).
   */
  exitCode(podmanCode: number): Promise<number | null>;
}

/** Why a container cannot be created from its spec (the kubelet's CreateContainerConfigError). */
export class ContainerConfigError extends Error {}

interface SecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  fsGroup?: number;
  supplementalGroups?: number[];
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  privileged?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
  seccompProfile?: { type?: string };
}

interface Volume {
  name: string;
  emptyDir?: { medium?: string; sizeLimit?: string };
  hostPath?: { path: string; type?: string };
  [type: string]: unknown;
}

interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}

export interface PodmanLaunch {
  pod: Pod;
  container: Container;
  /** The pod's own folder: the emptyDir volumes and the termination-message file go in it. */
  dir: string;
  /** The container's env, resolved (fieldRefs filled in). */
  env: Record<string, string>;
  /** File descriptor of the pod's log: the container's stdout and stderr, written by the container itself. */
  logFd: number;
  /** The host file that is the container's terminationMessagePath. */
  terminationFile: string;
}

export interface PodmanRuntimeOptions {
  /**
   * Host folders every container sees read-only at the same path: the node's one window for a test
   * harness (the chaos soak's "fix" markers), never something a Job spec asks for.
   */
  nodeReadOnlyMounts?: string[];
}

export class PodmanRuntime {
  constructor(private readonly options: PodmanRuntimeOptions = {}) {}

  private readonly present = new Set<string>();
  private swept: Promise<void> | null = null;
  private readonly oom = new OomWatch();
  private readonly instance = randomBytes(4).toString("hex");
  /** Each `podman run` still going, with what signals its container. */
  private readonly launched = new Map<ChildProcess, (signal: "SIGTERM" | "SIGKILL") => void>();

  /**
   * Does once, before any pod, what the first pod would otherwise wait for (removing orphans, looking
   * the images up): a pod that takes seconds to start is one the observer's pending timeout may fail.
   */
  async warm(images: string[]): Promise<void> {
    await (this.swept ??= sweepOrphans());
    for (const image of images) await this.has(image);
  }

  /** Whether `image` is in podman's store (a "pull" here: no registry is asked). */
  async has(image: string): Promise<boolean> {
    if (this.present.has(image)) return true;
    const found = await podman(["image", "exists", image]).then(
      () => true,
      () => false,
    );
    if (found) this.present.add(image);
    return found;
  }

  /**
   * Prepares the container (its volumes, its `podman run`); the returned function starts it, so the
   * caller can listen to the process from its first event. Throws ContainerConfigError when the spec
   * asks for what cannot be run.
   */
  async prepare(l: PodmanLaunch): Promise<() => LaunchedContainer> {
    await (this.swept ??= sweepOrphans());
    const name = `kube-sim-${l.pod.metadata.namespace}-${l.pod.metadata.name}-${randomBytes(3).toString("hex")}`;
    const cidFile = join(l.dir, "container-id");
    // No --rm: the container is removed once its exit code is read (containerExitCode), so that a `podman
    // run` that never returns can be told the container's code (exitWatch).
    const args = [
      "run",
      `--name=${name}`,
      `--label=${LABEL}=${this.instance}`,
      `--label=${PID_LABEL}=${process.pid}`,
      `--cidfile=${cidFile}`,
      // The container writes its stdout and stderr straight into the pod's log file, in order.
      "--log-driver=passthrough",
      "--network=host",
      `--hostname=${l.pod.metadata.name}`,
      "--pull=never",
      ...(await this.securityArgs(l)),
      ...(await this.volumeArgs(l)),
      ...resourceArgs(l.container),
      ...(l.container.workingDir ? [`--workdir=${l.container.workingDir}`] : []),
      ...(await envArgs(l)),
      ...(l.container.command ? [`--entrypoint=${JSON.stringify(l.container.command)}`] : []),
      l.container.image!,
      ...(l.container.args ?? []),
    ];
    this.oom.start();
    return () => this.start(name, args, l, cidFile);
  }

  private start(name: string, args: string[], l: PodmanLaunch, cidFile: string): LaunchedContainer {
    // In the pod's folder: conmon (podman's monitor) writes a file named "oom" into its working folder
    // when it sees an OOM kill (a Debian 12 conmon quirk, which is also why podman says OOMKilled=false).
    const child = spawn("podman", args, {
      cwd: l.dir,
      env: podmanEnv(),
      stdio: ["ignore", l.logFd, l.logFd],
    });
    exitWatch(child, cidFile);
    const signal = (sig: "SIGTERM" | "SIGKILL", retryMs = SIGNAL_RETRY_MS): void => {
      if (!running(child)) return;
      // Until the container exists (or runs) there is nothing to signal: try again shortly, for as long as
      // `podman run` lives, which may be seconds under load (at most a second apart). A kill lost here
      // left a container running after its pod was deleted, and after the simulator closed.
      podman(["kill", `--signal=${sig}`, name]).catch(() => {
        setTimeout(() => signal(sig, Math.min(retryMs * 2, 1000)), retryMs);
      });
    };
    this.launched.set(child, (sig) => signal(sig));
    child.once("exit", () => this.launched.delete(child));
    return {
      child,
      signal: (sig) => signal(sig),
      // podman leaves the id file when the container is removed.
      oomKilled: async () => this.oom.killedIn((await readFile(cidFile, "utf8").catch(() => "")).trim()),
      exitCode: (code) => containerExitCode(cidFile, code),
    };
  }

  /**
   * Kills every container this runtime started and removes each that is still there. A `podman run` that
   * has not made its container yet is waited for (CLOSE_WAIT_MS at most, then killed itself): its
   * container, made after a listing, would be left running.
   */
  async close(): Promise<void> {
    const runs = [...this.launched];
    for (const [, signal] of runs) signal("SIGKILL");
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(runs.map(([child]) => (running(child) ? once(child, "exit") : null))),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_WAIT_MS))),
    ]);
    clearTimeout(timer);
    for (const [child] of runs) if (running(child)) child.kill("SIGKILL");
    this.oom.stop();
    const ids = (await podman(["ps", "-aq", `--filter=label=${LABEL}=${this.instance}`]).catch(() => ""))
      .split("\n")
      .filter(Boolean);
    if (ids.length > 0) await podman(["rm", "--force", "--time=0", ...ids]).catch(() => undefined);
  }

  private async securityArgs(l: PodmanLaunch): Promise<string[]> {
    const pod = (l.pod.spec.securityContext ?? {}) as SecurityContext;
    const c = { ...pod, ...((l.container.securityContext ?? {}) as SecurityContext) };
    const args: string[] = [];
    if (c.runAsUser !== undefined) {
      args.push(`--user=${c.runAsUser}${c.runAsGroup !== undefined ? `:${c.runAsGroup}` : ""}`);
    }
    if (c.runAsNonRoot) {
      const user = c.runAsUser ?? (await this.imageUser(l.container.image!));
      // The kubelet's check: it refuses a root user, and a named one it cannot prove is not root.
      if (user === 0 || user === "" || user === "root") {
        throw new ContainerConfigError("container has runAsNonRoot and image will run as root");
      }
      if (typeof user === "string" && !/^\d+(:\d+)?$/.test(user)) {
        throw new ContainerConfigError(
          `container has runAsNonRoot and image has non-numeric user (${user}), cannot verify user is non-root`,
        );
      }
    }
    for (const g of [
      ...(pod.fsGroup !== undefined ? [pod.fsGroup] : []),
      ...(pod.supplementalGroups ?? []),
    ]) {
      args.push(`--group-add=${g}`);
    }
    if (c.readOnlyRootFilesystem) args.push("--read-only", "--read-only-tmpfs=false");
    if (c.allowPrivilegeEscalation === false) args.push("--security-opt=no-new-privileges");
    if (c.privileged) args.push("--privileged");
    for (const cap of c.capabilities?.drop ?? []) args.push(`--cap-drop=${cap}`);
    for (const cap of c.capabilities?.add ?? []) args.push(`--cap-add=${cap}`);
    // RuntimeDefault (and no profile) is the runtime's default filter, which podman applies by itself.
    if (c.seccompProfile?.type === "Unconfined") args.push("--security-opt=seccomp=unconfined");
    return args;
  }

  private async imageUser(image: string): Promise<string | number> {
    const user = (await podman(["image", "inspect", "--format", "{{.Config.User}}", image])).trim();
    return /^0(:\d+)?$/.test(user) ? 0 : user;
  }

  /**
   * Each mounted emptyDir is a fresh folder of the pod's, as the kubelet makes it: mode 0777, and with
   * an fsGroup owned by that group with the setgid bit, so files made in it keep the group.
   */
  private async volumeArgs(l: PodmanLaunch): Promise<string[]> {
    const volumes = (l.pod.spec.volumes ?? []) as Volume[];
    const fsGroup = (l.pod.spec.securityContext as SecurityContext | undefined)?.fsGroup;
    const args: string[] = [];
    for (const mount of (l.container.volumeMounts ?? []) as VolumeMount[]) {
      const volume = volumes.find((v) => v.name === mount.name);
      if (!volume) throw new ContainerConfigError(`volume "${mount.name}" is not in the pod's volumes`);
      if (volume.hostPath) {
        args.push(`--volume=${volume.hostPath.path}:${mount.mountPath}${mount.readOnly ? ":ro" : ""}`);
        continue;
      }
      if (!volume.emptyDir) {
        const type = Object.keys(volume).find((k) => k !== "name") ?? "unknown";
        throw new ContainerConfigError(
          `volume "${mount.name}": the simulator mounts emptyDir only, not ${type}`,
        );
      }
      const dir = join(l.dir, "volumes", mount.name);
      await mkdir(dir, { recursive: true });
      if (fsGroup !== undefined) await chown(dir, 0, fsGroup);
      await chmod(dir, fsGroup !== undefined ? 0o2777 : 0o777);
      args.push(`--volume=${dir}:${mount.mountPath}${mount.readOnly ? ":ro" : ""}`);
    }
    // The termination-message file: world-writable, as the kubelet makes it, so a non-root process can write it.
    await writeFile(l.terminationFile, "");
    await chmod(l.terminationFile, 0o666);
    const path = l.container.terminationMessagePath ?? "/dev/termination-log";
    args.push(`--volume=${l.terminationFile}:${path}`);
    for (const host of this.options.nodeReadOnlyMounts ?? []) args.push(`--volume=${host}:${host}:ro`);
    return args;
  }
}

/** How soon a signal is first sent again while its container does not exist yet (then twice as late, up to 1 s). */
const SIGNAL_RETRY_MS = 100;
/** How long close() waits for the `podman run` processes it killed. */
const CLOSE_WAIT_MS = 30_000;

/** Whether a child process has not exited yet. */
function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Removes the containers of simulators whose process died without closing them (a killed test run). */
async function sweepOrphans(): Promise<void> {
  const out = await podman([
    "ps",
    "-a",
    `--filter=label=${PID_LABEL}`,
    `--format={{.ID}} {{index .Labels "${PID_LABEL}"}}`,
  ]).catch(() => "");
  const orphans = out
    .split("\n")
    .map((line) => line.trim().split(" "))
    .filter(([id, pid]) => id && pid && !alive(Number(pid)))
    .map(([id]) => id!);
  if (orphans.length > 0) await podman(["rm", "--force", "--time=0", ...orphans]).catch(() => undefined);
}

/** Limits (requests only matter to a scheduler): memory with no swap, as on a Kubernetes node; CPU as a quota. */
function resourceArgs(container: Container): string[] {
  const limits = (container.resources as { limits?: Record<string, string> } | undefined)?.limits ?? {};
  const args: string[] = [];
  const memory = limits.memory ? parseMemory(limits.memory) : null;
  if (memory) args.push(`--memory=${memory}b`, `--memory-swap=${memory}b`);
  const cpu = limits.cpu ? parseCpu(limits.cpu) : null;
  if (cpu) args.push(`--cpus=${cpu}`);
  return args;
}

/** How long to wait for a container whose `podman run` lost track of it. */
const LOST_WAIT_SECONDS = 30;
/** How often exitWatch looks at a running container, and how long it gives `podman run` after its end. */
const EXIT_WATCH_MS = 5_000;

/**
 * Under load (a 100-Job chaos soak on a 2-core guest) podman 4.3's foreground `podman run` sometimes never
 * returns after its container ended: the container printed its output and exited, and `podman run` waited
 * on, so its pod stayed Running until the soak gave up. Every EXIT_WATCH_MS this asks podman for the
 * container's state; a container seen exited twice in a row while `podman run` lives gets its `podman
 * run` killed, and containerExitCode then reads the container's own code (it is not removed until then).
 */
export function exitWatch(child: ChildProcess, cidFile: string): void {
  let exitedOnce = false;
  // One look at a time: under load a `podman inspect` can take longer than EXIT_WATCH_MS, and looks that
  // overlapped would pile up podman processes and could take two looks at once for two 5 s apart.
  let looking = false;
  const look = async () => {
    const id = (await readFile(cidFile, "utf8").catch(() => "")).trim();
    if (!id) return;
    const state = await podman(["inspect", "--format", "{{.State.Status}}", id]).catch(() => "");
    if (state.trim() !== "exited") return void (exitedOnce = false);
    if (exitedOnce && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    exitedOnce = true;
  };
  const timer = setInterval(() => {
    if (looking) return;
    looking = true;
    void look().finally(() => (looking = false));
  }, EXIT_WATCH_MS);
  timer.unref();
  child.once("exit", () => clearInterval(timer));
}

/**
 * `podman run` exits with the container's code, or with 125-127 when podman itself failed. Under load
 * podman 4.3 sometimes loses the exit code of a container that ended ("getting exit code of container
 * ... from DB: no such exit code (container in state running)") and exits 127 although the container
 * exited 0, leaving it behind, or does not return at all (exitWatch kills it: code 137). Then the
 * container, if it is still there, is asked directly (`podman wait`). The container is removed either way.
 * Null when there is no container's code to be had: podman failed to create or start it (the kubelet
 * reports that as StartError), or lost it altogether.
 */
export async function containerExitCode(cidFile: string, podmanCode: number): Promise<number | null> {
  const id = (await readFile(cidFile, "utf8").catch(() => "")).trim();
  if (podmanCode < 125) {
    if (id) await podman(["rm", "--force", "--time=0", id]).catch(() => undefined);
    return podmanCode;
  }
  if (!id) return null;
  let timer: NodeJS.Timeout | undefined;
  const waited = await Promise.race([
    podman(["wait", "--interval=250ms", id]).catch(() => null),
    new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), LOST_WAIT_SECONDS * 1000))),
  ]);
  clearTimeout(timer);
  await podman(["rm", "--force", "--time=0", id]).catch(() => undefined);
  const code = waited === null ? NaN : Number(waited.trim());
  return Number.isInteger(code) && code >= 0 ? code : null;
}

/**
 * The container's env as podman arguments. The values (signed URLs among them) go in a file only the
 * simulator's user can read, not on podman's command line, which any local user can read in /proc. A
 * value with a line break cannot be written in podman's env-file format: only such a one is passed as an
 * argument.
 */
async function envArgs(l: PodmanLaunch): Promise<string[]> {
  const entries = Object.entries(l.env);
  const inFile = entries.filter(([, v]) => !/[\r\n]/.test(v));
  const args = entries.filter(([, v]) => /[\r\n]/.test(v)).map(([k, v]) => `--env=${k}=${v}`);
  if (inFile.length === 0) return args;
  const file = join(l.dir, "container.env");
  await writeFile(file, inFile.map(([k, v]) => `${k}=${v}\n`).join(""), { mode: 0o600 });
  return [`--env-file=${file}`, ...args];
}
