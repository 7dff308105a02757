// Runtime-neutral: the API (Node, Deno, workerd) and the callback sender both use it.

/** An IP address as a number: 32 bits for IPv4, 128 for IPv6. */
export interface Ip {
  version: 4 | 6;
  value: bigint;
}

/** A block of addresses: `10.0.0.0/8`, `fd00::/8`. */
export interface Cidr {
  version: 4 | 6;
  base: bigint;
  bits: number;
}

/**
 * Where callbacks may go despite the ranges below: CIDRs, and host names (`receiver.ns.svc`, or
 * `*.ns.svc` for every name under it), from DWOP_CALLBACK_ALLOW.
 */
export interface AllowList {
  cidrs: Cidr[];
  names: string[];
  suffixes: string[];
}

export const EMPTY_ALLOW_LIST: AllowList = { cidrs: [], names: [], suffixes: [] };

/** Why an address is off limits, by block; the first block that holds an address names it. */
const FORBIDDEN_V4: [string, string][] = [
  ["0.0.0.0/8", "unspecified"],
  ["10.0.0.0/8", "private"],
  ["100.64.0.0/10", "shared (CGNAT)"],
  ["127.0.0.0/8", "loopback"],
  ["169.254.0.0/16", "link-local (cloud metadata)"],
  ["172.16.0.0/12", "private"],
  ["192.0.0.0/24", "reserved (cloud metadata)"],
  ["192.0.2.0/24", "documentation"],
  ["192.168.0.0/16", "private"],
  ["198.18.0.0/15", "benchmarking"],
  ["198.51.100.0/24", "documentation"],
  ["203.0.113.0/24", "documentation"],
  ["224.0.0.0/4", "multicast"],
  ["240.0.0.0/4", "reserved"],
  ["168.63.129.16/32", "cloud metadata"],
];
const FORBIDDEN_V6: [string, string][] = [
  ["::/128", "unspecified"],
  ["::1/128", "loopback"],
  ["64:ff9b:1::/48", "private (local NAT64)"],
  ["100::/64", "discard"],
  ["2001::/32", "Teredo"],
  ["2001:db8::/32", "documentation"],
  ["fc00::/7", "private (unique local)"],
  ["fe80::/10", "link-local"],
  ["fec0::/10", "site-local"],
  ["ff00::/8", "multicast"],
];
/**
 * IPv6 blocks that carry an IPv4 address in their low 32 bits, judged as that address: IPv4-mapped,
 * IPv4-compatible, IPv4-translated (SIIT) and NAT64's well-known prefix (its local-use one is forbidden).
 */
const EMBEDS_V4 = ["::ffff:0:0/96", "::/96", "::ffff:0:0:0/96", "64:ff9b::/96"].map((c) => parseCidr(c)!);
const SIX_TO_FOUR = parseCidr("2002::/16")!;

const blocks = (list: [string, string][]) => list.map(([c, why]) => ({ cidr: parseCidr(c)!, why }));
const V4_BLOCKS = blocks(FORBIDDEN_V4);
const V6_BLOCKS = blocks(FORBIDDEN_V6);

/** Parses a dotted-quad IPv4 address or an IPv6 address (brackets and a zone allowed); null otherwise. */
export function parseIp(text: string): Ip | null {
  const v4 = parseIpv4(text);
  if (v4 !== null) return { version: 4, value: v4 };
  const v6 = parseIpv6(text.replace(/^\[(.*)\]$/, "$1").replace(/%.*$/, ""));
  return v6 === null ? null : { version: 6, value: v6 };
}

function parseIpv4(text: string): bigint | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let value = 0n;
  for (const part of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(part) || Number(part) > 255) return null;
    value = (value << 8n) | BigInt(part);
  }
  return value;
}

function parseIpv6(text: string): bigint | null {
  const halves = text.split("::");
  if (halves.length > 2) return null;
  // A dotted IPv4 tail may only end the whole address.
  const groups = (half: string, last: boolean): bigint[] | null => {
    if (half === "") return [];
    const out: bigint[] = [];
    const parts = half.split(":");
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      const v4 = last && i === parts.length - 1 && part.includes(".") ? parseIpv4(part) : null;
      if (v4 !== null) out.push(v4 >> 16n, v4 & 0xffffn);
      else if (/^[0-9a-f]{1,4}$/i.test(part)) out.push(BigInt(`0x${part}`));
      else return null;
    }
    return out;
  };
  const head = groups(halves[0]!, halves.length === 1);
  const tail = halves.length === 2 ? groups(halves[1]!, true) : [];
  if (head === null || tail === null) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  return [...head, ...Array<bigint>(missing).fill(0n), ...tail].reduce((v, g) => (v << 16n) | g, 0n);
}

/** Parses `address/bits` (or a bare address, a block of one); null when it is neither. */
export function parseCidr(text: string): Cidr | null {
  const [address, bitsText, extra] = text.split("/");
  if (extra !== undefined || address === undefined) return null;
  const ip = parseIp(address);
  if (!ip) return null;
  const width = ip.version === 4 ? 32 : 128;
  if (bitsText !== undefined && !/^\d{1,3}$/.test(bitsText)) return null;
  const bits = bitsText === undefined ? width : Number(bitsText);
  if (bits > width) return null;
  return { version: ip.version, base: ip.value & mask(bits, width), bits };
}

function mask(bits: number, width: number): bigint {
  return ((1n << BigInt(bits)) - 1n) << BigInt(width - bits);
}

export function inCidr(ip: Ip, cidr: Cidr): boolean {
  const width = ip.version === 4 ? 32 : 128;
  return ip.version === cidr.version && (ip.value & mask(cidr.bits, width)) === cidr.base;
}

/**
 * Why an address is no place for a callback (loopback, private, link-local, CGNAT, unspecified,
 * multicast, reserved, metadata), or null when it is a public unicast address. An IPv4 address inside
 * IPv6 (mapped, compatible, NAT64, 6to4) is judged as the IPv4 address.
 */
export function forbiddenReason(ip: Ip): string | null {
  if (ip.version === 4) return V4_BLOCKS.find((b) => inCidr(ip, b.cidr))?.why ?? null;
  if (EMBEDS_V4.some((c) => inCidr(ip, c)) && ip.value > 1n) {
    return forbiddenReason({ version: 4, value: ip.value & 0xffffffffn });
  }
  if (inCidr(ip, SIX_TO_FOUR)) return forbiddenReason({ version: 4, value: (ip.value >> 80n) & 0xffffffffn });
  return V6_BLOCKS.find((b) => inCidr(ip, b.cidr))?.why ?? null;
}

/**
 * Parses DWOP_CALLBACK_ALLOW: entries separated by commas or blanks, each a CIDR, an IP address, a host
 * name, or `*.` and a domain. Throws naming the entries that are none of these.
 */
export function parseAllowList(text: string | undefined): AllowList {
  const list: AllowList = { cidrs: [], names: [], suffixes: [] };
  const bad: string[] = [];
  for (const entry of (text ?? "").split(/[\s,]+/).filter(Boolean)) {
    const cidr = parseCidr(entry);
    const name = entry.toLowerCase().replace(/\.$/, "");
    if (cidr) list.cidrs.push(cidr);
    else if (/^\*\.[a-z0-9.-]+$/.test(name) && isHostName(name.slice(2))) list.suffixes.push(name.slice(1));
    else if (isHostName(name)) list.names.push(name);
    else bad.push(entry);
  }
  if (bad.length > 0) {
    throw new Error(`not a CIDR, an IP address or a host name: ${bad.join(", ")}`);
  }
  return list;
}

function isHostName(name: string): boolean {
  return (
    name.length <= 253 &&
    name.split(".").every((label) => /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/.test(label)) &&
    parseIp(name) === null
  );
}

/** True when the operator allowed this host name (exactly, or under an allowed `*.` domain). */
export function nameAllowed(name: string, allow: AllowList): boolean {
  const host = name.toLowerCase().replace(/\.$/, "");
  return allow.names.includes(host) || allow.suffixes.some((s) => host.endsWith(s));
}

/** True when an address lies in one of the operator's allowed blocks. */
export function addressAllowed(ip: Ip, allow: AllowList): boolean {
  return allow.cidrs.some((c) => inCidr(ip, c));
}

/** `localhost` and every name under it are the machine itself (RFC 6761), whatever DNS says. */
export function isLocalhostName(name: string): boolean {
  const host = name.toLowerCase().replace(/\.$/, "");
  return host === "localhost" || host.endsWith(".localhost");
}
