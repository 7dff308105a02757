import type { Config } from "../../shared/config.ts";
import { clientFromConfig } from "../client.ts";
import { EXIT } from "../exit.ts";
import { workflowId } from "./args.ts";

/** `dwop cancel ID`: stops a queued or running workflow; 1 when it had already ended or does not exist. */
export async function cancelCommand(config: Config, id: string, opts: { json?: boolean }): Promise<number> {
  const w = await clientFromConfig(config).cancel(workflowId(id));
  process.stdout.write(opts.json ? `${JSON.stringify(w)}\n` : `workflow ${w.id} ${w.status}\n`);
  return EXIT.ok;
}
