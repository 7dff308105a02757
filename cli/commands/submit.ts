import { randomUUID } from "node:crypto";
import { basename } from "node:path";
import type { Config } from "../../shared/config.ts";
import { parseWorkflow, workflowInputs } from "../../shared/dsl/index.ts";
import { clientFromConfig, type WorkflowDetail } from "../client.ts";
import { CliError, EXIT } from "../exit.ts";
import { followRemote, progressTasks, Reconnecting } from "../follow.ts";
import { Progress } from "../progress.ts";
import { colorsFor, liveFor } from "../terminal.ts";
import { readInputs } from "./run.ts";
import { readSource } from "./validate.ts";

export interface SubmitOptions {
  requirements?: string;
  input?: string[];
  wait?: boolean;
  json?: boolean;
}

/**
 * `dwop submit FILE`: checks the file here (DSL errors exit 2 before anything is sent), submits it to
 * DWOP_URL, and prints the workflow's id (or with --json, the workflow). With --wait, follows it with
 * live progress on stderr and exits 0 when it succeeded, 1 when it failed or was cancelled.
 */
export async function submitCommand(config: Config, file: string, opts: SubmitOptions): Promise<number> {
  const source = await readSource(file);
  const spec = parseWorkflow(source, file);
  const requirements = opts.requirements ? await readSource(opts.requirements) : null;
  const inputs = await readInputs(opts.input ?? []);
  const missing = workflowInputs(spec).filter((name) => !(name in inputs));
  if (missing.length) {
    throw new CliError(
      `the workflow reads inputs that were not given: ${missing.map((n) => `--input ${n}=FILE`).join(", ")}`,
      EXIT.usage,
    );
  }

  const form = new FormData();
  form.set("workflow", new File([source], basename(file), { type: "text/plain" }));
  if (requirements !== null)
    form.set("requirements", new File([requirements], "requirements.txt", { type: "text/plain" }));
  for (const [name, bytes] of Object.entries(inputs))
    form.set(`inputs.${name}`, new File([new Uint8Array(bytes)], name));

  const client = clientFromConfig(config);
  const say = (s: string) => process.stderr.write(`${s}\n`);
  // Only --json without --wait prints the submitted workflow; otherwise its id is all that is needed.
  const printsWorkflow = opts.json && !opts.wait;
  // One key for every try: a try whose answer was lost (the server restarted, a proxy dropped it) is
  // answered by the server with the workflow it made, not made twice. --wait rides out an outage in the
  // submit too, as in what follows; without it, the first failure is said (exit 3).
  const key = randomUUID();
  const send = () => (printsWorkflow ? client.submit(form, key) : client.submitForId(form, key));
  const submitted = opts.wait ? await new Reconnecting(client, say).call(send) : await send();
  say(
    `workflow ${submitted.id} (${spec.tasks.length} tasks): ${client.baseUrl.replace(/\/+$/, "")}/ui/#/workflows/${submitted.id}`,
  );
  if (printsWorkflow) {
    process.stdout.write(`${JSON.stringify(submitted)}\n`);
    return EXIT.ok;
  }
  if (!opts.wait) {
    process.stdout.write(`${submitted.id}\n`);
    return EXIT.ok;
  }
  if (!opts.json) process.stdout.write(`${submitted.id}\n`);
  const final = await waitWithProgress(client, submitted.id);
  if (opts.json) process.stdout.write(`${JSON.stringify(final)}\n`);
  return final.status === "succeeded" ? EXIT.ok : EXIT.failed;
}

/** Follows a workflow to its end with live progress on stderr; returns the final workflow. */
export async function waitWithProgress(
  client: ReturnType<typeof clientFromConfig>,
  id: string,
): Promise<WorkflowDetail> {
  const progress = new Progress(process.stderr, {
    color: colorsFor(process.stderr),
    live: liveFor(process.stderr),
  });
  const final = await followRemote(client, id, (w) => progress.update(progressTasks(w)), {
    say: (line) => progress.note(line),
    onStall: (stall) => progress.stall(stall),
  });
  progress.finish();
  process.stderr.write(`workflow ${final.id} ${final.status}\n`);
  return final;
}
