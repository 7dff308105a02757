/**
 * A run's log-stream token: what lets one attempt's worker ship its live log to the API (and ask for
 * fresh upload URLs), and nothing else. It is the HMAC-SHA256 of the run id under the installation's
 * `log_stream` key (kept in the database, read by the dispatcher that signs and the API that checks), so
 * no setting is shared between them; it stops working when the run ends, because the API checks the
 * run's state on every use. The dispatcher signs it with Node's HMAC (dispatcher/worker-env.ts); this
 * file checks it with Web Crypto only: the API runs on Deno and workerd too.
 */

/** Chunks a worker may ship, and how much of one attempt's log the database keeps while it runs. */
export const LOG_CHUNK_MAX_BYTES = 1024 * 1024;
export const LIVE_LOG_MAX_BYTES = 16 * 1024 * 1024;

const encoder = new TextEncoder();

/** Imported once per key (the key is read once per process), not once per run or request. */
const imported = new WeakMap<Uint8Array, Promise<CryptoKey>>();

function key(secret: Uint8Array): Promise<CryptoKey> {
  let k = imported.get(secret);
  if (!k) {
    const usages: KeyUsage[] = ["verify"];
    k = crypto.subtle.importKey(
      "raw",
      new Uint8Array(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      usages,
    );
    imported.set(secret, k);
  }
  return k;
}

/** What a run's token is the MAC of (logStreamToken in dispatcher/worker-env.ts signs it). */
export function logStreamMessage(runId: string): string {
  return `run-log:${runId}`;
}

function message(runId: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(logStreamMessage(runId));
}

function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Whether `token` is the run's (compared in constant time by Web Crypto's verify). */
export async function verifyLogStreamToken(
  secret: Uint8Array,
  runId: string,
  token: string,
): Promise<boolean> {
  if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return false;
  const binary = atob(token.replace(/-/g, "+").replace(/_/g, "/") + "=");
  const mac = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  // The last character carries 2 unused bits: only the one spelling of the MAC is the token.
  if (base64url(mac) !== token) return false;
  return crypto.subtle.verify("HMAC", await key(secret), mac, message(runId));
}

/** The URL a run's worker posts its log chunks to, under the API's base URL. */
export function logStreamUrl(apiUrl: string, runId: string): string {
  return `${apiUrl.replace(/\/+$/, "")}/runs/${runId}/log`;
}
