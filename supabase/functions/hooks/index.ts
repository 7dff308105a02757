// Supabase Edge Function `hooks`: only the signed webhooks, at .../functions/v1/hooks/<trigger id>.
// Requests arrive as /hooks/<id>, the app's own route; nothing else is served here.
import { Hono } from "hono";
import { routeNotFound } from "../../../functions/errors.ts";
import { dwopApp, serve } from "../_shared/dwop.ts";

const app = dwopApp("hooks");
const hooks = new Hono().post("/hooks/:id", (c) => app.fetch(c.req.raw, c.env));
hooks.notFound(routeNotFound);
serve(hooks.fetch);
