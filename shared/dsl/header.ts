import type { Issue, ParsedParam } from "./ast.ts";
import { Cursor } from "./cursor.ts";
import { quote } from "./errors.ts";
import { paramNameProblem, taskNameProblem, upstreamProblem } from "./names.ts";

/** What ends a name token besides blanks; the name's own rules are checked afterwards, with a message. */
const NAME_STOPS = "():,#=";
const END_OF_LINE = "expected ')': a task header must end on its own line";

/** The result of reading one `fun name(p:upstream, ...):` line. */
export interface Header {
  /** Null when the line broke before a name. */
  name: string | null;
  nameColumn: number;
  nameOk: boolean;
  params: ParsedParam[];
  /** Read to the end without a syntax error (other issues, such as an unsafe name, may remain). */
  complete: boolean;
  issues: Issue[];
}

/** `fun` at `at`, followed by a blank, '(' or the end of the line: the line means to be a header. */
export function isHeaderStart(text: string, at: number): boolean {
  if (!text.startsWith("fun", at)) return false;
  const next = text[at + 3];
  return next === undefined || next === " " || next === "\t" || next === "(";
}

/**
 * Reads a header whose `fun` starts at `at`. A syntax error stops the reading (one error per header);
 * bad names do not, so every bad name on the line is reported.
 */
export function parseHeader(text: string, at = 0): Header {
  const c = new Cursor(text, at + 3);
  const header: Header = {
    name: null,
    nameColumn: c.column,
    nameOk: false,
    params: [],
    complete: false,
    issues: [],
  };
  c.skipBlanks();
  const name = c.token(NAME_STOPS);
  if (name.text === "") return stop(header, c.column, "expected a task name after 'fun'");
  header.name = name.text;
  header.nameColumn = name.column;
  const nameProblem = taskNameProblem(name.text);
  if (nameProblem) header.issues.push({ column: name.column, message: nameProblem });
  header.nameOk = nameProblem === null;
  c.skipBlanks();
  if (!c.eat("(")) return stop(header, c.column, `expected '(' after task name ${quote(name.text)}`);
  if (!readParams(c, header)) return header;
  c.skipBlanks();
  if (!c.eat(":")) return stop(header, c.column, "expected ':' at the end of the task header");
  if (!c.restIsComment()) {
    return stop(
      header,
      c.column,
      "unexpected text after the header's ':'; the body goes on the next lines, indented",
    );
  }
  header.complete = true;
  return header;
}

/** Records a syntax error, which ends the reading of the header. */
function stop(header: Header, column: number, message: string): Header {
  header.issues.push({ column, message });
  return header;
}

/** Reads `p:up, p:up)` after the '('; false after reporting a syntax error. */
function readParams(c: Cursor, header: Header): boolean {
  c.skipBlanks();
  if (c.eat(")")) return true;
  for (;;) {
    const param = readParam(c, header);
    if (!param) return false;
    header.params.push(param);
    c.skipBlanks();
    if (c.eat(")")) return true;
    if (!c.eat(",")) {
      stop(header, c.column, c.atEnd() ? END_OF_LINE : "expected ',' or ')' after a parameter");
      return false;
    }
    c.skipBlanks();
    // A trailing comma, as Python allows.
    if (c.eat(")")) return true;
  }
}

function readParam(c: Cursor, header: Header): ParsedParam | null {
  const name = c.token(NAME_STOPS);
  if (name.text === "") {
    stop(header, c.column, c.atEnd() ? END_OF_LINE : "expected a parameter (name:upstream)");
    return null;
  }
  c.skipBlanks();
  if (!c.eat(":")) {
    stop(
      header,
      c.column,
      `expected ':' after parameter ${quote(name.text)}: write name:upstream, e.g. raw:extract`,
    );
    return null;
  }
  c.skipBlanks();
  const upstream = c.token(NAME_STOPS);
  if (upstream.text === "") {
    stop(
      header,
      c.column,
      `expected the upstream of parameter ${quote(name.text)}: a task name or inputs.NAME`,
    );
    return null;
  }
  const nameProblem = paramNameProblem(name.text);
  if (nameProblem) header.issues.push({ column: name.column, message: nameProblem });
  const upProblem = upstreamProblem(upstream.text);
  if (upProblem) header.issues.push({ column: upstream.column, message: upProblem });
  return {
    name: name.text,
    upstream: upstream.text,
    nameColumn: name.column,
    upstreamColumn: upstream.column,
    upstreamWellFormed: upProblem === null,
  };
}
