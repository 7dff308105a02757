import { quote } from "./errors.ts";
import { isHeaderStart, parseHeader } from "./header.ts";
import type { SourceLine } from "./lines.ts";

type Report = (line: number, column: number, message: string) => void;

/**
 * Where the body that starts at `from` ends: after its last indented line, before the next line at
 * column 1 that is neither blank nor a comment. Column-1 comments between indented lines stay in the
 * body (Python ignores a comment's indentation); blank lines and comments after the last indented line
 * are left to the top level, so a comment that introduces the next task does not end up in this one.
 */
export function bodyEnd(lines: readonly SourceLine[], from: number): number {
  let end = from;
  for (let i = from; i < lines.length; i++) {
    const kind = lines[i]?.kind;
    if (kind === "top") break;
    if (kind === "indented") end = i + 1;
  }
  return end;
}

/**
 * The body in lines [from, to), dedented as Python reads it: the common indentation of its statement
 * lines is removed (comment lines lose as much of it as they have), blank lines become empty, and every
 * line is kept: line k of the body is line (`fun` line + k) of the file, so a Python traceback's line
 * number maps straight back to the workflow file.
 * Returns null when there is no statement (an empty body). Reports bad indentation.
 */
export function readBody(
  lines: readonly SourceLine[],
  from: number,
  to: number,
  task: string,
  report: Report,
): string | null {
  const statements: number[] = [];
  for (let i = from; i < to; i++) {
    const line = lines[i];
    if (line?.kind === "indented" && !line.comment) statements.push(i);
  }
  const first = lines[statements[0] ?? -1];
  if (!first) return null;
  const style = first.text[0] === "\t" ? "\t" : " ";
  let common = first.indent;
  for (const i of statements) {
    const line = lines[i] as SourceLine;
    checkIndentation(line, i + 1, style, (statements[0] ?? 0) + 1, task, report);
    common = Math.min(common, line.indent);
  }
  const out: string[] = [];
  for (let i = from; i < to; i++) out.push(dedent(lines[i] as SourceLine, common));
  return `${out.join("\n")}\n`;
}

function dedent(line: SourceLine, common: number): string {
  if (line.kind === "blank") return "";
  if (line.kind !== "indented") return line.text;
  return line.text.slice(line.comment ? Math.min(line.indent, common) : common);
}

/** A body indents with spaces or with tabs, as its first statement does; and `fun` never hides in it. */
function checkIndentation(
  line: SourceLine,
  lineNo: number,
  style: string,
  styleLine: number,
  task: string,
  report: Report,
): void {
  for (let i = 0; i < line.indent; i++) {
    if (line.text[i] === style) continue;
    const [used, other] = style === "\t" ? ["tabs", "a space"] : ["spaces", "a tab"];
    report(
      lineNo,
      i + 1,
      `inconsistent indentation: task ${quote(task)} indents its body with ${used} (line ${styleLine}), this line with ${other}`,
    );
    return;
  }
  // `fun x():` is never valid Python, so an indented one is a task header indented by mistake, which
  // would otherwise silently become part of this body and fail only when the task runs.
  if (isHeaderStart(line.text, line.indent) && parseHeader(line.text, line.indent).complete) {
    report(
      lineNo,
      line.indent + 1,
      `'fun' must start at column 1: indented, this line is part of the body of task ${quote(task)}`,
    );
  }
}
