import type { Config } from "../../shared/config.ts";
import { POOL_NAME } from "../../shared/dsl/decorators.ts";
import { clientFromConfig } from "../client.ts";
import { CliError, EXIT } from "../exit.ts";

interface PoolRow {
  name: string;
  slots: number;
  running: number;
  waiting: number;
}

/** `dwop pool set NAME SLOTS`: makes or resizes a pool (the server's DWOP_API_TOKEN is needed). */
export async function poolSetCommand(
  config: Config,
  name: string,
  slots: string,
  opts: { json?: boolean },
): Promise<number> {
  if (!POOL_NAME.test(name)) {
    throw new CliError(
      'a pool name is 1 to 64 letters, digits, "_", "." and "-", starting with a letter or digit',
      EXIT.usage,
    );
  }
  if (!/^\d{1,5}$/.test(slots) || Number(slots) > 10_000) {
    throw new CliError(
      `SLOTS must be a whole number from 0 to 10000, not ${JSON.stringify(slots)}`,
      EXIT.usage,
    );
  }
  const res = await clientFromConfig(config).request("PUT", `/pools/${name}`, {
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ slots: Number(slots) }),
  });
  const pool = (await res.json()) as PoolRow;
  process.stdout.write(opts.json ? `${JSON.stringify(pool)}\n` : `${line(pool)}\n`);
  return EXIT.ok;
}

/** `dwop pool list`: every pool with its slots, the runs holding one and the tasks waiting. */
export async function poolListCommand(config: Config, opts: { json?: boolean }): Promise<number> {
  const res = await clientFromConfig(config).request("GET", "/pools");
  const { pools } = (await res.json()) as { pools: PoolRow[] };
  // --json: as GET /pools answers.
  if (opts.json) process.stdout.write(`${JSON.stringify({ pools })}\n`);
  else process.stdout.write(pools.length ? `${pools.map(line).join("\n")}\n` : "no pools\n");
  return EXIT.ok;
}

/** `dwop pool rm NAME`: deletes a pool that no open task names. */
export async function poolRemoveCommand(config: Config, name: string): Promise<number> {
  await clientFromConfig(config).request("DELETE", `/pools/${encodeURIComponent(name)}`);
  process.stdout.write(`pool ${name} deleted\n`);
  return EXIT.ok;
}

function line(p: PoolRow): string {
  return `${p.name}  ${p.running}/${p.slots} slots busy, ${p.waiting} waiting`;
}
