// The HTTP API on workerd: Cloudflare Workers, or `wrangler dev` locally (deploy/wrangler.toml). The
// worker's vars and secrets are its environment. postgres.js connects over cloudflare:sockets, whose
// sockets belong to the request that opened them, so each request gets its own connection, closed
// once its response (a stream, for outputs and events) has been sent.
import { databaseUrl, loadConfig, type Config } from "../shared/config.ts";
import { connectDb } from "../shared/db/connect.ts";
import type { EnvSource } from "../shared/env.ts";
import { supabaseStorageFromConfig, type SupabaseStorage } from "../shared/storage/supabase.ts";
import { apiSettings, createApp } from "./app.ts";
import { FailureThrottle } from "./throttle.ts";

interface ExecutionContext {
  waitUntil(promise: Promise<unknown>): void;
}

// An app is made per request, so what must outlive one (the failed-authentication count) lives here.
let isolate: {
  config: Config;
  url: string;
  storage: SupabaseStorage | null;
  throttle: FailureThrottle;
} | null = null;

export default {
  async fetch(request: Request, env: EnvSource, ctx: ExecutionContext): Promise<Response> {
    isolate ??= configure(env);
    const db = connectDb(isolate.url, { max: 1, applicationName: "dwop-workerd" });
    const { storage, throttle } = isolate;
    const app = createApp({ db, storage, throttle, settings: apiSettings(isolate.config) });
    const close = () => ctx.waitUntil(db.end({ timeout: 5 }));
    try {
      return whenSent(await app.fetch(request), close);
    } catch (err) {
      close();
      throw err;
    }
  },
};

function configure(env: EnvSource) {
  const config = loadConfig(env);
  const url = databaseUrl(config);
  if (!url) throw new Error("no database: set DATABASE_URL (wrangler secret put DATABASE_URL)");
  const throttle = new FailureThrottle(apiSettings(config).authThrottle);
  return { config, url, storage: supabaseStorageFromConfig(config), throttle };
}

/** The response, calling `done` once its body has been read to the end, failed or been cancelled. */
function whenSent(res: Response, done: () => void): Response {
  if (!res.body) {
    done();
    return res;
  }
  const reader = res.body.getReader();
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    done();
  };
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done: end, value } = await reader.read();
        if (end) {
          controller.close();
          finish();
        } else controller.enqueue(value);
      } catch (err) {
        controller.error(err);
        finish();
      }
    },
    async cancel(reason) {
      finish();
      await reader.cancel(reason);
    },
  });
  return new Response(body, res);
}
