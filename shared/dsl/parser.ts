import { DEFAULT_TASK_OPTIONS, type WorkflowSpec } from "../model.ts";
import type { ParsedTask } from "./ast.ts";
import { bodyEnd, readBody } from "./body.ts";
import { applyDecorators, parseDecorator, type Decorator } from "./decorators.ts";
import { type DslError, DslErrors, Problems, quote } from "./errors.ts";
import { isHeaderStart, parseHeader } from "./header.ts";
import { classifyLine, type SourceLine, splitLines } from "./lines.ts";
import { validate } from "./validate.ts";

export type ParseResult = { ok: true; spec: WorkflowSpec } | { ok: false; errors: DslError[] };

/** Parses and validates a workflow file; returns every error found instead of throwing. */
export function tryParseWorkflow(source: string, file = "workflow"): ParseResult {
  // Callers from plain JavaScript (or JSON bodies) may hand over anything.
  const text = typeof source === "string" ? source : "";
  const texts = splitLines(text);
  const problems = new Problems(String(file), texts);
  if (typeof source !== "string") problems.add(1, 1, "the workflow source is not text");
  reportNulCharacters(texts, problems);
  const parsed = new TopLevel(texts.map(classifyLine), problems).run();
  const tasks = validate(parsed, problems);
  if (problems.count > 0) return { ok: false, errors: problems.sorted() };
  return { ok: true, spec: { tasks } };
}

/**
 * Python refuses source text holding U+0000 (and Postgres refuses to store it), so a NUL anywhere, even
 * in a comment, is an error here rather than a failure when the task runs.
 */
function reportNulCharacters(lines: readonly string[], problems: Problems): void {
  lines.forEach((text, i) => {
    const at = text.indexOf("\0");
    if (at >= 0) problems.add(i + 1, at + 1, "NUL character (U+0000): Python source text cannot contain it");
  });
}

/** Parses and validates a workflow file; throws `DslErrors`, and nothing else, when it has errors. */
export function parseWorkflow(source: string, file = "workflow"): WorkflowSpec {
  const result = tryParseWorkflow(source, file);
  if (!result.ok) throw new DslErrors(result.errors);
  return result.spec;
}

/**
 * The walk over column-1 lines: decorators gather until a `fun` takes them, each `fun` takes the
 * indented lines below it as its body, and anything else is reported once, together with the indented
 * block under it (so one mistake does not also give an error per line of its block).
 */
class TopLevel {
  private readonly tasks: ParsedTask[] = [];
  private decorators: Decorator[] = [];
  private sawTask = false;
  private readonly report = (line: number, column: number, message: string) =>
    this.problems.add(line, column, message);

  constructor(
    private readonly lines: readonly SourceLine[],
    private readonly problems: Problems,
  ) {}

  run(): ParsedTask[] {
    let i = 0;
    while (i < this.lines.length) i = this.step(i);
    this.orphanDecorators();
    if (!this.sawTask) this.problems.add(1, 1, "workflow has no tasks");
    return this.tasks;
  }

  /** Handles the line at `i` and whatever belongs to it; returns the next line to look at. */
  private step(i: number): number {
    const line = this.lines[i] as SourceLine;
    if (line.kind === "blank" || line.kind === "comment") return i + 1;
    if (line.kind === "indented") return this.strayIndent(i, line);
    if (line.text.startsWith("@")) {
      const { decorator, issue } = parseDecorator(line.text, i + 1);
      if (issue) this.problems.add(i + 1, issue.column, issue.message);
      this.decorators.push(decorator);
      return i + 1;
    }
    if (isHeaderStart(line.text, 0)) return this.task(i, line);
    return this.strayTopLevel(i, line);
  }

  private task(i: number, line: SourceLine): number {
    this.sawTask = true;
    const header = parseHeader(line.text);
    for (const issue of header.issues) this.problems.add(i + 1, issue.column, issue.message);
    const end = bodyEnd(this.lines, i + 1);
    const options = applyDecorators(this.decorators, this.report);
    this.decorators = [];
    if (header.name === null) return end;
    const body = readBody(this.lines, i + 1, end, header.name, this.report);
    // After a broken header the body's absence is most likely part of the same mistake.
    if (body === null && header.complete) {
      this.problems.add(
        i + 1,
        header.nameColumn,
        `empty body: task ${quote(header.name)} needs at least one indented statement below 'fun' (write 'pass' for a task that does nothing)`,
      );
    }
    this.tasks.push({
      name: header.name,
      line: i + 1,
      nameColumn: header.nameColumn,
      nameOk: header.nameOk,
      complete: header.complete,
      params: header.params,
      body: body ?? "",
      options,
    });
    return end;
  }

  /** An indented line where no body is open: before the first task, or after a decorator. */
  private strayIndent(i: number, line: SourceLine): number {
    const header = isHeaderStart(line.text, line.indent) ? parseHeader(line.text, line.indent) : null;
    if (header?.complete && header.name !== null) {
      this.problems.add(i + 1, line.indent + 1, "'fun' must start at column 1 (remove the indentation)");
      // Known by name, so tasks that read it get no "unknown upstream" error as well.
      this.tasks.push({
        name: header.name,
        line: i + 1,
        nameColumn: header.nameColumn,
        nameOk: false,
        complete: false,
        params: [],
        body: "",
        options: { ...DEFAULT_TASK_OPTIONS },
      });
      this.sawTask = true;
      this.decorators = [];
    } else {
      this.problems.add(i + 1, line.indent + 1, "unexpected indentation: only a task's body is indented");
    }
    return Math.max(i + 1, bodyEnd(this.lines, i));
  }

  private strayTopLevel(i: number, line: SourceLine): number {
    if (/^def[ \t]/.test(line.text)) {
      // Meant as a task: the decorators above it are not orphans, and it counts as a task written.
      this.problems.add(i + 1, 1, "tasks are declared with 'fun', not 'def'");
      this.decorators = [];
      this.sawTask = true;
    } else {
      this.orphanDecorators();
      this.problems.add(
        i + 1,
        1,
        "unexpected text at top level: expected a task ('fun name(...):'), a decorator ('@name(...)') " +
          "or a comment; a task's body must be indented",
      );
    }
    return Math.max(i + 1, bodyEnd(this.lines, i + 1));
  }

  private orphanDecorators(): void {
    const first = this.decorators[0];
    if (first) {
      this.problems.add(first.line, 1, "decorators must be followed by a task ('fun name(...):')");
    }
    this.decorators = [];
  }
}
