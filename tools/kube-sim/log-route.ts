/** GET .../pods/{name}/log: text/plain, with the kubelet's answers for containers that have not started. */
import type { ServerResponse } from "node:http";
import type { Kubelet } from "./kubelet.ts";
import { firstBytes, tailLines } from "./pod-log.ts";
import { PODS, badRequest, notFound } from "./status.ts";
import type { ObjectStore } from "./store.ts";
import type { Pod } from "./types.ts";

export async function servePodLog(
  res: ServerResponse,
  parts: { store: ObjectStore; kubelet: Kubelet },
  namespace: string,
  name: string,
  query: URLSearchParams,
): Promise<void> {
  const pod = parts.store.get<Pod>("Pod", namespace, name);
  if (!pod) throw notFound(PODS, name);
  const names = pod.spec.containers.map((c) => c.name);
  const container = query.get("container") ?? (names.length === 1 ? names[0]! : undefined);
  if (container === undefined) {
    throw badRequest(
      `a container name must be specified for pod ${name}, choose one of: [${names.join(" ")}]`,
    );
  }
  if (!names.includes(container)) throw badRequest(`container ${container} is not valid for pod ${name}`);
  if (query.get("previous") === "true") {
    throw badRequest(`previous terminated container "${container}" in pod "${name}" not found`);
  }
  if (!pod.spec.nodeName) throw badRequest(`pod ${name} does not have a host assigned`);
  const entry = parts.kubelet.log(namespace, name);
  if (!entry) throw notFound(PODS, name);
  if (entry.waitingReason) {
    const why =
      entry.waitingReason === "ContainerCreating" ? "ContainerCreating" : "trying and failing to pull image";
    throw badRequest(`container "${container}" in pod "${name}" is waiting to start: ${why}`);
  }
  const full = (await entry.log?.text()) ?? "";
  let text = full;
  const tail = query.get("tailLines");
  if (tail !== null) text = tailLines(text, Number(tail));
  const limit = query.get("limitBytes");
  if (limit !== null) text = firstBytes(text, Number(limit));
  res.writeHead(200, { "Content-Type": "text/plain" });
  if (query.get("follow") !== "true" || limit !== null || !entry.log) {
    res.end(text);
    return;
  }
  res.write(text);
  const stop = entry.log.follow(Buffer.byteLength(full), (chunk) => {
    if (res.writableEnded || res.destroyed) return;
    if (chunk) res.write(chunk);
    else res.end();
  });
  res.on("close", stop);
}
