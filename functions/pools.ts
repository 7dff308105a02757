import type { Hono } from "hono";
import { PoolStore } from "../shared/db/pool-store.ts";
import { POOL_NAME } from "../shared/dsl/decorators.ts";
import type { WorkflowSpec } from "../shared/model.ts";
import { readJson, uuidParam } from "./body.ts";
import type { ApiDeps, ApiEnv, Caller } from "./context.ts";
import { ApiError, notFound } from "./errors.ts";
import type { RouteDoc } from "./openapi.ts";
import { ApiKeyLimit, ApiKeyLimitSet, Pool, PoolList, PoolSet } from "./schemas.ts";

/**
 * Pools (`@pool("name")` on a task: at most `slots` attempts of the pool's tasks start or run at once)
 * and per-owner caps on running tasks. Anyone signed in may read them; only an operator (DWOP_API_TOKEN)
 * may change them, since they share capacity between owners. See docs/pools.md.
 */
export function poolRoutes(app: Hono<ApiEnv>, deps: ApiDeps): void {
  const pools = new PoolStore(deps.db);

  app.get("/pools", async (c) => c.json({ pools: await pools.list() }));

  app.put("/pools/:name", async (c) => {
    requireOperator(c.get("caller"));
    const name = poolName(c.req.param("name"));
    const { slots } = await readJson(c, PoolSet);
    return c.json(await pools.set(name, slots));
  });

  app.delete("/pools/:name", async (c) => {
    requireOperator(c.get("caller"));
    const name = c.req.param("name");
    const result = POOL_NAME.test(name) ? await pools.delete(name) : "not_found";
    if (result === "not_found") throw notFound("pool");
    if (result === "in_use") {
      throw new ApiError(409, "pool_in_use", `pool ${name} is named by tasks that have not ended`);
    }
    return c.body(null, 204);
  });

  app.patch("/keys/:id", async (c) => {
    requireOperator(c.get("caller"));
    const id = uuidParam(c, "id", "API key");
    const { maxRunning } = await readJson(c, ApiKeyLimitSet);
    if (!(await pools.setKeyMaxRunning(id, maxRunning))) throw notFound("API key");
    return c.json({ id, maxRunning });
  });
}

/** Refuses everyone but the operator: the caller holding DWOP_API_TOKEN. */
function requireOperator(caller: Caller): void {
  if (caller.via !== "api_token") {
    throw new ApiError(403, "forbidden", "only the operator (DWOP_API_TOKEN) may change pools and caps");
  }
}

function poolName(name: string): string {
  if (POOL_NAME.test(name)) return name;
  throw new ApiError(
    400,
    "invalid_pool_name",
    'a pool name is 1 to 64 letters, digits, "_", "." and "-", starting with a letter or digit',
    { path: "name" },
  );
}

export const poolDocs: RouteDoc[] = [
  {
    method: "get",
    path: "/pools",
    summary: "Every pool: its slots, the runs holding one, and the tasks queued for one",
    auth: "bearer",
    responses: { 200: { description: "every pool", schema: PoolList } },
  },
  {
    method: "put",
    path: "/pools/:name",
    summary: "Make or resize a pool; operator only (DWOP_API_TOKEN)",
    auth: "bearer",
    body: [{ contentType: "application/json", schema: PoolSet }],
    responses: { 200: { description: "the pool", schema: Pool } },
    errors: [400, 403, 413, 415, 422],
  },
  {
    method: "delete",
    path: "/pools/:name",
    summary: "Delete a pool no open task names; operator only (DWOP_API_TOKEN)",
    auth: "bearer",
    responses: { 204: { description: "deleted" } },
    errors: [403, 404, 409],
  },
  {
    method: "patch",
    path: "/keys/:id",
    summary: "Set the key owner's cap on running tasks (null: the default); operator only (DWOP_API_TOKEN)",
    auth: "bearer",
    body: [{ contentType: "application/json", schema: ApiKeyLimitSet }],
    responses: { 200: { description: "the cap now set", schema: ApiKeyLimit } },
    errors: [400, 403, 404, 413, 415, 422],
  },
];

/**
 * Refuses (422 unknown_pool) a workflow kept to be started later, a schedule's or a trigger's, that names a
 * pool that does not exist, as its submit would be refused: else every start would fail.
 */
export async function refuseUnknownPools(deps: ApiDeps, spec: WorkflowSpec): Promise<void> {
  const pools = [...new Set(spec.tasks.flatMap((t) => (t.options.pool ? [t.options.pool] : [])))];
  const [missing] = await deps.schedules.unknownPools(pools);
  if (missing !== undefined) {
    const message = `the workflow names pool ${missing}, which does not exist (an operator makes it with PUT /pools/${missing})`;
    throw new ApiError(422, "unknown_pool", message, { path: "workflow", pool: missing });
  }
}
