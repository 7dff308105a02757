import { ApiError, call, readTail } from "./api.ts";
import { h, shown } from "./dom.ts";

/** What is read at first: the log's last 64 KiB, its last 200 lines shown; the rest is a download away. */
const FIRST_BYTES = 64 * 1024;
const FIRST_LINES = 200;
/** Lines kept on screen while following: older ones drop off the top. */
const KEEP_LINES = 2000;
/** About once a second, as the server ships a running attempt's log in half-second chunks. */
const POLL_MS = 1000;
/** An answer this big may have been cut at the server's read limit: ask for the rest at once. */
const CATCH_UP_BYTES = 256 * 1024;
/** Within this many pixels of the bottom, the reader is "at the bottom" and new lines keep it there. */
const STICKY_PX = 24;

const lastLines = (text: string, n: number) => {
  const lines = text.replace(/\n$/, "").split("\n");
  return { text: lines.slice(-n).join("\n"), cut: lines.length > n };
};

export interface LogSource {
  /** `workflows/<id>/tasks/<name>/logs`. */
  path: string;
  attempt: number;
  /** Whether the attempt has ended, as the workflow last read says. */
  ended(): boolean;
  /** What to show when no log was stored for an ended attempt (the run's kept last lines), if any. */
  fallback(): Promise<string | null>;
}

/**
 * One attempt's log, followed while it runs: `GET .../logs?attempt=N&offset=B` about once a second,
 * from the `x-log-size` of the last answer, each answer's lines appended, until `x-log-complete: true`.
 * The view stays at the bottom unless the reader scrolled up. An answer without those headers (an
 * attempt's log stored whole when it ended) is complete as it is.
 */
export class LogTail {
  readonly element = h("div", { class: "log-tail" });
  private readonly status = h("p", { class: "muted log-status", role: "status" });
  private readonly cutNote = h(
    "p",
    { class: "muted", hidden: true },
    "The last lines; download the log for all of it.",
  );
  private readonly pre: HTMLPreElement;
  private text = "";
  private offset = 0;
  private started = false;
  private stopped = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** Set once the log will not grow: the attempt ended and everything shipped was read. */
  complete = false;

  constructor(private readonly source: LogSource) {
    this.pre = h("pre", {
      class: "log",
      tabindex: 0,
      "aria-label": `Log of attempt ${source.attempt}`,
      hidden: true,
    });
    this.element.append(this.status, this.cutNote, this.pre);
    this.status.textContent = "Loading…";
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    void this.poll();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** The attempt may have ended (the workflow was read again): a waiting follower asks at once. */
  nudge(): void {
    if (this.stopped || this.complete || !this.started || !this.timer) return;
    clearTimeout(this.timer);
    this.timer = null;
    void this.poll();
  }

  private async poll(): Promise<void> {
    this.timer = null;
    // A panel that moved on to another task or attempt has taken this element off the page.
    if (this.stopped || (this.offset > 0 && !this.element.isConnected)) return;
    const { path, attempt } = this.source;
    let behind = false;
    try {
      const first = this.offset === 0;
      const from = this.offset;
      const res = await call(`${path}?attempt=${attempt}${first ? "" : `&offset=${this.offset}`}`);
      const size = res.headers.get("x-log-size");
      const complete = res.headers.get("x-log-complete");
      if (first) {
        const tail = await readTail(res, FIRST_BYTES);
        const lines = lastLines(tail.text, FIRST_LINES);
        this.cutNote.hidden = !(tail.cut || lines.cut);
        this.offset = size !== null ? Number(size) : tail.size;
        if (this.stopped) return;
        this.replace(lines.text ? `${lines.text}\n` : "");
      } else {
        const chunk = await res.text();
        this.offset = size !== null ? Number(size) : this.offset + new TextEncoder().encode(chunk).length;
        if (this.stopped) return;
        this.append(chunk);
      }
      // No header: a log stored whole when the attempt ended, which will not grow.
      this.complete = complete === null || complete === "true";
      behind = this.offset - from >= CATCH_UP_BYTES;
    } catch (err) {
      if (this.stopped) return;
      if (!(err instanceof ApiError && err.status === 404)) {
        this.status.textContent = err instanceof Error ? err.message : String(err);
      } else if (this.source.ended()) {
        await this.missing();
        return;
      } else {
        this.status.textContent = "Waiting for the attempt's first lines…";
      }
    }
    if (this.stopped) return;
    if (this.complete) {
      this.status.hidden = this.text !== "";
      this.status.textContent = this.text === "" ? "The attempt printed nothing." : "";
      this.pre.hidden = this.text === "";
      return;
    }
    if (this.offset > 0 || this.text) this.status.textContent = "● following the log as the attempt runs";
    this.timer = setTimeout(() => void this.poll(), behind ? 0 : POLL_MS);
  }

  /** No log for an ended attempt: the run's last lines if the dispatcher kept them, else say so. */
  private async missing(): Promise<void> {
    const kept = await this.source.fallback().catch(() => null);
    if (this.stopped) return;
    this.complete = true;
    if (kept) {
      this.status.hidden = true;
      this.replace(kept.endsWith("\n") ? kept : `${kept}\n`);
    } else {
      this.status.textContent = "No log was stored for this attempt.";
    }
  }

  private atBottom(): boolean {
    const p = this.pre;
    return p.hidden === true || p.scrollHeight - p.scrollTop - p.clientHeight <= STICKY_PX;
  }

  private replace(text: string): void {
    this.text = text;
    this.pre.textContent = shown(text.replace(/\n$/, ""));
    this.pre.hidden = text === "";
    this.pre.scrollTop = this.pre.scrollHeight;
  }

  private append(chunk: string): void {
    if (!chunk) return;
    const stick = this.atBottom();
    const hadText = this.text !== "";
    this.text += chunk;
    const lines = this.text.split("\n");
    // The text ends with a newline: split gives one empty string after it.
    if (lines.length - 1 > KEEP_LINES) {
      this.text = lines.slice(-KEEP_LINES - 1).join("\n");
      this.cutNote.hidden = false;
      this.pre.textContent = shown(this.text.replace(/\n$/, ""));
    } else {
      // Only the new lines touch the page: a text node, no re-render of what is there.
      this.pre.append(shown(`${hadText ? "\n" : ""}${chunk.replace(/\n$/, "")}`));
    }
    this.pre.hidden = false;
    if (stick) this.pre.scrollTop = this.pre.scrollHeight;
  }
}
