/** Reads the process environment on Node, Deno and workerd alike, without touching it at import time. */
export type EnvSource = Record<string, string | undefined>;

interface DenoLike {
  env: { toObject(): Record<string, string> };
}

/** The current environment as a plain object (Node's process.env, Deno.env, or empty on workerd). */
export function readEnv(): EnvSource {
  const deno = (globalThis as { Deno?: DenoLike }).Deno;
  if (deno) return deno.env.toObject();
  const proc = (globalThis as { process?: { env: EnvSource } }).process;
  return proc?.env ?? {};
}
