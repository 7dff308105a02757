import type { PodmanRuntime } from "./podman-runtime.ts";

/**
 * The JSON shapes the simulator stores and serves: the subset of batch/v1 Job and v1 Pod that the
 * simulated API server, job controller and kubelet read or write. Unknown fields a client sends are kept
 * (the index signatures) and echoed back, as the API server would for fields it knows.
 */

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  [field: string]: unknown;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  workingDir?: string;
  terminationMessagePath?: string;
  terminationMessagePolicy?: "File" | "FallbackToLogsOnError";
  imagePullPolicy?: string;
  [field: string]: unknown;
}

export interface PodSpec {
  containers: Container[];
  restartPolicy?: string;
  terminationGracePeriodSeconds?: number;
  nodeName?: string;
  [field: string]: unknown;
}

export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason?: string;
  message?: string;
  lastProbeTime?: string | null;
  lastTransitionTime?: string;
}

export interface ContainerState {
  waiting?: { reason: string; message?: string };
  running?: { startedAt: string };
  terminated?: {
    exitCode: number;
    signal?: number;
    reason: string;
    message?: string;
    startedAt?: string;
    finishedAt: string;
    containerID?: string;
  };
}

export interface ContainerStatus {
  name: string;
  image: string;
  imageID: string;
  containerID?: string;
  ready: boolean;
  started: boolean;
  restartCount: number;
  state: ContainerState;
  lastState: ContainerState;
}

export type PodPhase = "Pending" | "Running" | "Succeeded" | "Failed" | "Unknown";

export interface PodStatus {
  phase: PodPhase;
  conditions?: Condition[];
  containerStatuses?: ContainerStatus[];
  reason?: string;
  message?: string;
  startTime?: string;
  hostIP?: string;
  podIP?: string;
  qosClass?: string;
}

export interface Pod {
  apiVersion: "v1";
  kind: "Pod";
  metadata: ObjectMeta;
  spec: PodSpec;
  status: PodStatus;
}

export interface JobSpec {
  template: { metadata?: ObjectMeta; spec: PodSpec };
  backoffLimit?: number;
  activeDeadlineSeconds?: number;
  ttlSecondsAfterFinished?: number;
  parallelism?: number;
  completions?: number;
  selector?: { matchLabels?: Record<string, string> };
  [field: string]: unknown;
}

export interface JobStatus {
  active?: number;
  ready?: number;
  succeeded?: number;
  failed?: number;
  terminating?: number;
  startTime?: string;
  completionTime?: string;
  conditions?: Condition[];
  uncountedTerminatedPods?: Record<string, unknown>;
}

export interface Job {
  apiVersion: "batch/v1";
  kind: "Job";
  metadata: ObjectMeta;
  spec: JobSpec;
  status: JobStatus;
}

export type KubeObject = Job | Pod;
export type Kind = KubeObject["kind"];

/** What local program stands for a container image. */
export interface ImageSpec {
  /** The image's ENTRYPOINT: run when the container sets no `command`. */
  command?: string[];
  /** The image's CMD: used when the container sets neither `command` nor `args`. */
  args?: string[];
  /** The image's ENV: under the container's own env, over `baseEnv`. */
  env?: Record<string, string>;
  /** "fail": every pull of this image fails (ErrImagePull, then ImagePullBackOff). */
  pull?: "ok" | "fail";
}

export interface KubeSimOptions {
  /** Image name -> local program. An image not listed here cannot be pulled. */
  images?: Record<string, ImageSpec>;
  /** Bearer token every request must carry (default "kube-sim-token"). */
  token?: string;
  /** Watch events kept for resuming from a resourceVersion (default 1000). */
  historySize?: number;
  /** How often watches with allowWatchBookmarks get a BOOKMARK (default 5000 ms). */
  bookmarkIntervalMs?: number;
  /**
   * Multiplies every duration a spec gives in seconds (activeDeadlineSeconds, ttlSecondsAfterFinished,
   * terminationGracePeriodSeconds), so tests can use real specs without waiting real seconds (default 1).
   */
  timeScale?: number;
  /** Upper bound on a pod's SIGTERM -> SIGKILL grace period (default 2000 ms). */
  maxGracePeriodMs?: number;
  /** Delay before a failed pod of a Job with backoffLimit > 0 is replaced (default 100 ms). */
  podRetryDelayMs?: number;
  /** Delay from ErrImagePull to ImagePullBackOff (default 200 ms). */
  imagePullBackOffMs?: number;
  /** Extra environment for every container process, before the spec's env (default: PATH only). */
  baseEnv?: Record<string, string>;
  /** Folder under which each pod gets its working folder (default: the OS temp folder). */
  workRoot?: string;
  /**
   * Runs every pod whose image podman has as a real container from that image, honouring the pod spec
   * (see podman-runtime.ts); `images` then serves only the images podman lacks.
   */
  containers?: PodmanRuntime;
}
