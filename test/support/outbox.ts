import type { Store } from "../../shared/db/store.ts";
import type { TaskMessage } from "../../shared/model.ts";

/** Claims up to `batch` due outbox rows as `claimer`, marks them published and returns their messages. */
export async function drainOutbox(store: Store, claimer = "c1", batch = 1000): Promise<TaskMessage[]> {
  const claimed = await store.claimOutbox(claimer, batch, 30);
  await store.markPublished(
    claimer,
    claimed.map((c) => c.id),
  );
  return claimed.map((c) => c.message);
}
