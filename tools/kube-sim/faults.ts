/** Fault state the tests set on a running simulator: failed and slow requests, 410s, scheduling, images. */

/** One kind of request to fail: every field given must match. */
export interface FailSpec {
  /** HTTP method, e.g. "POST". */
  method?: string;
  /** Tested against the request's path and query, e.g. /\/jobs(\?|$)/. */
  path?: RegExp;
  /** HTTP status to answer with: 500, 429, 503, 410, ... */
  status: number;
  /** Body to send instead of the API server's Status for that code. */
  body?: unknown;
  /** Sent as the Retry-After header (and in the Status details), as the API server does for 429. */
  retryAfterSeconds?: number;
}

/** How a watch from a resourceVersion older than the history window is refused. */
export type GoneMode = "event" | "http";

export class Faults {
  latencyMs = 0;
  goneAs: GoneMode = "event";
  /** Set: newly scheduled pods stay Pending with PodScheduled=False, reason Unschedulable. */
  unschedulable: string | undefined;
  readonly failingImages = new Set<string>();
  private readonly rules: { remaining: number; spec: FailSpec }[] = [];

  failNext(count: number, spec: FailSpec): void {
    if (count > 0) this.rules.push({ remaining: count, spec });
  }

  /** The fault the request gets, if any; each use counts down its rule. */
  take(method: string, url: string): FailSpec | undefined {
    const index = this.rules.findIndex(
      ({ spec }) =>
        (!spec.method || spec.method.toUpperCase() === method) && (!spec.path || spec.path.test(url)),
    );
    if (index < 0) return undefined;
    const rule = this.rules[index]!;
    if (--rule.remaining <= 0) this.rules.splice(index, 1);
    return rule.spec;
  }

  /** Injected failures not yet used. */
  pending(): number {
    return this.rules.reduce((sum, r) => sum + r.remaining, 0);
  }
}
