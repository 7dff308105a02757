import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DslErrors, parseWorkflow, tryParseWorkflow } from "../shared/dsl/index.ts";
import { MAX_ERRORS, MAX_FILE_NAME } from "../shared/dsl/errors.ts";
import { DEFAULT_TASK_OPTIONS, type TaskOptions, type WorkflowSpec } from "../shared/model.ts";

/**
 * A fuzzer of the DSL parser: at least 100,000 inputs per run (DWOP_FUZZ_RUNS), from a printed seed
 * (DWOP_FUZZ_SEED replays one). Whatever the input, `parseWorkflow` returns a spec or throws DslErrors
 * (nothing else), in bounded time, with every error's line and column inside the file. Inputs are made
 * by a grammar-aware generator (valid workflows, then mutated), and from raw bytes decoded as UTF-8 and
 * as latin1. The generators draw from their own PRNG seeded by fast-check, which is much faster than
 * composing fast-check arbitraries; a failure prints the source that failed.
 */

const SEED = Number(process.env.DWOP_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const TOTAL = Number(process.env.DWOP_FUZZ_RUNS ?? 100_000);
/** One input's parse may take this long; a slow one is timed again, so a GC pause is not a hang. */
const PER_INPUT_MS = 200;
/** A pathological input (megabytes, 100k parameters, 10k-deep chains) may take this long. */
const PATHOLOGICAL_MS = 5_000;
const FILE = "fuzz.workflow";

console.log(`DSL fuzz: seed ${SEED}, ${TOTAL} inputs (replay with DWOP_FUZZ_SEED=${SEED} DWOP_FUZZ_RUNS=${TOTAL})`);

let parsed = 0;

/** Where a failing input is shown: JSON-escaped and cut, so a megabyte input does not flood the log. */
function show(source: string): string {
  const text = JSON.stringify(source);
  return text.length > 2000 ? `${text.slice(0, 2000)}… (${source.length} characters)` : text;
}

function timedParse(source: string, file: string): { spec: WorkflowSpec | null; error: unknown; ms: number } {
  const start = performance.now();
  try {
    const spec = parseWorkflow(source, file);
    return { spec, error: null, ms: performance.now() - start };
  } catch (error) {
    return { spec: null, error, ms: performance.now() - start };
  }
}

/**
 * Parses one input and checks the outcome: a spec, or DslErrors whose every error lies inside the file
 * (line 1..lines, column 1..length + 1, the echoed line is that line). Returns the spec or null.
 */
function check(source: string, file = FILE, budgetMs = PER_INPUT_MS): WorkflowSpec | null {
  parsed++;
  let outcome = timedParse(source, file);
  if (outcome.ms > budgetMs) {
    const again = timedParse(source, file);
    if (again.ms < outcome.ms) outcome = again;
  }
  if (outcome.ms > budgetMs) {
    throw new Error(`parse took ${outcome.ms.toFixed(0)} ms (budget ${budgetMs} ms) for ${show(source)}`);
  }
  if (outcome.spec) {
    checkOrder(outcome.spec, source);
    return outcome.spec;
  }
  const err = outcome.error;
  if (!(err instanceof DslErrors)) {
    throw new Error(`threw ${String(err)} (not DslErrors) for ${show(source)}`, { cause: err });
  }
  const lines = (source.charCodeAt(0) === 0xfeff ? source.slice(1) : source).split(/\r\n|\r|\n/);
  if (err.errors.length === 0) throw new Error(`DslErrors without errors for ${show(source)}`);
  if (err.errors.length > MAX_ERRORS + 1) throw new Error(`${err.errors.length} errors for ${show(source)}`);
  for (const e of err.errors) {
    const text = lines[e.line - 1];
    const inside =
      Number.isInteger(e.line) &&
      Number.isInteger(e.column) &&
      e.line >= 1 &&
      text !== undefined &&
      e.column >= 1 &&
      e.column <= text.length + 1 &&
      e.lineText === text;
    if (!inside) {
      throw new Error(`error outside the file (${e.line}:${e.column}: ${e.message}) for ${show(source)}`);
    }
    if (typeof e.message !== "string" || e.message === "" || e.file.length > MAX_FILE_NAME) {
      throw new Error(`bad error ${JSON.stringify(e.toJSON()).slice(0, 500)} for ${show(source)}`);
    }
  }
  return null;
}

/** A spec has tasks, each after the tasks it reads, each with a body of its own. */
function checkOrder(spec: WorkflowSpec, source: string): void {
  const placed = new Set<string>();
  for (const task of spec.tasks) {
    const late = task.params.find((p) => !p.upstream.startsWith("inputs.") && !placed.has(p.upstream));
    if (late || placed.has(task.name) || !task.body.endsWith("\n")) {
      throw new Error(`spec out of order or malformed at task ${task.name} for ${show(source)}`);
    }
    placed.add(task.name);
  }
  if (spec.tasks.length === 0) throw new Error(`spec without tasks for ${show(source)}`);
}

// ---- A small seeded PRNG and the grammar-aware generator -----------------------------------------

class Rng {
  constructor(private state: number) {}

  /** mulberry32 */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  word(alphabet: string, min: number, max: number): string {
    let out = "";
    for (let n = this.range(min, max); n > 0; n--) out += alphabet[this.int(alphabet.length)];
    return out;
  }
}

const LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_";
const DIGITS = "0123456789";
/** Characters a body line may hold after its indentation: quotes, brackets, unicode, odd blanks. */
const BODY_CHARS = "abcxyz =()[]{}'\":#@,.+-*/\\\t\f\u000béß中😀\u00a0\u3000\u200b\u0301\u2028";

/** Strange characters the mutations insert anywhere. */
const STRANGE = [
  "é", "😀", "\ud800", "\udc00", "\u2028", "\u2029", "\u202e", "\u2066", "\u200f", "\u0000", "\u001b[2J",
  "\u007f", "\u0085", "\u00a0", "\u3000", "\u200b", "\ufeff", "\ufffd", "\uffff", "\r", "\n", "\r\n", "\t",
  "\f", "\v", "\\", "'", '"', "(", ")", ":", ",", "@", "#", "inputs.", "..", "/",
]; // prettier-ignore

/** Decorator lines that must be reported, not thrown. */
const BAD_DECORATORS = [
  "@", "@(", "@()", "@retries", "@retries()", "@retries(-1)", "@retries(101)", "@retries(1,2)", "@retries(1.5)",
  "@retries(99999999999999999999999)", "@retries('2')", "@retries(2) x", "@retries(2", "@retries((2))",
  "@timeout(0)", '@timeout("5x")', '@timeout("")', "@timeout(604801)", '@timeout("1e9h")', "@timeout(1e3)",
  '@timeout("0.0001s")', "@timeout(NaN)", "@timeout(Infinity)", '@image("")', "@image(python)", '@image("a b")',
  '@image("a\\\\b")', "@image('unterminated", '@image("x" "y")', "@cpu(0)", '@cpu("-1")', "@cpu(abc)",
  '@memory("0")', "@memory(1Gi)", '@memory("1 Gi")', "@cache(1)", "@retriez(1)", "@RETRIES(1)",
  "@retries\t(1)", "@ retries(1)", "@retries(1)#", "@retries(1)  # fine", "@timeout('30s'", "@memory(\"1Gi')",
]; // prettier-ignore

const TOKEN_SOUP = [
  "fun ", "fun", "def ", "@retries(", "@timeout(", "@image(", "@cpu(", "@memory(", "@", "(", ")", ":", ",",
  "inputs.", "inputs", "a", "b", "x", "main.py", "..", "'5m'", '"1Gi"', "2", "-1", "#", " ", "    ", "\t",
  "\n", "\r\n", "\r", "\uFEFF", "é", "😀", "\u0000", "\u001b[2J", "\u202e", "\ud800", "pass", "print(1)",
]; // prettier-ignore

interface GenTask {
  name: string;
  params: { name: string; upstream: string }[];
  decorators: { text: string; options: Partial<TaskOptions> }[];
  indent: string;
  body: { text: string; kind: "statement" | "comment" | "blank"; indent: string }[];
}

interface GenWorkflow {
  tasks: GenTask[];
  /** The file as lines, without line terminators. */
  lines: string[];
  /** Index in `lines` of each task's `fun` line. */
  funLines: number[];
}

function decorator(rng: Rng): { key: keyof TaskOptions; text: string; options: Partial<TaskOptions> } {
  switch (rng.int(6)) {
    case 0: {
      const n = rng.range(0, 100);
      return { key: "retries", text: `@retries(${n})`, options: { retries: n } };
    }
    case 1: {
      const n = rng.range(1, 604800);
      return { key: "timeoutSeconds", text: `@timeout(${n})`, options: { timeoutSeconds: n } };
    }
    case 2: {
      const [unit, seconds] = rng.pick([["s", 1], ["m", 60], ["h", 3600]] as const);
      const n = rng.range(1, 100);
      const q = rng.pick(["'", '"']);
      return { key: "timeoutSeconds", text: `@timeout(${q}${n}${unit}${q})`, options: { timeoutSeconds: n * seconds } };
    }
    case 3: {
      const image = rng.pick(["python:3.12-slim", "ghcr.io/acme/etl@sha256:abc", "a/b-c_d.e:1"]);
      return { key: "image", text: `@image("${image}")`, options: { image } };
    }
    case 4: {
      const cpu = rng.pick(["500m", "2", "0.5", "1500m"]);
      return { key: "cpu", text: `@cpu("${cpu}")  # cores`, options: { cpu } };
    }
    default: {
      const memory = `${rng.range(1, 4096)}${rng.pick(["Mi", "Gi", "M", ""])}`;
      return { key: "memory", text: `@memory('${memory}')`, options: { memory } };
    }
  }
} // prettier-ignore

function genTask(rng: Rng, i: number, earlier: readonly string[]): GenTask {
  const name = `${rng.word(LETTERS, 1, 10)}_${i}`;
  const params: GenTask["params"] = [];
  for (let k = rng.int(5); k > 0; k--) {
    const pname = `${rng.word(`${LETTERS}${DIGITS}`, 1, 1)}${rng.word(`${LETTERS}${DIGITS}.-`, 0, 8)}_${params.length}`;
    const upstream =
      earlier.length > 0 && rng.chance(0.8) ? rng.pick(earlier) : `inputs.${rng.word(LETTERS, 1, 8)}`;
    params.push({ name: pname, upstream });
  }
  const decorators: GenTask["decorators"] = [];
  const keys = new Set<string>();
  for (let k = rng.int(4); k > 0; k--) {
    const d = decorator(rng);
    if (keys.has(d.key)) continue;
    keys.add(d.key);
    decorators.push(d);
  }
  const indent = rng.chance(0.2) ? "\t".repeat(rng.range(1, 2)) : " ".repeat(rng.range(1, 8));
  const unit = indent[0] as string;
  const body: GenTask["body"] = [];
  const lines = rng.range(1, 8);
  const first = rng.int(lines);
  for (let k = 0; k < lines; k++) {
    const roll = k === first ? 0 : rng.int(10);
    if (roll < 6) {
      const deeper = unit.repeat(rng.int(3) * (unit === "\t" ? 1 : 4));
      body.push({ kind: "statement", indent: k === first ? indent : indent + deeper, text: `v${rng.word(BODY_CHARS, 0, 30)}` });
    } else if (roll < 8) {
      body.push({ kind: "comment", indent: rng.word(" \t", 0, 10), text: `#${rng.word(BODY_CHARS, 0, 20)}` });
    } else {
      body.push({ kind: "blank", indent: "", text: rng.word(" \t", 0, 4) });
    }
  }
  return { name, params, decorators, indent, body };
} // prettier-ignore

/** A valid workflow: each task reads only tasks before it (or inputs), written in that or any order. */
function genWorkflow(rng: Rng): GenWorkflow {
  const tasks: GenTask[] = [];
  for (let i = rng.range(1, 10); i > 0; i--) tasks.push(genTask(rng, tasks.length, tasks.map((t) => t.name)));
  const order = tasks.map((_, i) => i);
  if (rng.chance(0.3)) order.sort(() => rng.next() - 0.5);
  const lines: string[] = [];
  const funLines: number[] = [];
  for (const i of order) {
    const t = tasks[i] as GenTask;
    for (const d of t.decorators) {
      lines.push(d.text);
      if (rng.chance(0.1)) lines.push(rng.pick(["", "# about it", "   "]));
    }
    const s = rng.pick(["", " ", "  ", "\t"]);
    const params = t.params.map((p) => `${p.name}${s}:${s}${p.upstream}`).join(`${s},${rng.pick([" ", ""])}`);
    const trailing = t.params.length > 0 && rng.chance(0.1) ? "," : "";
    funLines.push(lines.length);
    lines.push(`fun ${t.name}${s}(${s}${params}${trailing}${s})${s}:${rng.pick(["", "  # note", "#x", " "])}`);
    for (const b of t.body) lines.push(b.kind === "blank" ? b.text : b.indent + b.text);
    for (let k = rng.int(3); k > 0; k--) lines.push(rng.pick(["", "# next", "   ", "#", "\t"]));
  }
  return { tasks, lines, funLines };
}

/** Joins lines with one terminator, or a random one per line; maybe a BOM and a final terminator. */
function render(rng: Rng, lines: readonly string[]): string {
  const mixed = rng.chance(0.2);
  const fixed = rng.pick(["\n", "\r\n", "\r"]);
  let out = rng.chance(0.1) ? "\ufeff" : "";
  // "\r" then an empty line then "\n" would read as one "\r\n": such a "\n" becomes "\r".
  const end = (sep: string) => (sep[0] === "\n" && out.endsWith("\r") ? "\r" : sep);
  lines.forEach((line, i) => {
    if (i > 0) out += end(mixed ? rng.pick(["\n", "\r\n", "\r"]) : fixed);
    out += line;
  });
  return rng.chance(0.8) ? out + end(fixed) : out;
}

/** The body as the DSL promises it: the statements' common indentation removed, up to the last indented line. */
function expectedBody(t: GenTask): string {
  const width = t.indent.length;
  const out = t.body.map((b) => {
    if (b.kind === "blank") return "";
    if (b.kind === "comment") {
      const lead = b.indent.length;
      return b.indent.slice(Math.min(lead, width)) + b.text;
    }
    return b.indent.slice(width) + b.text;
  });
  let end = t.body.length;
  while (end > 0) {
    const b = t.body[end - 1]!;
    if (b.kind === "statement" || (b.kind === "comment" && b.indent.length > 0)) break;
    end--;
  }
  return `${out.slice(0, end).join("\n")}\n`;
}

function checkValid(w: GenWorkflow, source: string): void {
  const spec = check(source);
  if (!spec) {
    const errors = tryParseWorkflow(source, FILE);
    throw new Error(`a valid workflow was refused: ${show(source)}\n${JSON.stringify(errors).slice(0, 1000)}`);
  }
  expect(spec.tasks).toHaveLength(w.tasks.length);
  const placed = new Set<string>();
  const byName = new Map(w.tasks.map((t) => [t.name, t]));
  for (const task of spec.tasks) {
    const gen = byName.get(task.name);
    expect(gen, task.name).toBeDefined();
    expect(task.params).toEqual(gen!.params);
    expect(task.options).toEqual(Object.assign({ ...DEFAULT_TASK_OPTIONS }, ...gen!.decorators.map((d) => d.options)));
    expect(task.body, show(source)).toBe(expectedBody(gen!));
    for (const p of task.params) if (!p.upstream.startsWith("inputs.")) expect(placed.has(p.upstream)).toBe(true);
    placed.add(task.name);
  }
}

// ---- Mutations -----------------------------------------------------------------------------------

type Mutator = (rng: Rng, lines: string[], w: GenWorkflow) => void;

const lineAt = (rng: Rng, lines: string[]) => rng.int(Math.max(1, lines.length));
const funLine = (rng: Rng, lines: string[], w: GenWorkflow) =>
  rng.chance(0.7) && w.funLines.length > 0 ? Math.min(rng.pick(w.funLines), lines.length - 1) : lineAt(rng, lines);

function insertAt(line: string, at: number, text: string): string {
  return line.slice(0, at) + text + line.slice(at);
}

const MUTATORS: Mutator[] = [
  // Lines deleted, duplicated, swapped, moved.
  (rng, lines) => void lines.splice(lineAt(rng, lines), 1),
  (rng, lines) => {
    const i = lineAt(rng, lines);
    lines.splice(i, 0, lines[i] ?? "");
  },
  (rng, lines) => {
    const i = lineAt(rng, lines);
    const j = lineAt(rng, lines);
    [lines[i], lines[j]] = [lines[j] ?? "", lines[i] ?? ""];
  },
  (rng, lines) => {
    const [moved = ""] = lines.splice(lineAt(rng, lines), 1);
    lines.splice(lineAt(rng, lines), 0, moved);
  },
  // Random indentation: spaces, tabs, a mix, none; on a body line or a `fun` line.
  (rng, lines, w) => {
    const i = rng.chance(0.3) ? funLine(rng, lines, w) : lineAt(rng, lines);
    lines[i] = rng.word(" \t", 0, 9) + (lines[i] ?? "").replace(/^[ \t]+/, "");
  },
  // Tabs for spaces, on one line or everywhere.
  (rng, lines) => {
    const all = rng.chance(0.3);
    const i = lineAt(rng, lines);
    for (let k = 0; k < lines.length; k++) {
      if (all || k === i) lines[k] = (lines[k] ?? "").replace(/^ +/, (s) => "\t".repeat(Math.ceil(s.length / 4)));
    }
  },
  // A strange character anywhere: unicode, controls, lone surrogates, CR, LF, BOM.
  (rng, lines) => {
    const i = lineAt(rng, lines);
    const line = lines[i] ?? "";
    lines[i] = insertAt(line, rng.int(line.length + 1), rng.pick(STRANGE));
  },
  // A BOM at the start of the file or of a line, or two.
  (rng, lines) => {
    const i = rng.chance(0.5) ? 0 : lineAt(rng, lines);
    lines[i] = "\ufeff".repeat(rng.range(1, 2)) + (lines[i] ?? "");
  },
  // A bad decorator above a task, or a good one repeated.
  (rng, lines, w) => {
    const i = funLine(rng, lines, w);
    const text = rng.chance(0.8) ? rng.pick(BAD_DECORATORS) : decorator(rng).text;
    lines.splice(i, 0, text, ...(rng.chance(0.3) ? [text] : []));
  },
  // Decorators with random arguments.
  (rng, lines, w) => {
    const name = rng.pick(["retries", "timeout", "image", "cpu", "memory", rng.word(LETTERS, 0, 12)]);
    const arg = rng.chance(0.5) ? rng.word("0123456789.-e\"'()ms hGiM,x\\", 0, 14) : String(rng.next() * 10 ** rng.int(30));
    lines.splice(funLine(rng, lines, w), 0, `@${name}(${arg})`);
  },
  // Huge names: a task name, a parameter name, an upstream, a decorator argument.
  (rng, lines, w) => {
    const i = funLine(rng, lines, w);
    const huge = rng.pick(LETTERS.split("")).repeat(rng.pick([64, 101, 1000, 20_000, 100_000]));
    const line = lines[i] ?? "";
    const where = rng.int(4);
    if (where === 0) lines[i] = line.replace(/^fun\s+\w+/, `fun ${huge}`);
    else if (where === 1) lines[i] = line.replace(/\(\s*[\w.-]+/, `(${huge}`);
    else if (where === 2) lines[i] = line.replace(/:\s*[\w.]+\s*\)/, `:${huge})`);
    else lines.splice(i, 0, `@image("${huge}")`);
  },
  // A unicode or keyword task name, a name that differs only in case, a duplicate task.
  (rng, lines, w) => {
    const i = funLine(rng, lines, w);
    const other = w.tasks.length > 0 ? rng.pick(w.tasks).name : "x";
    const name = rng.pick(["fün", "ｆｕｎ", "def", "inputs", "None", "1abc", "a-b", other, other.toUpperCase(), "main"]);
    lines[i] = (lines[i] ?? "").replace(/^fun\s+\w+/, `fun ${name}`);
  },
  // A broken header: no ':', no '(', no ')', 'def', extra text, a body on the header line.
  (rng, lines, w) => {
    const i = funLine(rng, lines, w);
    const line = lines[i] ?? "";
    const edits: ((s: string) => string)[] = [
      (s) => s.replace(":", ""),
      (s) => s.replace("(", ""),
      (s) => s.replace(")", ""),
      (s) => s.replace(/\):/, "):  pass"),
      (s) => s.replace(/^fun/, rng.pick(["def", "Fun", "func", "fun\t", "fun(", "funfun"])),
      (s) => s.replace(/\(/, "(("),
      (s) => s.replace(/\)/, ", , )"),
      (s) => s.replace(/\)\s*:/, ") -> int:"),
      (s) => s.slice(0, rng.int(s.length + 1)),
    ];
    lines[i] = rng.pick(edits)(line);
  },
  // A cycle: a task reads a task written after it, or itself.
  (rng, lines, w) => {
    if (w.tasks.length === 0) return;
    const i = funLine(rng, lines, w);
    const target = rng.pick(w.tasks).name;
    lines[i] = (lines[i] ?? "").replace("(", `(cyc_${rng.int(9)}:${target}, `);
  },
  // Unsafe parameter names and upstreams.
  (rng, lines, w) => {
    const i = funLine(rng, lines, w);
    const bad = rng.pick(["../x", ".hidden", "-rf", "main.py", "REQUIREMENTS.TXT", "a/b", "a\\b", "", "é", "inputs.", "inputs.1x", "inputs", "x y"]);
    lines[i] = (lines[i] ?? "").replace("(", rng.chance(0.5) ? `(${bad}:x, ` : `(p_bad:${bad}, `);
  },
  // A task's body removed, or indented `fun` lines inside a body.
  (rng, lines, w) => {
    const i = funLine(rng, lines, w);
    if (rng.chance(0.5)) {
      while (i + 1 < lines.length && /^[ \t]/.test(lines[i + 1] ?? "")) lines.splice(i + 1, 1);
    } else {
      lines.splice(i + 1, 0, `${rng.word(" \t", 1, 4)}fun nested_${rng.int(9)}():`);
    }
  },
  // A line of grammar tokens, or the file cut short.
  (rng, lines) => {
    let text = "";
    for (let k = rng.range(1, 12); k > 0; k--) text += rng.pick(TOKEN_SOUP);
    lines.splice(lineAt(rng, lines), 0, text);
  },
  (rng, lines) => {
    const i = lineAt(rng, lines);
    lines.length = i + 1;
    lines[i] = (lines[i] ?? "").slice(0, rng.int((lines[i] ?? "").length + 1));
  },
];

/** File names given with the source: shown in every error, so odd and huge ones must stay harmless. */
function fileName(rng: Rng): string {
  if (rng.chance(0.8)) return FILE;
  return rng.pick([
    "",
    "../../etc/passwd",
    "a\u0000b.workflow",
    "\u001b[31mred\u001b[0m.workflow",
    "\u202eexe.workflow",
    "😀".repeat(200),
    "f".repeat(rng.pick([256, 10_000, 1_000_000])),
  ]);
}

// ---- The runs -----------------------------------------------------------------------------------

/** How the inputs are split: property, parses per run, share of TOTAL. */
const PLAN = {
  valid: { perRun: 1, share: 0.04 },
  mutated: { perRun: 6, share: 0.36 },
  rawUtf8Latin1: { perRun: 2, share: 0.44 },
  flippedBytes: { perRun: 4, share: 0.12 },
  tokenSoup: { perRun: 1, share: 0.04 },
};
const runsOf = (p: keyof typeof PLAN) => Math.ceil((TOTAL * PLAN[p].share) / PLAN[p].perRun);
const params = (offset: number, numRuns: number) => ({ seed: SEED + offset, numRuns });
/** A seed for the PRNG; not shrunk (a smaller seed is another input, not a smaller one). */
const prngSeed = fc.noShrink(fc.integer({ min: 0, max: 2 ** 31 - 1 }));

describe("the DSL parser under fuzzing", () => {
  it("parses valid generated workflows back to what was generated", () => {
    fc.assert(
      fc.property(prngSeed, (seed) => {
        const rng = new Rng(seed);
        const w = genWorkflow(rng);
        checkValid(w, render(rng, w.lines));
      }),
      params(1, runsOf("valid")),
    );
  });

  it("answers mutated workflows with a spec or located DslErrors, in bounded time", () => {
    fc.assert(
      fc.property(prngSeed, (seed) => {
        const rng = new Rng(seed);
        const w = genWorkflow(rng);
        const lines = [...w.lines];
        const file = fileName(rng);
        for (let step = 0; step < PLAN.mutated.perRun; step++) {
          rng.pick(MUTATORS)(rng, lines, w);
          check(render(rng, lines), file);
        }
      }),
      params(2, runsOf("mutated")),
    );
  });

  it("answers raw bytes, decoded as UTF-8 (with replacement) and as latin1", () => {
    const utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        check(utf8.decode(bytes));
        check(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1"));
      }),
      params(3, runsOf("rawUtf8Latin1")),
    );
  });

  it("answers valid workflows with random bytes flipped, inserted or cut, decoded both ways", () => {
    const utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
    fc.assert(
      fc.property(prngSeed, (seed) => {
        const rng = new Rng(seed);
        const original = [...Buffer.from(render(rng, genWorkflow(rng).lines), "utf8")];
        for (let variant = 0; variant < PLAN.flippedBytes.perRun / 2; variant++) {
          const bytes = [...original];
          for (let k = rng.range(1, 8); k > 0; k--) {
            const at = rng.int(bytes.length + 1);
            const roll = rng.int(3);
            if (roll === 0) bytes[at] = rng.int(256);
            else if (roll === 1) bytes.splice(at, 0, rng.int(256));
            else bytes.splice(at, rng.range(1, 4));
          }
          const buffer = Buffer.from(bytes);
          check(utf8.decode(buffer));
          check(buffer.toString("latin1"));
        }
      }),
      params(4, runsOf("flippedBytes")),
    );
  });

  it("answers text made of grammar tokens", () => {
    fc.assert(
      fc.property(prngSeed, (seed) => {
        const rng = new Rng(seed);
        let text = "";
        for (let k = rng.range(0, 120); k > 0; k--) text += rng.pick(TOKEN_SOUP);
        check(text);
      }),
      params(5, runsOf("tokenSoup")),
    );
  });

  it(`parsed at least ${TOTAL} inputs in all`, () => {
    // Runs after the properties above (vitest runs a file's tests in order).
    expect(parsed).toBeGreaterThanOrEqual(TOTAL);
    console.log(`DSL fuzz: ${parsed} inputs parsed (seed ${SEED})`);
  });
});

// ---- Pathological inputs ------------------------------------------------------------------------

const repeatLines = (n: number, line: (i: number) => string) => Array.from({ length: n }, (_, i) => line(i)).join("");

describe("the DSL parser on pathological inputs", () => {
  const cases: [string, () => string, "ok" | "errors"][] = [
    ["a 10,000-deep chain", () => `fun t0():\n    pass\n${repeatLines(9_999, (i) => `fun t${i + 1}(x:t${i}):\n    pass\n`)}`, "ok"],
    ["a 10,000-task cycle", () => `fun t0(x:t9999):\n    pass\n${repeatLines(9_999, (i) => `fun t${i + 1}(x:t${i}):\n    pass\n`)}`, "errors"],
    ["10,000 two-task cycles", () => repeatLines(10_000, (i) => `fun a${i}(x:b${i}):\n    pass\nfun b${i}(x:a${i}):\n    pass\n`), "errors"],
    ["300 tasks each reading all 300", () => repeatLines(300, (i) => `fun d${i}(${repeatLines(300, (j) => `p${j}:d${j},`)}):\n    pass\n`), "errors"],
    ["a 1 -> 20,000 -> 1 fan-out", () => `fun r():\n    pass\n${repeatLines(20_000, (i) => `fun m${i}(x:r):\n    pass\n`)}fun z(${repeatLines(20_000, (i) => `p${i}:m${i},`)}):\n    pass\n`, "ok"],
    ["a 5 MB body line", () => `fun a():\n    print('${"x".repeat(5_000_000)}')\n`, "ok"],
    ["a 1 MB task name", () => `fun ${"a".repeat(1_000_000)}():\n    pass\n`, "errors"],
    ["a 1 MB decorator argument", () => `@image("${"a".repeat(1_000_000)}")\nfun a():\n    pass\n`, "errors"],
    ["an unterminated 1 MB string in a decorator", () => `@image("${"a".repeat(1_000_000)}\nfun a():\n    pass\n`, "errors"],
    ["1 MB of '(' in a header", () => `fun a${"(".repeat(1_000_000)}\n    pass\n`, "errors"],
    ["100,000 parameters", () => `fun a():\n    pass\nfun b(${repeatLines(100_000, (i) => `p${i}:a, `)}):\n    pass\n`, "ok"],
    ["100,000 duplicate parameters", () => `fun a():\n    pass\nfun b(${repeatLines(100_000, () => "p:a, ")}):\n    pass\n`, "errors"],
    ["100,000 unknown upstreams", () => `fun a():\n    pass\nfun b(${repeatLines(100_000, (i) => `p${i}:zz${i}, `)}):\n    pass\n`, "errors"],
    ["10,000 misspelt upstreams among 10,000 tasks", () => repeatLines(10_000, (i) => `fun task_${i}(x:tsak_${i}):\n    pass\n`), "errors"],
    ["100,000 decorators", () => `${"@retries(1)\n".repeat(100_000)}fun a():\n    pass\n`, "errors"],
    ["50,000 unknown decorators", () => `${"@retriez(1)\n".repeat(50_000)}fun a():\n    pass\n`, "errors"],
    ["1,000,000 spaces of indentation", () => `fun a():\n${" ".repeat(1_000_000)}pass\n`, "ok"],
    ["500,000 CR line ends", () => "\r".repeat(500_000), "errors"],
    ["1,000,000 NUL characters", () => `fun a():\n    print('${"\u0000".repeat(1_000_000)}')\n`, "errors"],
    ["200,000 lines of NUL", () => "\u0000\n".repeat(200_000), "errors"],
    ["200,000 'fun' lines", () => "fun\n".repeat(200_000), "errors"],
    ["100,000 indented 'fun' lines in a body", () => `fun a():\n${"    fun b():\n".repeat(100_000)}`, "errors"],
    ["50,000 lines of alternating indentation", () => `fun a():\n${"    x\n\tx\n".repeat(25_000)}`, "errors"],
    ["50,000 duplicate tasks", () => "fun a():\n    pass\n".repeat(50_000), "errors"],
    ["20,000 tasks that differ in case", () => repeatLines(20_000, (i) => `fun ${i % 2 ? "A" : "a"}${i >> 1}():\n    pass\n`), "errors"],
    ["1,000,000 BOMs", () => "\ufeff".repeat(1_000_000), "errors"],
    ["1,000,000 emoji", () => "😀".repeat(1_000_000), "errors"],
    ["1,000,000 lone surrogates in a body", () => `fun a():\n    x = '${"\ud800".repeat(1_000_000)}'\n`, "ok"],
    ["a 1 MB file of stray top-level lines", () => "x\n".repeat(500_000), "errors"],
  ]; // prettier-ignore

  for (const [label, make, expected] of cases) {
    it(`answers ${label} in bounded time`, () => {
      const source = make();
      const spec = check(source, FILE, PATHOLOGICAL_MS);
      expect(spec === null ? "errors" : "ok").toBe(expected);
    });
  }

  it("keeps every error of a file with a huge name small, with the name's end", () => {
    // Each error carries the file name: 501 copies of a 5 MB name once ran the process out of memory.
    const file = `${"f".repeat(5_000_000)}.workflow`;
    const start = performance.now();
    // 600 stray lines and "workflow has no tasks": 601 errors.
    const result = tryParseWorkflow("x\n".repeat(600), file);
    expect(performance.now() - start).toBeLessThan(PATHOLOGICAL_MS);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toHaveLength(MAX_ERRORS + 1);
    for (const e of result.errors) {
      expect(e.file.length).toBeLessThanOrEqual(MAX_FILE_NAME);
      expect(e.file.endsWith("ffff.workflow")).toBe(true);
    }
    expect(result.errors.at(-1)?.message).toBe(`too many errors: ${601 - MAX_ERRORS} more not shown`);
    expect(new DslErrors(result.errors).message.length).toBeLessThan(1_000_000);
  });

  it("reports a NUL character where it is, even in a comment, as Python would refuse it", () => {
    const result = tryParseWorkflow("fun a():\n    print('x')  # a\u0000b\n", FILE);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors.map((e) => [e.line, e.column, e.message])).toEqual([
      [2, 20, "NUL character (U+0000): Python source text cannot contain it"],
    ]);
  });

  it("counts errors beyond the ones it keeps, in position order", () => {
    // More errors than the collector keeps, found out of position order (the validation's come last).
    const source = `${repeatLines(3_000, (i) => `fun t${i}(x:nope${i}):\n    pass\n`)}x\n`;
    const result = tryParseWorkflow(source, FILE);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const lines = result.errors.slice(0, MAX_ERRORS).map((e) => e.line);
    expect(lines).toEqual([...lines].sort((a, b) => a - b));
    expect(lines[0]).toBe(1);
    expect(result.errors.at(-1)?.message).toBe(`too many errors: ${3_001 - MAX_ERRORS} more not shown`);
  });
});
