import type { Hono } from "hono";
import type { WorkflowEvent } from "../shared/db/api-store.ts";
import { TERMINAL_WORKFLOW_STATES, type WorkflowState } from "../shared/model.ts";
import { uuidParam } from "./body.ts";
import type { ApiDeps, ApiEnv } from "./context.ts";
import { ApiError, notFound } from "./errors.ts";
import type { RouteDoc } from "./openapi.ts";
import { WorkflowEvent as WorkflowEventSchema } from "./schemas.ts";

const BATCH = 500;
const KEEPALIVE_MS = 15_000;
/**
 * Event ids are taken when a row is inserted, not when its transaction commits, so a row can appear
 * after rows with higher ids. Ids are kept this long after they are first seen, and the stream reads
 * again from below them, so a late row is still sent (each id once).
 */
const SETTLE_MS = 5_000;

/**
 * `GET /workflows/:id/events`: Server-Sent Events read by polling dwop.events (portable: Edge runtimes
 * may have no LISTEN). Each event's `id:` is its row id, so a client resumes with `Last-Event-ID`. When
 * the workflow has ended and every event is sent, a last `event: end` says so and the stream closes.
 */
export function eventRoutes(app: Hono<ApiEnv>, deps: ApiDeps): void {
  app.get("/workflows/:id/events", async (c) => {
    const id = uuidParam(c, "id", "workflow");
    const owner = c.get("caller").owner;
    if ((await deps.api.workflowStatus(owner, id)) === null) throw notFound("workflow");
    const after = c.req.header("last-event-id") ?? c.req.query("lastEventId") ?? "0";
    if (!/^\d{1,18}$/.test(after))
      throw new ApiError(400, "bad_request", "Last-Event-ID must be an event id");
    const logs = new LogTail(deps, id, await deps.runLogs.sizes(id));
    const stream = eventStream(new EventTail(deps, owner, id, BigInt(after)), logs, deps);
    return c.body(stream, 200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
    });
  });
}

/** Reads a workflow's new events, each once, from a floor below which every event has been sent. */
class EventTail {
  private floor: bigint;
  private readonly recent = new Map<bigint, number>();

  constructor(
    private readonly deps: ApiDeps,
    private readonly owner: string,
    private readonly workflowId: string,
    after: bigint,
  ) {
    this.floor = after;
  }

  /** New events, and the workflow's state when it has ended with nothing left to send. */
  async poll(): Promise<{ events: WorkflowEvent[]; ended: WorkflowState | "deleted" | null }> {
    const started = this.deps.now();
    // The state is read before the events: an ended workflow's last events are then already visible.
    const status = await this.deps.api.workflowStatus(this.owner, this.workflowId);
    const rows = await this.deps.api.eventsAfter(this.workflowId, this.floor.toString(), BATCH);
    const events = rows.filter((e) => !this.recent.has(BigInt(e.id)));
    for (const e of events) this.recent.set(BigInt(e.id), started);
    for (const [id, seen] of this.recent) {
      if (seen + SETTLE_MS < started && id > this.floor) this.floor = id;
    }
    for (const id of this.recent.keys()) if (id <= this.floor) this.recent.delete(id);
    const done = status === null || TERMINAL_WORKFLOW_STATES.includes(status);
    return {
      events,
      ended: events.length === 0 && rows.length < BATCH && done ? (status ?? "deleted") : null,
    };
  }
}

/**
 * New live-log chunks of the workflow's runs, each once: from where each run's log stood when the stream
 * opened (a client that wants a log's beginning reads it with GET .../logs). One run's chunks commit in
 * offset order (append_run_log locks the run), so a per-run offset misses none.
 */
class LogTail {
  private readonly decoder = new TextDecoder();

  constructor(
    private readonly deps: ApiDeps,
    private readonly workflowId: string,
    private readonly seen: Map<string, number>,
  ) {}

  async poll(): Promise<string[]> {
    const chunks = await this.deps.runLogs.chunksAfter(this.workflowId, this.seen, BATCH);
    return chunks.map((chunk) => {
      this.seen.set(chunk.runId, chunk.offset + chunk.data.length);
      const text = this.decoder.decode(chunk.data);
      return JSON.stringify({ task: chunk.taskName, attempt: chunk.attempt, offset: chunk.offset, text });
    });
  }
}

function eventStream(tail: EventTail, logs: LogTail, deps: ApiDeps): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let cancelled = false;
  let lastWrite = deps.now();
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode("retry: 1000\n\n"));
    },
    async pull(controller) {
      try {
        while (!cancelled) {
          const lines = await logs.poll();
          const { events, ended } = await tail.poll();
          if (cancelled) return;
          if (events.length > 0 || lines.length > 0) {
            controller.enqueue(
              encoder.encode(
                lines.map((data) => `event: log\ndata: ${data}\n\n`).join("") +
                  events.map((e) => `id: ${e.id}\ndata: ${JSON.stringify(e)}\n\n`).join(""),
              ),
            );
            lastWrite = deps.now();
            return;
          }
          if (ended) {
            controller.enqueue(encoder.encode(`event: end\ndata: ${JSON.stringify({ status: ended })}\n\n`));
            controller.close();
            return;
          }
          if (deps.now() - lastWrite >= KEEPALIVE_MS) {
            controller.enqueue(encoder.encode(": keepalive\n\n"));
            lastWrite = deps.now();
            return;
          }
          await new Promise((resolve) => setTimeout(resolve, deps.settings.eventsPollMs));
        }
      } catch (err) {
        // The client reconnects with Last-Event-ID; the cause stays in the log.
        deps.logger.error({ err }, "event stream failed");
        controller.error(new Error("event stream failed"));
      }
    },
    cancel() {
      cancelled = true;
    },
  });
}

export const eventDocs: RouteDoc[] = [
  {
    method: "get",
    path: "/workflows/:id/events",
    summary: "Server-Sent Events of the workflow's state changes; resumable with Last-Event-ID",
    auth: "bearer",
    headers: [{ name: "Last-Event-ID", description: "resume after this event id (or ?lastEventId=)" }],
    responses: {
      200: {
        description:
          "text/event-stream: `id: <event id>` and `data: <event JSON>` per event; `event: log` with " +
          "`data: {task, attempt, offset, text}` for each chunk of live log (whole lines) shipped after the stream opened; " +
          "`event: end` with the final status once the workflow has ended and every event is sent",
        contentType: "text/event-stream",
        schema: WorkflowEventSchema,
      },
    },
    errors: [400, 404],
  },
];
