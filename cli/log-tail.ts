import { Readable } from "node:stream";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";

/** The last `n` lines of a log stream, read through once without holding more than those lines. */
export async function tailLines(body: ReadableStream<Uint8Array>, n: number): Promise<string[]> {
  const lines: string[] = [];
  let partial = "";
  const decoder = new TextDecoder();
  for await (const chunk of Readable.fromWeb(body as NodeReadableStream) as AsyncIterable<Buffer>) {
    const parts = (partial + decoder.decode(chunk, { stream: true })).split("\n");
    partial = parts.pop()!;
    lines.push(...parts);
    if (lines.length > n) lines.splice(0, lines.length - n);
  }
  partial += decoder.decode();
  if (partial) lines.push(partial);
  return lines.slice(-n);
}
