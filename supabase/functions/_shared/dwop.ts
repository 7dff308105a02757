// What DWOP's Edge Functions share: the HTTP API over SUPABASE_DB_URL, with Supabase Storage.
import { Hono } from "hono";
import { getPath } from "hono/utils/url";
import { apiSettings, createApp } from "../../../functions/app.ts";
import type { ApiEnv } from "../../../functions/context.ts";
import { routeNotFound } from "../../../functions/errors.ts";
import { databaseUrl, loadConfig } from "../../../shared/config.ts";
import { connectDb } from "../../../shared/db/connect.ts";
import { readEnv } from "../../../shared/env.ts";
import { supabaseStorageFromConfig } from "../../../shared/storage/supabase.ts";
import { supabaseFunctionEnv } from "../../../shared/supabase-env.ts";

type Handler = (req: Request) => Response | Promise<Response>;

/** DWOP's app from the function's environment, with a small pool for this isolate. */
export function dwopApp(functionName: string): Hono<ApiEnv> {
  const config = loadConfig(supabaseFunctionEnv(readEnv()));
  const url = databaseUrl(config);
  if (!url) throw new Error("no database: SUPABASE_DB_URL (or DATABASE_URL) is not set");
  const db = connectDb(url, { max: 3, applicationName: `dwop-edge-${functionName}` });
  return createApp({ db, storage: supabaseStorageFromConfig(config), settings: apiSettings(config) });
}

/**
 * Requests reach a function as /<its name>/<path>, whatever name it was deployed under; the app sees
 * `under` + /<path>. The URL itself is left alone (c.req.url stays what the client asked for).
 */
export function mounted(app: Hono<ApiEnv>, under = ""): Hono<ApiEnv> {
  const root = new Hono<ApiEnv>({ getPath: (req) => under + withoutFunctionName(getPath(req)) });
  root.route("/", app);
  root.notFound(routeNotFound);
  return root;
}

/** `/api/workflows` -> `/workflows`; `/api` -> `/`. */
function withoutFunctionName(path: string): string {
  const slash = path.indexOf("/", 1);
  return slash === -1 ? "/" : path.slice(slash);
}

/** Deno.serve, typed here because the project's TypeScript checks against Node's types, not Deno's. */
export function serve(handler: Handler): void {
  (globalThis as unknown as { Deno: { serve(handler: Handler): unknown } }).Deno.serve(handler);
}
