import type { Store } from "../shared/db/store.ts";
import { OUTPUT_BUCKET, objectPaths } from "../shared/model.ts";
import type { Storage } from "../shared/storage/storage.ts";

/** The attempt whose output is placed. */
export interface UploadedAttempt {
  workflowId: string;
  taskName: string;
  attempt: number;
}

/**
 * Moves the output a worker uploaded itself (to its attempt's own object, objectPaths.attemptOutput) to
 * its task's path while the run's row is held active (Store.whileRunActive): a run retried meanwhile (its
 * dispatcher paused or cut off, its pod on a node cut off) is left to the attempt that replaced it, and
 * one not yet retried cannot be until the move is done, so its replacement's output, placed later, is the
 * one that stays. "ended" for a run no longer active (nothing moved), "placed", or the storage's error.
 */
export async function placeUploadedOutput(
  store: Store,
  storage: Storage,
  runId: string,
  { workflowId: wf, taskName, attempt }: UploadedAttempt,
): Promise<"placed" | "ended" | { failed: unknown }> {
  let failure = null as { failed: unknown } | null;
  const active = await store.whileRunActive(runId, () =>
    storage
      .move(OUTPUT_BUCKET, objectPaths.attemptOutput(wf, taskName, attempt), objectPaths.output(wf, taskName))
      .catch((err: unknown) => void (failure = { failed: err })),
  );
  return active ? (failure ?? "placed") : "ended";
}
