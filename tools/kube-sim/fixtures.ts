/** Test helpers for code that talks to the simulator through @kubernetes/client-node. */
import { Watch, type KubeConfig, type KubernetesObject, type V1Job } from "@kubernetes/client-node";

/** A one-container Job running `sh -c script` in busybox:1.36, labelled app=dwop, backoffLimit 0. */
export function shellJob(
  name: string,
  script: string,
  spec: Partial<NonNullable<V1Job["spec"]>> = {},
  labels: Record<string, string> = {},
): V1Job {
  return {
    metadata: { name, labels: { app: "dwop", ...labels } },
    spec: {
      backoffLimit: 0,
      ...spec,
      template: {
        metadata: { labels: { app: "dwop", ...labels } },
        spec: {
          restartPolicy: "Never",
          containers: [{ name: "main", image: "busybox:1.36", command: ["sh", "-c", script] }],
        },
      },
    },
  };
}

/** Polls `probe` until it returns something truthy; fails naming `what` after `ms`. */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 5000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 15));
  }
}

/** The Job's Complete or Failed condition, once it has one. */
export function finishedCondition(job: V1Job | undefined) {
  return job?.status?.conditions?.find(
    (c) => (c.type === "Complete" || c.type === "Failed") && c.status === "True",
  );
}

export interface WatchedEvent {
  type: string;
  object: KubernetesObject & { code?: number; reason?: string };
}

/** Opens a watch with the real client; `done` resolves with what the client's done callback got. */
export async function collectWatch(
  kc: KubeConfig,
  path: string,
  params: Record<string, string | number | boolean | undefined> = {},
) {
  const events: WatchedEvent[] = [];
  let finish!: (err: unknown) => void;
  const done = new Promise<unknown>((r) => (finish = r));
  const push = (type: string, object: WatchedEvent["object"]) => events.push({ type, object });
  const controller = await new Watch(kc).watch(path, params, push, finish);
  return { events, done, controller };
}
