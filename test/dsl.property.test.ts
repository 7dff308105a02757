import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DEFAULT_TASK_OPTIONS, type TaskOptions, type WorkflowSpec } from "../shared/model.ts";
import { DslErrors, isInputRef, parseWorkflow, tryParseWorkflow } from "../shared/dsl/index.ts";

/**
 * Whatever the input, the parser returns a spec or throws DslErrors whose every error points inside the
 * file; a spec is always a valid DAG in topological order. Returns the spec, or null for errors.
 */
function checkOutcome(source: string): WorkflowSpec | null {
  const lines = source.replace(/^\uFEFF/, "").split(/\r\n|\r|\n/);
  let spec: WorkflowSpec;
  try {
    spec = parseWorkflow(source, "p.workflow");
  } catch (err) {
    if (!(err instanceof DslErrors)) throw err;
    expect(err.errors.length).toBeGreaterThan(0);
    for (const e of err.errors) {
      expect(e.line).toBeGreaterThanOrEqual(1);
      expect(e.line).toBeLessThanOrEqual(lines.length);
      expect(e.column).toBeGreaterThanOrEqual(1);
      expect(e.column).toBeLessThanOrEqual((lines[e.line - 1] ?? "").length + 1);
      expect(e.lineText).toBe(lines[e.line - 1]);
      expect(e.format()).toMatch(/\^$/);
    }
    const again = tryParseWorkflow(source, "p.workflow");
    expect(again.ok ? [] : again.errors.map((e) => e.format())).toEqual(err.errors.map((e) => e.format()));
    return null;
  }
  checkSpec(spec, lines.length);
  return spec;
}

function checkSpec(spec: WorkflowSpec, lineCount: number): void {
  expect(spec.tasks.length).toBeGreaterThan(0);
  const placed = new Set<string>();
  for (const task of spec.tasks) {
    for (const p of task.params) {
      if (!isInputRef(p.upstream))
        expect(placed.has(p.upstream), `${p.upstream} before ${task.name}`).toBe(true);
    }
    expect(placed.has(task.name)).toBe(false);
    placed.add(task.name);
    expect(task.body.endsWith("\n")).toBe(true);
    expect(task.body.endsWith("\n\n")).toBe(false);
    expect(task.body.trim()).not.toBe("");
    expect(task.line).toBeGreaterThanOrEqual(1);
    expect(task.line).toBeLessThanOrEqual(lineCount);
  }
}

// Pieces of the grammar, so that random text often gets past the first character of a line.
const TOKENS = [
  "fun ", "fun", "def ", "@retries(", "@timeout(", "@image(", "@cpu(", "@memory(", "@", "(", ")", ":", ",",
  "inputs.", "inputs", "a", "b", "x", "main.py", "..", "'5m'", '"1Gi"', "2", "-1", "#", " ", "    ", "\t",
  "\n", "\r\n", "\r", "\uFEFF", "é", "😀", "\u0000", "\u001b[2J", "\u202e", "\ud800", "pass", "print(1)",
]; // prettier-ignore

const RUNS = { numRuns: 300 };

describe("the parser on any input", () => {
  it("returns a spec or DslErrors located inside the file, for arbitrary text", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 200 }), (source) => {
        checkOutcome(source);
      }),
      RUNS,
    );
  });

  it("does the same for any code points mixed with line breaks, blanks and brackets", () => {
    const char = fc.oneof(
      fc.integer({ min: 0, max: 0x10ffff }).map((c) => String.fromCodePoint(c)),
      fc.constantFrom("\n", "\r", "\t", " ", "(", ")", ":", "@", "#"),
    );
    fc.assert(
      fc.property(fc.array(char, { maxLength: 300 }), (chars) => {
        checkOutcome(chars.join(""));
      }),
      RUNS,
    );
  });

  it("does the same for text made of grammar pieces", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...TOKENS), { maxLength: 80 }), (tokens) => {
        checkOutcome(tokens.join(""));
      }),
      { numRuns: 1000 },
    );
  });
});

// ---- Random valid workflows --------------------------------------------------------------------

interface GenLine {
  kind: "statement" | "comment" | "blank";
  /** Indentation levels beyond the body's own (statements); total units of indentation (comments). */
  depth: number;
  text: string;
}

interface GenTask {
  name: string;
  params: { name: string; upstream: string }[];
  decorators: { text: string; options: Partial<TaskOptions> }[];
  indent: { char: " " | "\t"; width: number };
  lines: GenLine[];
  headerSpacing: string;
  headerComment: string;
}

const blank = fc.constantFrom("", " ", "\t", "  ");
const identifier = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,8}$/);
const fileName = fc
  .stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,11}$/)
  .filter((n) => !["main.py", "requirements.txt"].includes(n.toLowerCase()));
const statement = fc
  .string({ unit: fc.constantFrom(..."abc xyz=()'\"+1.:#é😀\t[]"), minLength: 1, maxLength: 20 })
  .map((s) => `v${s}`);
const commentText = fc
  .string({ unit: fc.constantFrom(..."abc #:é\t()@fun"), maxLength: 15 })
  .map((s) => `#${s}`);

const decoratorChoices: fc.Arbitrary<{ key: keyof TaskOptions; text: string; options: Partial<TaskOptions> }>[] = [
  fc.integer({ min: 0, max: 100 }).map((n) => ({ key: "retries", text: `@retries(${n})`, options: { retries: n } })),
  fc.integer({ min: 1, max: 3600 }).map((n) => ({ key: "timeoutSeconds", text: `@timeout(${n})`, options: { timeoutSeconds: n } })),
  fc.integer({ min: 1, max: 120 }).map((n) => ({ key: "timeoutSeconds", text: `@timeout("${n}m")`, options: { timeoutSeconds: n * 60 } })),
  fc.constantFrom("python:3.12-slim", "ghcr.io/acme/etl@sha256:abc").map((img) => ({ key: "image", text: `@image('${img}')`, options: { image: img } })),
  fc.integer({ min: 1, max: 4000 }).map((n) => ({ key: "cpu", text: `@cpu("${n}m")`, options: { cpu: `${n}m` } })),
  fc.integer({ min: 1, max: 4096 }).map((n) => ({ key: "memory", text: `@memory("${n}Mi")`, options: { memory: `${n}Mi` } })),
]; // prettier-ignore

const bodyLine: fc.Arbitrary<GenLine> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("statement" as const), depth: fc.integer({ min: 0, max: 2 }), text: statement }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("comment" as const), depth: fc.integer({ min: 0, max: 6 }), text: commentText }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("blank" as const), depth: fc.constant(0), text: blank }) },
); // prettier-ignore

/** Task i reads only tasks before it (and inputs), so generation order is a topological order. */
function taskArbitrary(i: number): fc.Arbitrary<GenTask> {
  return fc.record({
    name: identifier.map((base) => `${base}_${i}`),
    params: fc.uniqueArray(
      fc.record({
        name: fileName,
        upstream: i === 0 ? identifier.map((n) => `inputs.${n}`) : fc.oneof(fc.nat(i - 1).map(String), identifier.map((n) => `inputs.${n}`)),
      }),
      { maxLength: 4, selector: (p) => p.name.toLowerCase() },
    ),
    decorators: fc.uniqueArray(fc.oneof(...decoratorChoices), { maxLength: 4, selector: (d) => d.key }),
    indent: fc.record({ char: fc.constantFrom(" " as const, "\t" as const), width: fc.integer({ min: 1, max: 8 }) }),
    lines: fc.tuple(statement, fc.array(bodyLine, { maxLength: 8 }), fc.nat()).map(([first, rest, at]) => {
      const lines = [...rest];
      lines.splice(at % (rest.length + 1), 0, { kind: "statement", depth: 0, text: first });
      return lines;
    }),
    headerSpacing: blank,
    headerComment: fc.constantFrom("", "  # note", "#x"),
  }); // prettier-ignore
}

const workflowArbitrary = fc.integer({ min: 1, max: 12 }).chain((n) =>
  fc.record({
    tasks: fc.tuple(...Array.from({ length: n }, (_, i) => taskArbitrary(i))),
    order: fc.shuffledSubarray(
      Array.from({ length: n }, (_, i) => i),
      { minLength: n, maxLength: n },
    ),
    shuffle: fc.boolean(),
    newline: fc.constantFrom("\n", "\r\n", "\r"),
    bom: fc.boolean(),
    finalNewline: fc.boolean(),
    between: fc.array(fc.constantFrom("", "# next", "   ", "#"), { maxLength: 2 }),
  }),
);

/** Resolves numbered upstreams to names. */
function upstreamName(tasks: readonly GenTask[], upstream: string): string {
  return upstream.startsWith("inputs.") ? upstream : (tasks[Number(upstream)] as GenTask).name;
}

function renderTask(tasks: readonly GenTask[], task: GenTask, between: readonly string[]): string[] {
  const { char, width } = task.indent;
  const s = task.headerSpacing;
  const params = task.params.map((p) => `${p.name}${s}:${s}${upstreamName(tasks, p.upstream)}`).join(`,${s}`);
  const out: string[] = [];
  for (const d of task.decorators) out.push(d.text, ...between);
  out.push(`fun ${task.name}(${s}${params}${s}):${task.headerComment}`);
  for (const line of task.lines) {
    if (line.kind === "blank") out.push(line.text);
    else if (line.kind === "comment") out.push(`${char.repeat(line.depth)}${line.text}`);
    else out.push(`${char.repeat(width * (1 + line.depth))}${line.text}`);
  }
  out.push(...between);
  return out;
}

/** The body as the DSL promises it: Python's dedent, up to the last indented line. */
function expectedBody(task: GenTask): string {
  const { char, width } = task.indent;
  const out = task.lines.map((line) => {
    if (line.kind === "blank") return "";
    if (line.kind === "comment") return `${char.repeat(Math.max(0, line.depth - width))}${line.text}`;
    return `${char.repeat(width * line.depth)}${line.text}`;
  });
  let end = task.lines.length;
  while (end > 0 && !isIndented(task.lines[end - 1] as GenLine)) end--;
  return `${out.slice(0, end).join("\n")}\n`;
}

function isIndented(line: GenLine): boolean {
  return line.kind === "statement" || (line.kind === "comment" && line.depth > 0);
}

describe("random valid workflows", () => {
  it("parse back to the tasks they were made from, in a dependency order", () => {
    fc.assert(
      fc.property(workflowArbitrary, (w) => {
        const order = w.shuffle ? w.order : w.tasks.map((_, i) => i);
        const lines = order.flatMap((i) => renderTask(w.tasks, w.tasks[i] as GenTask, w.between));
        const source = (w.bom ? "\uFEFF" : "") + lines.join(w.newline) + (w.finalNewline ? w.newline : "");
        const spec = checkOutcome(source);
        expect(spec, source).not.toBeNull();
        const byName = new Map(spec!.tasks.map((t) => [t.name, t]));
        for (const task of w.tasks) {
          expect(byName.get(task.name)).toMatchObject({
            params: task.params.map((p) => ({ name: p.name, upstream: upstreamName(w.tasks, p.upstream) })),
            body: expectedBody(task),
            options: Object.assign({ ...DEFAULT_TASK_OPTIONS }, ...task.decorators.map((d) => d.options)),
          });
        }
        expect(spec!.tasks).toHaveLength(w.tasks.length);
        // Written in a dependency order, the tasks keep the order they were written in.
        if (!w.shuffle) expect(spec!.tasks.map((t) => t.name)).toEqual(w.tasks.map((t) => t.name));
      }),
      { numRuns: 200 },
    );
  });
});

// ---- Mutations of valid workflows --------------------------------------------------------------

type Mutation =
  | { op: "delete" | "duplicateLine" | "deleteLine" | "indentLine" | "dedentLine"; at: number }
  | { op: "insert"; at: number; text: string }
  | { op: "swapLines"; at: number; other: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constantFrom("delete", "duplicateLine", "deleteLine", "indentLine", "dedentLine" as const), at: fc.nat() }),
  fc.record({ op: fc.constant("insert" as const), at: fc.nat(), text: fc.constantFrom(...TOKENS) }),
  fc.record({ op: fc.constant("swapLines" as const), at: fc.nat(), other: fc.nat() }),
); // prettier-ignore

function mutate(source: string, m: Mutation): string {
  const at = m.at % (source.length + 1);
  const lines = source.split("\n");
  const line = m.at % lines.length;
  switch (m.op) {
    case "delete":
      return source.slice(0, at) + source.slice(at + 1);
    case "insert":
      return source.slice(0, at) + m.text + source.slice(at);
    case "duplicateLine":
      lines.splice(line, 0, lines[line] ?? "");
      break;
    case "deleteLine":
      lines.splice(line, 1);
      break;
    case "indentLine":
      lines[line] = `  ${lines[line]}`;
      break;
    case "dedentLine":
      lines[line] = (lines[line] ?? "").replace(/^[ \t]/, "");
      break;
    case "swapLines": {
      const other = m.other % lines.length;
      [lines[line], lines[other]] = [lines[other] ?? "", lines[line] ?? ""];
      break;
    }
  }
  return lines.join("\n");
}

describe("mutated workflows", () => {
  it("give a valid spec or located errors, never an exception", () => {
    fc.assert(
      fc.property(workflowArbitrary, fc.array(mutation, { minLength: 1, maxLength: 4 }), (w, mutations) => {
        const lines = w.tasks.flatMap((t) => renderTask(w.tasks, t, w.between));
        checkOutcome(mutations.reduce(mutate, lines.join("\n")));
      }),
      { numRuns: 400 },
    );
  });
});
