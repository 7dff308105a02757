import type { Channel, ConsumeMessage } from "amqplib";

/** One channel's deliveries not yet settled, in delivery order, and the acks waiting to go out. */
interface ChannelAcks {
  unsettled: number[];
  waiting: Map<number, ConsumeMessage>;
}

/**
 * Acknowledges a consumer's deliveries together: the acks of one turn of the event loop go out at its
 * end, those of the oldest unsettled deliveries as one `basic.ack` with `multiple` set (a dispatcher's
 * handlers end a batch at a time: one frame where there were thirty, each a write and work for the
 * broker). A `multiple` ack covers every unsettled delivery up to its tag on the channel, so it is sent
 * only for a run of deliveries that were all acked; the others are acked one by one. Each delivery must
 * be `received` before it is acked or `settled` otherwise.
 */
export class RabbitAcks {
  private readonly channels = new Map<Channel, ChannelAcks>();
  private flushing: NodeJS.Immediate | null = null;

  received(channel: Channel, message: ConsumeMessage): void {
    let acks = this.channels.get(channel);
    if (!acks) this.channels.set(channel, (acks = { unsettled: [], waiting: new Map() }));
    acks.unsettled.push(message.fields.deliveryTag);
  }

  /** Acks the delivery at the end of this turn of the event loop (or at the next flush()). */
  ack(channel: Channel, message: ConsumeMessage): void {
    const acks = this.channels.get(channel);
    if (!acks) return; // its channel closed (forgotten): the broker delivers it again
    acks.waiting.set(message.fields.deliveryTag, message);
    this.flushing ??= setImmediate(() => this.flush());
  }

  /** A delivery settled another way (a nack, sent at once): no `multiple` ack may count on it. */
  settled(channel: Channel, message: ConsumeMessage): void {
    const acks = this.channels.get(channel);
    if (acks) remove(acks.unsettled, message.fields.deliveryTag);
  }

  /** A closed channel: nothing more can be settled on it, and the broker delivers its unsettled again. */
  forget(channel: Channel): void {
    this.channels.delete(channel);
  }

  /** Sends every waiting ack now. */
  flush(): void {
    if (this.flushing) clearImmediate(this.flushing);
    this.flushing = null;
    for (const [channel, acks] of this.channels) {
      if (acks.waiting.size === 0) continue;
      let run = 0;
      while (run < acks.unsettled.length && acks.waiting.has(acks.unsettled[run]!)) run++;
      const together = run >= 2 ? acks.unsettled.splice(0, run) : [];
      const joined = new Set(together);
      const alone = [...acks.waiting.keys()].filter((tag) => !joined.has(tag));
      const messages = acks.waiting;
      acks.waiting = new Map();
      for (const tag of alone) remove(acks.unsettled, tag);
      try {
        if (together.length > 0) channel.ack(messages.get(together[together.length - 1]!)!, true);
        for (const tag of alone) channel.ack(messages.get(tag)!);
      } catch {
        // The channel closed meanwhile; the broker delivers the unacked messages again.
      }
    }
  }
}

function remove(tags: number[], tag: number): void {
  const i = tags.indexOf(tag);
  if (i >= 0) tags.splice(i, 1);
}
