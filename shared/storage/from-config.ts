// Node-only: the storage of a process that serves no storage routes itself (a separate dispatcher).
import { join, resolve } from "node:path";
import type { Config } from "../config.ts";
import { LocalStorage } from "./local.ts";
import type { Storage } from "./storage.ts";
import { supabaseStorageFromConfig } from "./supabase.ts";

/**
 * Supabase Storage when SUPABASE_PROJECT_URL and SUPABASE_SERVICE_KEY are set; otherwise local files
 * signed for the `dwop dev` server at DWOP_PUBLIC_URL with DWOP_STORAGE_SECRET (an object this machine's
 * DWOP_HOME does not hold is moved by that server); null without either.
 */
export function storageFromConfig(config: Config): Storage | null {
  const supabase = supabaseStorageFromConfig(config);
  if (supabase) return supabase;
  if (!config.DWOP_PUBLIC_URL || !config.DWOP_STORAGE_SECRET) return null;
  return new LocalStorage({
    root: join(resolve(config.DWOP_HOME), "storage"),
    secret: config.DWOP_STORAGE_SECRET,
    baseUrl: config.DWOP_PUBLIC_URL,
    remote: true,
  });
}
