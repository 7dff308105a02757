import { open } from "node:fs/promises";

const MAX_LINE = 4096;
const READ_CHUNK = 64 * 1024;

/** Keeps the last N lines of a byte stream, each cut to a readable length, for a failed run's record. */
export class LogTail {
  private lines: string[] = [];
  private partial = "";
  private readonly decoder = new TextDecoder("utf-8");

  constructor(private readonly max: number) {}

  push(chunk: Uint8Array): void {
    const text = this.partial + this.decoder.decode(chunk, { stream: true });
    const parts = text.split("\n");
    this.partial = (parts.pop() ?? "").slice(-MAX_LINE);
    for (const line of parts) this.lines.push(line.length > MAX_LINE ? `${line.slice(0, MAX_LINE)}…` : line);
    if (this.lines.length > this.max) this.lines = this.lines.slice(-this.max);
  }

  /** The kept lines, newline-separated, with an unterminated last line included. */
  text(): string {
    const all = this.partial ? [...this.lines, this.partial] : this.lines;
    return all.slice(-this.max).join("\n");
  }
}

/**
 * The last `maxLines` lines of a log file, as LogTail keeps them, reading backwards from its end and
 * never more than `maxBytes` of it (a line cut by that limit is left out). "" when there is no file.
 */
export async function readLogTail(path: string, maxLines: number, maxBytes = 1024 * 1024): Promise<string> {
  let file;
  try {
    file = await open(path, "r");
  } catch {
    return "";
  }
  try {
    const { size } = await file.stat();
    const chunks: Buffer[] = [];
    let position = size;
    let newlines = 0;
    // One newline more than lines wanted, so the first kept line is whole.
    while (position > 0 && size - position < maxBytes && newlines <= maxLines) {
      const length = Math.min(READ_CHUNK, position, maxBytes - (size - position));
      position -= length;
      const chunk = Buffer.alloc(length);
      const { bytesRead } = await file.read(chunk, 0, length, position);
      chunks.unshift(chunk.subarray(0, bytesRead));
      for (let i = chunk.indexOf(10); i >= 0 && i < bytesRead; i = chunk.indexOf(10, i + 1)) newlines++;
    }
    let data = Buffer.concat(chunks);
    const firstNewline = data.indexOf(10);
    if (position > 0 && firstNewline >= 0) data = data.subarray(firstNewline + 1);
    const tail = new LogTail(maxLines);
    tail.push(data);
    return tail.text();
  } finally {
    await file.close();
  }
}
