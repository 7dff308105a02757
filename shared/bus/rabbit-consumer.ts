import type { Channel, ChannelModel, ConsumeMessage } from "amqplib";
import type { Consumer, Delivery } from "./bus.ts";
import { callHandler, InFlight } from "./in-flight.ts";
import { RabbitAcks } from "./rabbit-acks.ts";
import { describeError, parseTaskMessage, type BusLogger } from "./message.ts";
import type { TaskMessage } from "../model.ts";

interface Received {
  channel: Channel;
  message: ConsumeMessage;
  body: TaskMessage;
}

export interface RabbitConsumerOptions {
  queue: string;
  prefetch: number;
  handler: (delivery: Delivery) => Promise<void>;
  logger: BusLogger;
  /**
   * Called when the subscription ended while the connection may live on (the broker cancelled it after
   * a queue deletion or failover, or closed the channel, e.g. on a delivery-ack timeout): the bus
   * subscribes it again.
   */
  onCancelled: (consumer: RabbitConsumer) => void;
  /** Called once `stop()` begins, so the bus stops re-subscribing this consumer. */
  onStop: (consumer: RabbitConsumer) => void;
}

/**
 * One `consume()` call. It survives reconnects: the bus calls `attach` with every new connection, and
 * a delivery is settled only on the channel it came in on, and only while that channel is open. When
 * a channel dies with handlers still running, their results are dropped and the broker redelivers.
 */
export class RabbitConsumer implements Consumer {
  private channel: Channel | null = null;
  /** The connection `channel` belongs to. */
  private channelModel: ChannelModel | null = null;
  private attaching: { model: ChannelModel; done: Promise<void> } | null = null;
  private consumerTag: string | null = null;
  private readonly closedChannels = new WeakSet<Channel>();
  /** Deliveries waiting for a free handler slot (only after a reconnect, when old handlers still run). */
  private readonly waiting: Received[] = [];
  private readonly inFlight = new InFlight();
  private readonly acks = new RabbitAcks();
  private stopping: Promise<void> | null = null;

  constructor(private readonly options: RabbitConsumerOptions) {}

  get stopped(): boolean {
    return this.stopping !== null;
  }

  /**
   * Opens a consuming channel on this connection (the first one, or the one after a reconnect). Does
   * nothing when already subscribed on it, so a reconnect and a re-subscription can both call it.
   */
  attach(model: ChannelModel): Promise<void> {
    if (this.stopped || (this.channel && this.channelModel === model)) return Promise.resolve();
    if (this.attaching?.model === model) return this.attaching.done;
    const done = this.subscribe(model).finally(() => {
      if (this.attaching?.done === done) this.attaching = null;
    });
    this.attaching = { model, done };
    return done;
  }

  private async subscribe(model: ChannelModel): Promise<void> {
    const channel = await model.createChannel();
    channel.on("error", (err: Error) =>
      this.options.logger.warn({ err: describeError(err) }, "consumer channel error"),
    );
    channel.on("close", () => {
      this.closedChannels.add(channel);
      this.acks.forget(channel);
      if (this.channel !== channel) return;
      this.channel = null;
      if (!this.stopped) this.options.onCancelled(this);
    });
    await channel.prefetch(this.options.prefetch);
    const consume = (message: ConsumeMessage | null) => this.receive(channel, message);
    const { consumerTag } = await channel.consume(this.options.queue, consume, { noAck: false });
    if (this.stopped) {
      await channel.close().catch(() => {});
      return;
    }
    this.channel = channel;
    this.channelModel = model;
    this.consumerTag = consumerTag;
  }

  stop(): Promise<void> {
    this.stopping ??= this.drain();
    return this.stopping;
  }

  /** Cancels the subscription, returns waiting deliveries, waits for running handlers, closes the channel. */
  private async drain(): Promise<void> {
    this.options.onStop(this);
    const current = this.channel;
    if (current && this.consumerTag !== null) await current.cancel(this.consumerTag).catch(() => {});
    for (const { channel, message } of this.waiting.splice(0)) this.settle(channel, message, "requeue");
    await this.inFlight.whenIdle();
    this.acks.flush();
    this.channel = null;
    // Closing returns whatever the broker still counts as unacknowledged on it.
    if (current && !this.closedChannels.has(current)) await current.close().catch(() => {});
  }

  private receive(channel: Channel, message: ConsumeMessage | null): void {
    if (message === null) {
      this.options.logger.warn({ queue: this.options.queue }, "consumer cancelled by the broker");
      if (this.channel === channel) this.channel = null;
      void channel.close().catch(() => {});
      if (!this.stopped) this.options.onCancelled(this);
      return;
    }
    this.acks.received(channel, message);
    const body = parseTaskMessage(message.content);
    if (body === null) {
      this.options.logger.warn(
        { queue: this.options.queue, messageId: message.properties.messageId },
        "unparseable task message; dead-lettering it",
      );
      this.settle(channel, message, "dead-letter");
      return;
    }
    if (this.stopped) {
      this.settle(channel, message, "requeue");
      return;
    }
    this.waiting.push({ channel, message, body });
    this.startWaiting();
  }

  /** Starts handlers for waiting deliveries while fewer than `prefetch` run. */
  private startWaiting(): void {
    while (this.inFlight.size < this.options.prefetch) {
      const received = this.waiting.shift();
      if (!received) return;
      // A delivery from a channel that has since closed will be redelivered on the new one.
      if (this.closedChannels.has(received.channel)) continue;
      void this.inFlight.track(() => this.handle(received)).then(() => this.startWaiting());
    }
  }

  private async handle({ channel, message, body }: Received): Promise<void> {
    try {
      await callHandler(this.options.handler, { body, redelivered: message.fields.redelivered });
      this.settle(channel, message, "ack");
    } catch (err) {
      this.options.logger.warn(
        { taskId: body.taskId, attempt: body.attempt, err: describeError(err) },
        "handler failed; returning the message to the queue",
      );
      this.settle(channel, message, "requeue");
    }
  }

  /** An ack goes out with the others of this turn of the event loop (RabbitAcks), a nack at once. */
  private settle(channel: Channel, message: ConsumeMessage, how: "ack" | "requeue" | "dead-letter"): void {
    if (this.closedChannels.has(channel)) return;
    if (how === "ack") {
      this.acks.ack(channel, message);
      return;
    }
    this.acks.settled(channel, message);
    try {
      channel.nack(message, false, how === "requeue");
    } catch {
      // The channel closed between the check and the call; the broker redelivers the message.
    }
  }
}
