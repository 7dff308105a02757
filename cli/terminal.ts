/** What a stream is: a terminal that takes colors and cursor movement, or a pipe or file. */
export interface OutStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
  rows?: number;
}

/** Colors only on a terminal, and never with NO_COLOR set (https://no-color.org) or TERM=dumb. */
export function colorsFor(stream: OutStream, env: Record<string, string | undefined> = process.env): boolean {
  return Boolean(stream.isTTY) && !env.NO_COLOR && env.TERM !== "dumb";
}

/** Redraw in place only on a terminal (TERM=dumb cannot move the cursor). */
export function liveFor(stream: OutStream, env: Record<string, string | undefined> = process.env): boolean {
  return Boolean(stream.isTTY) && env.TERM !== "dumb";
}

export type Paint = (text: string) => string;

export interface Palette {
  green: Paint;
  red: Paint;
  yellow: Paint;
  blue: Paint;
  dim: Paint;
  bold: Paint;
}

const sgr =
  (open: number, close: number): Paint =>
  (text) =>
    `\x1b[${open}m${text}\x1b[${close}m`;
const plain: Paint = (text) => text;

export function palette(color: boolean): Palette {
  if (!color) return { green: plain, red: plain, yellow: plain, blue: plain, dim: plain, bold: plain };
  return {
    green: sgr(32, 39),
    red: sgr(31, 39),
    yellow: sgr(33, 39),
    blue: sgr(34, 39),
    dim: sgr(2, 22),
    bold: sgr(1, 22),
  };
}

/** The color of a task or workflow state. */
export function stateColor(p: Palette, state: string): Paint {
  switch (state) {
    case "succeeded":
      return p.green;
    case "failed":
    case "lost":
      return p.red;
    case "upstream_failed":
    case "cancelled":
      return p.yellow;
    case "running":
    case "dispatched":
      return p.blue;
    default:
      return p.dim;
  }
}

/** A stream that can be silenced: after Ctrl-C nothing but the one line may reach the terminal. */
export interface MuteableStream extends OutStream {
  mute(): void;
}

export function muteable(stream: OutStream): MuteableStream {
  let muted = false;
  return {
    write: (s: string) => (muted ? true : stream.write(s)),
    get isTTY() {
      return stream.isTTY;
    },
    get columns() {
      return stream.columns;
    },
    get rows() {
      return stream.rows;
    },
    mute() {
      muted = true;
    },
  };
}
