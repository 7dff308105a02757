/**
 * Watch streams over HTTP, as the API server serves them: headers flushed at once, then one JSON event a
 * line (chunked), starting with a replay of what the client missed since its resourceVersion.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Faults } from "./faults.ts";
import type { Selector } from "./selectors.ts";
import { ApiError, badRequest, expired } from "./status.ts";
import type { ObjectStore, StoreEvent } from "./store.ts";
import type { Kind, KubeObject } from "./types.ts";

export interface WatchRequest {
  kind: Kind;
  /** Undefined: every namespace. */
  namespace: string | undefined;
  selector: Selector;
  query: URLSearchParams;
}

type WireEvent = { type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR"; object: unknown };

interface OpenWatch {
  res: ServerResponse;
  bookmarks: boolean;
  kind: Kind;
  close(): void;
}

const API_VERSION: Record<Kind, string> = { Job: "batch/v1", Pod: "v1" };

/** The event this watch sees for a store event: selectors turn edits into ADDED/DELETED at their edge. */
function visible(e: StoreEvent, w: WatchRequest): WireEvent | undefined {
  if (e.kind !== w.kind || (w.namespace !== undefined && e.namespace !== w.namespace)) return undefined;
  const now = w.selector(e.object);
  const before = e.previous ? w.selector(e.previous) : false;
  switch (e.type) {
    case "ADDED":
      return now ? { type: "ADDED", object: e.object } : undefined;
    case "DELETED":
      return before || now ? { type: "DELETED", object: e.object } : undefined;
    case "MODIFIED":
      if (before && now) return { type: "MODIFIED", object: e.object };
      if (now) return { type: "ADDED", object: e.object };
      return before ? { type: "DELETED", object: e.object } : undefined;
  }
}

export class WatchHub {
  private readonly open = new Set<OpenWatch>();

  constructor(
    private readonly store: ObjectStore,
    private readonly faults: Faults,
    private readonly bookmarkIntervalMs: number,
  ) {}

  get count(): number {
    return this.open.size;
  }

  /** Serves one watch request until the client leaves, the timeout passes or a fault ends it. */
  serve(req: IncomingMessage, res: ServerResponse, w: WatchRequest): void {
    const start = this.startingEvents(w);
    if ("gone" in start && this.faults.goneAs === "http") throw new ApiError(start.gone);

    res.writeHead(200, {
      "Content-Type": "application/json",
      "Cache-Control": "no-cache, private",
      "Transfer-Encoding": "chunked",
    });
    res.flushHeaders();
    const write = (e: WireEvent) => {
      if (!res.writableEnded && !res.destroyed) res.write(JSON.stringify(e) + "\n");
    };
    if ("gone" in start) {
      write({ type: "ERROR", object: start.gone });
      res.end();
      return;
    }

    const unsubscribe = this.store.subscribe((e) => {
      const event = visible(e, w);
      if (event) write(event);
    });
    for (const e of start.events) write(e);

    const bookmarks = w.query.get("allowWatchBookmarks") === "true";
    const timers: NodeJS.Timeout[] = [];
    const entry: OpenWatch = { res, bookmarks, kind: w.kind, close: () => undefined };
    const cleanup = () => {
      unsubscribe();
      for (const t of timers) clearTimeout(t);
      this.open.delete(entry);
    };
    entry.close = cleanup;
    this.open.add(entry);
    if (bookmarks && w.query.get("sendInitialEvents") === "true") write(this.bookmark(w.kind, true));
    if (bookmarks)
      timers.push(setInterval(() => write(this.bookmark(w.kind, false)), this.bookmarkIntervalMs));
    const timeout = Number(w.query.get("timeoutSeconds") ?? "0");
    if (timeout > 0) {
      timers.push(
        setTimeout(() => {
          cleanup();
          res.end();
        }, timeout * 1000),
      );
    }
    res.on("close", cleanup);
    req.on("close", cleanup);
  }

  /** Ends every open watch: gracefully (the stream's last chunk) or abruptly (socket destroyed mid-stream). */
  closeAll(graceful: boolean): number {
    const all = [...this.open];
    for (const w of all) {
      w.close();
      if (graceful) w.res.end();
      else w.res.socket?.destroy();
    }
    return all.length;
  }

  /** Sends a BOOKMARK now on every watch that asked for them. */
  sendBookmarks(): number {
    let sent = 0;
    for (const w of this.open) {
      if (!w.bookmarks) continue;
      w.res.write(JSON.stringify(this.bookmark(w.kind, false)) + "\n");
      sent++;
    }
    return sent;
  }

  private bookmark(kind: Kind, initialEventsEnd: boolean): WireEvent {
    const metadata: KubeObject["metadata"] = { resourceVersion: String(this.store.resourceVersion) };
    if (initialEventsEnd) metadata.annotations = { "k8s.io/initial-events-end": "true" };
    return { type: "BOOKMARK", object: { kind, apiVersion: API_VERSION[kind], metadata } };
  }

  /**
   * No resourceVersion or "0": the current state as synthetic ADDED events. A resourceVersion: every event
   * after it, or Gone when the history window no longer reaches back that far.
   */
  private startingEvents(w: WatchRequest): { events: WireEvent[] } | { gone: ApiError["status"] } {
    const rv = w.query.get("resourceVersion");
    if (!rv || rv === "0") {
      const objects = this.store
        .list(w.kind, w.namespace, w.selector)
        .sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion));
      return { events: objects.map((object) => ({ type: "ADDED", object })) };
    }
    const from = Number(rv);
    if (!Number.isSafeInteger(from) || from < 0) throw badRequest(`invalid resource version: ${rv}`);
    const replay = this.store.since(from);
    if ("expired" in replay) return { gone: expired(from, replay.oldest) };
    return { events: replay.map((e) => visible(e, w)).filter((e): e is WireEvent => e !== undefined) };
  }
}
