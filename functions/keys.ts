import type { Hono } from "hono";
import { requireSignedIn } from "./auth.ts";
import { readJson, uuidParam } from "./body.ts";
import type { ApiDeps, ApiEnv } from "./context.ts";
import { notFound } from "./errors.ts";
import type { RouteDoc } from "./openapi.ts";
import { ApiKeyCreate, ApiKeyCreated, ApiKeyList } from "./schemas.ts";

/**
 * The caller's API keys. Making and revoking keys needs a signed-in token (a Supabase JWT or
 * DWOP_API_TOKEN), so a leaked key cannot make itself a successor. Operators can also make a key in SQL:
 * `select * from dwop.create_api_key('<owner>', '<name>')`.
 */
export function keyRoutes(app: Hono<ApiEnv>, deps: ApiDeps): void {
  app.post("/keys", async (c) => {
    const caller = c.get("caller");
    requireSignedIn(caller);
    const { name } = await readJson(c, ApiKeyCreate);
    const key = await deps.api.createApiKey(caller.owner, name);
    return c.json(key, 201);
  });

  app.get("/keys", async (c) => c.json({ keys: await deps.api.listApiKeys(c.get("caller").owner) }));

  app.delete("/keys/:id", async (c) => {
    const caller = c.get("caller");
    requireSignedIn(caller);
    if (!(await deps.api.revokeApiKey(caller.owner, uuidParam(c, "id", "API key"))))
      throw notFound("API key");
    return c.body(null, 204);
  });
}

export const keyDocs: RouteDoc[] = [
  {
    method: "post",
    path: "/keys",
    summary: "Make an API key for the caller (shown once); needs a JWT or DWOP_API_TOKEN",
    auth: "bearer",
    body: [{ contentType: "application/json", schema: ApiKeyCreate }],
    responses: { 201: { description: "the key, shown this once", schema: ApiKeyCreated } },
    errors: [400, 403, 413, 415, 422],
  },
  {
    method: "get",
    path: "/keys",
    summary: "The caller's API keys (never the keys themselves)",
    auth: "bearer",
    responses: { 200: { description: "every key of the caller", schema: ApiKeyList } },
  },
  {
    method: "delete",
    path: "/keys/:id",
    summary: "Revoke an API key; needs a JWT or DWOP_API_TOKEN",
    auth: "bearer",
    responses: { 204: { description: "revoked" } },
    errors: [403, 404],
  },
];
