import type { MiddlewareHandler } from "hono";
import { sha256Hex } from "../shared/signature.ts";
import type { ApiDeps, ApiEnv, Caller } from "./context.ts";
import { ApiError, unauthorized } from "./errors.ts";
import { verifyJwt } from "./jwt.ts";

/** The owner of everything done with DWOP_API_TOKEN. */
export const LOCAL_OWNER = "local";

/**
 * Requires `Authorization: Bearer <token>` and sets the caller. The token is DWOP_API_TOKEN (owner
 * "local"), a Supabase JWT (owner: its `sub`), or an API key (owner: the key's).
 */
export function authenticate(deps: ApiDeps): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "");
    if (!match?.[1]) throw unauthorized("missing bearer token: send Authorization: Bearer <token>");
    c.set("caller", await identify(match[1], deps));
    await next();
  };
}

async function identify(token: string, deps: ApiDeps): Promise<Caller> {
  const { apiToken, jwtSecret } = deps.settings;
  if (apiToken !== undefined && (await sameToken(token, apiToken)))
    return { owner: LOCAL_OWNER, via: "api_token" };
  if (token.split(".").length === 3) {
    if (!jwtSecret) throw unauthorized("this server accepts no JWTs (SUPABASE_JWT_SECRET is not set)");
    const check = await verifyJwt(token, jwtSecret, deps.now());
    if (!check.ok) throw unauthorized(check.reason);
    return { owner: check.sub, via: "jwt" };
  }
  const owner = await deps.api.apiKeyOwner(await sha256Hex(token));
  if (!owner) throw unauthorized("unknown or revoked API key");
  return { owner, via: "api_key" };
}

/** Compares digests, so the time taken says nothing about how much of the token matched. */
async function sameToken(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([sha256Hex(a), sha256Hex(b)]);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x.charCodeAt(i) ^ y.charCodeAt(i);
  return diff === 0;
}

/** Refuses callers that signed in with an API key: keys cannot mint or revoke keys. */
export function requireSignedIn(caller: Caller): void {
  if (caller.via === "api_key") {
    throw new ApiError(
      403,
      "forbidden",
      "API keys are managed with a signed-in token (a Supabase JWT or DWOP_API_TOKEN)",
    );
  }
}
