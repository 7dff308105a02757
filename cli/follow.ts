import { TERMINAL_WORKFLOW_STATES, type WorkflowState } from "../shared/model.ts";
import { ApiRequestError, type DwopClient, type TaskDetail, type WorkflowDetail } from "./client.ts";
import type { ProgressTask } from "./progress.ts";

const ended = (w: WorkflowDetail) => TERMINAL_WORKFLOW_STATES.includes(w.status as WorkflowState);
/** Events come in bursts: the workflow is read this long after the first of one. */
const REFRESH_MS = 200;

/** A task of the API as a progress line sees it. */
export function progressTask(t: TaskDetail): ProgressTask {
  const date = (iso: string | null) => (iso ? new Date(iso) : null);
  return {
    name: t.name,
    status: t.status,
    attempt: t.attempt,
    startedAt: date(t.startedAt),
    finishedAt: date(t.finishedAt),
    error: t.error,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A stream error that a reconnect cannot fix: the token was refused, the workflow is not there. */
const fatal = (err: unknown) => err instanceof ApiRequestError && err.status !== 0 && err.status < 500;

/**
 * Follows a workflow on a server until it ends: its event stream says when something changed (resumed
 * with Last-Event-ID after a dropped connection), and the workflow is then read again, once per burst
 * of events, and handed to `onUpdate` (awaited, so it may do I/O). Returns the final workflow.
 */
export async function followRemote(
  client: DwopClient,
  id: string,
  onUpdate: (w: WorkflowDetail) => void | Promise<void>,
): Promise<WorkflowDetail> {
  let w = await client.workflow(id);
  await onUpdate(w);
  let lastEventId: string | null = null;
  while (!ended(w)) {
    const abort = new AbortController();
    const stream = { done: false, error: null as unknown, wake: () => {} };
    const pump = (async () => {
      try {
        for await (const msg of client.events(id, lastEventId, abort.signal)) {
          if (msg.id) lastEventId = msg.id;
          stream.wake();
          if (msg.event === "end") break;
        }
      } catch (err) {
        if (!abort.signal.aborted) stream.error = err;
      } finally {
        stream.done = true;
        stream.wake();
      }
    })();
    while (!stream.done && !ended(w)) {
      // Woken by an event, or every few seconds anyway as a backstop.
      await new Promise<void>((resolve) => {
        stream.wake = resolve;
        setTimeout(resolve, 3000);
      });
      if (stream.done) break;
      await sleep(REFRESH_MS);
      w = await client.workflow(id);
      await onUpdate(w);
    }
    abort.abort();
    await pump;
    if (fatal(stream.error)) throw stream.error;
    if (stream.error) await sleep(1000);
    w = await client.workflow(id);
    await onUpdate(w);
  }
  return w;
}
