import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { localServerUrl } from "./local-url.ts";
import type * as z from "zod";
import type {
  Run as RunSchema,
  WorkflowDetail as WorkflowDetailSchema,
  WorkflowList as WorkflowListSchema,
} from "../functions/schemas.ts";
import type { Config } from "../shared/config.ts";
import type { WorkflowState } from "../shared/model.ts";
import { readSse, type SseMessage } from "../shared/sse.ts";
import type { Stall } from "../functions/stall.ts";
import { ApiRequestError } from "./api-error.ts";
import { encodeForm, sendRequest, type Answer } from "./http.ts";

/** The API's JSON, typed by the schemas the server validates and documents with. */
export type WorkflowDetail = z.output<typeof WorkflowDetailSchema>;
export type WorkflowList = z.output<typeof WorkflowListSchema>;
export type RunDetail = z.output<typeof RunSchema>;
export type TaskDetail = WorkflowDetail["tasks"][number];

/** No answer at all: why, as the socket said (ECONNREFUSED, EPIPE, ...). */
function unreachable(baseUrl: string, err: unknown): ApiRequestError {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? String(err);
  return new ApiRequestError(0, "unreachable", `cannot reach ${baseUrl}: ${why}`, { cause: why });
}

/** An answer without DWOP's JSON: a web page, a proxy, another service at that address. */
function notDwop(baseUrl: string, res: Answer): ApiRequestError {
  const type = (res.headers.get("content-type") ?? "no content type").split(";")[0];
  return new ApiRequestError(
    res.status,
    "not_dwop",
    `${baseUrl} is not a DWOP server: it answered HTTP ${res.status} with ${type}, not DWOP's JSON`,
  );
}

/** What a request may carry besides its method and path. */
export interface RequestOptions {
  headers?: Record<string, string>;
  body?: string | FormData;
  signal?: AbortSignal;
}

/** The HTTP client of a DWOP server, for the CLI's commands. */
export class DwopClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | null,
  ) {}

  /** A request; any answer but 2xx throws an ApiRequestError, and so does an answer no DWOP server gives. */
  async request(method: string, path: string, init: RequestOptions = {}): Promise<Answer> {
    const headers: Record<string, string> = { ...init.headers };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const sent = typeof init.body === "object" ? await encodeForm(init.body, headers) : init.body;
    let res: Answer;
    try {
      res = await sendRequest(this.url(path), { method, headers, body: sent, signal: init.signal ?? null });
    } catch (err) {
      if (init.signal?.aborted) throw err;
      throw unreachable(this.baseUrl, err);
    }
    if (res.ok) return res;
    const text = await res.text().catch(() => "");
    let body: { error?: { code?: string; message?: string; details?: unknown } } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      // not the API's JSON: a proxy's page, say
    }
    if (typeof body.error?.code !== "string") throw notDwop(this.baseUrl, res);
    throw new ApiRequestError(
      res.status,
      body.error.code,
      body.error.message ?? `${res.status} ${res.statusText}`,
      body.error.details ?? null,
    );
  }

  private url(path: string): string {
    return `${this.baseUrl.replace(/\/+$/, "")}${path}`;
  }

  private async json<T>(method: string, path: string, init: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, path, init);
    if (!(res.headers.get("content-type") ?? "").includes("json")) {
      await res.body?.cancel();
      throw notDwop(this.baseUrl, res);
    }
    return (await res.json()) as T;
  }

  /**
   * The server's /readyz: null while tasks move, the stall it reports otherwise (a 503 says the
   * server's database is unreachable). Throws an ApiRequestError (status 0) when it cannot be reached.
   */
  async stall(): Promise<Stall | null> {
    let res: Answer;
    try {
      res = await sendRequest(this.url("/readyz"), {
        method: "GET",
        headers: {},
        signal: AbortSignal.timeout(5000),
      });
    } catch (err) {
      throw unreachable(this.baseUrl, err);
    }
    const body = (await res.json().catch(() => ({}))) as { stall?: Stall | null };
    return body.stall ?? null;
  }

  /** Submits; with `key`, as `Idempotency-Key`: the same key and body again get the same workflow. */
  submit(form: FormData, key?: string): Promise<WorkflowDetail> {
    return this.json("POST", "/workflows", { body: form, headers: idempotency(key) });
  }

  /** Submits and gets the new workflow's id alone (`Prefer: return=minimal`): no read back of its tasks. */
  submitForId(form: FormData, key?: string): Promise<{ id: string }> {
    return this.json("POST", "/workflows", {
      body: form,
      headers: { prefer: "return=minimal", ...idempotency(key) },
    });
  }

  workflow(id: string): Promise<WorkflowDetail> {
    return this.json("GET", `/workflows/${encodeURIComponent(id)}`);
  }

  /** One task of a workflow with its runs: what following one task needs, whatever the workflow's size. */
  task(id: string, name: string): Promise<TaskDetail> {
    return this.json("GET", taskPath(id, name));
  }

  list(q: {
    status?: WorkflowState;
    schedule?: string;
    limit?: number;
    cursor?: string;
  }): Promise<WorkflowList> {
    const query = new URLSearchParams();
    if (q.status) query.set("status", q.status);
    if (q.schedule) query.set("schedule", q.schedule);
    if (q.limit) query.set("limit", String(q.limit));
    if (q.cursor) query.set("cursor", q.cursor);
    return this.json("GET", `/workflows${query.size ? `?${query}` : ""}`);
  }

  cancel(id: string): Promise<WorkflowDetail> {
    return this.json("POST", `/workflows/${encodeURIComponent(id)}/cancel`);
  }

  retry(id: string): Promise<WorkflowDetail> {
    return this.json("POST", `/workflows/${encodeURIComponent(id)}/retry`);
  }

  run(id: string, runId: string): Promise<RunDetail> {
    return this.json("GET", `/workflows/${encodeURIComponent(id)}/runs/${encodeURIComponent(runId)}`);
  }

  /** The full log of one attempt (default: the latest), streamed. */
  log(id: string, task: string, attempt?: number): Promise<Answer> {
    const q = attempt === undefined ? "" : `?attempt=${attempt}`;
    return this.request("GET", `${taskPath(id, task)}/logs${q}`);
  }

  /**
   * One attempt's log from byte `offset` on, as far as it has been shipped: `size` is the next offset,
   * `complete` says the attempt has ended and its log will not grow. `size` and `complete` are null
   * from a server that stores a log only when its attempt ends (it then answers the whole log).
   */
  async logFrom(
    id: string,
    task: string,
    attempt: number,
    offset: number,
  ): Promise<{ text: string; size: number | null; complete: boolean | null }> {
    const res = await this.request("GET", `${taskPath(id, task)}/logs?attempt=${attempt}&offset=${offset}`);
    const text = await res.text();
    const size = res.headers.get("x-log-size");
    const complete = res.headers.get("x-log-complete");
    return {
      text,
      size: size === null ? null : Number(size),
      complete: complete === null ? null : complete === "true",
    };
  }

  output(id: string, task: string): Promise<Answer> {
    return this.request("GET", `${taskPath(id, task)}/output`);
  }

  /** The workflow's event stream from after `lastEventId`, until the server's `end` or `signal`. */
  async *events(id: string, lastEventId: string | null, signal?: AbortSignal): AsyncGenerator<SseMessage> {
    const headers: Record<string, string> = lastEventId ? { "last-event-id": lastEventId } : {};
    const res = await this.request("GET", `/workflows/${encodeURIComponent(id)}/events`, { headers, signal });
    yield* readSse(res.body!);
  }
}

const taskPath = (id: string, task: string) =>
  `/workflows/${encodeURIComponent(id)}/tasks/${encodeURIComponent(task)}`;

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

/**
 * The client the configuration names: DWOP_URL (default: the local `dwop dev` at DWOP_HOST:DWOP_PORT)
 * with DWOP_TOKEN. For a server on this machine only, DWOP_API_TOKEN or the token `dwop dev` made in
 * DWOP_HOME stand in for a missing DWOP_TOKEN: a server's own secret is never sent anywhere else.
 */
export function clientFromConfig(config: Config): DwopClient {
  const url = config.DWOP_URL ?? localServerUrl(config.DWOP_HOST, config.DWOP_PORT);
  let token = config.DWOP_TOKEN ?? null;
  if (!token && LOOPBACK.has(new URL(url).hostname)) {
    token = config.DWOP_API_TOKEN ?? homeToken(config.DWOP_HOME);
  }
  return new DwopClient(url, token);
}

function homeToken(home: string): string | null {
  try {
    return readFileSync(join(resolve(home), "api.token"), "utf8").trim() || null;
  } catch {
    return null;
  }
}

function idempotency(key: string | undefined): Record<string, string> {
  return key ? { "idempotency-key": key } : {};
}
