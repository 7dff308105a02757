export type SignedMethod = "GET" | "PUT";

/**
 * Object storage for code, requirements, outputs and logs. Workers never see credentials: they get one
 * signed URL per object and method, valid for a short time.
 */
export interface Storage {
  put(bucket: string, key: string, body: Uint8Array | string): Promise<void>;
  /** The object's bytes as a stream, or null when it does not exist. */
  get(bucket: string, key: string): Promise<ReadableStream<Uint8Array> | null>;
  signUrl(bucket: string, key: string, method: SignedMethod, ttlSeconds: number): Promise<string>;
  /** Deletes objects; keys that do not exist are no error. */
  remove(bucket: string, keys: readonly string[]): Promise<void>;
}
