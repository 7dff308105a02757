/** Thrown for a bucket or key that could name something outside its bucket; HTTP adapters answer 403. */
export class InvalidObjectPathError extends Error {
  readonly code = "invalid_object_path";

  constructor(message: string) {
    super(message);
    this.name = "InvalidObjectPathError";
  }
}

// Letters (any script, with their combining marks), digits, '_', '.', '-'.
const SEGMENT = /^[\p{L}\p{M}\p{N}_.-]+$/u;
const MAX_KEY_LENGTH = 1024;

/**
 * Checks that a bucket and key name an object inside the bucket: a bucket is one segment not starting
 * with '.', a key is '/'-separated segments; no '.' or '..' segment, no empty segment (so no leading,
 * trailing or doubled '/'), no backslash, NUL or other punctuation.
 */
export function assertObjectPath(bucket: string, key: string): void {
  if (!SEGMENT.test(bucket) || bucket.startsWith(".")) {
    throw new InvalidObjectPathError(`invalid bucket name ${JSON.stringify(bucket)}`);
  }
  if (key.length === 0 || key.length > MAX_KEY_LENGTH) {
    throw new InvalidObjectPathError(`object key must be 1 to ${MAX_KEY_LENGTH} characters long`);
  }
  for (const segment of key.split("/")) {
    if (!SEGMENT.test(segment) || segment === "." || segment === "..") {
      throw new InvalidObjectPathError(`invalid object key ${JSON.stringify(key)}`);
    }
  }
}

/** The key as a URL path: each segment percent-encoded, the '/' between them kept. */
export function encodeObjectPath(bucket: string, key: string): string {
  return [bucket, ...key.split("/")].map(encodeURIComponent).join("/");
}
