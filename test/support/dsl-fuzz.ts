import type { TaskOptions } from "../../shared/model.ts";

/**
 * The generators of test/hostile.dsl.test.ts: a seeded PRNG (mulberry32), valid workflows made from the
 * DSL's grammar (tasks reading earlier tasks and inputs, decorators, bodies with nested indentation,
 * comments, blank lines, odd characters, any line terminator, a BOM), and mutations of them.
 */

/** The file name the fuzzer parses with, unless fileName() picks a hostile one. */
export const FILE = "fuzz.workflow";

export class Rng {
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

export const TOKEN_SOUP = [
  "fun ", "fun", "def ", "@retries(", "@timeout(", "@image(", "@cpu(", "@memory(", "@", "(", ")", ":", ",",
  "inputs.", "inputs", "a", "b", "x", "main.py", "..", "'5m'", '"1Gi"', "2", "-1", "#", " ", "    ", "\t",
  "\n", "\r\n", "\r", "\uFEFF", "é", "😀", "\u0000", "\u001b[2J", "\u202e", "\ud800", "pass", "print(1)",
]; // prettier-ignore

export interface GenTask {
  name: string;
  params: { name: string; upstream: string }[];
  decorators: { text: string; options: Partial<TaskOptions> }[];
  indent: string;
  body: { text: string; kind: "statement" | "comment" | "blank"; indent: string }[];
}

export interface GenWorkflow {
  tasks: GenTask[];
  /** The file as lines, without line terminators. */
  lines: string[];
  /** Index in `lines` of each task's `fun` line. */
  funLines: number[];
}

export function decorator(rng: Rng): { key: keyof TaskOptions; text: string; options: Partial<TaskOptions> } {
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
export function genWorkflow(rng: Rng): GenWorkflow {
  const tasks: GenTask[] = [];
  for (let i = rng.range(1, 10); i > 0; i--)
    tasks.push(
      genTask(
        rng,
        tasks.length,
        tasks.map((t) => t.name),
      ),
    );
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
    lines.push(
      `fun ${t.name}${s}(${s}${params}${trailing}${s})${s}:${rng.pick(["", "  # note", "#x", " "])}`,
    );
    for (const b of t.body) lines.push(b.kind === "blank" ? b.text : b.indent + b.text);
    for (let k = rng.int(3); k > 0; k--) lines.push(rng.pick(["", "# next", "   ", "#", "\t"]));
  }
  return { tasks, lines, funLines };
}

/** Joins lines with one terminator, or a random one per line; maybe a BOM and a final terminator. */
export function render(rng: Rng, lines: readonly string[]): string {
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
export function expectedBody(t: GenTask): string {
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

// ---- Mutations -----------------------------------------------------------------------------------

export type Mutator = (rng: Rng, lines: string[], w: GenWorkflow) => void;

const lineAt = (rng: Rng, lines: string[]) => rng.int(Math.max(1, lines.length));
const funLine = (rng: Rng, lines: string[], w: GenWorkflow) =>
  rng.chance(0.7) && w.funLines.length > 0
    ? Math.min(rng.pick(w.funLines), lines.length - 1)
    : lineAt(rng, lines);

function insertAt(line: string, at: number, text: string): string {
  return line.slice(0, at) + text + line.slice(at);
}

export const MUTATORS: Mutator[] = [
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
      if (all || k === i)
        lines[k] = (lines[k] ?? "").replace(/^ +/, (s) => "\t".repeat(Math.ceil(s.length / 4)));
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
    const arg = rng.chance(0.5)
      ? rng.word("0123456789.-e\"'()ms hGiM,x\\", 0, 14)
      : String(rng.next() * 10 ** rng.int(30));
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
    const name = rng.pick([
      "fün",
      "ｆｕｎ",
      "def",
      "inputs",
      "None",
      "1abc",
      "a-b",
      other,
      other.toUpperCase(),
      "main",
    ]);
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
    const bad = rng.pick([
      "../x",
      ".hidden",
      "-rf",
      "main.py",
      "REQUIREMENTS.TXT",
      "a/b",
      "a\\b",
      "",
      "é",
      "inputs.",
      "inputs.1x",
      "inputs",
      "x y",
    ]);
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
export function fileName(rng: Rng): string {
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
