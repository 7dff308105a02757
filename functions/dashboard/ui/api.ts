// The dashboard's calls to the API it is served by, with the signed-in token.

const SESSION_KEY = "dwop.session";

/** Who is signed in: the bearer token and the owner the server said it belongs to. */
export interface Session {
  token: string;
  owner: string;
}

export function currentSession(): Session | null {
  try {
    const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null") as Session | null;
    return saved && typeof saved.token === "string" ? saved : null;
  } catch {
    return null;
  }
}

export function saveSession(session: Session): void {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

export function clearSession(): void {
  sessionStorage.removeItem(SESSION_KEY);
}

/**
 * The API's root. A static build names it in `<meta name="dwop-api">`; served by the API, the page is
 * `<root>/ui/`, so this works behind any path prefix.
 */
export function apiRoot(): string {
  const named = document.querySelector<HTMLMetaElement>('meta[name="dwop-api"]')?.content;
  if (named) return named.endsWith("/") ? named : `${named}/`;
  const path = location.pathname;
  const at = path.lastIndexOf("/ui/");
  return at === -1 ? "/" : path.slice(0, at + 1);
}

/** An error answer of the API: its status and the `{"error": {code, message, details}}` body. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: unknown,
  ) {
    super(message);
  }
}

let onUnauthorized: () => void = () => {};

/** What to do when the server refuses the token (it expired, or the key was revoked). */
export function whenUnauthorized(handler: () => void): void {
  onUnauthorized = handler;
}

/** A request to the API with the session's token (or `token`); an error answer throws an ApiError. */
export async function call(path: string, init: RequestInit = {}, token?: string): Promise<Response> {
  const bearer = token ?? currentSession()?.token;
  const headers = new Headers(init.headers);
  if (bearer) headers.set("authorization", `Bearer ${bearer}`);
  let res: Response;
  try {
    res = await fetch(`${apiRoot()}${path}`, { ...init, headers, cache: "no-store" });
  } catch {
    throw new ApiError(0, "network", "the server cannot be reached", null);
  }
  if (res.ok) return res;
  let body: { error?: { code?: string; message?: string; details?: unknown } } = {};
  try {
    body = (await res.json()) as typeof body;
  } catch {
    // not JSON: a proxy's page
  }
  const err = new ApiError(
    res.status,
    body.error?.code ?? "http_error",
    body.error?.message ?? `${res.status} ${res.statusText}`,
    body.error?.details ?? null,
  );
  if (res.status === 401 && token === undefined) onUnauthorized();
  throw err;
}

export async function getJson<T>(path: string): Promise<T> {
  return (await (await call(path)).json()) as T;
}

export async function postJson<T>(path: string, body?: unknown): Promise<T> {
  const init: RequestInit =
    body === undefined
      ? { method: "POST" }
      : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
  return (await (await call(path, init)).json()) as T;
}

/** The first `maxBytes` of a streamed body as text, and whether there was more. */
export async function readHead(res: Response, maxBytes: number): Promise<{ text: string; more: boolean }> {
  const reader = res.body!.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let more = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.length;
    if (size >= maxBytes) {
      more = size > maxBytes;
      await reader.cancel();
      break;
    }
  }
  const all = new Uint8Array(Math.min(size, maxBytes));
  let at = 0;
  for (const c of chunks) {
    const part = c.subarray(0, all.length - at);
    all.set(part, at);
    at += part.length;
  }
  return { text: new TextDecoder().decode(all), more };
}

/**
 * The last `maxBytes` of a streamed body as text, whether anything was cut off before them, and how many
 * bytes the body had.
 */
export async function readTail(
  res: Response,
  maxBytes: number,
): Promise<{ text: string; cut: boolean; size: number }> {
  const reader = res.body!.getReader();
  let kept = new Uint8Array(0);
  let cut = false;
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    const joined = new Uint8Array(kept.length + value.length);
    joined.set(kept);
    joined.set(value, kept.length);
    cut ||= joined.length > maxBytes;
    kept = joined.length > maxBytes ? joined.slice(joined.length - maxBytes) : joined;
  }
  return { text: new TextDecoder().decode(kept), cut, size };
}

/** Downloads an API resource as a file (a link cannot send the Authorization header). */
export async function download(path: string, fileName: string): Promise<void> {
  const blob = await (await call(path)).blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = fileName;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
