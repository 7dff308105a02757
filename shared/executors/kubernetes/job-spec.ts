import type { V1Container, V1Job, V1ResourceRequirements } from "@kubernetes/client-node";
import type { RunAssignment } from "../../model.ts";
import type { WorkerEnv } from "../executor.ts";
import { jobName, runLabels, TASK_NAME_ANNOTATION } from "./names.ts";

export type ImagePullPolicy = "Always" | "IfNotPresent" | "Never";

export interface JobSpecOptions {
  /** The worker image, unless the task names its own with @image. */
  image: string;
  /** `Never` for kind and minikube, where images are loaded into the nodes rather than pulled. */
  imagePullPolicy: ImagePullPolicy;
  /** A finished Job the observer failed to delete is removed by Kubernetes after this long. */
  ttlSecondsAfterFinished: number;
  /** The worker image's non-root user and group (10001 in worker/Dockerfile). */
  runAsUser: number;
  /** Request and limit of a task that sets no @cpu, and of one that sets no @memory. */
  defaultCpu: string;
  defaultMemory: string;
  /** `sizeLimit` of each of the pod's emptyDir volumes (/work and /tmp): past it the pod is evicted. */
  volumeSizeLimit: string;
}

/** The container name; the observer reads its state and its log. */
export const WORKER_CONTAINER = "worker";
/** Where the worker runs and the emptyDir is mounted (the image's WORKDIR and HOME). */
const WORK_DIR = "/work";

/**
 * The Job that runs one attempt: one pod, never restarted (retries are the orchestrator's), bounded by
 * the attempt's deadline, CPU and memory limits and size-limited emptyDir folders, locked down as Pod
 * Security's `restricted` profile asks (non-root, no capabilities, no privilege escalation,
 * RuntimeDefault seccomp; also a read-only root and no service-account token), and given nothing but
 * the attempt's signed URLs in its environment. The image's ENTRYPOINT runs the worker.
 */
export function buildJob(run: RunAssignment, env: WorkerEnv, options: JobSpecOptions): V1Job {
  const labels = runLabels(run);
  const timeout = run.options.timeoutSeconds;
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: {
      name: jobName(run.workflowId, run.taskName, run.attempt),
      labels,
      annotations: { [TASK_NAME_ANNOTATION]: run.taskName },
    },
    spec: {
      backoffLimit: 0,
      ...(timeout ? { activeDeadlineSeconds: timeout } : {}),
      ttlSecondsAfterFinished: options.ttlSecondsAfterFinished,
      template: {
        metadata: { labels, annotations: { [TASK_NAME_ANNOTATION]: run.taskName } },
        spec: {
          restartPolicy: "Never",
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: options.runAsUser,
            runAsGroup: options.runAsUser,
            fsGroup: options.runAsUser,
            seccompProfile: { type: "RuntimeDefault" },
          },
          containers: [workerContainer(run, env, options)],
          volumes: [
            { name: "work", emptyDir: { sizeLimit: options.volumeSizeLimit } },
            { name: "tmp", emptyDir: { sizeLimit: options.volumeSizeLimit } },
          ],
        },
      },
    },
  };
}

function workerContainer(run: RunAssignment, env: WorkerEnv, options: JobSpecOptions): V1Container {
  return {
    name: WORKER_CONTAINER,
    image: run.options.image ?? options.image,
    imagePullPolicy: options.imagePullPolicy,
    workingDir: WORK_DIR,
    env: Object.entries(env)
      .filter((e): e is [string, string] => typeof e[1] === "string")
      .map(([name, value]) => ({ name, value })),
    resources: resources(run.options.cpu ?? options.defaultCpu, run.options.memory ?? options.defaultMemory),
    // The worker writes its failure JSON there; when it could not (killed), the log's end stands in.
    terminationMessagePolicy: "FallbackToLogsOnError",
    securityContext: {
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
    },
    volumeMounts: [
      { name: "work", mountPath: WORK_DIR },
      { name: "tmp", mountPath: "/tmp" },
    ],
  };
}

/** The task's cpu and memory (or the defaults) as both request and limit: what it gets is what it may use. */
function resources(cpu: string, memory: string): V1ResourceRequirements {
  return { requests: { cpu, memory }, limits: { cpu, memory } };
}
