import type { Store } from "../shared/db/store.ts";
import type { Executor } from "../shared/executors/executor.ts";
import type { Logger } from "../shared/log.ts";
import { deadNeighbours } from "./dead-neighbours.ts";

export interface RegistrationOptions {
  id: string;
  /** What the dispatcher's executor is: known before the executor has started. */
  executor: Pick<Executor, "kind" | "runsIn">;
  lostAfterSeconds: number;
  log: Logger;
}

/**
 * A dispatcher's registration: beats once, then retries the runs of this dispatcher's earlier life and of
 * the dispatchers gone with their process on this machine, whose rows it deletes (a home's every `dwop run`
 * left one, which each start after it read again). It needs only the database, so a process begins it
 * while its executor starts (a fork server: 0.5 s here) and hands it to the Dispatcher to await; reaped
 * runs are queued again and wait for the dispatcher to consume.
 */
export async function registerDispatcher(store: Store, options: RegistrationOptions): Promise<void> {
  await store.heartbeat(options.id, options.executor.kind);
  if (options.executor.runsIn === "process") {
    await store.forgetDispatchers(await deadNeighbours(store.db, options.id));
  }
  const reaped = await store.reapLostRuns(options.lostAfterSeconds, options.id);
  if (reaped > 0) options.log.warn({ reaped }, "retried runs left by a dispatcher that stopped");
}
