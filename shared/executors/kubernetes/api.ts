// Node-only: the few Kubernetes API calls DWOP makes, paced by a rate limiter and retried when the API
// server says a retry can help.
import {
  ApiException,
  BatchV1Api,
  CoreV1Api,
  type KubeConfig,
  type V1Job,
  type V1Pod,
} from "@kubernetes/client-node";
import { silentLogger, type Logger } from "../../log.ts";
import { RateLimiter } from "./rate-limiter.ts";

/** HTTP statuses worth another try: throttled, or the server (or something before it) failing. */
const TRANSIENT = new Set([429, 500, 502, 503, 504]);
const MAX_TRIES = 4;
const LIST_PAGE = 500;

export interface KubeApiOptions {
  namespace: string;
  /** Requests per second (on average) and burst: every call but watches takes a token. */
  qps: number;
  burst: number;
  logger?: Logger;
  /** Called once per request sent, with a "verb resource" name (for metrics and benchmarks). */
  onRequest?: (call: string) => void;
}

export interface Listed<T> {
  items: T[];
  resourceVersion: string;
}

/** The HTTP status of a failed call, or null when there was no answer (a network error). */
export function statusOf(err: unknown): number | null {
  if (err instanceof ApiException) return err.code;
  const code = (err as { statusCode?: unknown; code?: unknown } | null)?.statusCode;
  return typeof code === "number" ? code : null;
}

/** A short message for logs and run records: the API server's Status message when there is one. */
export function messageOf(err: unknown): string {
  if (err instanceof ApiException) {
    try {
      const status = JSON.parse(String(err.body)) as { message?: string };
      if (status.message) return `${err.code}: ${status.message}`;
    } catch {
      // Not JSON: fall through to the exception's own message.
    }
    return `${err.code}: ${String(err.body).slice(0, 200)}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** The Kubernetes calls of the executor and the observer, all in one namespace. */
export class KubeApi {
  readonly namespace: string;
  readonly limiter: RateLimiter;
  private readonly batch: BatchV1Api;
  private readonly core: CoreV1Api;
  private readonly log: Logger;

  constructor(
    readonly kubeConfig: KubeConfig,
    private readonly options: KubeApiOptions,
  ) {
    this.namespace = options.namespace;
    this.limiter = new RateLimiter(options.qps, options.burst);
    this.batch = kubeConfig.makeApiClient(BatchV1Api);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.log = (options.logger ?? silentLogger).child({ component: "kube-api" });
  }

  /** Creates the Job; "exists" when a Job of that name is already there (a 409). */
  async createJob(job: V1Job): Promise<"created" | "exists"> {
    try {
      await this.call("create jobs", () =>
        this.batch.createNamespacedJob({ namespace: this.namespace, body: job }),
      );
      return "created";
    } catch (err) {
      if (statusOf(err) === 409) return "exists";
      throw err;
    }
  }

  /** The Job, or null when there is none. */
  async readJob(name: string): Promise<V1Job | null> {
    return this.orNull(404, () =>
      this.call("get jobs", () => this.batch.readNamespacedJob({ name, namespace: this.namespace })),
    );
  }

  /** Deletes the Job and (in the background) its pods; false when it was already gone. */
  async deleteJob(name: string): Promise<boolean> {
    const deleted = await this.orNull(404, () =>
      this.call("delete jobs", () =>
        this.batch.deleteNamespacedJob({ name, namespace: this.namespace, propagationPolicy: "Background" }),
      ),
    );
    return deleted !== null;
  }

  /** Every Job matching the selector, page by page. */
  listJobs(labelSelector: string): Promise<Listed<V1Job>> {
    return this.listAll("list jobs", (c) =>
      this.batch.listNamespacedJob({
        namespace: this.namespace,
        labelSelector,
        limit: LIST_PAGE,
        _continue: c,
      }),
    );
  }

  /** Every pod matching the selector, page by page. */
  listPods(labelSelector: string): Promise<Listed<V1Pod>> {
    return this.listAll("list pods", (c) =>
      this.core.listNamespacedPod({
        namespace: this.namespace,
        labelSelector,
        limit: LIST_PAGE,
        _continue: c,
      }),
    );
  }

  /**
   * The last `lines` lines of the container's log; null when there is none to read: the pod is gone
   * (404) or its container never started (400).
   */
  async readLogTail(pod: string, container: string, lines: number): Promise<string | null> {
    try {
      return await this.call("get pods/log", () =>
        this.core.readNamespacedPodLog({ name: pod, namespace: this.namespace, container, tailLines: lines }),
      );
    } catch (err) {
      const status = statusOf(err);
      if (status === 404 || status === 400) return null;
      throw err;
    }
  }

  /** Paths for watches of Jobs and pods in this namespace. */
  get jobsPath(): string {
    return `/apis/batch/v1/namespaces/${this.namespace}/jobs`;
  }

  get podsPath(): string {
    return `/api/v1/namespaces/${this.namespace}/pods`;
  }

  /** Takes a token for a request that is not made through this class (a watch). */
  async pace(call: string): Promise<void> {
    await this.limiter.take();
    this.options.onRequest?.(call);
  }

  private async listAll<T>(
    call: string,
    page: (
      cont: string | undefined,
    ) => Promise<{ items: T[]; metadata?: { resourceVersion?: string; _continue?: string } }>,
  ): Promise<Listed<T>> {
    const items: T[] = [];
    let cont: string | undefined;
    let resourceVersion = "";
    do {
      const res = await this.call(call, () => page(cont));
      items.push(...res.items);
      resourceVersion = res.metadata?.resourceVersion ?? resourceVersion;
      cont = res.metadata?._continue || undefined;
    } while (cont);
    return { items, resourceVersion };
  }

  private async orNull<T>(status: number, fn: () => Promise<T>): Promise<T | null> {
    try {
      return await fn();
    } catch (err) {
      if (statusOf(err) === status) return null;
      throw err;
    }
  }

  /** One call, paced, retried with backoff on throttling, server errors and lost connections. */
  private async call<T>(name: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      await this.pace(name);
      try {
        return await fn();
      } catch (err) {
        const status = statusOf(err);
        const transient = status === null ? !(err instanceof ApiException) : TRANSIENT.has(status);
        if (!transient || attempt >= MAX_TRIES) throw err;
        const delay = retryAfterMs(err) ?? Math.min(100 * 2 ** (attempt - 1), 2000);
        this.log.warn(
          { call: name, status, attempt, delay, err: messageOf(err) },
          "Kubernetes API call failed; retrying",
        );
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }
}

function retryAfterMs(err: unknown): number | null {
  if (!(err instanceof ApiException)) return null;
  const seconds = Number((err.headers as Record<string, string> | undefined)?.["retry-after"]);
  return Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds * 1000, 10_000) : null;
}
