import { isBlankChar } from "./lines.ts";

/** A position in one line, for the small hand-written scanners of headers and decorators. */
export class Cursor {
  constructor(
    readonly text: string,
    public pos = 0,
  ) {}

  /** 1-based column of the next character. */
  get column(): number {
    return this.pos + 1;
  }

  atEnd(): boolean {
    return this.pos >= this.text.length;
  }

  /** The next character, or "" at the end of the line. */
  peek(): string {
    return this.text[this.pos] ?? "";
  }

  skipBlanks(): void {
    while (isBlankChar(this.text[this.pos])) this.pos++;
  }

  eat(ch: string): boolean {
    if (this.text[this.pos] !== ch) return false;
    this.pos++;
    return true;
  }

  /** Reads up to a space, a tab, the end of the line or one of `stops`; the token may be empty. */
  token(stops: string): { text: string; column: number } {
    const start = this.pos;
    while (this.pos < this.text.length) {
      const ch = this.text[this.pos] ?? "";
      if (isBlankChar(ch) || stops.includes(ch)) break;
      this.pos++;
    }
    return { text: this.text.slice(start, this.pos), column: start + 1 };
  }

  /** After optional blanks, only a comment or nothing is left. */
  restIsComment(): boolean {
    this.skipBlanks();
    return this.atEnd() || this.peek() === "#";
  }
}
