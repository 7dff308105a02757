/**
 * The signature of webhook deliveries (`POST /hooks/:id`) and completion callbacks, both ways:
 * `X-DWOP-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<trigger id>.<raw body>">` for a webhook
 * (`"<timestamp>.<raw body>"` for a callback, which has no trigger), with the unix seconds in
 * `X-DWOP-Timestamp` and a delivery id in `X-DWOP-Delivery`. Web Crypto only, so it runs on every runtime.
 */

export const SIGNATURE_HEADER = "X-DWOP-Signature";
export const TIMESTAMP_HEADER = "X-DWOP-Timestamp";
export const DELIVERY_HEADER = "X-DWOP-Delivery";

/** How far a delivery's timestamp may be from the receiver's clock, either way. */
export const SIGNATURE_TOLERANCE_SECONDS = 300;

const encoder = new TextEncoder();

async function hmacKey(secret: string, usage: "sign" | "verify"): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    usage,
  ]);
}

/**
 * The bytes that are signed: `<timestamp>.`, then `<trigger id>.` for a webhook, then the raw body. With
 * the trigger's id signed, a delivery meant for one trigger is refused by any other, even one with the
 * same secret. The timestamp is digits and an id has no dot, so the fields cannot run into each other.
 */
function signedBytes(timestamp: string, body: Uint8Array, triggerId?: string): Uint8Array<ArrayBuffer> {
  const prefix = encoder.encode(triggerId === undefined ? `${timestamp}.` : `${timestamp}.${triggerId}.`);
  const bytes = new Uint8Array(prefix.length + body.length);
  bytes.set(prefix, 0);
  bytes.set(body, prefix.length);
  return bytes;
}

/** The `X-DWOP-Signature` value of a body sent at `timestamp` (unix seconds), to a trigger or not. */
export async function signPayload(
  secret: string,
  timestamp: string,
  body: Uint8Array | string,
  triggerId?: string,
): Promise<string> {
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  const signed = signedBytes(timestamp, bytes, triggerId);
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(secret, "sign"), signed);
  return `sha256=${toHex(new Uint8Array(mac))}`;
}

/** The three headers of a signed delivery (for a webhook: to the trigger `triggerId`). */
export async function signedHeaders(
  secret: string,
  body: Uint8Array | string,
  deliveryId: string,
  nowMs = Date.now(),
  triggerId?: string,
): Promise<Record<string, string>> {
  const timestamp = String(Math.floor(nowMs / 1000));
  return {
    [SIGNATURE_HEADER]: await signPayload(secret, timestamp, body, triggerId),
    [TIMESTAMP_HEADER]: timestamp,
    [DELIVERY_HEADER]: deliveryId,
  };
}

/** Why a signed delivery (to the trigger `triggerId`, if any) is refused; null when it is good. */
export async function checkSignature(
  secret: string,
  headers: { signature: string | undefined; timestamp: string | undefined },
  body: Uint8Array,
  nowMs: number,
  triggerId?: string,
): Promise<string | null> {
  const { signature, timestamp } = headers;
  if (!timestamp || !/^\d{1,12}$/.test(timestamp)) return `missing or malformed ${TIMESTAMP_HEADER}`;
  if (Math.abs(nowMs / 1000 - Number(timestamp)) > SIGNATURE_TOLERANCE_SECONDS) {
    return `${TIMESTAMP_HEADER} is more than ${SIGNATURE_TOLERANCE_SECONDS} seconds from the server's clock`;
  }
  const hex = /^sha256=([0-9a-fA-F]{64})$/.exec(signature ?? "")?.[1];
  if (!hex) return `missing or malformed ${SIGNATURE_HEADER} (expected sha256=<64 hex digits>)`;
  // subtle.verify compares in constant time.
  const ok = await crypto.subtle.verify(
    "HMAC",
    await hmacKey(secret, "verify"),
    fromHex(hex),
    signedBytes(timestamp, body, triggerId),
  );
  return ok ? null : "signature does not match";
}

export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

function fromHex(hex: string): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** SHA-256 of text or bytes, as lowercase hex. */
export async function sha256Hex(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>)));
}
