import type { CallbackDelivery, Store } from "./db/store.ts";
import { silentLogger, type Logger } from "./log.ts";
import { EMPTY_ALLOW_LIST, type AllowList } from "./net/addresses.ts";
import { pinnedTransport, type CallbackTransport } from "./net/pinned-post.ts";
import { signedHeaders } from "./signature.ts";

/**
 * What a failed try records, and so what events and the API show: the same text whatever went wrong,
 * so a callback URL cannot be used to learn which ports answer and how. The detail goes to the log.
 */
export const DELIVERY_FAILED = "delivery failed";

export interface CallbackSenderOptions {
  /** The claimer whose lease the claimed rows carry. */
  claimerId: string;
  leaseSeconds: number;
  /** Tries of one callback before it is given up. */
  maxAttempts: number;
  /** Delay before the second try; doubles with each further try (at most an hour). */
  backoffMs: number;
  /** Longest wait for one answer; kept below the lease so a slow receiver cannot outlive it. */
  timeoutMs: number;
  /** Callbacks in flight at once. */
  concurrency: number;
  /** Blocks and names callbacks may reach although the address rules forbid them (DWOP_CALLBACK_ALLOW). */
  allow: AllowList;
  /** How a callback is POSTed; by default checked and pinned to the checked address (see pinnedTransport). */
  transport?: CallbackTransport;
  logger: Logger;
}

export const DEFAULT_CALLBACK_OPTIONS = {
  maxAttempts: 10,
  backoffMs: 1000,
  timeoutMs: 10_000,
  concurrency: 16,
};

/**
 * Sends completion callbacks: claims due `workflow.callback` outbox rows, POSTs each workflow summary
 * signed like a webhook delivery (delivery id `callback-<outbox id>`, the same on every try), and
 * records the answer. Sends run beside the claimer's loop, so a slow receiver never delays task messages.
 */
export class CallbackSender {
  private readonly inFlight = new Set<Promise<void>>();
  private readonly options: CallbackSenderOptions;
  private readonly transport: CallbackTransport;
  private readonly log: Logger;

  constructor(
    private readonly store: Store,
    options: Pick<CallbackSenderOptions, "claimerId" | "leaseSeconds"> & Partial<CallbackSenderOptions>,
  ) {
    const timeoutMs = Math.min(
      options.timeoutMs ?? DEFAULT_CALLBACK_OPTIONS.timeoutMs,
      (options.leaseSeconds * 1000) / 2,
    );
    this.options = {
      ...DEFAULT_CALLBACK_OPTIONS,
      allow: EMPTY_ALLOW_LIST,
      logger: silentLogger,
      ...options,
      timeoutMs,
    };
    this.transport = this.options.transport ?? pinnedTransport(this.options.allow);
    this.log = this.options.logger.child({ component: "callbacks" });
  }

  /** Claims due callbacks for the free slots and starts sending them; returns how many it started. */
  async pump(): Promise<number> {
    const free = this.options.concurrency - this.inFlight.size;
    if (free <= 0) return 0;
    const due = await this.store.claimCallbacks(this.options.claimerId, free, this.options.leaseSeconds);
    for (const delivery of due) {
      const sending: Promise<void> = this.deliver(delivery).finally(() => this.inFlight.delete(sending));
      this.inFlight.add(sending);
    }
    return due.length;
  }

  /** Waits for the callbacks in flight. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }

  private async deliver(delivery: CallbackDelivery): Promise<void> {
    const detail = await this.send(delivery);
    const error = detail === null ? null : DELIVERY_FAILED;
    try {
      const { claimerId, maxAttempts, backoffMs } = this.options;
      const result = await this.store.recordCallbackResult(
        claimerId,
        delivery.id,
        error,
        maxAttempts,
        backoffMs,
      );
      const fields = { workflowId: delivery.workflowId, attempt: delivery.attempt, result, error: detail };
      if (result === "gave_up") this.log.warn(fields, "completion callback given up");
      else if (detail !== null) this.log.info(fields, "completion callback failed; will try again");
      else this.log.debug(fields, "completion callback delivered");
    } catch (err) {
      // The row stays leased; when the lease runs out it is claimed and sent again.
      this.log.error({ err, workflowId: delivery.workflowId }, "could not record a callback's result");
    }
  }

  /** POSTs one callback: null for a 2xx answer, otherwise why it failed (for the log only). */
  private async send(delivery: CallbackDelivery): Promise<string | null> {
    const body = JSON.stringify(delivery.body);
    const signed = await signedHeaders(delivery.secret, body, `callback-${delivery.id}`);
    try {
      const status = await this.transport({
        url: delivery.url,
        headers: { "content-type": "application/json", "user-agent": "dwop-callback", ...signed },
        body,
        timeoutMs: this.options.timeoutMs,
      });
      return status >= 200 && status < 300 ? null : `HTTP ${status}`;
    } catch (err) {
      return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    }
  }
}
