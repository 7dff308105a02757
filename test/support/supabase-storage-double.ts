import { createHmac, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A small HTTP double of Supabase Storage (storage-api behind `/storage/v1`), for the routes DWOP uses:
 *
 *   POST|PUT /object/{bucket}/{path}            upload (POST honours `x-upsert: true`; PUT always upserts)
 *   GET      /object/{bucket}/{path}            download; `/object/authenticated/{bucket}/{path}` too
 *   POST     /object/sign/{bucket}/{path}       `{"expiresIn"}` -> `{"signedURL": "/object/sign/...?token="}`
 *   GET      /object/sign/{bucket}/{path}?token=
 *   POST     /object/upload/sign/{bucket}/{path} (`x-upsert`) -> `{"url": "/object/upload/sign/...?token=", "token"}`
 *   PUT      /object/upload/sign/{bucket}/{path}?token=   a raw body, any content type
 *   DELETE   /object/{bucket}                   `{"prefixes": [path, ...]}` -> the objects deleted
 *   POST     /object/move                       `{"bucketId", "sourceKey", "destinationKey"}`: refused
 *                                               (409 KeyAlreadyExists) where the destination exists, as
 *                                               storage-api's moveObject creates it without upsert
 *
 * As storage-api does, it answers its own errors with HTTP 400 (500 for internal ones) and the real
 * status as a string in the body: `{"statusCode": "404", "code": "NoSuchKey", "error": "not_found",
 * "message": "Object not found"}`. Service calls need `Authorization: Bearer <service key>`; signed
 * URLs carry an HS256 token naming `bucket/path` and its expiry, and need no header. Objects live in
 * memory. Downloads honour one `Range: bytes=` range as S3 (behind storage-api) does: 206 with
 * Content-Range, 416 past the end, the whole object for a header it does not take. Not modelled:
 * multipart form uploads, row-level security, image transforms, several ranges in one request.
 */
export interface SupabaseStorageDouble {
  /** The project URL: what SUPABASE_PROJECT_URL would be. */
  url: string;
  serviceKey: string;
  /** bucket -> path -> object. */
  buckets: Map<string, Map<string, StoredObject>>;
  /** Every request, in order: method, path (with query) and the headers tests look at. */
  requests: RecordedRequest[];
  close(): Promise<void>;
}

export interface StoredObject {
  body: Buffer;
  contentType: string;
}

export interface RecordedRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  apikey: string | undefined;
  upsert: string | undefined;
  contentType: string | undefined;
  range: string | undefined;
}

export interface DoubleOptions {
  buckets?: string[];
  serviceKey?: string;
  /** Milliseconds since the epoch (token expiry); tests move it. */
  now?: () => number;
  /** Lifetime of signed upload URLs: a server setting in storage-api (uploadSignedUrlExpirationTime). */
  uploadUrlTtlSeconds?: number;
}

const PREFIX = "/storage/v1";
// storage-api's isValidKey: S3-safe ASCII characters only.
const VALID_KEY = /^(\w|\/|!|-|\.|\*|'|\(|\)| |&|\$|@|=|;|:|\+|,|\?)*$/;

/** Errors as storage-api's ERRORS builds them: the status it means, its code, its legacy `error` word. */
const ERRORS = {
  noSuchBucket: () => storageError(404, "NoSuchBucket", "Bucket not found", "Bucket not found"),
  noSuchKey: () => storageError(404, "NoSuchKey", "Object not found", "not_found"),
  accessDenied: (message: string) => storageError(403, "AccessDenied", message, "Unauthorized"),
  invalidJwt: (message: string) => storageError(400, "InvalidJWT", message),
  invalidSignature: () => storageError(400, "InvalidSignature", "Invalid signature"),
  keyAlreadyExists: () => storageError(409, "KeyAlreadyExists", "The resource already exists", "Duplicate"),
  invalidKey: (key: string) => storageError(400, "InvalidKey", `Invalid key: ${key}`),
};

class StorageApiFailure extends Error {
  constructor(
    readonly meant: number,
    readonly code: string,
    message: string,
    readonly legacyError: string,
    /** The HTTP status actually sent: 400 for everything storage-api renders, unless it is a 500. */
    readonly httpStatus = meant === 500 ? 500 : 400,
  ) {
    super(message);
  }
}

function storageError(meant: number, code: string, message: string, legacyError = code): StorageApiFailure {
  return new StorageApiFailure(meant, code, message, legacyError);
}

/** Starts the double on a free loopback port. */
export async function startSupabaseStorageDouble(
  options: DoubleOptions = {},
): Promise<SupabaseStorageDouble> {
  const serviceKey = options.serviceKey ?? `service-${randomBytes(12).toString("hex")}`;
  const tokenSecret = randomBytes(32);
  const now = options.now ?? Date.now;
  const uploadTtl = options.uploadUrlTtlSeconds ?? 7200;
  const buckets = new Map<string, Map<string, StoredObject>>(
    (options.buckets ?? ["Task_Output", "Task_Code"]).map((b) => [b, new Map()]),
  );
  const requests: RecordedRequest[] = [];
  const tokens = {
    sign: (claims: object, ttl: number) => signToken(tokenSecret, claims, ttl, now),
    verify: (t: string) => verifyToken(tokenSecret, t, now),
  };

  const server = createServer((req, res) => {
    requests.push({
      method: req.method ?? "",
      path: req.url ?? "",
      authorization: header(req, "authorization"),
      apikey: header(req, "apikey"),
      upsert: header(req, "x-upsert"),
      contentType: header(req, "content-type"),
      range: header(req, "range"),
    });
    handle(req, res).catch((err: unknown) => {
      const failure =
        err instanceof StorageApiFailure
          ? err
          : new StorageApiFailure(500, "InternalError", String(err), "internal");
      sendJson(res, failure.httpStatus, {
        statusCode: String(failure.meant),
        code: failure.code,
        error: failure.legacyError,
        message: failure.message,
      });
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://double");
    const method = req.method ?? "GET";
    const bulk = method === "DELETE" ? /^\/storage\/v1\/object\/([^/]+)$/.exec(url.pathname) : null;
    if (bulk) return removeObjects(req, res, decodeURIComponent(bulk[1]!));
    if (method === "POST" && url.pathname === `${PREFIX}/object/move`) return moveObject(req, res);
    const route = matchRoute(method, url.pathname);
    if (!route) {
      // Fastify's own 404, which is a real 404 (not a rendered storage error).
      sendJson(res, 404, {
        statusCode: 404,
        error: "Not Found",
        message: `Route ${method}:${url.pathname} not found`,
      });
      return;
    }
    const { kind, bucket, key } = route;
    if (!VALID_KEY.test(key)) throw ERRORS.invalidKey(key);
    const objects = () => {
      const found = buckets.get(bucket);
      if (!found) throw ERRORS.noSuchBucket();
      return found;
    };

    switch (kind) {
      case "upload": {
        authenticate(req);
        const upsert = method === "PUT" || header(req, "x-upsert") === "true";
        store(objects(), key, await readBody(req), req, upsert);
        return sendJson(res, 200, { Id: randomUUID(), Key: `${bucket}/${key}` });
      }
      case "download":
      case "download-authenticated": {
        // The plain route lets a request without a valid JWT through as anon, who sees no private bucket.
        const authorized = kind === "download" ? tryAuthenticate(req) : (authenticate(req), true);
        if (!authorized) throw ERRORS.noSuchBucket();
        return sendObject(res, objects(), key, header(req, "range"));
      }
      case "sign": {
        authenticate(req);
        const body = parseJson(await readBody(req));
        const expiresIn = (body as { expiresIn?: unknown }).expiresIn;
        if (!Number.isInteger(expiresIn) || (expiresIn as number) < 1) {
          return sendJson(res, 400, {
            statusCode: "400",
            code: "InvalidRequest",
            error: "Bad Request",
            message: "body/expiresIn must be integer >= 1",
          });
        }
        if (!objects().has(key)) throw ERRORS.noSuchKey();
        const token = tokens.sign({ url: `${bucket}/${key}` }, expiresIn as number);
        return sendJson(res, 200, { signedURL: `/object/sign/${bucket}/${key}?token=${token}` });
      }
      case "signed-download": {
        verifySigned(url, bucket, key);
        return sendObject(res, objects(), key, header(req, "range"));
      }
      case "sign-upload": {
        authenticate(req);
        objects();
        const upsert = header(req, "x-upsert") === "true";
        const token = tokens.sign({ url: `${bucket}/${key}`, upsert }, uploadTtl);
        return sendJson(res, 200, { url: `/object/upload/sign/${bucket}/${key}?token=${token}`, token });
      }
      case "signed-upload": {
        const claims = verifySigned(url, bucket, key);
        store(objects(), key, await readBody(req), req, claims.upsert === true);
        return sendJson(res, 200, { Key: `${bucket}/${key}` });
      }
    }
  }

  /** storage-api's bulk delete: missing paths are skipped; the answer lists what was deleted. */
  async function removeObjects(req: IncomingMessage, res: ServerResponse, bucket: string): Promise<void> {
    authenticate(req);
    const objects = buckets.get(bucket);
    if (!objects) throw ERRORS.noSuchBucket();
    const prefixes = (parseJson(await readBody(req)) as { prefixes?: unknown }).prefixes;
    if (!Array.isArray(prefixes) || prefixes.length < 1 || prefixes.length > 1000) {
      return sendJson(res, 400, {
        statusCode: "400",
        code: "InvalidRequest",
        error: "Bad Request",
        message: "body/prefixes must NOT have fewer than 1 items or more than 1000",
      });
    }
    const deleted = prefixes.filter((p): p is string => typeof p === "string" && objects.delete(p));
    return sendJson(
      res,
      200,
      deleted.map((name) => ({ name, bucket_id: bucket })),
    );
  }

  async function moveObject(req: IncomingMessage, res: ServerResponse): Promise<void> {
    authenticate(req);
    const body = parseJson(await readBody(req)) as Record<string, unknown>;
    const [bucket, from, to] = [body.bucketId, body.sourceKey, body.destinationKey];
    if (typeof bucket !== "string" || typeof from !== "string" || typeof to !== "string") {
      return sendJson(res, 400, {
        statusCode: "400",
        code: "InvalidRequest",
        error: "Bad Request",
        message: "body must have required properties bucketId, sourceKey, destinationKey",
      });
    }
    if (!VALID_KEY.test(to)) throw ERRORS.invalidKey(to);
    const objects = buckets.get(bucket);
    if (!objects) throw ERRORS.noSuchBucket();
    const moved = objects.get(from);
    if (!moved) throw ERRORS.noSuchKey();
    if (from === to) return sendJson(res, 200, { message: "Successfully moved" });
    if (objects.has(to)) throw ERRORS.keyAlreadyExists();
    objects.set(to, moved);
    objects.delete(from);
    return sendJson(res, 200, { message: "Successfully moved" });
  }

  /** AccessDenied unless the request carries the service key as its bearer (storage-api's jwt plugin). */
  function authenticate(req: IncomingMessage): void {
    const bearer = (header(req, "authorization") ?? "").replace(/^Bearer\s+/i, "");
    if (bearer === "") throw ERRORS.accessDenied("jwt must be provided");
    if (!safeEqual(bearer, serviceKey)) throw ERRORS.accessDenied("invalid signature");
  }

  function tryAuthenticate(req: IncomingMessage): boolean {
    try {
      authenticate(req);
      return true;
    } catch {
      return false;
    }
  }

  function verifySigned(url: URL, bucket: string, key: string): Record<string, unknown> {
    const token = url.searchParams.get("token");
    if (!token) {
      throw new StorageApiFailure(
        400,
        "InvalidRequest",
        "querystring must have required property 'token'",
        "Bad Request",
      );
    }
    const claims = tokens.verify(token);
    if (claims.url !== `${bucket}/${key}`) throw ERRORS.invalidSignature();
    return claims;
  }

  const port = await new Promise<number>((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)),
  );
  return {
    url: `http://127.0.0.1:${port}`,
    serviceKey,
    buckets,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

type RouteKind =
  | "upload"
  | "download"
  | "download-authenticated"
  | "sign"
  | "signed-download"
  | "sign-upload"
  | "signed-upload";

/** Fastify's matching: static segments (`sign`, `upload/sign`, `authenticated`) win over a bucket name. */
function matchRoute(
  method: string,
  pathname: string,
): { kind: RouteKind; bucket: string; key: string } | null {
  if (!pathname.startsWith(`${PREFIX}/object/`)) return null;
  const rest = pathname.slice(`${PREFIX}/object/`.length);
  const table: [string, string, RouteKind][] = [
    ["POST", "upload/sign/", "sign-upload"],
    ["PUT", "upload/sign/", "signed-upload"],
    ["POST", "sign/", "sign"],
    ["GET", "sign/", "signed-download"],
    ["GET", "authenticated/", "download-authenticated"],
    ["GET", "", "download"],
    ["POST", "", "upload"],
    ["PUT", "", "upload"],
  ];
  for (const [m, prefix, kind] of table) {
    if (m !== method || !rest.startsWith(prefix)) continue;
    const [bucket = "", ...parts] = rest.slice(prefix.length).split("/");
    if (bucket === "" || parts.length === 0 || parts.join("/") === "") return null;
    return { kind, bucket: decodeURIComponent(bucket), key: decodeURIComponent(parts.join("/")) };
  }
  return null;
}

function store(
  objects: Map<string, StoredObject>,
  key: string,
  body: Buffer,
  req: IncomingMessage,
  upsert: boolean,
): void {
  if (objects.has(key) && !upsert) throw ERRORS.keyAlreadyExists();
  objects.set(key, { body, contentType: header(req, "content-type") ?? "application/octet-stream" });
}

function sendObject(
  res: ServerResponse,
  objects: Map<string, StoredObject>,
  key: string,
  range: string | undefined,
): void {
  const object = objects.get(key);
  if (!object) throw ERRORS.noSuchKey();
  const size = object.body.length;
  const headers = {
    "content-type": object.contentType,
    "cache-control": "max-age=3600",
    "accept-ranges": "bytes",
  };
  const m = /^bytes=(\d*)-(\d*)$/.exec(range ?? "");
  if (!m || (m[1] === "" && m[2] === "") || (m[1] !== "" && m[2] !== "" && Number(m[2]) < Number(m[1]))) {
    res.writeHead(200, { ...headers, "content-length": size });
    res.end(object.body);
    return;
  }
  const start = m[1] === "" ? Math.max(0, size - Number(m[2])) : Number(m[1]);
  const end = m[1] === "" || m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || (m[1] === "" && Number(m[2]) === 0)) {
    const text = JSON.stringify({
      statusCode: "416",
      code: "InvalidRange",
      error: "InvalidRange",
      message: "The requested range is not satisfiable",
    });
    res.writeHead(416, {
      "content-type": "application/json; charset=utf-8",
      "content-range": `bytes */${size}`,
    });
    res.end(text);
    return;
  }
  res.writeHead(206, {
    ...headers,
    "content-length": end - start + 1,
    "content-range": `bytes ${start}-${end}/${size}`,
  });
  res.end(object.body.subarray(start, end + 1));
}

function sendJson(res: ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString("utf8") || "{}");
  } catch {
    throw new StorageApiFailure(400, "InvalidRequest", "Body is not valid JSON", "Bad Request");
  }
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const base64url = (data: Buffer | string) => Buffer.from(data).toString("base64url");

/** An HS256 JWT, as storage-api signs its URL tokens (jsonwebtoken's `iat`/`exp` in seconds). */
function signToken(secret: Buffer, claims: object, ttlSeconds: number, now: () => number): string {
  const iat = Math.floor(now() / 1000);
  const head = base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const payload = base64url(JSON.stringify({ ...claims, iat, exp: iat + ttlSeconds }));
  const signature = createHmac("sha256", secret).update(`${head}.${payload}`).digest("base64url");
  return `${head}.${payload}.${signature}`;
}

/** The claims of a token; InvalidJWT with jsonwebtoken's messages otherwise. */
function verifyToken(secret: Buffer, token: string, now: () => number): Record<string, unknown> {
  const [head, payload, signature, ...extra] = token.split(".");
  if (!head || !payload || !signature || extra.length > 0) throw ERRORS.invalidJwt("jwt malformed");
  const expected = createHmac("sha256", secret).update(`${head}.${payload}`).digest("base64url");
  if (!safeEqual(signature, expected)) throw ERRORS.invalidJwt("invalid signature");
  const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as Record<string, unknown>;
  if (typeof claims.exp === "number" && claims.exp <= Math.floor(now() / 1000)) {
    throw ERRORS.invalidJwt("jwt expired");
  }
  return claims;
}
