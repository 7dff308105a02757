import { TERMINAL_WORKFLOW_STATES, type WorkflowState } from "../shared/model.ts";
import { ApiRequestError } from "./api-error.ts";
import type { DwopClient, TaskDetail, WorkflowDetail } from "./client.ts";
import type { Stall } from "../functions/stall.ts";
import { blame } from "./blocked.ts";
import { readSpacing, type ProgressTask } from "./progress.ts";

const ended = (w: WorkflowDetail) => TERMINAL_WORKFLOW_STATES.includes(w.status as WorkflowState);
/** Events come in bursts: the workflow is read this long after the first of one. */
const REFRESH_MS = 200;

/** A task of the API as a progress line sees it (`blocker`: who blocked a task of its workflow). */
export function progressTask(t: TaskDetail, blocker?: (name: string) => string | null): ProgressTask {
  const date = (iso: string | null) => (iso ? new Date(iso) : null);
  return {
    name: t.name,
    status: t.status,
    attempt: t.attempt,
    startedAt: date(t.startedAt),
    finishedAt: date(t.finishedAt),
    error: t.error,
    blockedBy: t.status === "upstream_failed" && blocker ? blocker(t.name) : null,
  };
}

/** Every task of a workflow as progress lines see them. */
export function progressTasks(w: WorkflowDetail): ProgressTask[] {
  const blocker = blame(w.tasks.map((x) => ({ ...x, upstreams: x.params.map((p) => p.upstream) })));
  return w.tasks.map((t) => progressTask(t, blocker));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A stream error that a reconnect cannot fix: the token was refused, the workflow is not there. */
const fatal = (err: unknown) => err instanceof ApiRequestError && err.status !== 0 && err.status < 500;

/** How long a follower waits for a server that went away (a restart, a deploy) before it gives up. */
export const RIDE_OUT_MS = 5 * 60_000;
/** How often a follower asks the server whether publishing or dispatching has stalled. */
const STALL_POLL_MS = 2000;

export interface FollowOptions {
  /** A line for the person watching (stderr): the server went away, it is back. */
  say?: (line: string) => void;
  /** The server's stall while following: a Stall while one lasts, null once tasks move again. */
  onStall?: (stall: Stall | null) => void;
}

/** Whether an error is a server that is away for now: no answer, or a gateway's or its own 502-504. */
export function transient(err: unknown): boolean {
  return (
    err instanceof ApiRequestError &&
    err.code !== "not_dwop" &&
    (err.status === 0 || err.status === 502 || err.status === 503 || err.status === 504)
  );
}

/**
 * Calls the server, riding out its absence: while it cannot be reached, says so once, retries every
 * second or two, and says when it is back. Gives up (throws the last error) after RIDE_OUT_MS.
 */
export class Reconnecting {
  private lostAt: number | null = null;

  constructor(
    private readonly client: DwopClient,
    private readonly say: (line: string) => void,
  ) {}

  async call<T>(fn: () => Promise<T>): Promise<T> {
    for (let delay = 250; ; delay = Math.min(2000, delay * 2)) {
      try {
        const value = await fn();
        this.back();
        return value;
      } catch (err) {
        const why = transient(err) ? (err as ApiRequestError).message : await this.databaseDown(err);
        if (!why) throw err;
        this.lost(why);
        if (Date.now() - this.lostAt! > RIDE_OUT_MS) throw err;
        await sleep(delay);
      }
    }
  }

  /**
   * A 500 while the server's /readyz says its database is unreachable: an outage, not a bug. (A server
   * answers a request that lost its database 503 itself; one of before 2026-12-07 answered 500.)
   */
  private async databaseDown(err: unknown): Promise<string | null> {
    if (!(err instanceof ApiRequestError) || err.status !== 500) return null;
    const stall = await this.client.stall().catch(() => null);
    return stall?.what === "database" ? `its ${stall.message.replace(/^the /, "")}` : null;
  }

  /** The server went away (a failed call or a dropped stream); said once per absence. */
  lost(why: string): void {
    if (this.lostAt !== null) return;
    this.lostAt = Date.now();
    this.say(`lost ${this.client.baseUrl} (${why}); waiting for it to come back`);
  }

  private back(): void {
    if (this.lostAt === null) return;
    this.say(
      `reconnected to ${this.client.baseUrl} after ${((Date.now() - this.lostAt) / 1000).toFixed(1)}s`,
    );
    this.lostAt = null;
  }
}

/**
 * Asks the server's /readyz every few seconds and reports its stall as it changes. Returns a stop,
 * which asks once more if a stall was last reported, so a follower that ends does not leave it said.
 */
export function watchStall(client: DwopClient, onStall: (stall: Stall | null) => void): () => Promise<void> {
  let last = "null";
  let stopped = false;
  const tick = async (final = false) => {
    const stall = await client.stall().catch(() => undefined);
    if ((stopped && !final) || stall === undefined) return; // unreachable: the follower says so already
    const key = JSON.stringify(stall);
    if (key !== last) onStall(stall);
    last = key;
  };
  const timer = setInterval(() => void tick(), STALL_POLL_MS);
  timer.unref?.();
  void tick();
  return async () => {
    stopped = true;
    clearInterval(timer);
    if (last !== "null") await tick(true);
  };
}

/**
 * Follows a workflow on a server until it ends: its event stream says when something changed (resumed
 * with Last-Event-ID after a dropped connection), and the workflow is then read again, once per burst
 * of events, and handed to `onUpdate` (awaited, so it may do I/O). A server restart is ridden out (see
 * Reconnecting). Returns the final workflow.
 */
export async function followRemote(
  client: DwopClient,
  id: string,
  onUpdate: (w: WorkflowDetail) => void | Promise<void>,
  options: FollowOptions = {},
): Promise<WorkflowDetail> {
  const server = new Reconnecting(client, options.say ?? ((line) => process.stderr.write(`${line}\n`)));
  const read = () => server.call(() => client.workflow(id));
  const stopStall = options.onStall ? watchStall(client, options.onStall) : async () => {};
  try {
    let w = await read();
    await onUpdate(w);
    let lastReadMs = 0; // the last read and its display, which space the next (readSpacing)
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
        await sleep(readSpacing(REFRESH_MS, lastReadMs));
        const began = performance.now();
        w = await read();
        await onUpdate(w);
        lastReadMs = performance.now() - began;
      }
      abort.abort();
      await pump;
      if (fatal(stream.error)) throw stream.error;
      // A stream cut by the server's going away, or a dropped connection: read again once it answers.
      if (stream.error) await sleep(1000);
      w = await read();
      await onUpdate(w);
    }
    return w;
  } finally {
    await stopStall();
  }
}
