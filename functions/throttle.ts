import type { Context, MiddlewareHandler } from "hono";
import type { ApiEnv } from "./context.ts";
import { ApiError } from "./errors.ts";

/**
 * Throttling of failed authentication: an address whose bearer tokens, API keys or webhook signatures
 * fail `maxFailures` times within a window is answered 429 (with Retry-After) for a while, whatever it
 * sends. Correct callers never add an entry, and other addresses are never slowed. The state is a
 * fixed-size map in this process (or isolate, on Supabase Edge and workerd): bounded in memory, not
 * shared between isolates or replicas, so each of them counts on its own.
 */

export interface ThrottleSettings {
  /** Failed checks from one address within `windowMs` that get it refused; 0 turns throttling off. */
  maxFailures: number;
  windowMs: number;
  /** How long an address over the limit is refused. */
  blockMs: number;
  /** Most addresses remembered; the one that failed least recently is forgotten first. */
  maxEntries: number;
}

/** Where the client's address comes from; see `clientAddress`. */
export interface AddressSettings {
  /** A header that the deployment's proxy sets (cf-connecting-ip, x-forwarded-for, ...); else the peer. */
  header?: string;
  /** For x-forwarded-for: how many trusted proxies append to it. The client is that many from the right. */
  proxies: number;
}

interface Entry {
  since: number;
  failures: number;
  blockedUntil: number;
}

/** Counts failed checks per key, in a map of at most `maxEntries` keys, least recently failed first. */
export class FailureThrottle {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly settings: ThrottleSettings) {}

  /** How many keys are remembered. */
  get size(): number {
    return this.entries.size;
  }

  /** Milliseconds `key` must still wait, or 0 when it may try. */
  waitMs(key: string, now: number): number {
    const entry = this.entries.get(key);
    if (!entry) return 0;
    if (entry.blockedUntil > now) return entry.blockedUntil - now;
    if (now - entry.since >= this.settings.windowMs) this.entries.delete(key);
    return 0;
  }

  /** Counts one failed check of `key`; the one that reaches the limit blocks it. */
  fail(key: string, now: number): void {
    const { maxFailures, windowMs, blockMs, maxEntries } = this.settings;
    if (maxFailures <= 0) return;
    let entry = this.entries.get(key);
    // Deleted and set again, so that the map's first key is always the least recently failed.
    this.entries.delete(key);
    if (!entry || (now - entry.since >= windowMs && entry.blockedUntil <= now)) {
      entry = { since: now, failures: 0, blockedUntil: 0 };
    }
    entry.failures++;
    if (entry.failures >= maxFailures) {
      entry.blockedUntil = now + blockMs;
      entry.failures = 0;
      entry.since = now;
    }
    this.entries.set(key, entry);
    while (this.entries.size > maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
  }
}

/**
 * Refuses a throttled address with 429 before anything else is done, and counts the request as a
 * failure when its answer's status is one `failed` names. Requests whose address is unknown pass.
 */
export function throttleFailures(
  throttle: FailureThrottle,
  address: AddressSettings,
  now: () => number,
  failed: (status: number) => boolean,
): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const key = clientAddress(c, address);
    if (key === null) return next();
    const wait = throttle.waitMs(key, now());
    if (wait > 0) {
      const seconds = Math.ceil(wait / 1000);
      throw new ApiError(
        429,
        "too_many_failures",
        `too many failed authentications from this address; try again in ${seconds} s`,
        { retryAfter: seconds },
        { "Retry-After": String(seconds) },
      );
    }
    await next();
    if (failed(c.res.status)) throttle.fail(key, now());
  };
}

/**
 * The key of the client's address, or null when it is unknown. With a header configured, only that
 * header (which the proxy in front sets, so a client cannot choose it); without one, the TCP peer where
 * the runtime gives it (Node's socket). Deno and workerd give no peer worth using: on Supabase Edge and
 * Cloudflare it is the platform's proxy, which would make every client one.
 */
export function clientAddress(c: Context, settings: AddressSettings): string | null {
  if (settings.header) {
    const value = c.req.header(settings.header);
    if (!value) return null;
    if (settings.header.toLowerCase() !== "x-forwarded-for") return addressKey(value);
    const hops = value
      .split(",")
      .map((h) => h.trim())
      .filter((h) => h !== "");
    // Fewer entries than trusted proxies: not the chain the deployment described.
    const client = hops[hops.length - settings.proxies];
    return client === undefined ? null : addressKey(client);
  }
  const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined;
  const peer = env?.incoming?.socket?.remoteAddress;
  return peer ? addressKey(peer) : null;
}

/**
 * What an address is counted under: IPv4 as is (also when mapped into IPv6), IPv6 by its /64, which is
 * what one subscriber usually holds, and anything else as sent, cut to 64 characters.
 */
export function addressKey(address: string): string {
  const a = address.trim().toLowerCase();
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(a);
  if (mapped) return mapped[1]!;
  const groups = a.includes(":") ? ipv6Groups(a) : null;
  return groups ? `${groups.slice(0, 4).join(":")}::/64` : a.slice(0, 64);
}

/** The eight groups of an IPv6 address (without leading zeros), or null when it is not one. */
function ipv6Groups(address: string): string[] | null {
  const bare = address.replace(/%.*$/, "");
  const halves = bare.split("::");
  if (halves.length > 2) return null;
  const split = (part: string | undefined) => (part ? part.split(":") : []);
  const head = split(halves[0]);
  const tail = split(halves[1]);
  // A dotted IPv4 tail stands for two groups.
  const last = tail.length > 0 ? tail : head;
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(last.at(-1) ?? "")) last.splice(-1, 1, "0", "0");
  const missing = 8 - head.length - tail.length;
  if (missing < 0 || (halves.length === 1 && missing !== 0)) return null;
  const groups = [...head, ...Array<string>(missing).fill("0"), ...tail];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return null;
  return groups.map((g) => g.replace(/^0+(?=.)/, ""));
}
