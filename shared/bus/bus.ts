import type { TaskMessage } from "../model.ts";

/** A message to publish: the outbox row it came from and the task attempt it asks to run. */
export interface OutgoingMessage {
  outboxId: string;
  body: TaskMessage;
}

/** What a handler is given for one delivery. */
export interface Delivery {
  body: TaskMessage;
  /** True when the bus knows this message was delivered before (RabbitMQ's redelivered flag, pg-boss retry). */
  redelivered: boolean;
}

export interface ConsumeOptions {
  /** Most deliveries handed out and not yet settled at once. */
  prefetch: number;
}

export interface Consumer {
  /** Stop taking new deliveries; resolves once no handler is running. Unsettled deliveries go back to the queue. */
  stop(): Promise<void>;
}

/**
 * The message bus between claimer and dispatchers. Delivery is at least once: a handler that resolves
 * acknowledges its delivery, one that rejects returns it to the queue. A message whose body cannot be
 * parsed goes to a dead-letter queue without reaching the handler.
 */
export interface Bus {
  /** Publishes with broker confirms; resolves with the outbox ids the broker confirmed (never throws for a nack). */
  publish(messages: OutgoingMessage[]): Promise<string[]>;
  consume(handler: (delivery: Delivery) => Promise<void>, options: ConsumeOptions): Promise<Consumer>;
  /** Messages waiting in the task queue (for metrics and tests). */
  depth(): Promise<number>;
  close(): Promise<void>;
}
