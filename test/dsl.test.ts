import { describe, expect, it } from "vitest";
import { DEFAULT_TASK_OPTIONS, type TaskOptions } from "../shared/model.ts";
import {
  DslError,
  DslErrors,
  isInputRef,
  parseWorkflow,
  toDot,
  toMermaid,
  tryParseWorkflow,
  workflowInputs,
} from "../shared/dsl/index.ts";

/** The errors of a file that must not parse, as plain {line, column, message}. */
function errorsOf(source: string): { line: number; column: number; message: string }[] {
  const result = tryParseWorkflow(source, "t.workflow");
  if (result.ok) throw new Error(`expected errors, got ${result.spec.tasks.length} tasks`);
  return result.errors.map(({ line, column, message }) => ({ line, column, message }));
}

/** The single error of a file, so each test pins exactly one mistake. */
function onlyError(source: string): { line: number; column: number; message: string } {
  const errors = errorsOf(source);
  expect(errors).toHaveLength(1);
  return errors[0]!;
}

function options(overrides: Partial<TaskOptions>): TaskOptions {
  return { ...DEFAULT_TASK_OPTIONS, ...overrides };
}

const SEED = `fun extract():
    print("a,b,c")

fun transform(raw:extract):
    print(open("raw").read().upper())
`;

describe("parsing valid workflows", () => {
  it("parses the seed example", () => {
    expect(parseWorkflow(SEED, "etl.workflow")).toEqual({
      tasks: [
        { name: "extract", params: [], body: 'print("a,b,c")\n', options: DEFAULT_TASK_OPTIONS, line: 1 },
        {
          name: "transform",
          params: [{ name: "raw", upstream: "extract" }],
          body: 'print(open("raw").read().upper())\n',
          options: DEFAULT_TASK_OPTIONS,
          line: 4,
        },
      ],
    });
  });

  it("parses a diamond, with blanks around ':' and ',' and a comment after the header", () => {
    const spec = parseWorkflow(
      [
        "fun a():",
        "    pass",
        "fun b(x : a):",
        "    pass",
        "fun c(x:a):",
        "    pass",
        "fun d(left:b,\tright :\tc ):  # joins both",
        "    pass",
      ].join("\n"),
    );
    expect(spec.tasks.map((t) => t.name)).toEqual(["a", "b", "c", "d"]);
    expect(spec.tasks[3]!.params).toEqual([
      { name: "left", upstream: "b" },
      { name: "right", upstream: "c" },
    ]);
  });

  it("orders tasks so upstreams come first, keeping source order otherwise", () => {
    const spec = parseWorkflow(
      [
        "fun report(x:clean):",
        "    pass",
        "fun other():",
        "    pass",
        "fun clean(r:load):",
        "    pass",
        "fun load():",
        "    pass",
      ].join("\n"),
    );
    expect(spec.tasks.map((t) => t.name)).toEqual(["other", "load", "clean", "report"]);
  });

  it("accepts a trailing comma and a parameter file name with dots and dashes", () => {
    const spec = parseWorkflow("fun a():\n    pass\nfun b(raw-data.csv:a,):\n    pass\n");
    expect(spec.tasks[1]!.params).toEqual([{ name: "raw-data.csv", upstream: "a" }]);
  });

  it("lets two parameters read the same upstream", () => {
    const spec = parseWorkflow("fun a():\n    pass\nfun b(x:a, y:a):\n    pass\n");
    expect(spec.tasks.map((t) => t.name)).toEqual(["a", "b"]);
  });
});

describe("decorators", () => {
  it("sets every option, with comments and blank lines between decorators and fun", () => {
    const spec = parseWorkflow(
      [
        "@retries(2)",
        "@timeout(30)   # seconds",
        "",
        "# the image has pandas",
        "@image('python:3.12-slim')",
        '@cpu("500m")',
        '@memory("256Mi")',
        '@pool("gpu-a100")',
        "@priority(-7)",
        "fun a():",
        "    pass",
        "fun b():",
        "    pass",
      ].join("\n"),
    );
    expect(spec.tasks[0]!.options).toEqual({
      retries: 2,
      timeoutSeconds: 30,
      image: "python:3.12-slim",
      cpu: "500m",
      memory: "256Mi",
      pool: "gpu-a100",
      priority: -7,
    });
    expect(spec.tasks[1]!.options).toEqual(DEFAULT_TASK_OPTIONS);
  });

  it.each([
    ['"30"', 30],
    ['"30s"', 30],
    ['"5m"', 300],
    ['"1h"', 3600],
    ['"1.5h"', 5400],
    ['"1.1m"', 66],
    ["600", 600],
  ])("reads @timeout(%s) as %d seconds", (arg, seconds) => {
    expect(parseWorkflow(`@timeout(${arg})\nfun a():\n    pass\n`).tasks[0]!.options).toEqual(
      options({ timeoutSeconds: seconds }),
    );
  });

  it("accepts a CPU count written as a number", () => {
    expect(parseWorkflow("@cpu(2)\nfun a():\n    pass\n").tasks[0]!.options.cpu).toBe("2");
  });

  it.each([
    ["@retries(101)", 10, "@retries takes a whole number from 0 to 100, e.g. @retries(2)"],
    ["@retries(-1)", 10, "@retries takes a whole number from 0 to 100, e.g. @retries(2)"],
    ['@retries("2")', 10, "@retries takes a whole number from 0 to 100, e.g. @retries(2)"],
    ["@retries(1.0)", 10, "@retries takes a whole number from 0 to 100, e.g. @retries(2)"],
    [
      "@timeout(0)",
      10,
      '@timeout takes a whole number of seconds from 1 to 604800 (7 days), or a string such as "30s", "5m" or "1.5h"',
    ],
    [
      '@timeout("5d")',
      10,
      '@timeout takes a whole number of seconds from 1 to 604800 (7 days), or a string such as "30s", "5m" or "1.5h"',
    ],
    [
      '@timeout("0.5s")',
      10,
      '@timeout takes a whole number of seconds from 1 to 604800 (7 days), or a string such as "30s", "5m" or "1.5h"',
    ],
    [
      "@timeout(8d)",
      10,
      '@timeout takes a whole number of seconds from 1 to 604800 (7 days), or a string such as "30s", "5m" or "1.5h"',
    ],
    ["@image(3)", 8, '@image takes a quoted image reference, e.g. @image("python:3.12-slim")'],
    ['@image("a b")', 8, '@image takes a quoted image reference, e.g. @image("python:3.12-slim")'],
    ['@cpu("0")', 6, '@cpu takes a positive CPU quantity, e.g. @cpu("500m") or @cpu("2")'],
    ['@cpu("1.5m")', 6, '@cpu takes a positive CPU quantity, e.g. @cpu("500m") or @cpu("2")'],
    [
      "@memory(256)",
      9,
      '@memory takes a quoted positive memory quantity, e.g. @memory("256Mi") or @memory("1Gi")',
    ],
    [
      '@memory("256MB")',
      9,
      '@memory takes a quoted positive memory quantity, e.g. @memory("256Mi") or @memory("1Gi")',
    ],
    [
      "@pool(gpu)",
      7,
      '@pool takes a quoted pool name (letters, digits, "_", "." and "-", up to 64), e.g. @pool("gpu")',
    ],
    [
      '@pool("")',
      7,
      '@pool takes a quoted pool name (letters, digits, "_", "." and "-", up to 64), e.g. @pool("gpu")',
    ],
    [
      '@pool("a b")',
      7,
      '@pool takes a quoted pool name (letters, digits, "_", "." and "-", up to 64), e.g. @pool("gpu")',
    ],
    [
      '@pool("-x")',
      7,
      '@pool takes a quoted pool name (letters, digits, "_", "." and "-", up to 64), e.g. @pool("gpu")',
    ],
    [
      `@pool("${"a".repeat(65)}")`,
      7,
      '@pool takes a quoted pool name (letters, digits, "_", "." and "-", up to 64), e.g. @pool("gpu")',
    ],
    [
      "@priority(101)",
      11,
      "@priority takes a whole number from -100 to 100 (higher runs first), e.g. @priority(10)",
    ],
    [
      "@priority(-101)",
      11,
      "@priority takes a whole number from -100 to 100 (higher runs first), e.g. @priority(10)",
    ],
    [
      "@priority(1.5)",
      11,
      "@priority takes a whole number from -100 to 100 (higher runs first), e.g. @priority(10)",
    ],
    [
      '@priority("1")',
      11,
      "@priority takes a whole number from -100 to 100 (higher runs first), e.g. @priority(10)",
    ],
  ])("rejects %s at its argument", (decorator, column, message) => {
    expect(onlyError(`${decorator}\nfun a():\n    pass\n`)).toEqual({ line: 1, column, message });
  });

  it.each([
    ["@retries", 9, "expected '(' after '@retries': a decorator takes one argument, e.g. @retries(2)"],
    ["@retries()", 10, "expected an argument: a number or a quoted string"],
    ["@retries(1, 2)", 11, "'@retries' takes exactly one argument"],
    ["@retries(1", 11, "expected ')' after the argument of '@retries'"],
    ["@retries(1) x", 13, "unexpected text after the decorator"],
    ['@image("python', 8, "unterminated string"],
    ['@image("a\\"b")', 10, "escape sequences are not supported here"],
    ["@", 2, "expected a decorator name after '@'"],
  ])("rejects the malformed decorator %s", (decorator, column, message) => {
    expect(onlyError(`${decorator}\nfun a():\n    pass\n`)).toEqual({ line: 1, column, message });
  });

  it("rejects an unknown decorator, suggesting the close one", () => {
    expect(onlyError("@retry(2)\nfun a():\n    pass\n")).toEqual({
      line: 1,
      column: 2,
      message:
        "unknown decorator '@retry' (did you mean '@retries'?); known: @retries, @timeout, @image, @cpu, @memory, @pool, @priority",
    });
  });

  it("rejects a decorator twice on one task, at the second", () => {
    expect(onlyError("@retries(1)\n@timeout(5)\n@retries(2)\nfun a():\n    pass\n")).toEqual({
      line: 3,
      column: 2,
      message: "duplicate decorator '@retries' (first on line 1)",
    });
  });

  it("rejects decorators that no task follows, once per group", () => {
    expect(errorsOf("fun a():\n    pass\n@retries(1)\n@cpu(1)\n")).toEqual([
      { line: 3, column: 1, message: "decorators must be followed by a task ('fun name(...):')" },
    ]);
    expect(errorsOf("@retries(1)\nx = 1\nfun a():\n    pass\n")).toEqual([
      { line: 1, column: 1, message: "decorators must be followed by a task ('fun name(...):')" },
      {
        line: 2,
        column: 1,
        message:
          "unexpected text at top level: expected a task ('fun name(...):'), a decorator ('@name(...)') or a comment; a task's body must be indented",
      },
    ]);
  });

  it("does not mistake JavaScript object keys for decorators", () => {
    expect(onlyError("@constructor(1)\nfun a():\n    pass\n").message).toMatch(
      /^unknown decorator '@constructor'/,
    );
  });
});

describe("workflow inputs", () => {
  const source = [
    "fun f(data:inputs.payload, cfg : inputs.config):",
    "    pass",
    "fun g(x:f, again:inputs.payload):",
    "    pass",
  ].join("\n");

  it("keeps inputs.NAME as a parameter's upstream, without making it an edge", () => {
    const spec = parseWorkflow(source);
    expect(spec.tasks.map((t) => t.name)).toEqual(["f", "g"]);
    expect(spec.tasks[0]!.params).toEqual([
      { name: "data", upstream: "inputs.payload" },
      { name: "cfg", upstream: "inputs.config" },
    ]);
    expect(workflowInputs(spec)).toEqual(["payload", "config"]);
  });

  it("tells input references from task names", () => {
    expect(isInputRef("inputs.payload")).toBe(true);
    expect(isInputRef("payload")).toBe(false);
    expect(isInputRef("inputs")).toBe(false);
    expect(isInputRef("inputs.")).toBe(false);
    expect(isInputRef("inputs.a-b")).toBe(false);
  });

  it.each([
    ["fun f(d:inputs):", 9, "'inputs' needs a name: write inputs.NAME, e.g. inputs.payload"],
    [
      "fun f(d:inputs.a-b):",
      9,
      "invalid input 'inputs.a-b': an input name uses letters, digits and '_', not starting with a digit",
    ],
    ["fun f(d:a.b):", 9, "invalid upstream 'a.b': write a task name or inputs.NAME"],
    ["fun inputs():", 5, "'inputs' cannot name a task: it is reserved for workflow inputs (inputs.NAME)"],
  ])("rejects %s", (header, column, message) => {
    expect(onlyError(`${header}\n    pass\n`)).toEqual({ line: 1, column, message });
  });
});

describe("bodies", () => {
  it("dedents a space-indented body, keeping nesting, blank lines and comments", () => {
    const spec = parseWorkflow(
      [
        "fun a():",
        "    # read it",
        "    for x in range(3):",
        "",
        "        print(x)   ",
        "  \t",
        "  # shallow comment",
        "# column-1 comment, still inside",
        "    done = True",
        "",
        "",
        "# about b",
        "fun b():",
        "    pass",
      ].join("\n"),
    );
    expect(spec.tasks[0]!.body).toBe(
      [
        "# read it",
        "for x in range(3):",
        "",
        "    print(x)   ",
        "",
        "# shallow comment",
        "# column-1 comment, still inside",
        "done = True",
        "",
      ].join("\n"),
    );
    expect(spec.tasks[1]!.body).toBe("pass\n");
  });

  it("dedents a tab-indented body", () => {
    const spec = parseWorkflow("fun a():\n\tif True:\n\t\tprint(1)\n\n\t# end\n");
    expect(spec.tasks[0]!.body).toBe("if True:\n\tprint(1)\n\n# end\n");
  });

  it("keeps leading blank lines so body line k is file line (fun line + k)", () => {
    const spec = parseWorkflow("fun a():\n\n    x = 1\n");
    expect(spec.tasks[0]!.body).toBe("\nx = 1\n");
  });

  it("ends every body with exactly one newline, dropping trailing blank lines", () => {
    const spec = parseWorkflow("fun a():\n    x = 1\n\n   \n\n");
    expect(spec.tasks[0]!.body).toBe("x = 1\n");
  });

  it("accepts CRLF, lone CR and a byte order mark", () => {
    const lf = parseWorkflow(SEED);
    expect(parseWorkflow(`\uFEFF${SEED.replace(/\n/g, "\r\n")}`)).toEqual(lf);
    expect(parseWorkflow(SEED.replace(/\n/g, "\r"))).toEqual(lf);
  });

  it("counts lines after a byte order mark and with CRLF for errors", () => {
    expect(onlyError("\uFEFFfun a():\r\n    pass\r\nfun b(x:c):\r\n    pass\r\n")).toEqual({
      line: 3,
      column: 9,
      message: "unknown upstream 'c'",
    });
  });
});

describe("errors", () => {
  it("formats an unknown upstream with its position, a suggestion and a caret", () => {
    const source = "fun extract():\n    pass\nfun transform(raw:extrat):\n    pass\n";
    const result = tryParseWorkflow(source, "etl.workflow");
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors.map((e) => e.format())).toEqual([
      [
        "etl.workflow:3:19: unknown upstream 'extrat' (did you mean 'extract'?)",
        "    fun transform(raw:extrat):",
        "                      ^",
      ].join("\n"),
    ]);
    expect(result.errors[0]).toBeInstanceOf(DslError);
    expect(result.errors[0]!.toJSON()).toEqual({
      file: "etl.workflow",
      line: 3,
      column: 19,
      message: "unknown upstream 'extrat' (did you mean 'extract'?)",
    });
  });

  it("keeps tabs before the caret so it lines up", () => {
    const result = tryParseWorkflow("fun a():\n\tx = 1\n\t\t y = 2\n", "w");
    if (result.ok) throw new Error("expected errors");
    expect(result.errors[0]!.format()).toBe(
      [
        "w:3:3: inconsistent indentation: task 'a' indents its body with tabs (line 2), this line with a space",
        "    \t\t y = 2",
        "    \t\t^",
      ].join("\n"),
    );
  });

  it("shows control characters of the line as U+FFFD, one for one", () => {
    const result = tryParseWorkflow("fun a(x:\u001b[31m):\n    pass\n", "w");
    if (result.ok) throw new Error("expected errors");
    expect(result.errors[0]!.format()).toBe(
      [
        "w:1:9: invalid upstream '\uFFFD[31m': write a task name or inputs.NAME",
        "    fun a(x:\uFFFD[31m):",
        "            ^",
      ].join("\n"),
    );
  });

  it("shows a window of a very long line, caret still under the column", () => {
    const source = `fun a(x:${"y".repeat(500)}, z:nope):\n    pass\n`;
    const result = tryParseWorkflow(source, "w");
    if (result.ok) throw new Error("expected errors");
    const nope = result.errors.find((e) => e.message === "unknown upstream 'nope'")!;
    const [, shown, caret] = nope.format().split("\n") as [string, string, string];
    expect(shown.length).toBeLessThan(200);
    expect(shown.slice(caret.length - 1, caret.length + 3)).toBe("nope");
  });

  it("reports a duplicate task at the second one", () => {
    expect(onlyError("fun a():\n    pass\n\nfun a():\n    pass\n")).toEqual({
      line: 4,
      column: 5,
      message: "duplicate task 'a' (first defined on line 1)",
    });
  });

  it("rejects task names that differ only in case", () => {
    expect(onlyError("fun Load():\n    pass\nfun load():\n    pass\n")).toEqual({
      line: 3,
      column: 5,
      message: "task 'load' differs from task 'Load' (line 1) only in case",
    });
  });

  it("reports a duplicate parameter, also when only its case differs", () => {
    expect(errorsOf("fun a():\n    pass\nfun b(x:a, y:a, x:a, X:a):\n    pass\n")).toEqual([
      { line: 3, column: 17, message: "duplicate parameter 'x' in task 'b'" },
      {
        line: 3,
        column: 22,
        message: "duplicate parameter 'X' in task 'b' (same file as 'x' where case is ignored)",
      },
    ]);
  });

  it("reports a cycle with its path, at the first task under the upstream that closes it", () => {
    const source = [
      "fun a(x:c):",
      "    pass",
      "fun b(x:a):",
      "    pass",
      "fun c(x:b):",
      "    pass",
      "fun d(x:c):",
      "    pass",
    ].join("\n");
    expect(errorsOf(source)).toEqual([{ line: 1, column: 9, message: "cycle: a -> b -> c -> a" }]);
  });

  it("reports a self-dependency as a cycle", () => {
    expect(onlyError("fun a(me:a):\n    pass\n")).toEqual({ line: 1, column: 10, message: "cycle: a -> a" });
  });

  it("reports each separate cycle once", () => {
    const source = [
      "fun a(x:b):",
      "  pass",
      "fun b(x:a):",
      "  pass",
      "fun c(x:d, y:a):",
      "  pass",
      "fun d(x:c):",
      "  pass",
    ].join("\n");
    expect(errorsOf(source)).toEqual([
      { line: 1, column: 9, message: "cycle: a -> b -> a" },
      { line: 5, column: 9, message: "cycle: c -> d -> c" },
    ]);
  });

  it("shows the shortest cycle through the first task", () => {
    const source = ["fun a(x:c, y:b):", "  pass", "fun b(x:a):", "  pass", "fun c(x:b):", "  pass"].join(
      "\n",
    );
    expect(errorsOf(source)).toEqual([{ line: 1, column: 14, message: "cycle: a -> b -> a" }]);
  });

  it("shortens the path of a long cycle", () => {
    const lines = ["fun t0(p:t29):", "    pass"];
    for (let i = 1; i < 30; i++) lines.push(`fun t${i}(p:t${i - 1}):`, "    pass");
    expect(onlyError(lines.join("\n")).message).toBe(
      "cycle: t0 -> t1 -> t2 -> t3 -> t4 -> t5 -> … (18 more) … -> t24 -> t25 -> t26 -> t27 -> t28 -> t29 -> t0",
    );
  });

  it.each([
    ["fun a(../x:b):", 7, "'../x'"],
    ["fun a(.env:b):", 7, "'.env'"],
    ["fun a(-rf:b):", 7, "'-rf'"],
    ["fun a(dir/file:b):", 7, "'dir/file'"],
    ["fun a(naïve:b):", 7, "'naïve'"],
  ])("rejects the unsafe parameter name in %s", (header, column, quoted) => {
    expect(onlyError(`fun b():\n    pass\n${header}\n    pass\n`)).toEqual({
      line: 3,
      column,
      message: `unsafe parameter name ${quoted}: a parameter names a file, so use letters, digits, '_', '.' and '-', not starting with '.' or '-'`,
    });
  });

  it("rejects parameter names the worker uses, and over-long ones", () => {
    const long = "p".repeat(101);
    expect(
      errorsOf(`fun b():\n    pass\nfun a(main.py:b, Requirements.TXT:b, ${long}:b):\n    pass\n`),
    ).toEqual([
      {
        line: 3,
        column: 7,
        message: "parameter name 'main.py' is a file the worker itself writes; choose another name",
      },
      {
        line: 3,
        column: 18,
        message: "parameter name 'Requirements.TXT' is a file the worker itself writes; choose another name",
      },
      { line: 3, column: 38, message: "parameter name is 101 characters long; the limit is 100" },
    ]);
  });

  it.each([
    ["fun class():", 5, "task name 'class' is a Python keyword"],
    ["fun 1st():", 5, "invalid task name '1st': use letters, digits and '_', not starting with a digit"],
    ["fun a-b():", 5, "invalid task name 'a-b': use letters, digits and '_', not starting with a digit"],
    [`fun ${"a".repeat(64)}():`, 5, "task name is 64 characters long; the limit is 63"],
  ])("rejects the task name in %s", (header, column, message) => {
    expect(onlyError(`${header}\n    pass\n`)).toEqual({ line: 1, column, message });
  });

  it.each([
    ["fun", 4, "expected a task name after 'fun'"],
    ["fun ():", 5, "expected a task name after 'fun'"],
    ["fun a:", 6, "expected '(' after task name 'a'"],
    ["fun a()", 8, "expected ':' at the end of the task header"],
    ["fun a() -> str:", 9, "expected ':' at the end of the task header"],
    ["fun a(x):", 8, "expected ':' after parameter 'x': write name:upstream, e.g. raw:extract"],
    ["fun a(x:):", 9, "expected the upstream of parameter 'x': a task name or inputs.NAME"],
    ["fun a(x:up y:up):", 12, "expected ',' or ')' after a parameter"],
    ["fun a(x:up,", 12, "expected ')': a task header must end on its own line"],
    ["fun a(,):", 7, "expected a parameter (name:upstream)"],
  ])("rejects the broken header %s, and nothing else", (header, column, message) => {
    expect(onlyError(`fun up():\n    pass\n${header}\n    pass\n    pass\n`)).toEqual({
      line: 3,
      column,
      message,
    });
  });

  it("rejects a body on the header line", () => {
    expect(onlyError("fun a(): print(1)\n")).toEqual({
      line: 1,
      column: 10,
      message: "unexpected text after the header's ':'; the body goes on the next lines, indented",
    });
  });

  it.each([
    ["nothing", "fun a():\n"],
    ["only blank lines", "fun a():\n\n   \n"],
    ["only comments", "fun a():\n    # todo\n# later\n"],
  ])("reports an empty body with %s", (_, source) => {
    expect(errorsOf(source)).toEqual([
      {
        line: 1,
        column: 5,
        message:
          "empty body: task 'a' needs at least one indented statement below 'fun' (write 'pass' for a task that does nothing)",
      },
    ]);
  });

  it("reports a body that is not indented", () => {
    expect(errorsOf("fun a():\nprint(1)\n")).toEqual([
      {
        line: 1,
        column: 5,
        message:
          "empty body: task 'a' needs at least one indented statement below 'fun' (write 'pass' for a task that does nothing)",
      },
      {
        line: 2,
        column: 1,
        message:
          "unexpected text at top level: expected a task ('fun name(...):'), a decorator ('@name(...)') or a comment; a task's body must be indented",
      },
    ]);
  });

  it("reports each line that mixes tabs into a space-indented body, at the tab", () => {
    expect(errorsOf("fun a():\n    x = 1\n  \ty = 2\n\tz = 3\n    \t# comments do not count\n")).toEqual([
      {
        line: 3,
        column: 3,
        message:
          "inconsistent indentation: task 'a' indents its body with spaces (line 2), this line with a tab",
      },
      {
        line: 4,
        column: 1,
        message:
          "inconsistent indentation: task 'a' indents its body with spaces (line 2), this line with a tab",
      },
    ]);
  });

  it("reports indentation where no body is open, once per indented block", () => {
    expect(errorsOf("  x = 1\n  y = 2\nfun a():\n    pass\n")).toEqual([
      { line: 1, column: 3, message: "unexpected indentation: only a task's body is indented" },
    ]);
  });

  it("reports an indented fun at top level, knowing its name", () => {
    expect(errorsOf("  fun a():\n    pass\nfun b(x:a):\n    pass\n")).toEqual([
      { line: 1, column: 3, message: "'fun' must start at column 1 (remove the indentation)" },
    ]);
  });

  it("reports a fun indented into the previous task's body", () => {
    expect(errorsOf("fun a():\n    pass\n    fun b():\n        pass\n")).toEqual([
      {
        line: 3,
        column: 5,
        message: "'fun' must start at column 1: indented, this line is part of the body of task 'a'",
      },
    ]);
  });

  it.each([
    ["def a():", "tasks are declared with 'fun', not 'def'"],
    [
      "import os",
      "unexpected text at top level: expected a task ('fun name(...):'), a decorator ('@name(...)') or a comment; a task's body must be indented",
    ],
    [
      "funny = 1",
      "unexpected text at top level: expected a task ('fun name(...):'), a decorator ('@name(...)') or a comment; a task's body must be indented",
    ],
  ])("rejects %s at top level, with its indented block", (line, message) => {
    expect(errorsOf(`${line}\n    pass\n    pass\nfun a():\n    pass\n`)).toEqual([
      { line: 1, column: 1, message },
    ]);
  });

  it.each([
    ["an empty file", ""],
    ["only a newline", "\n"],
    ["only comments", "# nothing yet\n\n# really\n"],
  ])("reports that %s has no tasks, at 1:1", (_, source) => {
    expect(errorsOf(source)).toEqual([{ line: 1, column: 1, message: "workflow has no tasks" }]);
  });

  it("collects every error of a file, in position order", () => {
    const source = [
      "@retries(1000)", // 1
      "fun extract():", // 2
      "    pass", // 3
      "fun transform(raw:extrat, raw:extract):", // 4
      "    pass", // 5
      "fun a(x:b):", // 6
      "    pass", // 7
      "fun b(x:a, ../up:extract):", // 8
      "\tpass", // 9
      "fun extract():", // 10
      "fun e():", // 11
      "    x", // 12
      "\t  y", // 13
    ].join("\n");
    expect(errorsOf(source).map((e) => `${e.line}:${e.column} ${e.message.split(":")[0]}`)).toEqual([
      "1:10 @retries takes a whole number from 0 to 100, e.g. @retries(2)",
      "4:19 unknown upstream 'extrat' (did you mean 'extract'?)",
      "4:27 duplicate parameter 'raw' in task 'transform'",
      "6:9 cycle",
      "8:12 unsafe parameter name '../up'",
      "10:5 empty body",
      "10:5 duplicate task 'extract' (first defined on line 2)",
      "13:1 inconsistent indentation",
    ]);
  });

  it("throws DslErrors whose message is every formatted error", () => {
    const source = "fun a(x:b):\n    pass\nfun c(y:d):\n    pass\n";
    let thrown: unknown;
    try {
      parseWorkflow(source, "w");
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(DslErrors);
    const errors = (thrown as DslErrors).errors;
    expect(errors.map((e) => e.message)).toEqual(["unknown upstream 'b'", "unknown upstream 'd'"]);
    expect((thrown as DslErrors).message).toBe(errors.map((e) => e.format()).join("\n"));
    expect((thrown as DslErrors).name).toBe("DslErrors");
  });

  it("stops listing after 500 errors and says how many more there were", () => {
    const lines: string[] = [];
    for (let i = 0; i < 600; i++) lines.push(`fun t${i}(p:missing):`, "    pass");
    const errors = errorsOf(lines.join("\n"));
    expect(errors).toHaveLength(501);
    expect(errors[500]).toEqual({ line: 1001, column: 12, message: "too many errors: 100 more not shown" });
  });

  it("does not treat Object.prototype names as known tasks", () => {
    expect(errorsOf("fun constructor(x:__proto__, y:toString):\n    pass\n")).toEqual([
      { line: 1, column: 19, message: "unknown upstream '__proto__'" },
      { line: 1, column: 32, message: "unknown upstream 'toString'" },
    ]);
  });

  it("reports, rather than crashes on, a source that is not a string", () => {
    expect(tryParseWorkflow(undefined as unknown as string).ok).toBe(false);
  });
});

describe("large workflows", () => {
  const N = 10_000;

  it("parses one root read by 9,999 tasks", () => {
    const lines = ["fun root():", "    print('r')"];
    for (let i = 1; i < N; i++) lines.push(`fun t${i}(r:root):`, `    print(${i})`);
    const spec = parseWorkflow(lines.join("\n"));
    expect(spec.tasks).toHaveLength(N);
    expect(spec.tasks[0]!.name).toBe("root");
    expect(spec.tasks[N - 1]).toEqual({
      name: `t${N - 1}`,
      params: [{ name: "r", upstream: "root" }],
      body: `print(${N - 1})\n`,
      options: DEFAULT_TASK_OPTIONS,
      line: 2 * N - 1,
    });
  });

  it("parses a chain of 10,000 tasks written last to first", () => {
    const lines: string[] = [];
    for (let i = N - 1; i > 0; i--) lines.push(`fun t${i}(p:t${i - 1}):`, "    pass");
    lines.push("fun t0():", "    pass");
    const spec = parseWorkflow(lines.join("\n"));
    expect(spec.tasks.map((t) => t.name)).toEqual(Array.from({ length: N }, (_, i) => `t${i}`));
  });

  it("finds a cycle through 10,000 tasks", () => {
    const lines = [`fun t0(p:t${N - 1}):`, "    pass"];
    for (let i = 1; i < N; i++) lines.push(`fun t${i}(p:t${i - 1}):`, "    pass");
    const errors = errorsOf(lines.join("\n"));
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toMatch(/^cycle: t0 -> t1 -> .* \(9988 more\) .* -> t9999 -> t0$/);
  });
});

describe("graph text", () => {
  const spec = parseWorkflow(
    ["fun extract(cfg:inputs.config):", "    pass", "fun end(raw:extract):", "    pass"].join("\n"),
  );

  it("draws a Mermaid flowchart with prefixed ids and labelled edges", () => {
    expect(toMermaid(spec)).toBe(
      [
        "flowchart TD",
        '  i_config[/"inputs.config"/]',
        '  t_extract["extract"]',
        '  t_end["end"]',
        '  i_config -->|"cfg"| t_extract',
        '  t_extract -->|"raw"| t_end',
      ].join("\n"),
    );
  });

  it("draws a DOT digraph", () => {
    expect(toDot(spec)).toBe(
      [
        "digraph workflow {",
        "  node [shape=box];",
        '  "inputs.config" [shape=note];',
        '  "extract";',
        '  "end";',
        '  "inputs.config" -> "extract" [label="cfg"];',
        '  "extract" -> "end" [label="raw"];',
        "}",
      ].join("\n"),
    );
  });
});
