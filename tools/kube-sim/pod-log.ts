/**
 * One container's log, as the kubelet keeps it: a file that is the process's stdout and stderr both, so
 * lines keep the order in which the container wrote them.
 */
import { openSync } from "node:fs";
import { open, readFile } from "node:fs/promises";

const FOLLOW_POLL_MS = 25;

export class PodLog {
  private readonly followers = new Set<() => void>();
  ended = false;

  constructor(readonly path: string) {}

  /** A file descriptor to hand the process as stdout and stderr; the caller closes its copy after spawn. */
  openForContainer(): number {
    return openSync(this.path, "a");
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const f of this.followers) f();
    this.followers.clear();
  }

  async text(): Promise<string> {
    return readFile(this.path, "utf8").catch(() => "");
  }

  /**
   * Calls `listener` with what the container writes from byte `offset` on, then with null once the
   * container has ended; returns the unsubscribe.
   */
  follow(offset: number, listener: (chunk: Buffer | null) => void): () => void {
    let position = offset;
    let stopped = false;
    const readMore = async (): Promise<void> => {
      const handle = await open(this.path, "r").catch(() => undefined);
      if (!handle) return;
      try {
        for (;;) {
          const { bytesRead, buffer } = await handle.read({ buffer: Buffer.alloc(64 * 1024), position });
          if (bytesRead === 0) return;
          position += bytesRead;
          if (!stopped) listener(buffer.subarray(0, bytesRead));
        }
      } finally {
        await handle.close();
      }
    };
    const timer = setInterval(() => void readMore(), FOLLOW_POLL_MS);
    const finish = () => {
      clearInterval(timer);
      void readMore().then(() => !stopped && listener(null));
    };
    if (this.ended) finish();
    else this.followers.add(finish);
    return () => {
      stopped = true;
      clearInterval(timer);
      this.followers.delete(finish);
    };
  }
}

/** The last `n` lines of `text`, as `kubectl logs --tail` gives them (a final partial line counts). */
export function tailLines(text: string, n: number): string {
  if (n < 0) return text;
  if (n === 0 || text === "") return "";
  const endsWithNewline = text.endsWith("\n");
  const lines = (endsWithNewline ? text.slice(0, -1) : text).split("\n");
  return lines.slice(-n).join("\n") + (endsWithNewline ? "\n" : "");
}

/** The last `limit` bytes of `text`, never splitting a UTF-8 character. */
export function lastBytes(text: string, limit: number): string {
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= limit) return text;
  let start = bytes.length - limit;
  while (start < bytes.length && (bytes[start]! & 0xc0) === 0x80) start++;
  return bytes.subarray(start).toString("utf8");
}

/** The first `limit` bytes, never splitting a UTF-8 character (the kubelet's limitBytes cuts the end). */
export function firstBytes(text: string, limit: number): string {
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= limit) return text;
  let end = limit;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString("utf8");
}
