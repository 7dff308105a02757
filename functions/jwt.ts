/**
 * Verification of Supabase access tokens: JWTs signed with HS256 and the project's JWT secret. Web Crypto
 * only. The signature is checked before anything the token says is believed; `exp` is required.
 */

export type JwtCheck =
  { ok: true; sub: string; claims: Record<string, unknown> } | { ok: false; reason: string };

const encoder = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
      "verify",
    ]);
    keys.set(secret, key);
  }
  return key;
}

function base64UrlBytes(part: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[A-Za-z0-9_-]*$/.test(part)) return null;
  const b64 = part.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (part.length % 4)) % 4);
  try {
    return Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
  } catch {
    return null;
  }
}

function base64UrlJson(part: string): Record<string, unknown> | null {
  const bytes = base64UrlBytes(part);
  if (!bytes) return null;
  try {
    const value: unknown = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    return value && typeof value === "object" && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

/** Checks a JWT's HS256 signature, expiry and not-before against `nowMs`; the `sub` is its owner. */
export async function verifyJwt(token: string, secret: string, nowMs: number): Promise<JwtCheck> {
  const [headerPart = "", payloadPart = "", signaturePart = "", ...rest] = token.split(".");
  const header = base64UrlJson(headerPart);
  const signature = base64UrlBytes(signaturePart);
  if (rest.length > 0 || !header || !signature) return { ok: false, reason: "malformed token" };
  if (header.alg !== "HS256")
    return { ok: false, reason: `unsupported token algorithm ${String(header.alg)}` };
  const signed = encoder.encode(`${headerPart}.${payloadPart}`);
  if (!(await crypto.subtle.verify("HMAC", await hmacKey(secret), signature, signed))) {
    return { ok: false, reason: "token signature does not match" };
  }
  const claims = base64UrlJson(payloadPart);
  if (!claims) return { ok: false, reason: "malformed token" };
  const now = nowMs / 1000;
  if (typeof claims.exp !== "number") return { ok: false, reason: "token has no expiry" };
  if (claims.exp <= now) return { ok: false, reason: "token expired" };
  if (typeof claims.nbf === "number" && claims.nbf > now) return { ok: false, reason: "token not yet valid" };
  if (typeof claims.sub !== "string" || claims.sub === "")
    return { ok: false, reason: "token has no subject" };
  if (!OWNER.test(claims.sub)) return { ok: false, reason: "token subject is not a valid owner" };
  return { ok: true, sub: claims.sub, claims };
}

/**
 * What a `sub` may be to name an owner: at most 256 characters, none of them a control character (NUL
 * cannot be stored in Postgres text) or half of a surrogate pair (which the database would store as
 * U+FFFD, making two subjects one owner). Supabase's subjects are UUIDs.
 */
const OWNER = /^[^\p{Cc}\p{Cs}]{1,256}$/u;

/** Signs claims as an HS256 JWT (for tests and scripts that stand in for Supabase Auth). */
export async function signJwt(claims: Record<string, unknown>, secret: string): Promise<string> {
  const part = (value: unknown) => base64Url(encoder.encode(JSON.stringify(value)));
  const unsigned = `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}`;
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(secret), encoder.encode(unsigned));
  return `${unsigned}.${base64Url(new Uint8Array(mac))}`;
}

function base64Url(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
