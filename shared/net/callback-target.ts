// Runtime-neutral: where a completion callback may be sent, checked at submit and again at delivery.
import {
  addressAllowed,
  forbiddenReason,
  isLocalhostName,
  nameAllowed,
  parseIp,
  type AllowList,
} from "./addresses.ts";

/** Every address a host name resolves to (A and AAAA); throws when it cannot be resolved. */
export type ResolveHost = (name: string) => Promise<string[]>;

/** A callback URL that may not be used, with the reason a caller may read. */
export class CallbackRefused extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "CallbackRefused";
  }
}

/** Where to connect for a callback: the URL's host name and the checked addresses to use for it. */
export interface CallbackTarget {
  url: URL;
  /** The host as it goes in the Host header and TLS SNI (no brackets for IPv6). */
  host: string;
  /** Checked addresses; empty only when the name could not be resolved and `requireResolved` was false. */
  addresses: string[];
}

const RULE =
  "callbacks may not go to loopback, private, link-local, shared (CGNAT), multicast, reserved or cloud metadata addresses";

/**
 * Checks a callback URL against the address rules: a literal address directly, a name by resolving it
 * (every address it resolves to must pass). Names and blocks on the operator's allow-list pass. With
 * `requireResolved` false (at submit, where a runtime may be unable to resolve), a name that does not
 * resolve passes unchecked: the sender checks again before it connects, and connects only to what it
 * checked. Refusals do not say which address a name resolved to.
 */
export async function checkCallbackTarget(
  raw: string,
  allow: AllowList,
  resolve: ResolveHost | null,
  options: { requireResolved: boolean },
): Promise<CallbackTarget> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CallbackRefused("callback_url is not a URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new CallbackRefused("callback_url must be an http or https URL");
  }
  // WHATWG parsing has already turned 2130706433, 0177.1 and 0x7f.1 into 127.0.0.1.
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const literal = parseIp(host);
  if (literal) {
    const why = forbiddenReason(literal);
    if (why && !addressAllowed(literal, allow)) {
      const article = /^[aeiou]/.test(why) ? "an" : "a";
      throw new CallbackRefused(`callback_url's host ${host} is ${article} ${why} address: ${RULE}`);
    }
    return { url, host, addresses: [host] };
  }
  const byName = nameAllowed(host, allow);
  if (isLocalhostName(host) && !byName) {
    throw new CallbackRefused(`callback_url's host ${host} is this machine: ${RULE}`);
  }
  let addresses: string[] = [];
  try {
    if (!resolve) throw new Error("no resolver on this runtime");
    addresses = await resolve(host);
  } catch (err) {
    if (options.requireResolved) {
      throw new CallbackRefused(`callback_url's host ${host} could not be resolved`, { cause: err });
    }
    return { url, host, addresses: [] };
  }
  if (addresses.length === 0 && options.requireResolved) {
    throw new CallbackRefused(`callback_url's host ${host} could not be resolved`);
  }
  for (const address of addresses) {
    const ip = parseIp(address);
    if (byName || (ip && addressAllowed(ip, allow))) continue;
    if (!ip || forbiddenReason(ip)) {
      throw new CallbackRefused(
        `callback_url's host ${host} resolves to an address that is off limits: ${RULE}`,
      );
    }
  }
  return { url, host, addresses };
}

interface DenoDns {
  resolveDns(name: string, type: "A" | "AAAA"): Promise<string[]>;
}
interface NodeDns {
  promises: {
    lookup(name: string, options: { all: true; verbatim: true }): Promise<{ address: string }[]>;
  };
}

/**
 * The runtime's resolver: node:dns (Node, and Deno's Node compatibility) through
 * `process.getBuiltinModule`, which needs no import, else `Deno.resolveDns`; null where there is none.
 * A lookup gives up after `timeoutMs`, so a slow DNS server cannot hold a request.
 */
export function systemResolver(timeoutMs = 2000): ResolveHost | null {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  let node: NodeDns | undefined;
  try {
    node = proc?.getBuiltinModule?.("node:dns") as NodeDns | undefined;
  } catch {
    node = undefined;
  }
  const deno = (globalThis as { Deno?: Partial<DenoDns> }).Deno;
  let lookup: ResolveHost;
  if (node?.promises?.lookup) {
    const dns = node.promises;
    lookup = async (name) => (await dns.lookup(name, { all: true, verbatim: true })).map((a) => a.address);
  } else if (typeof deno?.resolveDns === "function") {
    const resolveDns = deno.resolveDns.bind(deno);
    lookup = async (name) => {
      const answers = await Promise.allSettled([resolveDns(name, "A"), resolveDns(name, "AAAA")]);
      const found = answers.flatMap((a) => (a.status === "fulfilled" ? a.value : []));
      const failed = answers.flatMap((a) => (a.status === "rejected" ? [a.reason as unknown] : []));
      if (failed.length === answers.length) throw failed[0];
      return found;
    };
  } else {
    return null;
  }
  return (name) => withTimeout(lookup(name), timeoutMs, `resolving ${name} took over ${timeoutMs} ms`);
}

function withTimeout<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}
