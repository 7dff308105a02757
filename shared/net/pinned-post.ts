// Needs node:http and node:https at call time (Node; Deno's Node compatibility), fetched with
// process.getBuiltinModule so that importing this file pulls in no Node-only module.
import type * as Http from "node:http";
import type { LookupFunction } from "node:net";
import { parseIp, type AllowList } from "./addresses.ts";
import { checkCallbackTarget, systemResolver, type ResolveHost } from "./callback-target.ts";

/** One POST of a callback. */
export interface CallbackPost {
  url: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
}

/** Sends a callback and returns the answer's status; throws when there is none (refused, unreachable). */
export type CallbackTransport = (post: CallbackPost) => Promise<number>;

/**
 * POSTs to a callback URL after checking where it goes, connected to exactly the address it checked:
 * the name is resolved once, every address must pass the rules (or the allow-list), and the connection's
 * lookup answers with that checked address, so a DNS answer that changes in between (rebinding) is never
 * used. The URL's host still goes in the Host header, TLS SNI and certificate check. No redirects are
 * followed, and the answer's body is not read.
 */
export function pinnedTransport(
  allow: AllowList,
  resolve: ResolveHost | null = systemResolver(),
): CallbackTransport {
  return async (post) => {
    const target = await checkCallbackTarget(post.url, allow, resolve, { requireResolved: true });
    const address = target.addresses[0]!;
    const family = parseIp(address)?.version ?? 4;
    const lookup: LookupFunction = (_host, options, callback) => {
      if (options.all) callback(null, [{ address, family }]);
      else callback(null, address, family);
    };
    const http = nodeModule(target.url.protocol === "https:" ? "node:https" : "node:http");
    const bytes = new TextEncoder().encode(post.body);
    return new Promise<number>((resolveStatus, reject) => {
      const req = http.request(
        target.url,
        {
          method: "POST",
          headers: { ...post.headers, "content-length": String(bytes.byteLength) },
          agent: false,
          lookup,
          signal: AbortSignal.timeout(post.timeoutMs),
        },
        (res) => {
          resolveStatus(res.statusCode ?? 0);
          res.on("error", () => {});
          req.destroy();
        },
      );
      req.on("error", reject);
      req.end(bytes);
    });
  };
}

function nodeModule(id: "node:http" | "node:https"): typeof Http {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const mod = proc?.getBuiltinModule?.(id) as typeof Http | undefined;
  if (!mod) throw new Error(`${id} is not available here: callbacks are sent from Node`);
  return mod;
}
