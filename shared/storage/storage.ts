export type SignedMethod = "GET" | "PUT";

/**
 * Object storage for code, requirements, outputs and logs. Workers never see credentials: they get one
 * signed URL per object and method, valid for a short time.
 */
export interface Storage {
  /** The largest object a worker may store, where the storage sets one (a signed PUT of more is refused). */
  readonly maxObjectBytes?: number;
  put(bucket: string, key: string, body: Uint8Array | string): Promise<void>;
  /** The object's bytes as a stream, or null when it does not exist. */
  get(bucket: string, key: string): Promise<ReadableStream<Uint8Array> | null>;
  signUrl(bucket: string, key: string, method: SignedMethod, ttlSeconds: number): Promise<string>;
  /**
   * signUrl's URL made at once, without a request: only a storage that signs with its own key has it
   * (LocalStorage). A run's start signs four URLs or more.
   */
  signUrlNow?(bucket: string, key: string, method: SignedMethod, ttlSeconds: number): string;
  /**
   * Renames the object `from` to `to`, replacing what `to` held; fails when `from` does not exist. A
   * reader of `to` never finds a part of either (on Supabase Storage, it may find none for a moment).
   */
  move(bucket: string, from: string, to: string): Promise<void>;
  /** Deletes objects; keys that do not exist are no error. */
  remove(bucket: string, keys: readonly string[]): Promise<void>;
  /**
   * The bytes of a small object, or of `range` of it, read at once from this machine's disk; null when it
   * is missing or larger than `maxBytes`. Only a storage on this machine has it (LocalStorage): a run the
   * dispatcher starts here then gets such objects in its environment instead of a GET each.
   */
  readNow?(bucket: string, key: string, range: ObjectRange | null, maxBytes: number): Uint8Array | null;
}

/** `length` bytes of an object from `offset` on. */
export interface ObjectRange {
  offset: number;
  length: number;
}
