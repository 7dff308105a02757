import { DEFAULT_TASK_OPTIONS, type TaskOptions } from "../model.ts";
import type { Issue } from "./ast.ts";
import { Cursor } from "./cursor.ts";
import { quote } from "./errors.ts";
import { Suggester } from "./suggest.ts";

/** A decorator's one argument: a number or a quoted string, as Python would write it. */
type Literal =
  | { kind: "number"; text: string; value: number }
  | { kind: "string"; value: string }
  | { kind: "other"; text: string };

/** Turns an argument into options, or says what was expected. */
type Rule = (arg: Literal) => Partial<TaskOptions> | string;

const MAX_TIMEOUT_SECONDS = 7 * 24 * 3600;
const UNIT_SECONDS = new Map([["", 1], ["s", 1], ["m", 60], ["h", 3600]]); // prettier-ignore
const DURATION = /^(\d+(?:\.\d+)?)([smh]?)$/;
const IMAGE = /^[A-Za-z0-9][A-Za-z0-9._/:@-]*$/;
// Kubernetes quantities, kept to the forms people write: "500m", "2", "0.5"; "256Mi", "1.5Gi", "1G".
const CPU = /^(\d+m|\d+(\.\d+)?)$/;
const MEMORY = /^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/;
const NUMBER = /^-?\d+(\.\d+)?$/;
// The names PUT /pools/:name accepts (the database checks the same pattern).
export const POOL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const MIN_PRIORITY = -100;
export const MAX_PRIORITY = 100;

const RULES = new Map<string, Rule>([
  ["retries", retries],
  ["timeout", timeout],
  ["image", image],
  ["cpu", cpu],
  ["memory", memory],
  ["pool", pool],
  ["priority", priority],
]);

/** A decorator line as read; `options` is null when it was unknown or its argument was bad. */
export interface Decorator {
  line: number;
  name: string;
  nameColumn: number;
  known: boolean;
  options: Partial<TaskOptions> | null;
}

/** Reads `@name(arg)` (with an optional trailing comment) from a line that starts with '@'. */
export function parseDecorator(text: string, line: number): { decorator: Decorator; issue: Issue | null } {
  const c = new Cursor(text, 1);
  const name = c.token("()#,:");
  const decorator: Decorator = {
    line,
    name: name.text,
    nameColumn: name.column,
    known: false,
    options: null,
  };
  const fail = (column: number, message: string) => ({ decorator, issue: { column, message } });
  if (name.text === "") return fail(c.column, "expected a decorator name after '@'");
  const rule = RULES.get(name.text);
  if (!rule) return fail(name.column, unknownMessage(name.text));
  decorator.known = true;
  c.skipBlanks();
  if (!c.eat("(")) {
    return fail(
      c.column,
      `expected '(' after '@${name.text}': a decorator takes one argument, e.g. @retries(2)`,
    );
  }
  c.skipBlanks();
  const argColumn = c.column;
  const arg = readLiteral(c);
  if ("message" in arg) return { decorator, issue: arg };
  c.skipBlanks();
  if (c.peek() === ",") return fail(c.column, `'@${name.text}' takes exactly one argument`);
  if (!c.eat(")")) return fail(c.column, `expected ')' after the argument of '@${name.text}'`);
  if (!c.restIsComment()) return fail(c.column, "unexpected text after the decorator");
  const result = rule(arg);
  if (typeof result === "string") return fail(argColumn, result);
  decorator.options = result;
  return { decorator, issue: null };
}

/** The options a task gets from the decorators above it; a repeated decorator is an error. */
export function applyDecorators(
  decorators: readonly Decorator[],
  report: (line: number, column: number, message: string) => void,
): TaskOptions {
  const options: TaskOptions = { ...DEFAULT_TASK_OPTIONS };
  const seen = new Map<string, number>();
  for (const d of decorators) {
    if (!d.known) continue;
    const first = seen.get(d.name);
    if (first !== undefined) {
      report(d.line, d.nameColumn, `duplicate decorator '@${d.name}' (first on line ${first})`);
      continue;
    }
    seen.set(d.name, d.line);
    if (d.options) Object.assign(options, d.options);
  }
  return options;
}

function unknownMessage(name: string): string {
  const known = [...RULES.keys()];
  const guess = new Suggester(known).closest(name);
  const hint = guess ? ` (did you mean '@${guess}'?)` : "";
  return `unknown decorator ${quote(`@${name}`)}${hint}; known: ${known.map((k) => `@${k}`).join(", ")}`;
}

function readLiteral(c: Cursor): Literal | Issue {
  const quoteChar = c.peek();
  if (quoteChar === '"' || quoteChar === "'") {
    const start = c.pos;
    const end = c.text.indexOf(quoteChar, start + 1);
    if (end < 0) return { column: start + 1, message: "unterminated string" };
    const value = c.text.slice(start + 1, end);
    const escape = value.indexOf("\\");
    if (escape >= 0)
      return { column: start + 2 + escape, message: "escape sequences are not supported here" };
    c.pos = end + 1;
    return { kind: "string", value };
  }
  const token = c.token("(),#");
  if (token.text === "")
    return { column: token.column, message: "expected an argument: a number or a quoted string" };
  if (NUMBER.test(token.text)) return { kind: "number", text: token.text, value: Number(token.text) };
  return { kind: "other", text: token.text };
}

function retries(arg: Literal): Partial<TaskOptions> | string {
  if (arg.kind === "number" && /^\d+$/.test(arg.text) && arg.value <= 100) {
    return { retries: arg.value };
  }
  return "@retries takes a whole number from 0 to 100, e.g. @retries(2)";
}

function timeout(arg: Literal): Partial<TaskOptions> | string {
  let seconds = Number.NaN;
  if (arg.kind === "number") seconds = arg.value;
  if (arg.kind === "string") {
    const match = DURATION.exec(arg.value);
    // Rounded to a millisecond so that "1.1m" is 66 s despite binary fractions.
    if (match) seconds = Math.round(Number(match[1]) * (UNIT_SECONDS.get(match[2] ?? "") ?? 1) * 1000) / 1000;
  }
  if (Number.isInteger(seconds) && seconds >= 1 && seconds <= MAX_TIMEOUT_SECONDS)
    return { timeoutSeconds: seconds };
  return (
    `@timeout takes a whole number of seconds from 1 to ${MAX_TIMEOUT_SECONDS} (7 days), ` +
    `or a string such as "30s", "5m" or "1.5h"`
  );
}

function image(arg: Literal): Partial<TaskOptions> | string {
  if (arg.kind === "string" && arg.value.length <= 255 && IMAGE.test(arg.value)) return { image: arg.value };
  return '@image takes a quoted image reference, e.g. @image("python:3.12-slim")';
}

function cpu(arg: Literal): Partial<TaskOptions> | string {
  const text = arg.kind === "number" ? arg.text : arg.kind === "string" ? arg.value : "";
  if (text.length <= 32 && CPU.test(text) && Number.parseFloat(text) > 0) return { cpu: text };
  return '@cpu takes a positive CPU quantity, e.g. @cpu("500m") or @cpu("2")';
}

function pool(arg: Literal): Partial<TaskOptions> | string {
  if (arg.kind === "string" && POOL_NAME.test(arg.value)) return { pool: arg.value };
  return '@pool takes a quoted pool name (letters, digits, "_", "." and "-", up to 64), e.g. @pool("gpu")';
}

function priority(arg: Literal): Partial<TaskOptions> | string {
  if (
    arg.kind === "number" &&
    /^-?\d+$/.test(arg.text) &&
    arg.value >= MIN_PRIORITY &&
    arg.value <= MAX_PRIORITY
  )
    return { priority: arg.value };
  return `@priority takes a whole number from ${MIN_PRIORITY} to ${MAX_PRIORITY} (higher runs first), e.g. @priority(10)`;
}

function memory(arg: Literal): Partial<TaskOptions> | string {
  const text = arg.kind === "string" ? arg.value : "";
  if (text.length <= 32 && MEMORY.test(text) && Number.parseFloat(text) > 0) return { memory: text };
  return '@memory takes a quoted positive memory quantity, e.g. @memory("256Mi") or @memory("1Gi")';
}
