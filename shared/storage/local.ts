// Node-only: objects as files under a root folder, reached by workers through HMAC-signed URLs.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import {
  closeSync,
  constants,
  existsSync,
  createReadStream,
  createWriteStream,
  fdatasync,
  fstatSync,
  fsync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { rename, rm, rmdir, writeFile } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import { Readable, Transform } from "node:stream";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { CODE_BUCKET, OUTPUT_BUCKET } from "../model.ts";
import { assertObjectPath, encodeObjectPath, InvalidObjectPathError } from "./keys.ts";
import type { ObjectRange, SignedMethod, Storage } from "./storage.ts";
import { makeFoldersSync } from "../folders.ts";

/** Where signed URLs point, below the base URL; `localStorageRoutes` serves it. */
export const SIGNED_PATH_PREFIX = "/storage/v1/object/";

export interface LocalStorageOptions {
  /** Objects live at `<root>/<bucket>/<key>`. */
  root: string;
  /** HMAC key of the signed URLs. */
  secret: string | Uint8Array;
  /** The server's URL (e.g. http://127.0.0.1:8080); may be set later with setBaseUrl. */
  baseUrl?: string;
  /** Milliseconds since the epoch; tests move time instead of sleeping. */
  now?: () => number;
  /** The largest object a signed PUT may store (DWOP_STORAGE_MAX_OBJECT_SIZE); larger ones get 413. */
  maxObjectBytes?: number;
  /**
   * The objects are the server's at baseUrl (a claimer or dispatcher that serves no storage routes
   * itself), whose disk may be another machine's. A put or a move is then made here only where this
   * machine shows it holds the server's objects (the object, or a bucket's folder, is under `root`: a
   * bucket the server has not written to yet has none, while the code bucket has one from the first
   * submit), and asked of the server otherwise (a PUT and a MOVE signed with the secret): no request, and
   * no need of the server, where one DWOP_HOME serves both.
   */
  remote?: boolean;
}

/** A stored stream went past the object size limit; nothing was stored. */
export class ObjectTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`the object is larger than ${limit} bytes`);
    this.name = "ObjectTooLarge";
  }
}

/** The query of a signed URL. */
export interface SignedQuery {
  method: string | undefined;
  expires: string | undefined;
  signature: string | undefined;
  /** A MOVE's destination (a key in the same bucket), which its signature covers. */
  to?: string | undefined;
  /** A MOVE's random part, which its signature covers: two moves are never one signature (each is made once). */
  nonce?: string | undefined;
}

/** A move whose source object does not exist. */
export class ObjectMissing extends Error {
  constructor(bucket: string, key: string, options?: { cause: unknown }) {
    super(`no object ${bucket}/${key} to move`, options);
    this.name = "ObjectMissing";
  }
}

/** Why an object path may not be used (InvalidObjectPathError's message), or null. */
function pathRefusal(bucket: string, key: string): string | null {
  try {
    assertObjectPath(bucket, key);
    return null;
  } catch (err) {
    if (err instanceof InvalidObjectPathError) return err.message;
    throw err;
  }
}

/** The buckets DWOP stores in: one's folder under a remote storage's root shows the disk is the server's. */
const KNOWN_BUCKETS = [CODE_BUCKET, OUTPUT_BUCKET];

/** How long a request a remote storage signs for its server lives: it is sent at once. */
const REQUEST_TTL_SECONDS = 60;

/**
 * Objects (or ranges) up to this size are read and written with synchronous calls, a few microseconds each
 * on a local disk, where each step of fs/promises or of a file stream is a trip through libuv's thread
 * pool and back (~0.1-0.5 ms apiece, four to six of them per request). A task's code, inputs and outputs
 * are mostly this small; larger ones stream, so memory stays bounded. Only a write's flushes go to the
 * thread pool: they wait for the disk anyway.
 */
export const SMALL_OBJECT_BYTES = 256 * 1024;

/** An object opened for reading. */
export interface OpenedObject {
  /** The whole object's size. */
  size: number;
  /**
   * Its bytes, or only those of the range it was opened with: read already when they are at most
   * SMALL_OBJECT_BYTES, else a stream.
   */
  body: Uint8Array<ArrayBuffer> | Readable;
}

/** Bytes `start` to `end` of an object, both included (as an HTTP Range names them). */
export interface ByteRange {
  start: number;
  end: number;
}

/** Local files behind signed URLs: the storage of the embedded (single machine) setup. */
export class LocalStorage implements Storage {
  private readonly root: string;
  private readonly secret: string | Uint8Array;
  private readonly now: () => number;
  private readonly remote: boolean;
  private baseUrl: string | undefined;
  readonly maxObjectBytes: number;
  /** Each folder's flush that has not begun (flushFolder). */
  private readonly folderSyncs = new Map<string, Promise<void>>();
  /** Each folder a put of this process made whose name is not on the disk yet: its parent's flush (tempFor). */
  private readonly namings = new Map<string, Promise<void>>();

  constructor(options: LocalStorageOptions) {
    this.maxObjectBytes = options.maxObjectBytes ?? Number.MAX_SAFE_INTEGER;
    this.root = resolve(options.root);
    this.secret = options.secret;
    this.now = options.now ?? Date.now;
    this.remote = options.remote ?? false;
    if (options.baseUrl) this.setBaseUrl(options.baseUrl);
  }

  /** Sets the URL signed URLs start with, once the server knows its port. */
  setBaseUrl(url: string): void {
    this.baseUrl = url.replace(/\/+$/, "");
  }

  async put(bucket: string, key: string, body: Uint8Array | string): Promise<void> {
    const file = this.filePath(bucket, key);
    if (this.remote && !this.holdsBuckets(bucket)) return this.putOnServer(bucket, key, body);
    if (body.length <= SMALL_OBJECT_BYTES) return this.replaceNow(file, body);
    await this.replaceAtomically(file, (temp) => writeFile(temp, body, { flag: "wx", flush: true }));
  }

  /** Stores a stream without holding it in memory; the object appears whole or not at all. */
  async putStream(
    bucket: string,
    key: string,
    body: Readable | null,
    maxBytes = Number.MAX_SAFE_INTEGER,
  ): Promise<void> {
    const file = this.filePath(bucket, key);
    await this.replaceAtomically(file, async (temp) => {
      const out = createWriteStream(temp, { flags: "wx", flush: true });
      if (body) await pipeline(body, byteLimit(maxBytes), out);
      else await new Promise<void>((done, fail) => out.on("error", fail).end(done));
    });
  }

  async get(bucket: string, key: string): Promise<ReadableStream<Uint8Array> | null> {
    const opened = await this.openRead(bucket, key);
    if (!opened) return null;
    const { body } = opened;
    return body instanceof Uint8Array
      ? (new Response(body).body as ReadableStream<Uint8Array>)
      : (Readable.toWeb(body) as ReadableStream<Uint8Array>);
  }

  /**
   * Opens an object for reading; null when it does not exist. `range`, told the object's size, picks
   * the bytes to read (null: all of them).
   */
  async openRead(
    bucket: string,
    key: string,
    range?: (size: number) => ByteRange | null,
  ): Promise<OpenedObject | null> {
    const file = this.filePath(bucket, key);
    const opened = openFile(file);
    if (!opened) return null;
    const { fd, size } = opened;
    let streaming = false;
    try {
      const wanted = range?.(size) ?? undefined;
      const start = wanted?.start ?? 0;
      const length = Math.max(0, (wanted?.end ?? size - 1) - start + 1);
      if (length <= SMALL_OBJECT_BYTES) return { size, body: readAt(fd, start, length) };
      streaming = true;
      return { size, body: createReadStream(file, { fd, start: wanted?.start, end: wanted?.end }) };
    } finally {
      if (!streaming) closeSync(fd);
    }
  }

  readNow(bucket: string, key: string, range: ObjectRange | null, maxBytes: number): Uint8Array | null {
    if (range && range.length > maxBytes) return null;
    const opened = openFile(this.filePath(bucket, key));
    if (!opened) return null;
    try {
      const { offset, length } = range ?? { offset: 0, length: opened.size };
      // Too large, or a range past the object's end: left to the run's GET, which reports it as it should.
      if (length > maxBytes || offset + length > opened.size) return null;
      return readAt(opened.fd, offset, length);
    } finally {
      closeSync(opened.fd);
    }
  }

  /**
   * One rename: the object appears under its new name whole, and both names are flushed to the disk. A
   * remote storage whose disk does not hold the object asks its server (a signed MOVE).
   */
  async move(bucket: string, from: string, to: string): Promise<void> {
    const source = this.filePath(bucket, from);
    const target = this.filePath(bucket, to);
    if (this.remote && !existsSync(source)) return this.moveOnServer(bucket, from, to);
    const named = this.folderFor(target);
    await rename(source, target).catch((err: NodeJS.ErrnoException) => {
      // Its folder is made: the source is what is missing.
      throw err.code === "ENOENT" ? new ObjectMissing(bucket, from, { cause: err }) : err;
    });
    const folders = new Set([dirname(source), dirname(target)]);
    await Promise.all([...[...folders].map((folder) => this.flushFolder(folder)), named]);
  }

  /** Deletes the files, then each folder they leave empty, up to the bucket's. */
  async remove(bucket: string, keys: readonly string[]): Promise<void> {
    const files = keys.map((key) => this.filePath(bucket, key));
    await Promise.all(files.map((file) => rm(file, { force: true })));
    const bucketDir = join(this.root, bucket);
    const folders = new Set(files.map((file) => dirname(file)));
    for (const folder of [...folders].sort((a, b) => b.length - a.length)) {
      for (let dir = folder; dir.startsWith(bucketDir + sep); dir = dirname(dir)) {
        const removed = await rmdir(dir).then(
          () => true,
          () => false, // not empty (or already gone): its parent is not empty either
        );
        if (!removed) break;
      }
    }
  }

  async signUrl(bucket: string, key: string, method: SignedMethod, ttlSeconds: number): Promise<string> {
    return this.signUrlNow(bucket, key, method, ttlSeconds);
  }

  signUrlNow(bucket: string, key: string, method: SignedMethod, ttlSeconds: number): string {
    assertObjectPath(bucket, key);
    if (!this.baseUrl)
      throw new Error("LocalStorage has no base URL yet: call setBaseUrl once the server listens");
    const expires = Math.floor(this.now() / 1000) + Math.max(1, Math.floor(ttlSeconds));
    const signature = this.signature(method, bucket, key, String(expires));
    const query = `method=${method}&expires=${expires}&signature=${signature}`;
    return `${this.baseUrl}${SIGNED_PATH_PREFIX}${encodeObjectPath(bucket, key)}?${query}`;
  }

  /**
   * Whether this machine's disk holds the server's objects: a folder of `bucket` or of another bucket
   * under root. A dispatcher sharing the API's DWOP_HOME found no output bucket before the first output
   * was stored, and stored through the API, failing every run that ended while the API was down (a test
   * chaos soak: four workflows failed on "storing the output: fetch failed").
   */
  private holdsBuckets(bucket: string): boolean {
    return [bucket, ...KNOWN_BUCKETS.filter((b) => b !== bucket)].some((b) => existsSync(join(this.root, b)));
  }

  /** Stores an object on the server at baseUrl, by a PUT signed now. */
  private async putOnServer(bucket: string, key: string, body: Uint8Array | string): Promise<void> {
    const url = await this.signUrl(bucket, key, "PUT", REQUEST_TTL_SECONDS);
    // A Uint8Array over an ArrayBuffer (no SharedArrayBuffer here) is a body as fetch takes it.
    const sent = await fetch(url, { method: "PUT", body: body as string | Uint8Array<ArrayBuffer> });
    await this.answered(sent, `store ${bucket}/${key}`);
  }

  /**
   * Asks the server at baseUrl to move an object on its disk: a POST signed for MOVE, `from` and `to`
   * (only a holder of the storage's secret can sign one; no worker gets such a URL).
   */
  private async moveOnServer(bucket: string, from: string, to: string): Promise<void> {
    if (!this.baseUrl) throw new Error("LocalStorage has no base URL: set one to move objects on its server");
    const expires = String(Math.floor(this.now() / 1000) + REQUEST_TTL_SECONDS);
    const nonce = randomBytes(12).toString("hex");
    const signature = this.signature("MOVE", bucket, from, expires, `${to}\n${nonce}`);
    const query = new URLSearchParams({ method: "MOVE", to, nonce, expires, signature });
    const url = `${this.baseUrl}${SIGNED_PATH_PREFIX}${encodeObjectPath(bucket, from)}?${query}`;
    await this.answered(await fetch(url, { method: "POST" }), `move ${bucket}/${from}`);
  }

  /** Nothing for a server's 2xx; an error with its status and message otherwise. */
  private async answered(res: Response, what: string): Promise<void> {
    if (res.ok) return void (await res.body?.cancel());
    const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
    const why = body?.error?.message ?? res.statusText;
    // Signed requests live REQUEST_TTL_SECONDS: a clock that far behind the server's makes them expired.
    const clock = /expired/.test(why) ? " (is this machine's clock behind the server's?)" : "";
    throw new Error(`the storage server at ${this.baseUrl} did not ${what}: ${res.status} ${why}${clock}`);
  }

  /** Why a signed request may not proceed, or null when it may. */
  verify(method: string, bucket: string, key: string, query: SignedQuery): string | null {
    const badPath = pathRefusal(bucket, key);
    if (badPath) return badPath;
    if (query.method !== method)
      return `this URL is signed for ${query.method ?? "no method"}, not ${method}`;
    let more: string | undefined;
    if (method === "MOVE") {
      if (!/^[0-9a-f]{16,64}$/.test(query.nonce ?? "")) return "a move without its nonce";
      if (!query.to) return "a move names no destination";
      const badDestination = pathRefusal(bucket, query.to);
      if (badDestination) return badDestination;
      more = `${query.to}\n${query.nonce}`;
    }
    if (!query.expires || !/^\d{1,12}$/.test(query.expires)) return "missing or bad expiry";
    if (!query.signature || !/^[0-9a-f]{64}$/.test(query.signature)) return "missing or bad signature";
    const expected = Buffer.from(this.signature(method, bucket, key, query.expires, more), "hex");
    if (!timingSafeEqual(Buffer.from(query.signature, "hex"), expected)) return "signature does not match";
    if (Number(query.expires) * 1000 <= this.now()) return "this URL has expired";
    return null;
  }

  /** HMAC of what a signed request may do; a MOVE's covers its destination and nonce too (`more`). */
  private signature(method: string, bucket: string, key: string, expires: string, more?: string): string {
    const signed = `${method}\n${bucket}/${key}\n${expires}${more === undefined ? "" : `\n${more}`}`;
    return createHmac("sha256", this.secret).update(signed).digest("hex");
  }

  private filePath(bucket: string, key: string): string {
    assertObjectPath(bucket, key);
    const file = join(this.root, bucket, ...key.split("/"));
    // Checked again on the final path, so a validation bug cannot reach outside the root.
    if (!file.startsWith(this.root + sep))
      throw new InvalidObjectPathError(`object path escapes the root: ${key}`);
    return file;
  }

  /**
   * A fresh temporary file's path for an object's file (in `<root>/.tmp`, which no bucket can name), with
   * both folders made (folderFor): synchronous (see SMALL_OBJECT_BYTES).
   */
  private tempFor(file: string): { temp: string; named: Promise<unknown> } {
    const tempDir = join(this.root, ".tmp");
    makeFoldersSync(tempDir);
    const named = this.folderFor(file);
    return { temp: join(tempDir, `${randomBytes(12).toString("hex")}.part`), named };
  }

  /**
   * Makes an object's folder (one mkdir call when it is there). The name of each folder made for the
   * object is flushed (a flush of its parent, in the thread pool), and the promise settles once the names
   * of the object's folder and of its parents are on the disk: those this call made, and those another
   * put of this process made and is still flushing (it found them made). The object's own name is
   * flushed once it is in place (flushFolder).
   */
  private folderFor(file: string): Promise<unknown> {
    const folder = dirname(file);
    for (const made of makeFoldersSync(folder)) {
      const flushed: Promise<void> = this.flushFolder(dirname(made)).finally(() => {
        if (this.namings.get(made) === flushed) this.namings.delete(made);
      });
      flushed.catch(() => {}); // a put that waits for it fails with it
      this.namings.set(made, flushed);
    }
    const waits: Promise<void>[] = [];
    for (let f = folder; f.startsWith(this.root + sep); f = dirname(f)) {
      const flushing = this.namings.get(f);
      if (flushing) waits.push(flushing);
    }
    const named = Promise.all(waits);
    named.catch(() => {}); // awaited once the object is in place; a failed write leaves it
    return named;
  }

  /**
   * replaceAtomically for bytes in memory, with synchronous calls but for the flushes (see
   * SMALL_OBJECT_BYTES), which go to the thread pool: a run's output and log, which the dispatcher stores
   * together, flush side by side. The object is on the disk once the promise settles, as it is for
   * replaceAtomically: a dispatcher records a success, in a transaction that waits for the disk, only once
   * its output is stored, so a machine that stops after that commit must find the output whole (its bytes
   * flushed before the rename, its name after).
   */
  private async replaceNow(file: string, body: Uint8Array | string): Promise<void> {
    const { temp, named } = this.tempFor(file);
    try {
      const fd = openSync(temp, "wx");
      try {
        writeFileSync(fd, body);
        await flushData(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(temp, file);
    } catch (err) {
      rmSync(temp, { force: true });
      throw err;
    }
    await Promise.all([this.flushFolder(dirname(file)), named]);
  }

  /**
   * Flushes a folder's entries (syncFolder) once every rename made into it before now is in. A flush asked
   * for while another of the same folder waits for its turn joins that one: the dispatcher stores a run's
   * output and log together, in one folder.
   */
  private flushFolder(folder: string): Promise<void> {
    let waiting = this.folderSyncs.get(folder);
    if (!waiting) {
      waiting = new Promise((resolve) => setImmediate(resolve)).then(() => {
        this.folderSyncs.delete(folder); // begun: a later rename needs a flush of its own
        return syncFolder(folder);
      });
      this.folderSyncs.set(folder, waiting);
    }
    return waiting;
  }

  /**
   * Writes to a temporary file (in `<root>/.tmp`, which no bucket can name), which `write` flushes, and
   * renames it over the object; then flushes the folders that name it (see replaceNow).
   */
  private async replaceAtomically(file: string, write: (temp: string) => Promise<void>): Promise<void> {
    const { temp, named } = this.tempFor(file);
    try {
      await write(temp);
      await rename(temp, file);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    await Promise.all([this.flushFolder(dirname(file)), named]);
  }
}

const flushData = promisify(fdatasync);
const flushAll = promisify(fsync);

/**
 * Flushes a folder's entries to the disk (a file renamed into it, a folder made in it): the flush in the
 * thread pool, its open and close synchronous (a few microseconds each, where each was a trip through
 * the thread pool and back on the path of every local run's success).
 */
async function syncFolder(folder: string): Promise<void> {
  const fd = openSync(folder, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await flushAll(fd);
  } finally {
    closeSync(fd);
  }
}

/** An object's file open for reading, with its size; null when there is no such object (the caller closes fd). */
function openFile(file: string): { fd: number; size: number } | null {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (err) {
    if (isMissing(err)) return null;
    throw err;
  }
  let info;
  try {
    info = fstatSync(fd);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  if (info.isFile()) return { fd, size: info.size };
  closeSync(fd);
  return null;
}

/** `length` bytes of the file from `start` (fewer when it ends first). */
function readAt(fd: number, start: number, length: number): Uint8Array<ArrayBuffer> {
  const bytes = Buffer.allocUnsafe(length);
  let read = 0;
  while (read < length) {
    const n = readSync(fd, bytes, read, length - read, start + read);
    if (n === 0) break;
    read += n;
  }
  return bytes.subarray(0, read) as Uint8Array<ArrayBuffer>;
}

/** Adapts a web request body to a Node stream. */
export function nodeReadable(body: ReadableStream<Uint8Array> | null): Readable | null {
  return body ? Readable.fromWeb(body as NodeReadableStream<Uint8Array>) : null;
}

function isMissing(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR";
}

/** Passes bytes through until there are more than max, then fails with ObjectTooLarge. */
function byteLimit(max: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length;
      done(seen > max ? new ObjectTooLarge(max) : null, seen > max ? undefined : chunk);
    },
  });
}
