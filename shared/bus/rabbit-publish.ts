import type { OutgoingMessage } from "./bus.ts";
import { encodeTaskMessage } from "./message.ts";
import type { PooledChannel } from "./rabbit-pool.ts";

export interface PublishTarget {
  exchange: string;
  routingKey: string;
}

/**
 * Writes a whole batch on one confirm channel, then waits for the broker's confirms together. Resolves
 * with the outbox ids the broker acked and did not return as unroutable, in batch order. Ids nacked,
 * returned, never written (the channel died) or not confirmed within `timeoutMs` are left out; after a
 * timeout the channel is marked broken, so its late confirms can never be mistaken for a later batch's.
 */
export async function publishBatch(
  pooled: PooledChannel,
  target: PublishTarget,
  messages: OutgoingMessage[],
  timeoutMs: number,
): Promise<string[]> {
  const { channel } = pooled;
  const outcomes: Array<boolean | undefined> = new Array(messages.length);
  let unsettled = 0;
  let writing = true;
  let finish: () => void = () => {};
  const allSettled = new Promise<void>((resolve) => (finish = resolve));
  const settle = (index: number, confirmed: boolean) => {
    if (outcomes[index] !== undefined) return;
    outcomes[index] = confirmed;
    if (--unsettled === 0 && !writing) finish();
  };

  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      pooled.broken = true;
      resolve();
    }, timeoutMs);
  });

  try {
    for (const [index, message] of messages.entries()) {
      if (pooled.broken) break;
      unsettled++;
      let writable = true;
      try {
        writable = channel.publish(
          target.exchange,
          target.routingKey,
          Buffer.from(encodeTaskMessage(message.body)),
          { persistent: true, mandatory: true, contentType: "application/json", messageId: message.outboxId },
          (err: unknown) => settle(index, err == null && !pooled.returned.has(message.outboxId)),
        );
      } catch {
        // The channel closed under us: nothing more can be written on it.
        pooled.broken = true;
        settle(index, false);
        break;
      }
      if (!writable) await Promise.race([drained(pooled), timedOut]);
    }
    writing = false;
    if (unsettled > 0) await Promise.race([allSettled, timedOut]);
  } finally {
    clearTimeout(timer);
  }
  return messages.filter((_, index) => outcomes[index] === true).map((message) => message.outboxId);
}

/** Resolves when the channel's write buffer drained, or when the channel closed. */
function drained(pooled: PooledChannel): Promise<void> {
  const { channel } = pooled;
  return new Promise((resolve) => {
    const done = () => {
      channel.off("drain", done);
      channel.off("close", done);
      resolve();
    };
    channel.on("drain", done);
    channel.on("close", done);
  });
}
