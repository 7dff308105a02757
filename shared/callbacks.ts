import type { CallbackDelivery, Store } from "./db/store.ts";
import { silentLogger, type Logger } from "./log.ts";
import { signedHeaders } from "./signature.ts";

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
  fetch: typeof fetch;
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
      fetch: (input, init) => fetch(input, init),
      logger: silentLogger,
      ...options,
      timeoutMs,
    };
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
    const error = await this.send(delivery);
    try {
      const { claimerId, maxAttempts, backoffMs } = this.options;
      const result = await this.store.recordCallbackResult(
        claimerId,
        delivery.id,
        error,
        maxAttempts,
        backoffMs,
      );
      const fields = { workflowId: delivery.workflowId, attempt: delivery.attempt, result, error };
      if (result === "gave_up") this.log.warn(fields, "completion callback given up");
      else this.log.debug(fields, "completion callback tried");
    } catch (err) {
      // The row stays leased; when the lease runs out it is claimed and sent again.
      this.log.error({ err, workflowId: delivery.workflowId }, "could not record a callback's result");
    }
  }

  /** POSTs one callback: null for a 2xx answer, otherwise why it failed. Redirects are not followed. */
  private async send(delivery: CallbackDelivery): Promise<string | null> {
    const body = JSON.stringify(delivery.body);
    const signed = await signedHeaders(delivery.secret, body, `callback-${delivery.id}`);
    try {
      const res = await this.options.fetch(delivery.url, {
        method: "POST",
        headers: { "content-type": "application/json", "user-agent": "dwop-callback", ...signed },
        body,
        redirect: "manual",
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
      await res.body?.cancel().catch(() => {});
      return res.ok ? null : `HTTP ${res.status}`;
    } catch (err) {
      return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    }
  }
}
