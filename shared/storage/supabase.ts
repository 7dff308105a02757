// Runtime-neutral (fetch only): runs in Node, in Supabase Edge Functions (Deno) and on workerd.
import { StorageClient } from "@supabase/storage-js";
import type { Config } from "../config.ts";
import { assertObjectPath, encodeObjectPath } from "./keys.ts";
import type { SignedMethod, Storage } from "./storage.ts";

export interface SupabaseStorageOptions {
  /** The project's URL, e.g. https://abcd.supabase.co (signed URLs start with it). */
  projectUrl: string;
  /** The service_role key (or a secret key): it bypasses Storage's row-level security. */
  serviceKey: string;
  /** Defaults to the runtime's fetch. */
  fetch?: typeof fetch;
}

/** A failed Storage call; `retryable` when trying again may help (5xx, 429, the network). */
export class SupabaseStorageError extends Error {
  readonly code = "storage_failed";

  constructor(
    message: string,
    /** The HTTP status (storage-api answers most client errors with 400 and the real one in the body). */
    readonly status: number | null,
    /** The status storage-api puts in its body (`"404"`, `"409"`, ...). */
    readonly statusCode: string | null,
    readonly retryable: boolean,
    options?: { cause: unknown },
  ) {
    super(message, options);
    this.name = "SupabaseStorageError";
  }
}

/**
 * Objects in Supabase Storage through storage-js (the storage part of supabase-js, without its realtime
 * client, which Node 20 cannot construct without a WebSocket transport). Workers get signed URLs:
 * a GET from createSignedUrl, a PUT from createSignedUploadUrl with upsert, so a retried attempt can
 * replace its output.
 */
export class SupabaseStorage implements Storage {
  private readonly client: StorageClient;
  private readonly storageUrl: string;
  private readonly headers: Record<string, string>;
  private readonly fetch: typeof fetch;

  constructor(options: SupabaseStorageOptions) {
    const base = new URL(options.projectUrl);
    if (base.protocol !== "https:" && base.protocol !== "http:") {
      throw new Error(`SUPABASE_PROJECT_URL must be an http(s) URL, got ${options.projectUrl}`);
    }
    this.storageUrl = `${base.origin}${base.pathname.replace(/\/+$/, "")}/storage/v1`;
    this.headers = { apikey: options.serviceKey, Authorization: `Bearer ${options.serviceKey}` };
    this.fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.client = new StorageClient(this.storageUrl, this.headers, this.fetch);
  }

  async put(bucket: string, key: string, body: Uint8Array | string): Promise<void> {
    assertObjectPath(bucket, key);
    const contentType = typeof body === "string" ? "text/plain;charset=UTF-8" : "application/octet-stream";
    const { error } = await this.client.from(bucket).upload(key, body, { upsert: true, contentType });
    if (error) throw failure("put", bucket, key, error as Answer);
  }

  /**
   * Streams the object from `/object/authenticated/...`: storage-js downloads from `/object/...`, where
   * a rejected key falls back to anonymous access and a private object then looks missing, so a wrong
   * service key would read as "no output" instead of an error.
   */
  async get(bucket: string, key: string): Promise<ReadableStream<Uint8Array> | null> {
    assertObjectPath(bucket, key);
    const url = `${this.storageUrl}/object/authenticated/${encodeObjectPath(bucket, key)}`;
    const res = await this.fetch(url, { headers: this.headers }).catch((err: unknown) => {
      throw failure("get", bucket, key, { message: String(err) }, err);
    });
    if (res.ok) return res.body ?? new Response("").body!;
    const body: ErrorBody = await res.json().catch(() => ({}));
    // storage-api answers a missing object with 400 and {"statusCode": "404", "code": "NoSuchKey"}
    // (older releases: no code, "error": "not_found"); a proxy in front of it may answer a plain 404.
    const noSuchKey = body.code === "NoSuchKey" || (body.code === undefined && body.error === "not_found");
    if (noSuchKey || (res.status === 404 && body.code === undefined)) return null;
    const answer = {
      status: res.status,
      statusCode: body.statusCode,
      message: body.message ?? res.statusText,
    };
    throw failure("get", bucket, key, answer);
  }

  /**
   * storage-api's move, which refuses a destination that exists (409): that one is deleted, and the move
   * asked again. Between the two a reader of `to` finds no object: DWOP moves an attempt's output into
   * place before its success is recorded, when nobody has been told to read it.
   */
  async move(bucket: string, from: string, to: string): Promise<void> {
    assertObjectPath(bucket, from);
    assertObjectPath(bucket, to);
    const objects = this.client.from(bucket);
    let { error } = await objects.move(from, to);
    if ((error as Answer | null)?.statusCode === "409") {
      await this.remove(bucket, [to]);
      ({ error } = await objects.move(from, to));
    }
    if (error) throw failure("move", bucket, `${from} to ${to}`, error as Answer);
  }

  /** Deletes in calls of at most 1,000 keys (storage-api's limit per request). */
  async remove(bucket: string, keys: readonly string[]): Promise<void> {
    for (const key of keys) assertObjectPath(bucket, key);
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      const { error } = await this.client.from(bucket).remove(batch);
      if (error) throw failure("remove", bucket, `${batch[0]} and ${batch.length - 1} more`, error as Answer);
    }
  }

  /**
   * A GET URL valid for ttlSeconds. A PUT URL's lifetime is not the caller's to choose: Supabase signs
   * upload URLs for the project's fixed time (2 hours unless its storage settings say otherwise).
   */
  async signUrl(bucket: string, key: string, method: SignedMethod, ttlSeconds: number): Promise<string> {
    assertObjectPath(bucket, key);
    const objects = this.client.from(bucket);
    if (method === "GET") {
      const { data, error } = await objects.createSignedUrl(key, Math.max(1, Math.floor(ttlSeconds)));
      if (error) throw failure("sign GET", bucket, key, error as Answer);
      return data.signedUrl;
    }
    const { data, error } = await objects.createSignedUploadUrl(key, { upsert: true });
    if (error) throw failure("sign PUT", bucket, key, error as Answer);
    return data.signedUrl;
  }
}

/** Supabase Storage when SUPABASE_PROJECT_URL and SUPABASE_SERVICE_KEY are both set, else null. */
export function supabaseStorageFromConfig(config: Config): SupabaseStorage | null {
  if (!config.SUPABASE_PROJECT_URL || !config.SUPABASE_SERVICE_KEY) return null;
  return new SupabaseStorage({
    projectUrl: config.SUPABASE_PROJECT_URL,
    serviceKey: config.SUPABASE_SERVICE_KEY,
  });
}

/** An error body of storage-api. */
interface ErrorBody {
  statusCode?: string;
  code?: string;
  error?: string;
  message?: string;
}

/** What storage-js's StorageApiError carries (a StorageUnknownError, for a network failure, has no status). */
interface Answer {
  status?: number;
  statusCode?: string;
  message: string;
}

function failure(operation: string, bucket: string, key: string, answer: Answer, cause: unknown = answer) {
  const { status, statusCode } = answer;
  const retryable = status === undefined || status >= 500 || status === 429;
  const summary = status === undefined ? "no answer" : `${status}${statusCode ? ` (${statusCode})` : ""}`;
  return new SupabaseStorageError(
    `Supabase Storage ${operation} ${bucket}/${key} failed: ${summary}: ${answer.message}`,
    status ?? null,
    statusCode ?? null,
    retryable,
    { cause },
  );
}
