// Node-only: a body-less request over node:http, answered as a WHATWG Response. On Node 20 the first
// fetch() costs a CLI process ~300 ms of CPU (undici compiles its WebAssembly HTTP parser), more than the
// rest of `dwop status` together; node:http's parser is native.
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { Readable } from "node:stream";

export interface BodylessInit {
  method: string;
  headers: Headers;
  signal?: AbortSignal | null;
}

/** Like fetch(url, init) for a request without a body; a failure to connect rejects as fetch's does. */
export function requestWithoutBody(url: string, init: BodylessInit): Promise<Response> {
  const target = new URL(url);
  const send = target.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(target, {
      method: init.method,
      headers: Object.fromEntries(init.headers),
      ...(init.signal ? { signal: init.signal } : {}),
    });
    // fetch's shape: a TypeError whose cause carries the socket's code (ECONNREFUSED, ...).
    req.once("error", (err) =>
      reject(init.signal?.aborted ? err : new TypeError("fetch failed", { cause: err })),
    );
    req.once("response", (res) => resolve(toResponse(res)));
    req.end();
  });
}

function toResponse(res: IncomingMessage): Response {
  const headers = new Headers();
  for (let i = 0; i < res.rawHeaders.length; i += 2)
    headers.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
  const status = res.statusCode ?? 0;
  const empty = status === 204 || status === 304;
  if (empty) res.resume();
  const body = empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
  return new Response(body, { status, statusText: res.statusMessage ?? "", headers });
}
