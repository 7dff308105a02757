/**
 * DSL errors. Positions are 1-based; columns count UTF-16 code units, as editors and LSP do. Every
 * error points inside the file: line 1..number of lines, column 1..length of that line + 1.
 */

/** Lines longer than this are echoed as a window around the column, so one huge line stays readable. */
const ECHO_WIDTH = 160;
const ECHO_INDENT = "    ";
const MAX_QUOTED = 40;
/** A file with more errors shows the first ones: all of them could be megabytes in an API response. */
export const MAX_ERRORS = 500;

/** One problem in a workflow file. Never thrown alone: `parseWorkflow` throws a `DslErrors`. */
export class DslError {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly column: number,
    readonly message: string,
    /** The offending line as written (no line terminator), echoed by `format()`. */
    readonly lineText: string,
  ) {}

  /** `file:line:column: message`, then the line and a caret under the column. */
  format(): string {
    const { shown, pad } = echo(this.lineText, this.column);
    const where = `${printable(this.file)}:${this.line}:${this.column}`;
    return `${where}: ${printable(this.message)}\n${ECHO_INDENT}${shown}\n${ECHO_INDENT}${pad}^`;
  }

  /** The data an API returns to a client: no line text, no formatting. */
  toJSON(): { file: string; line: number; column: number; message: string } {
    return { file: this.file, line: this.line, column: this.column, message: this.message };
  }
}

/** Every error found in one workflow file, in line and column order. */
export class DslErrors extends Error {
  override readonly name = "DslErrors";
  readonly errors: DslError[];

  constructor(errors: DslError[]) {
    super(errors.map((e) => e.format()).join("\n"));
    this.errors = errors;
  }
}

/**
 * Every error carries the file name, and a message echoes it per error: a longer name (a multipart
 * upload's file name is the client's choice) keeps its end, where the extension is.
 */
export const MAX_FILE_NAME = 255;

/** Collects errors for one file, pinning each position inside the file so the caret always has a line. */
export class Problems {
  private found: DslError[] = [];
  /** Errors found but dropped, being after the first MAX_ERRORS + 1 by position: memory stays bounded. */
  private dropped = 0;
  private readonly file: string;

  constructor(
    file: string,
    private readonly lines: readonly string[],
  ) {
    this.file = file.length > MAX_FILE_NAME ? `…${file.slice(-(MAX_FILE_NAME - 1))}` : file;
  }

  add(line: number, column: number, message: string): void {
    const lineNo = clamp(line, 1, Math.max(1, this.lines.length));
    const text = this.lines[lineNo - 1] ?? "";
    this.found.push(new DslError(this.file, lineNo, clamp(column, 1, text.length + 1), message, text));
    // A file of a million bad lines would otherwise hold a million errors, of which 501 are shown.
    if (this.found.length >= 4 * MAX_ERRORS) {
      const kept = byPosition(this.found).slice(0, MAX_ERRORS + 1);
      this.dropped += this.found.length - kept.length;
      this.found = kept;
    }
  }

  get count(): number {
    return this.found.length + this.dropped;
  }

  /**
   * The errors by position (errors at one position in the order found), at most MAX_ERRORS of them and
   * then one that says how many more there are.
   */
  sorted(): DslError[] {
    const limit = MAX_ERRORS;
    const all = byPosition(this.found);
    const next = all[limit];
    if (!next) return all;
    const rest = this.count - limit;
    return [
      ...all.slice(0, limit),
      new DslError(
        next.file,
        next.line,
        next.column,
        `too many errors: ${rest} more not shown`,
        next.lineText,
      ),
    ];
  }
}

/** A stable sort: errors at one position stay in the order found. */
function byPosition(errors: readonly DslError[]): DslError[] {
  return [...errors].sort((a, b) => a.line - b.line || a.column - b.column);
}

/** User text inside a message: quoted, shortened, and unable to move a terminal's cursor. */
export function quote(text: string): string {
  const short = text.length > MAX_QUOTED ? `${text.slice(0, MAX_QUOTED)}…` : text;
  return `'${printable(short)}'`;
}

/**
 * Replaces control characters (terminal escapes), bidirectional overrides (which make a line read
 * differently than it runs) and lone surrogates with U+FFFD, one for one so columns still line up.
 * Tabs are kept: the caret line repeats them.
 */
export function printable(text: string): string {
  let out = "";
  for (const ch of text) out += isUnsafe(ch) ? "\uFFFD" : ch;
  return out;
}

function isUnsafe(ch: string): boolean {
  const code = ch.codePointAt(0) ?? 0;
  if (code === 0x09) return false;
  return (
    code < 0x20 ||
    (code >= 0x7f && code <= 0x9f) ||
    code === 0x200e ||
    code === 0x200f ||
    (code >= 0x202a && code <= 0x202e) ||
    (code >= 0x2066 && code <= 0x2069) ||
    code === 0x2028 ||
    code === 0x2029 ||
    (code >= 0xd800 && code <= 0xdfff)
  );
}

/** The part of the line to show, and the whitespace that puts a caret under `column` in it. */
function echo(text: string, column: number): { shown: string; pad: string } {
  let start = 0;
  let end = text.length;
  if (text.length > ECHO_WIDTH) {
    start = Math.max(0, Math.min(column - 1 - ECHO_WIDTH / 2, text.length - ECHO_WIDTH));
    end = Math.min(text.length, start + ECHO_WIDTH);
  }
  const shown = (start > 0 ? "…" : "") + printable(text.slice(start, end)) + (end < text.length ? "…" : "");
  // One pad character per character shown, a tab where the line has one, so the caret lines up
  // whatever the terminal's tab width.
  let pad = start > 0 ? " " : "";
  for (const ch of text.slice(start, column - 1)) pad += ch === "\t" ? "\t" : " ";
  return { shown, pad };
}

function clamp(n: number, low: number, high: number): number {
  if (!Number.isFinite(n)) return low;
  return Math.min(high, Math.max(low, Math.trunc(n)));
}
