/** The pod statuses the kubelet reports at each step, shaped as a real kubelet writes them. */
import { now } from "./store.ts";
import type { Condition, Container, ContainerState, ContainerStatus, PodStatus } from "./types.ts";

/** Why the kubelet stops a container early; each ends the pod with its own reason. */
export type KillReason =
  | { kind: "oom" }
  | { kind: "evict"; message: string }
  | { kind: "deadline" }
  | { kind: "delete"; graceMs: number };

/** How a container ended. */
export interface ContainerEnd {
  exitCode: number;
  reason: string;
  message?: string;
}

export const condition = (
  type: string,
  status: Condition["status"],
  reason?: string,
  message?: string,
): Condition => ({
  type,
  status,
  lastProbeTime: null,
  lastTransitionTime: now(),
  ...(reason ? { reason } : {}),
  ...(message ? { message } : {}),
});

export function containerStatus(
  c: Container,
  state: ContainerState,
  extra: Partial<ContainerStatus> = {},
): ContainerStatus {
  return {
    name: c.name,
    image: c.image ?? "",
    imageID: "",
    ready: false,
    started: false,
    restartCount: 0,
    state,
    lastState: {},
    ...extra,
  };
}

const imageID = (c: Container) => `kube-sim://${c.image}`;

/** Bound to the node, container being created (or its image pulled). */
export function creatingStatus(status: PodStatus, container: Container): PodStatus {
  const notReady = `containers with unready status: [${container.name}]`;
  return {
    ...status,
    startTime: now(),
    hostIP: "127.0.0.1",
    podIP: "127.0.0.1",
    conditions: [
      condition("Initialized", "True"),
      condition("Ready", "False", "ContainersNotReady", notReady),
      condition("ContainersReady", "False", "ContainersNotReady", notReady),
      condition("PodScheduled", "True"),
    ],
    containerStatuses: [containerStatus(container, { waiting: { reason: "ContainerCreating" } })],
  };
}

export function runningStatus(
  status: PodStatus,
  container: Container,
  startedAt: string,
  containerID: string,
): PodStatus {
  return {
    ...status,
    phase: "Running",
    conditions: [
      condition("Initialized", "True"),
      condition("Ready", "True"),
      condition("ContainersReady", "True"),
      condition("PodScheduled", "True"),
    ],
    containerStatuses: [
      containerStatus(
        container,
        { running: { startedAt } },
        { ready: true, started: true, imageID: imageID(container), containerID },
      ),
    ],
  };
}

/** Succeeded or Failed; eviction and deadlines also set the pod's own reason and message. */
export function terminalStatus(
  status: PodStatus,
  container: Container,
  end: ContainerEnd,
  kill: KillReason | undefined,
  ran: { startedAt: string; containerID: string } | undefined,
): PodStatus {
  const succeeded = end.exitCode === 0;
  const why = succeeded ? "PodCompleted" : "PodFailed";
  const next: PodStatus = {
    ...status,
    phase: succeeded ? "Succeeded" : "Failed",
    conditions: [
      condition("Initialized", "True", why),
      condition("Ready", "False", why),
      condition("ContainersReady", "False", why),
      condition("PodScheduled", "True"),
    ],
  };
  if (kill?.kind === "evict") {
    next.reason = "Evicted";
    next.message = kill.message;
    next.conditions!.push(condition("DisruptionTarget", "True", "TerminationByKubelet", kill.message));
  } else if (kill?.kind === "deadline") {
    next.reason = "DeadlineExceeded";
    next.message = "Pod was active on the node longer than the specified deadline";
  }
  const terminated = {
    exitCode: end.exitCode,
    reason: end.reason,
    ...(end.message ? { message: end.message } : {}),
    startedAt: ran?.startedAt ?? now(),
    finishedAt: now(),
    containerID: ran?.containerID ?? "",
  };
  const ids = ran ? { imageID: imageID(container), containerID: ran.containerID } : {};
  next.containerStatuses = [containerStatus(container, { terminated }, ids)];
  return next;
}
