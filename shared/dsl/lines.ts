/**
 * The DSL is line-based: a line's first character decides what it is. This file splits the source into
 * lines and classifies each one; everything else works on these.
 */

export type LineKind =
  /** Empty, or only spaces and tabs. */
  | "blank"
  /** Starts with '#' at column 1. */
  | "comment"
  /** Starts with a space or a tab and has something else after it: part of a body. */
  | "indented"
  /** Anything else at column 1: `fun`, a decorator, or an error. */
  | "top";

export interface SourceLine {
  readonly text: string;
  readonly kind: LineKind;
  /** Count of leading spaces and tabs. */
  readonly indent: number;
  /** The first non-blank character is '#'. */
  readonly comment: boolean;
}

/**
 * Splits the source as Python reads it: a UTF-8 byte order mark is dropped, and "\r\n", "\r" and "\n"
 * all end a line. A final line terminator leaves an empty last line, which error positions may use.
 */
export function splitLines(source: string): string[] {
  const text = source.charCodeAt(0) === 0xfeff ? source.slice(1) : source;
  return text.split(/\r\n|\r|\n/);
}

export function classifyLine(text: string): SourceLine {
  let indent = 0;
  while (indent < text.length && isBlankChar(text[indent])) indent++;
  if (indent === text.length) return { text, kind: "blank", indent, comment: false };
  const comment = text[indent] === "#";
  if (indent > 0) return { text, kind: "indented", indent, comment };
  return { text, kind: comment ? "comment" : "top", indent, comment };
}

/** Only spaces and tabs indent, as in Python (form feeds aside, which the DSL does not accept). */
export function isBlankChar(ch: string | undefined): boolean {
  return ch === " " || ch === "\t";
}
