import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { Db } from "../shared/db/connect.ts";

export interface AppDeps {
  db: Db;
  /** Routes only some runtimes have (local file storage on Node), mounted at the root. */
  extraRoutes?: Hono;
}

/**
 * DWOP's HTTP API: one Hono app that every runtime (Node, Deno/Supabase Edge, workerd) serves.
 * Every error leaves as JSON `{"error": {"code", "message"}}`; stack traces stay in the logs.
 */
export function createApp(deps: AppDeps): Hono {
  const app = new Hono();
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    try {
      await deps.db`select 1`;
      return c.json({ status: "ready" });
    } catch {
      return c.json({ error: { code: "unavailable", message: "database unreachable" } }, 503);
    }
  });
  if (deps.extraRoutes) app.route("/", deps.extraRoutes);
  app.notFound((c) => c.json({ error: { code: "not_found", message: `no route for ${c.req.method} ${c.req.path}` } }, 404));
  app.onError((err, c) => {
    if (err instanceof HTTPException) {
      return c.json({ error: { code: "http_error", message: err.message } }, err.status);
    }
    console.error(err);
    return c.json({ error: { code: "internal", message: "internal error" } }, 500);
  });
  return app;
}
