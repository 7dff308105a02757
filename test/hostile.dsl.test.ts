import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DslErrors, parseWorkflow, tryParseWorkflow } from "../shared/dsl/index.ts";
import { MAX_ERRORS, MAX_FILE_NAME } from "../shared/dsl/errors.ts";
import { DEFAULT_TASK_OPTIONS, type TaskOptions, type WorkflowSpec } from "../shared/model.ts";
import {
  FILE,
  fileName,
  genWorkflow,
  MUTATORS,
  render,
  Rng,
  TOKEN_SOUP,
  expectedBody,
  type GenWorkflow,
} from "./support/dsl-fuzz.ts";

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

console.log(
  `DSL fuzz: seed ${SEED}, ${TOTAL} inputs (replay with DWOP_FUZZ_SEED=${SEED} DWOP_FUZZ_RUNS=${TOTAL})`,
);

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

function checkValid(w: GenWorkflow, source: string): void {
  const spec = check(source);
  if (!spec) {
    const errors = tryParseWorkflow(source, FILE);
    throw new Error(
      `a valid workflow was refused: ${show(source)}\n${JSON.stringify(errors).slice(0, 1000)}`,
    );
  }
  // One comparison of everything (cheap), then expect's diff only when they differ.
  const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : 1);
  const actual = spec.tasks
    .map(({ name, params, options, body }) => ({ name, params, options, body }))
    .sort(byName);
  const expected = w.tasks
    .map((t) => ({
      name: t.name,
      params: t.params,
      options: Object.assign(
        { ...DEFAULT_TASK_OPTIONS },
        ...t.decorators.map((d) => d.options),
      ) as TaskOptions,
      body: expectedBody(t),
    }))
    .sort(byName);
  if (JSON.stringify(actual) !== JSON.stringify(expected)) expect(actual, show(source)).toEqual(expected);
}

// ---- The runs -----------------------------------------------------------------------------------

/** How the inputs are split: property, parses per run, share of TOTAL. */
const PLAN = {
  valid: { perRun: 1, share: 0.03 },
  mutated: { perRun: 6, share: 0.3 },
  rawUtf8Latin1: { perRun: 2, share: 0.55 },
  flippedBytes: { perRun: 4, share: 0.08 },
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

const repeatLines = (n: number, line: (i: number) => string) =>
  Array.from({ length: n }, (_, i) => line(i)).join("");

/** `n` distinct three-character names (a letter or "_", then letters, digits or "_"). */
function unknownShortNames(n: number): string[] {
  const first = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_";
  const rest = `${first}0123456789`;
  return Array.from({ length: n }, (_, i) => {
    const c = i % rest.length;
    const b = Math.floor(i / rest.length) % rest.length;
    return `${first[Math.floor(i / rest.length ** 2)]}${rest[b]}${rest[c]}`;
  });
}

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
    ["140,000 unknown upstreams of another length than 9,999 tasks (1 MiB)", () => `fun z(${unknownShortNames(140_000).map((n) => `p:${n}`).join(",")}):\n pass\n${repeatLines(9_999, (i) => `fun t${String(i).padStart(5, "0")}():\n pass\n`)}`, "errors"],
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
