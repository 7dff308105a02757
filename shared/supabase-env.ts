import type { EnvSource } from "./env.ts";

/**
 * The environment of a Supabase Edge Function, in DWOP's names. The platform gives every function
 * SUPABASE_URL, SUPABASE_DB_URL and SUPABASE_SERVICE_ROLE_KEY (or SUPABASE_SECRET_KEYS), and refuses
 * custom secrets whose names start with SUPABASE_, so the JWT secret comes as DWOP_JWT_SECRET. Values
 * set under DWOP's own names win.
 */
export function supabaseFunctionEnv(env: EnvSource): EnvSource {
  return {
    ...env,
    SUPABASE_PROJECT_URL: env.SUPABASE_PROJECT_URL ?? env.SUPABASE_URL,
    SUPABASE_SERVICE_KEY:
      env.SUPABASE_SERVICE_KEY ?? env.SUPABASE_SERVICE_ROLE_KEY ?? firstSecretKey(env.SUPABASE_SECRET_KEYS),
    SUPABASE_JWT_SECRET: env.SUPABASE_JWT_SECRET ?? env.DWOP_JWT_SECRET,
  };
}

/** SUPABASE_SECRET_KEYS is a JSON object of named secret keys; the one named "default", or the first. */
function firstSecretKey(json: string | undefined): string | undefined {
  if (!json) return undefined;
  try {
    const keys = JSON.parse(json) as Record<string, unknown>;
    const key = keys.default ?? Object.values(keys)[0];
    return typeof key === "string" ? key : undefined;
  } catch {
    return undefined;
  }
}
