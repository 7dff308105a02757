const MAX_LINE = 4096;

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
