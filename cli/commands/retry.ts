import type { Config } from "../../shared/config.ts";
import { clientFromConfig } from "../client.ts";
import { EXIT } from "../exit.ts";
import { workflowId } from "./args.ts";
import { waitWithProgress } from "./submit.ts";

/**
 * `dwop retry ID`: reruns a failed or cancelled workflow from its failures (1 when it has not failed,
 * or does not exist). With --wait, follows it as `dwop submit --wait` does.
 */
export async function retryCommand(
  config: Config,
  id: string,
  opts: { json?: boolean; wait?: boolean },
): Promise<number> {
  const client = clientFromConfig(config);
  const w = await client.retry(workflowId(id));
  if (!opts.wait) {
    process.stdout.write(opts.json ? `${JSON.stringify(w)}\n` : `workflow ${w.id} ${w.status}\n`);
    return EXIT.ok;
  }
  const final = await waitWithProgress(client, w.id);
  if (opts.json) process.stdout.write(`${JSON.stringify(final)}\n`);
  return final.status === "succeeded" ? EXIT.ok : EXIT.failed;
}
