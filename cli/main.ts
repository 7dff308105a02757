import { Command, CommanderError } from "commander";
import { existsSync } from "node:fs";
import { ConfigError, loadConfig } from "../shared/config.ts";
import { DslErrors } from "../shared/dsl/index.ts";
import { readEnv } from "../shared/env.ts";
import { CliError, EXIT } from "./exit.ts";
import { devCommand } from "./commands/dev.ts";
import { outputCommand } from "./commands/output.ts";
import { runCommand } from "./commands/run.ts";
import { validateCommand } from "./commands/validate.ts";

function config() {
  if (existsSync(".env")) process.loadEnvFile(".env");
  return loadConfig(readEnv());
}

const program = new Command()
  .name("dwop")
  .description("Run Python workflows as reliable DAGs, on one laptop or on Kubernetes.")
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

program
  .command("run")
  .description("run a workflow to completion on this machine (embedded PostgreSQL and queue unless configured)")
  .argument("<file>", "the .workflow file")
  .option("-r, --requirements <file>", "requirements.txt installed before each task")
  .option("-i, --input <name=file...>", "a workflow input, read by tasks as inputs.NAME")
  .option("--json", "print one JSON summary on stdout")
  .action(async (file: string, opts: { requirements?: string; input?: string[]; json?: boolean }) => {
    process.exitCode = await runCommand(config(), file, opts);
  });

program
  .command("output")
  .description("print a task's output")
  .argument("<workflowId>")
  .argument("<task>")
  .action(async (workflowId: string, task: string) => {
    process.exitCode = await outputCommand(config(), workflowId, task);
  });

program
  .command("validate")
  .description("check a workflow file and print its DAG")
  .argument("<file>")
  .option("--format <format>", "text, mermaid, dot or json", "text")
  .action(async (file: string, opts: { format: string }) => {
    process.exitCode = await validateCommand(file, opts.format);
  });

program
  .command("dev")
  .description("run the API, claimer and dispatcher as one long-running local server")
  .action(async () => {
    process.exitCode = await devCommand(config());
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.exitCode = report(err);
}
// Every command has closed what it opened; a stray handle (a pool's idle timer) must not hold the exit.
process.exit(process.exitCode ?? EXIT.ok);

function report(err: unknown): number {
  if (err instanceof CommanderError) {
    return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
  if (err instanceof CliError) {
    process.stderr.write(`dwop: ${err.message}\n`);
    return err.exitCode;
  }
  if (err instanceof DslErrors) {
    process.stderr.write(`${err.message}\n`);
    return EXIT.usage;
  }
  if (err instanceof ConfigError) {
    process.stderr.write(`dwop: ${err.message}\n`);
    return EXIT.usage;
  }
  process.stderr.write(`dwop: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return EXIT.failed;
}
