// Node-only: list, then watch from the list's resourceVersion, for as long as it runs.
import { Watch, type KubernetesObject } from "@kubernetes/client-node";
import { silentLogger, type Logger } from "../../log.ts";
import { messageOf, statusOf, type KubeApi, type Listed } from "./api.ts";

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED";

export interface ListWatchOptions<T extends KubernetesObject> {
  api: KubeApi;
  /** What is watched, for logs and metrics ("jobs", "pods"). */
  resource: string;
  path: string;
  labelSelector: string;
  list: () => Promise<Listed<T>>;
  /** After every full list: the complete current set (objects missing from it are gone). */
  onSync: (items: T[]) => void;
  onEvent: (type: WatchEventType, obj: T) => void;
  /** First and longest wait before restarting a watch that failed. */
  backoffMs?: { initial: number; max: number };
  /** Asks the server to end each watch after this long, so connections are renewed now and then. */
  watchTimeoutSeconds?: number;
  logger?: Logger;
}

/** How one watch ended. */
type WatchEnd = { kind: "expired" } | { kind: "closed" } | { kind: "failed"; err: unknown };

/** Counters a test or /metrics can read. */
export interface ListWatchStats {
  lists: number;
  watches: number;
  expired: number;
  failures: number;
  events: number;
}

/**
 * Keeps a view of some objects current, whatever happens to the connection: a full list, then a watch
 * from its resourceVersion. A watch that ends cleanly is resumed from the last resourceVersion seen
 * (events and bookmarks move it). An expired resourceVersion (410 Gone, whether as an ERROR event or as
 * the HTTP status) means events were missed: list again. Anything else (a cut socket, an HTTP error, a
 * failed list) is retried after a backoff that doubles up to a cap and resets once events flow again.
 * The client's own informer is not used because it stops for good after some of these.
 */
export class ListWatch<T extends KubernetesObject> {
  readonly stats: ListWatchStats = { lists: 0, watches: 0, expired: 0, failures: 0, events: 0 };
  private resourceVersion: string | null = null;
  private stopped = true;
  private abort: AbortController | null = null;
  private loop: Promise<void> | null = null;
  private sleeper: { timer: ReturnType<typeof setTimeout>; wake: () => void } | null = null;
  private readonly log: Logger;

  constructor(private readonly options: ListWatchOptions<T>) {
    this.log = (options.logger ?? silentLogger).child({
      component: "list-watch",
      resource: options.resource,
    });
  }

  /** Lists once (resolving when the first list has been delivered), then keeps watching in the background. */
  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    await this.relist().catch((err: unknown) => this.noteFailure(err, "list"));
    this.loop = this.run();
  }

  /** Ends the current watch and the loop. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    if (this.sleeper) {
      clearTimeout(this.sleeper.timer);
      this.sleeper.wake();
    }
    await this.loop;
    this.loop = null;
  }

  private async run(): Promise<void> {
    const backoff = this.options.backoffMs ?? { initial: 200, max: 30_000 };
    let delay = backoff.initial;
    while (!this.stopped) {
      try {
        if (this.resourceVersion === null) await this.relist();
        const before = { events: this.stats.events, at: Date.now() };
        const end = await this.watchOnce(this.resourceVersion!);
        if (this.stopped) return;
        if (this.stats.events > before.events) delay = backoff.initial;
        if (end.kind === "expired") {
          this.stats.expired++;
          this.log.info({}, "resourceVersion expired; listing again");
          this.resourceVersion = null;
          continue;
        }
        // A clean end is the server renewing the connection; one that came at once and said nothing
        // is waited for like a failure, so a misbehaving server is not asked again in a tight loop.
        if (end.kind === "closed" && (this.stats.events > before.events || Date.now() - before.at > 1000))
          continue;
        if (end.kind === "failed") this.noteFailure(end.err, "watch");
      } catch (err) {
        this.noteFailure(err, "list");
      }
      await this.sleep(delay);
      delay = Math.min(delay * 2, backoff.max);
    }
  }

  private noteFailure(err: unknown, what: string): void {
    if (this.stopped) return;
    this.stats.failures++;
    this.log.warn({ err: messageOf(err), status: statusOf(err) }, `${what} failed; retrying after a backoff`);
  }

  private async relist(): Promise<void> {
    const listed = await this.options.list();
    this.stats.lists++;
    this.resourceVersion = listed.resourceVersion;
    this.options.onSync(listed.items);
  }

  private async watchOnce(from: string): Promise<WatchEnd> {
    await this.options.api.pace(`watch ${this.options.resource}`);
    this.stats.watches++;
    let expired = false;
    let failure: unknown = null;
    const ended = new Promise<unknown>((resolve) => {
      void new Watch(this.options.api.kubeConfig)
        .watch(
          this.options.path,
          {
            resourceVersion: from,
            allowWatchBookmarks: true,
            labelSelector: this.options.labelSelector,
            timeoutSeconds: this.options.watchTimeoutSeconds ?? 300,
          },
          (type: string, obj: T & { code?: number }) => {
            if (type === "ERROR") {
              if (obj.code === 410) expired = true;
              else failure = new Error(`watch ERROR event: ${JSON.stringify(obj).slice(0, 300)}`);
              return;
            }
            this.resourceVersion = obj.metadata?.resourceVersion ?? this.resourceVersion;
            if (type === "BOOKMARK") return;
            this.stats.events++;
            this.options.onEvent(type as WatchEventType, obj);
          },
          resolve,
        )
        .then((controller) => {
          this.abort = controller;
          if (this.stopped) controller.abort();
        });
    });
    const err = await ended;
    this.abort = null;
    if (expired || statusOf(err) === 410) return { kind: "expired" };
    if (failure) return { kind: "failed", err: failure };
    return err ? { kind: "failed", err } : { kind: "closed" };
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.sleeper = null;
        resolve();
      }, ms);
      this.sleeper = { timer, wake: resolve };
    });
  }
}
