// Node-only: the HTTP side of LocalStorage, serving the signed URLs it hands out.
import type { IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { serve } from "@hono/node-server";
import { Hono, type Context } from "hono";
import {
  type ByteRange,
  LocalStorage,
  nodeReadable,
  ObjectMissing,
  ObjectTooLarge,
  SIGNED_PATH_PREFIX,
  type LocalStorageOptions,
  type OpenedObject,
  SMALL_OBJECT_BYTES,
} from "./local.ts";

/**
 * `GET` and `PUT` of `/storage/v1/object/<bucket>/<key>?method=&expires=&signature=`: the method must be
 * the signed one, the URL unexpired and its signature valid, or the answer is 403. Bodies stream both ways.
 * `POST` of the same, signed for `MOVE` with `&to=<key>`: the object is moved there (a remote
 * LocalStorage's move; 404 when it does not exist). Mount it at the root of the server's app: the path
 * is checked as the client sent it.
 */
export function localStorageRoutes(storage: LocalStorage): Hono {
  const app = new Hono();
  const moves = new UsedSignatures();
  // All of /storage/: a traversing path may normalise to somewhere else below it, and is refused there too.
  app.on(["GET", "PUT", "POST"], "/storage/*", async (c) => {
    const target = objectTarget(c);
    if (typeof target === "string") return forbidden(c, target);
    const { bucket, key } = target;
    const query = {
      method: c.req.query("method"),
      expires: c.req.query("expires"),
      signature: c.req.query("signature"),
      to: c.req.query("to"),
      nonce: c.req.query("nonce"),
    };
    const moving = c.req.method === "POST";
    const refusal = storage.verify(moving ? "MOVE" : c.req.method, bucket, key, query);
    if (refusal) return forbidden(c, refusal);
    if (moving) {
      // Once: a MOVE seen again (replayed by whoever saw it go by) would move a later upload over the output.
      if (!moves.take(query.signature!, Number(query.expires)))
        return forbidden(c, "this move was made already");
      const moved = await storage.move(bucket, key, query.to!).then(
        () => true,
        (err: unknown) => {
          if (err instanceof ObjectMissing) return false;
          throw err;
        },
      );
      if (!moved) return c.json({ error: { code: "not_found", message: `no object ${bucket}/${key}` } }, 404);
      return c.json({ key: `${bucket}/${query.to}` }, 200);
    }

    if (c.req.method === "GET") {
      const asked = c.req.header("range");
      let range: ByteRange | "unsatisfiable" | null = null;
      const opened = await storage.openRead(bucket, key, (size) => {
        range = asked === undefined ? null : parseRange(asked, size);
        return typeof range === "object" ? range : null;
      });
      if (!opened)
        return c.json({ error: { code: "not_found", message: `no object ${bucket}/${key}` } }, 404);
      return sendObject(c, opened, range);
    }
    const max = storage.maxObjectBytes;
    const declared = Number(c.req.header("content-length") ?? NaN);
    if (declared > max) return entityTooLarge(c, max);
    try {
      if (declared <= SMALL_OBJECT_BYTES) {
        const body = await smallBody(requestBody(c), declared);
        if (body === null) return cutOff(c);
        await storage.put(bucket, key, body);
      } else {
        await storage.putStream(bucket, key, requestBody(c), max);
      }
    } catch (err) {
      if (err instanceof ObjectTooLarge) return entityTooLarge(c, max);
      if (!isCutOff(err)) throw err;
      return cutOff(c);
    }
    return c.json({ key: `${bucket}/${key}` }, 200);
  });
  return app;
}

/** Signatures of requests that may be made once, each kept until it expires. */
class UsedSignatures {
  private readonly expiries = new Map<string, number>();

  /** True the first time a signature is seen; `expires` (seconds since the epoch) is when it lapses. */
  take(signature: string, expires: number): boolean {
    const now = Date.now() / 1000;
    for (const [seen, until] of this.expiries) if (until <= now) this.expiries.delete(seen);
    if (this.expiries.has(signature)) return false;
    this.expiries.set(signature, expires);
    return true;
  }
}

/** 200 with the whole object, 206 with the range asked for, or 416 when the range is past its end. */
function sendObject(c: Context, opened: OpenedObject, range: ByteRange | "unsatisfiable" | null) {
  if (range === "unsatisfiable") {
    if (!(opened.body instanceof Uint8Array)) opened.body.destroy();
    const message = `the range asked for is outside the object (${opened.size} bytes)`;
    return c.json({ error: { code: "range_not_satisfiable", message } }, 416, {
      "content-range": `bytes */${opened.size}`,
    });
  }
  const { body: content } = opened;
  const body =
    content instanceof Uint8Array ? content : (Readable.toWeb(content) as ReadableStream<Uint8Array>);
  const headers = { "content-type": "application/octet-stream", "accept-ranges": "bytes" };
  if (range === null) return c.body(body, 200, { ...headers, "content-length": String(opened.size) });
  return c.body(body, 206, {
    ...headers,
    "content-length": String(range.end - range.start + 1),
    "content-range": `bytes ${range.start}-${range.end}/${opened.size}`,
  });
}

/**
 * One range of a `Range` header (RFC 9110 14.2): `bytes=first-last`, `bytes=first-` or `bytes=-suffix`,
 * cut to the object's end. Null for a header to ignore (malformed, another unit, several ranges: the
 * whole object is then a valid answer); "unsatisfiable" when the range starts past the end.
 */
export function parseRange(header: string, size: number): ByteRange | "unsatisfiable" | null {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Number(m[2]);
  if (end < start) return null;
  if (start >= size) return "unsatisfiable";
  return { start, end: Math.min(end, size - 1) };
}

/** A running HTTP server for LocalStorage alone (embedded setups and tests). */
export interface LocalStorageServer {
  storage: LocalStorage;
  url: string;
  close(): Promise<void>;
}

/** Serves LocalStorage's routes on their own port (0 picks a free one) and sets its base URL. */
export async function serveLocalStorage(
  options: Omit<LocalStorageOptions, "baseUrl">,
  listen: { hostname?: string; port?: number } = {},
): Promise<LocalStorageServer> {
  const storage = new LocalStorage(options);
  const app = localStorageRoutes(storage);
  const hostname = listen.hostname ?? "127.0.0.1";
  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname, port: listen.port ?? 0 }, () => resolve(s));
    s.once("error", reject);
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
  storage.setBaseUrl(url);
  return {
    storage,
    url,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      }),
  };
}

/**
 * The bucket and key a request names, or why it is refused. The path is read as the client sent it
 * (before URL normalisation resolves `..` and `%2e%2e`), each segment decoded on its own: a decoded
 * segment that is `.` or `..` or holds `/` or `\` is refused rather than reinterpreted.
 */
function objectTarget(c: Context): { bucket: string; key: string } | string {
  // @hono/node-server passes the raw request as env.incoming; elsewhere only the parsed URL exists.
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  // An absolute-form request target (`GET http://host/path`) is cut to its path.
  const raw = (incoming?.url ?? new URL(c.req.url).pathname).replace(/^https?:\/\/[^/?#]*/i, "");
  const path = raw.split(/[?#]/, 1)[0] ?? "";
  if (!path.startsWith(SIGNED_PATH_PREFIX)) return "path outside the storage prefix";
  const segments: string[] = [];
  for (const part of path.slice(SIGNED_PATH_PREFIX.length).split("/")) {
    let segment: string;
    try {
      segment = decodeURIComponent(part);
    } catch {
      return "malformed percent-encoding in the path";
    }
    if (segment === "." || segment === ".." || /[/\\\0]/.test(segment))
      return "path traversal is not allowed";
    segments.push(segment);
  }
  const [bucket, ...key] = segments;
  if (!bucket || key.length === 0) return "the path names no object";
  return { bucket, key: key.join("/") };
}

/**
 * The request body as a Node stream: @hono/node-server's own IncomingMessage when nothing has read it yet
 * (twice as fast for small uploads as going through a web stream and back), else the web body adapted.
 */
function requestBody(c: Context): Readable | null {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (incoming && !incoming.readableDidRead && incoming.readable) return incoming;
  return nodeReadable(c.req.raw.body);
}

/**
 * A body of `length` bytes (its Content-Length) read into memory, or null when it ended before them. Node's
 * parser stops at the declared length, so a longer body cannot reach past it.
 */
async function smallBody(body: Readable | null, length: number): Promise<Uint8Array | null> {
  const chunks: Buffer[] = [];
  let read = 0;
  if (body) {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      read += chunk.length;
    }
  }
  return read === length ? Buffer.concat(chunks, read) : null;
}

/** What Supabase Storage answers for an object over its size limit, in this API's error shape. */
function entityTooLarge(c: Context, max: number) {
  const message = `EntityTooLarge: the object is larger than the storage's limit of ${max} bytes (DWOP_STORAGE_MAX_OBJECT_SIZE)`;
  return c.json({ error: { code: "entity_too_large", message } }, 413);
}

/** An upload whose body ended before it was whole (the old object stays). */
function cutOff(c: Context) {
  return c.json({ error: { code: "upload_cut_off", message: "the request body ended early" } }, 400);
}

function forbidden(c: Context, message: string) {
  return c.json({ error: { code: "forbidden", message } }, 403);
}

/** True for a client that went away mid-upload (the old object stays, so there is nothing to report). */
function isCutOff(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return (
    code === "ECONNRESET" || code === "ERR_STREAM_PREMATURE_CLOSE" || (err as Error).name === "AbortError"
  );
}
