// What DWOP's Edge Functions share: the HTTP API over SUPABASE_DB_URL, with Supabase Storage.
import { Hono } from "hono";
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

/** Requests reach a function as /<function name>/<path>; the app's routes start at /<path>. */
export function mounted(functionName: string, app: Hono<ApiEnv>): Hono<ApiEnv> {
  const root = new Hono<ApiEnv>().route(`/${functionName}`, app);
  root.notFound(routeNotFound);
  return root;
}

/** Deno.serve, typed here because the project's TypeScript checks against Node's types, not Deno's. */
export function serve(handler: Handler): void {
  (globalThis as unknown as { Deno: { serve(handler: Handler): unknown } }).Deno.serve(handler);
}
