import { Command, CommanderError, Option } from "commander";
import { existsSync } from "node:fs";
import type { Config } from "../shared/config.ts";
import { DslErrors } from "../shared/dsl/errors.ts";
import { readEnv } from "../shared/env.ts";
import type { LogFormat } from "../shared/pino.ts";
import { ApiRequestError } from "./api-error.ts";
import { scheduleCommands } from "./commands/schedule-cli.ts";
import { CliError, EXIT } from "./exit.ts";

// A reader that went away (`dwop list --all | head`) ends the command as a closed pipe ends any Unix
// program, quietly (Node would throw EPIPE with its stack): with the command's exit code once it has one,
// else 141, a SIGPIPE's.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE") throw err;
    process.exit(process.exitCode ?? 141);
  });
}

let dotEnvLoaded = false;
/** .env's settings into the environment, once (a variable already set wins over the file's). */
function loadDotEnv(): void {
  if (!dotEnvLoaded && existsSync(".env")) process.loadEnvFile(".env");
  dotEnvLoaded = true;
}

/** The validated settings; loaded by the commands that need them, so `--help` never loads zod. */
async function config(): Promise<Config> {
  loadDotEnv();
  const { loadConfig } = await import("../shared/config.ts");
  return loadConfig(readEnv());
}

/**
 * For the commands that start the local executor: asks `python3` for its interpreter now, while the
 * command's modules load, instead of when the executor starts. Behind a pyenv shim the answer takes
 * 0.3 s, and the fork server waits for it. The answer is kept for the executor, which also reports a
 * failure (and asks again). It reads the environment as it is: run and dev load .env first.
 */
function lookUpPythonEarly(): void {
  if (readEnv().DWOP_EXECUTOR === "kubernetes") return;
  void import("../shared/executors/python.ts").then(({ resolvePython }) => resolvePython().catch(() => {}));
}

const program = new Command()
  .name("dwop")
  .description(
    "Run Python workflows as reliable DAGs, on one laptop or on Kubernetes.\n\n" +
      "Commands that talk to a server use DWOP_URL (default: the local `dwop dev`) and DWOP_TOKEN.\n" +
      "Exit codes: 0 ok (the workflow succeeded), 1 the workflow failed or was cancelled, or not found,\n" +
      "2 usage or workflow (DSL) errors, 3 server unreachable, credentials refused, or server error.",
  )
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

const json = "print JSON on stdout";
/** Server logs for a person or a collector; DWOP_LOG_FORMAT sets the default. */
const logFormat = () =>
  new Option(
    "--log-format <format>",
    "log lines: pretty (default on a terminal) or json (default when piped)",
  ).choices(["pretty", "json"]);
type Flags = Record<string, string | string[] | boolean | undefined>;

/**
 * Runs a command's action and keeps its exit code. Each command's module is loaded when it runs: a
 * client command then starts without loading the engine (dispatcher, executors, embedded PostgreSQL).
 */
const act =
  <A extends unknown[]>(fn: (...args: A) => Promise<number>) =>
  async (...args: A) => {
    process.exitCode = await fn(...args);
  };

program
  .command("run")
  .description(
    "run a workflow to completion on this machine (embedded PostgreSQL and queue unless configured)",
  )
  .argument("<file>", "the .workflow file")
  .option("-r, --requirements <file>", "requirements.txt installed before each task")
  .option("-i, --input <name=file...>", "a workflow input, read by tasks as inputs.NAME")
  .option("--json", "print one JSON summary on stdout")
  .addOption(logFormat())
  .action(
    act(
      async (
        file: string,
        opts: { requirements?: string; input?: string[]; json?: boolean; logFormat?: LogFormat },
      ) => {
        loadDotEnv();
        lookUpPythonEarly();
        return (await import("./commands/run.ts")).runCommand(await config(), file, opts);
      },
    ),
  );

program
  .command("submit")
  .description("submit a workflow to DWOP_URL; prints its id")
  .argument("<file>", "the .workflow file")
  .option("-r, --requirements <file>", "requirements.txt installed before each task")
  .option("-i, --input <name=file...>", "a workflow input, read by tasks as inputs.NAME")
  .option("-w, --wait", "follow it to the end with live progress; exit 0 if it succeeded, 1 if not")
  .option("--json", "print the workflow as JSON (with --wait, the final one)")
  .action(
    act(async (file: string, opts: Flags) =>
      (await import("./commands/submit.ts")).submitCommand(await config(), file, opts),
    ),
  );

program
  .command("status")
  .description("a workflow's state and its tasks' (exit 1 when it failed or was cancelled)")
  .argument("<id>", "the workflow id")
  .option("--json", json)
  .action(
    act(async (id: string, opts: { json?: boolean }) =>
      (await import("./commands/status.ts")).statusCommand(await config(), id, opts),
    ),
  );

program
  .command("list")
  .description("your workflows, newest first")
  .option("-s, --status <state>", "only queued, running, succeeded, failed or cancelled ones")
  .option("--schedule <name>", "only the ones this schedule started")
  .option("-n, --limit <n>", "how many (1-100)", "20")
  .option("--cursor <cursor>", "the page after this one: the `next page` cursor a previous list printed")
  .option("--all", "every workflow, page after page (--limit is then the page size)")
  .option("--json", json)
  .action(
    act(
      async (opts: {
        status?: string;
        schedule?: string;
        limit?: string;
        cursor?: string;
        all?: boolean;
        json?: boolean;
      }) => (await import("./commands/list.ts")).listCommand(await config(), opts),
    ),
  );

scheduleCommands(program, config, act);

program
  .command("logs")
  .description(
    "a task's log (stdout and stderr) of its latest attempt, as far as it has run; after `dwop run`, from DWOP_HOME",
  )
  .argument("<id>", "the workflow id")
  .argument("<task>", "the task name")
  .option("-a, --attempt <n>", "another attempt than the latest")
  .option(
    "-f, --follow",
    "print lines as they come, attempt after attempt, until the task ends (exit 0 if it succeeded)",
  )
  .option(
    "--json",
    "print {workflowId, task, attempt, status, log} (with --follow: a line per piece, with its byte offset)",
  )
  .action(
    act(async (id: string, task: string, opts: Flags) =>
      (await import("./commands/logs.ts")).logsCommand(await config(), id, task, opts),
    ),
  );

program
  .command("output")
  .description("print a task's output (from DWOP_URL when set, else from this machine's storage)")
  .argument("<id>", "the workflow id")
  .argument("<task>", "the task name")
  .option("--json", "print {workflowId, task, output}")
  .action(
    act(async (id: string, task: string, opts: { json?: boolean }) =>
      (await import("./commands/output.ts")).outputCommand(await config(), id, task, opts),
    ),
  );

program
  .command("cancel")
  .description("cancel a queued or running workflow")
  .argument("<id>", "the workflow id")
  .option("--json", json)
  .action(
    act(async (id: string, opts: { json?: boolean }) =>
      (await import("./commands/cancel.ts")).cancelCommand(await config(), id, opts),
    ),
  );

const pool = program
  .command("pool")
  .description("pools: at most N attempts of the tasks naming one run at once");
pool
  .command("set")
  .description("make or resize a pool (needs the server's DWOP_API_TOKEN)")
  .argument("<name>", 'the pool\'s name, as @pool("name") names it')
  .argument("<slots>", "attempts of its tasks starting or running at once")
  .option("--json", json)
  .action(
    act(async (name: string, slots: string, opts: { json?: boolean }) =>
      (await import("./commands/pool.ts")).poolSetCommand(await config(), name, slots, opts),
    ),
  );
pool
  .command("list")
  .description("every pool: slots, runs holding one, tasks waiting")
  .option("--json", json)
  .action(
    act(async (opts: { json?: boolean }) =>
      (await import("./commands/pool.ts")).poolListCommand(await config(), opts),
    ),
  );
pool
  .command("rm")
  .description("delete a pool no open task names (needs the server's DWOP_API_TOKEN)")
  .argument("<name>", "the pool's name")
  .action(
    act(async (name: string) => (await import("./commands/pool.ts")).poolRemoveCommand(await config(), name)),
  );

program
  .command("retry")
  .description("rerun a failed or cancelled workflow from its failures")
  .argument("<id>", "the workflow id")
  .option("-w, --wait", "follow it to the end, as submit --wait")
  .option("--json", json)
  .action(
    act(async (id: string, opts: { json?: boolean; wait?: boolean }) =>
      (await import("./commands/retry.ts")).retryCommand(await config(), id, opts),
    ),
  );

program
  .command("validate")
  .description("check a workflow file and print its DAG")
  .argument("<file>")
  .option("--format <format>", "text, mermaid, dot or json", "text")
  .option("--json", "the same as --format json")
  .action(
    act(async (file: string, opts: { format: string; json?: boolean }) =>
      (await import("./commands/validate.ts")).validateCommand(file, opts.json ? "json" : opts.format),
    ),
  );

program
  .command("graph")
  .description(
    "a workflow's DAG as Mermaid or DOT, from a file or a submitted workflow's id (colored by state)",
  )
  .argument("<file-or-id>")
  .option("--format <format>", "mermaid or dot", "mermaid")
  .option("--json", "print {nodes, edges}")
  .action(
    act(async (target: string, opts: { format: string; json?: boolean }) =>
      (await import("./commands/graph.ts")).graphCommand(await config(), target, opts),
    ),
  );

program
  .command("dev")
  .description("run the API, dashboard, claimer and dispatcher as one long-running local server")
  .option("-p, --port <port>", "the port to listen on (default: DWOP_PORT, 8080)")
  .option("--host <host>", "the address to listen on (default: DWOP_HOST, 127.0.0.1)")
  .addOption(logFormat())
  .action(
    act(async (opts: { port?: string; host?: string; logFormat?: LogFormat }) => {
      loadDotEnv();
      lookUpPythonEarly();
      return (await import("./commands/dev.ts")).devCommand(await config(), opts);
    }),
  );

program
  .command("api")
  .description(
    "run the HTTP API and dashboard alone (with the local storage it serves), no claimer or dispatcher",
  )
  .option("-p, --port <port>", "the port to listen on (default: DWOP_PORT, 8080)")
  .option("--host <host>", "the address to listen on (default: DWOP_HOST, 127.0.0.1)")
  .addOption(logFormat())
  .action(
    act(async (opts: { port?: string; host?: string; logFormat?: LogFormat }) =>
      (await import("./commands/dev.ts")).devCommand(await config(), opts, "api"),
    ),
  );

const dashboard = program
  .command("dashboard")
  .description("the web dashboard for an API that cannot serve it as a page (hosted Supabase)");
dashboard
  .command("build")
  .description("write the dashboard as three static files that call the API at --api")
  .requiredOption("--api <url>", "the API's root URL, such as https://PROJECT.supabase.co/functions/v1/api")
  .option("-o, --out <dir>", "the folder to write (default: dwop-dashboard)")
  .action(
    act(async (opts: { api: string; out?: string }) =>
      (await import("./commands/dashboard.ts")).dashboardBuildCommand(opts),
    ),
  );
dashboard
  .command("serve")
  .description("serve the dashboard on this machine, calling the API at --api")
  .requiredOption("--api <url>", "the API's root URL, such as https://PROJECT.supabase.co/functions/v1/api")
  .option("-p, --port <port>", "the port to listen on (default: 8090)")
  .option("--host <host>", "the address to listen on (default: 127.0.0.1)")
  .action(
    act(async (opts: { api: string; port?: string; host?: string }) =>
      (await import("./commands/dashboard.ts")).dashboardServeCommand(opts),
    ),
  );

program
  .command("claimer")
  .description(
    "run an outbox claimer: publishes ready tasks to the bus, sends callbacks, fires schedules, sweeps old rows",
  )
  .action(
    act(async () => {
      await import("../cron/main.ts");
      return new Promise<number>(() => {}); // until a signal: cron/main.ts stops and exits on it
    }),
  );

program
  .command("dispatcher")
  .description(
    "run a dispatcher: takes tasks from the bus and runs them (local processes or Kubernetes Jobs)",
  )
  .action(
    act(async () => {
      lookUpPythonEarly();
      await import("../dispatcher/main.ts");
      return new Promise<number>(() => {}); // until a signal: dispatcher/main.ts stops and exits on it
    }),
  );

try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.exitCode = await report(err);
}
// Every command has closed what it opened; a stray handle (a pool's idle timer) must not hold the exit.
// But what it wrote must reach a pipe first: past the pipe's 64 KiB, Node queues a write, and an exit
// drops the queue (`dwop validate --json` of 10,001 tasks gave `| wc -c` 65,536 of 1.5 MB).
await Promise.all([process.stdout, process.stderr].map((s) => new Promise((done) => s.write("", done))));
process.exit(process.exitCode ?? EXIT.ok);

async function report(err: unknown): Promise<number> {
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
  if (err instanceof ApiRequestError) {
    process.stderr.write(`dwop: ${describeApiError(err)}\n`);
    return err.exitCode;
  }
  // Loaded here only: a usage error, like --help, must not load zod.
  const { ConfigError } = await import("../shared/config.ts");
  if (err instanceof ConfigError) {
    process.stderr.write(`dwop: ${err.message}\n`);
    return EXIT.usage;
  }
  process.stderr.write(`dwop: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return EXIT.failed;
}

/** The server's message, its DSL errors as FILE:LINE:COL lines, and a hint for the usual mistakes. */
function describeApiError(err: ApiRequestError): string {
  if (err.code === "invalid_workflow" && Array.isArray(err.details)) {
    const lines = (err.details as { file: string; line: number; column: number; message: string }[]).map(
      (e) => `${e.file}:${e.line}:${e.column}: ${e.message}`,
    );
    return `${err.message}\n${lines.join("\n")}`;
  }
  const status = err.status === 0 || err.code === "not_dwop" ? "" : ` (HTTP ${err.status})`;
  const cause = (err.details as { cause?: string } | null)?.cause;
  const hint =
    err.code === "not_dwop"
      ? "\n  set DWOP_URL to the DWOP server's address (the URL `dwop dev` prints, or your deployment's API)"
      : err.status === 0 && cause === "ECONNREFUSED"
        ? "\n  start a server with `dwop dev`, or set DWOP_URL"
        : err.status === 0 && cause && /^(EPIPE|ECONNRESET|UND_ERR_SOCKET|HPE_)/.test(cause)
          ? "\n  it did not answer as an HTTP server would: is DWOP_URL the DWOP server's address?"
          : err.status === 401
            ? "\n  set DWOP_TOKEN to an API key, a Supabase access token, or the server's DWOP_API_TOKEN"
            : "";
  return `${err.message}${status}${hint}`;
}
