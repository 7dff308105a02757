import { readFile } from "node:fs/promises";
import { tryParseWorkflow, toDot, toMermaid, workflowInputs } from "../../shared/dsl/index.ts";
import { DslErrors } from "../../shared/dsl/index.ts";
import { CliError, EXIT } from "../exit.ts";

/**
 * `dwop validate FILE`: exit 0 and the DAG, or exit 2 and `FILE:LINE:COL: message` per error. With
 * --json (or --format json), one object on stdout either way, shaped as the API's `POST /validate`:
 * `{"valid": true, "tasks", "inputs"}` or `{"valid": false, "errors": [{"file", "line", "column", "message"}]}`
 * (line and column null for a file that cannot be read, which stderr says as well).
 */
export async function validateCommand(file: string, format: string): Promise<number> {
  if (!["text", "mermaid", "dot", "json"].includes(format)) {
    throw new CliError(`unknown format '${format}' (text, mermaid, dot or json)`, EXIT.usage);
  }
  const source = await readSource(file).catch((err: unknown) => {
    // --json answers on stdout whatever happened: the file's error has no line or column.
    if (format === "json" && err instanceof CliError) {
      const errors = [{ file, line: null, column: null, message: err.message }];
      process.stdout.write(`${JSON.stringify({ valid: false, errors })}\n`);
    }
    throw err;
  });
  const result = tryParseWorkflow(source, file);
  if (!result.ok) {
    if (format !== "json") throw new DslErrors(result.errors);
    process.stdout.write(`${JSON.stringify({ valid: false, errors: result.errors })}\n`);
    process.stderr.write(`${new DslErrors(result.errors).message}\n`);
    return EXIT.usage;
  }
  const spec = result.spec;
  switch (format) {
    case "mermaid":
      process.stdout.write(`${toMermaid(spec)}\n`);
      break;
    case "dot":
      process.stdout.write(`${toDot(spec)}\n`);
      break;
    case "json": {
      const tasks = spec.tasks.map(({ name, line, params, options }) => ({ name, line, params, options }));
      process.stdout.write(`${JSON.stringify({ valid: true, tasks, inputs: workflowInputs(spec) })}\n`);
      break;
    }
    default:
      for (const t of spec.tasks) {
        const ups = t.params.map((p) => `${p.name}:${p.upstream}`).join(", ");
        process.stdout.write(`${t.name}${ups ? ` <- ${ups}` : " (root)"}\n`);
      }
  }
  return EXIT.ok;
}

export async function readSource(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    throw new CliError(
      `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      EXIT.usage,
    );
  }
}
