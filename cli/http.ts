// Node-only: the CLI's requests over node:http, and their answers with what the client reads of one. On
// Node 20 the first fetch() costs a CLI process ~300 ms of CPU (undici compiles its WebAssembly HTTP
// parser), more than the rest of `dwop status` together; node:http's parser is native. And Node 20's fetch
// of a FormData body, against a server that closes the connection before reading it, leaves its promise
// unsettled and nothing else running: the process exited 13 ("unfinished top-level await") without a word,
// 10 times in 10 here. The answer is not a WHATWG Response either: Node loads `Headers` and `Response` from
// undici too (~26 ms of `dwop status`'s start on 2026-12-06's machine, out of ~150 above `node -e 0`).
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { Readable } from "node:stream";

/** What the CLI reads of an HTTP answer: a fetch Response has it, and so does a body-less request's. */
export interface Answer {
  readonly status: number;
  readonly statusText: string;
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };
  /** The body as a stream; a caller reads it this way or with text() or json(), not both. */
  readonly body: ReadableStream<Uint8Array> | null;
  text(): Promise<string>;
  json(): Promise<unknown>;
}

export interface RequestInit {
  method: string;
  headers: Record<string, string>;
  /** Sent whole, with its Content-Length. */
  body?: string | Uint8Array;
  signal?: AbortSignal | null;
  /** How long to wait for the answer's headers (default ANSWER_TIMEOUT_MS). */
  answerTimeoutMs?: number;
}

/**
 * How long a request waits for its answer to begin: a server that takes the connection and never
 * answers fails the command instead of holding it forever (undici's fetch, which the CLI used before,
 * waits as long for headers).
 */
export const ANSWER_TIMEOUT_MS = 300_000;

/**
 * Like fetch(url, init); a failure to connect, a connection lost before the answer, or no answer in time
 * rejects as fetch's does (a TypeError whose cause is the socket's error, or says how long it waited).
 */
export function sendRequest(url: string, init: RequestInit): Promise<Answer> {
  const target = new URL(url);
  const send = target.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const headers = { ...init.headers };
    if (init.body !== undefined) headers["content-length"] = String(Buffer.byteLength(init.body));
    const req = send(target, {
      method: init.method,
      headers,
      ...(init.signal ? { signal: init.signal } : {}),
    });
    const waited = init.answerTimeoutMs ?? ANSWER_TIMEOUT_MS;
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${waited / 1000} s`)), waited);
    // fetch's shape: a TypeError whose cause carries the socket's code (ECONNREFUSED, ...).
    req.once("error", (err) => {
      clearTimeout(timer);
      reject(init.signal?.aborted ? err : new TypeError("fetch failed", { cause: err }));
    });
    req.once("response", (res) => {
      clearTimeout(timer);
      resolve(new NodeAnswer(res));
    });
    req.end(init.body);
  });
}

/** A form as the bytes of its multipart body, its content type (with the boundary) set in headers. */
export async function encodeForm(form: FormData, headers: Record<string, string>): Promise<Uint8Array> {
  const encoded = new Response(form);
  headers["content-type"] = encoded.headers.get("content-type")!;
  return new Uint8Array(await encoded.arrayBuffer());
}

class NodeAnswer implements Answer {
  readonly status: number;
  readonly statusText: string;
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };
  private stream: ReadableStream<Uint8Array> | null | undefined;

  constructor(private readonly res: IncomingMessage) {
    this.status = res.statusCode ?? 0;
    this.statusText = res.statusMessage ?? "";
    this.ok = this.status >= 200 && this.status <= 299;
    this.headers = {
      get: (name) => {
        const value = res.headers[name.toLowerCase()];
        return value === undefined ? null : Array.isArray(value) ? value.join(", ") : value;
      },
    };
    if (this.status === 204 || this.status === 304) {
      res.resume();
      this.stream = null;
    }
  }

  get body(): ReadableStream<Uint8Array> | null {
    if (this.stream === undefined) this.stream = Readable.toWeb(this.res) as ReadableStream<Uint8Array>;
    return this.stream;
  }

  async text(): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of this.res) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text());
  }
}
