import { readFile } from "node:fs/promises";
import { parseWorkflow, toDot, toMermaid } from "../../shared/dsl/index.ts";
import { CliError, EXIT } from "../exit.ts";

/** `dwop validate FILE`: exit 0 and the DAG, or exit 2 and `FILE:LINE:COL: message` per error. */
export async function validateCommand(file: string, format: string): Promise<number> {
  const source = await readSource(file);
  const spec = parseWorkflow(source, file);
  switch (format) {
    case "mermaid":
      process.stdout.write(`${toMermaid(spec)}\n`);
      break;
    case "dot":
      process.stdout.write(`${toDot(spec)}\n`);
      break;
    case "json":
      process.stdout.write(`${JSON.stringify(spec.tasks.map(({ name, params, options }) => ({ name, params, options })))}\n`);
      break;
    case "text":
      for (const t of spec.tasks) {
        const ups = t.params.map((p) => `${p.name}:${p.upstream}`).join(", ");
        process.stdout.write(`${t.name}${ups ? ` <- ${ups}` : " (root)"}\n`);
      }
      break;
    default:
      throw new CliError(`unknown format '${format}' (text, mermaid, dot or json)`, EXIT.usage);
  }
  return EXIT.ok;
}

export async function readSource(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, EXIT.usage);
  }
}
