import { readSse } from "../../../shared/sse.ts";
import { ApiError, call } from "./api.ts";
import type { WorkflowEvent } from "./types.ts";

export interface Follow {
  stop(): void;
}

/**
 * Follows a workflow's event stream (fetch, not EventSource, which cannot send the token), resuming
 * after the last event seen when the connection drops, until the stream's `end` or `stop()`.
 */
export function followEvents(
  workflowId: string,
  handlers: {
    onEvent(e: WorkflowEvent): void;
    onEnd(status: string): void;
    onConnection(state: "live" | "reconnecting" | "ended"): void;
  },
  after: string | null = null,
): Follow {
  const abort = new AbortController();
  let lastId = after;
  void (async () => {
    while (!abort.signal.aborted) {
      try {
        const headers: Record<string, string> = lastId ? { "last-event-id": lastId } : {};
        const res = await call(`workflows/${workflowId}/events`, { headers, signal: abort.signal });
        handlers.onConnection("live");
        for await (const msg of readSse(res.body!)) {
          if (msg.event === "end") {
            handlers.onConnection("ended");
            handlers.onEnd((JSON.parse(msg.data) as { status: string }).status);
            return;
          }
          // Log lines come on the same stream (`event: log`); the task panel reads logs on its own.
          if (msg.event === "log") continue;
          if (msg.id) lastId = msg.id;
          handlers.onEvent(JSON.parse(msg.data) as WorkflowEvent);
        }
      } catch (err) {
        if (abort.signal.aborted) return;
        if (err instanceof ApiError && (err.status === 401 || err.status === 404)) return;
      }
      if (abort.signal.aborted) return;
      handlers.onConnection("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  })();
  return { stop: () => abort.abort() };
}
