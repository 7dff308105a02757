/**
 * A reader of Server-Sent Events over any fetch body, for clients that must send an Authorization
 * header (which EventSource cannot): the CLI and the dashboard. Web APIs only.
 */

export interface SseMessage {
  /** The `id:` of this message, or null when it had none. */
  id: string | null;
  /** `message` unless an `event:` line said otherwise. */
  event: string;
  data: string;
}

/** Turns chunks of an event stream into messages, as the HTML standard parses them. */
export class SseParser {
  private buffer = "";
  private id: string | null = null;
  private event = "";
  private data: string[] = [];
  private hasData = false;

  /** The messages completed by this chunk (a message ends at a blank line). */
  push(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const out: SseMessage[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      // A lone \r at the end may be the first half of \r\n: wait for the next chunk.
      if (!match || (match[0] === "\r" && match.index === this.buffer.length - 1)) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const message = this.line(line);
      if (message) out.push(message);
    }
    return out;
  }

  private line(line: string): SseMessage | null {
    if (line === "") {
      const message = this.hasData
        ? { id: this.id, event: this.event || "message", data: this.data.join("\n") }
        : null;
      this.id = null;
      this.event = "";
      this.data = [];
      this.hasData = false;
      return message;
    }
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") {
      this.data.push(value);
      this.hasData = true;
    } else if (field === "event") {
      this.event = value;
    } else if (field === "id" && !value.includes("\0")) {
      this.id = value;
    }
    return null;
  }
}

/** The messages of an event stream's body, as they arrive. */
export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseMessage> {
  const parser = new SseParser();
  const decoder = new TextDecoder();
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      yield* parser.push(decoder.decode(value, { stream: true }));
    }
    // A message cut off by the end of the stream is dropped, as EventSource drops it.
    yield* parser.push(decoder.decode());
  } finally {
    reader.releaseLock();
    await body.cancel().catch(() => {});
  }
}
