import type { Db } from "../shared/db/connect.ts";
import type { ApiStore } from "../shared/db/api-store.ts";
import type { RunLogs } from "../shared/db/run-logs.ts";
import type { ScheduleStore } from "../shared/db/schedules.ts";
import type { Store } from "../shared/db/store.ts";
import type { Logger } from "../shared/log.ts";
import type { Semaphore } from "../shared/semaphore.ts";
import type { AllowList } from "../shared/net/addresses.ts";
import type { ResolveHost } from "../shared/net/callback-target.ts";
import type { Storage } from "../shared/storage/storage.ts";
import type { SubmitLimits } from "../shared/submit.ts";
import type { StallSettings } from "./stall.ts";
import type { AddressSettings, ThrottleSettings } from "./throttle.ts";

/** Who is calling: the owner whose workflows it sees, and how it proved it. */
export interface Caller {
  owner: string;
  via: "api_token" | "jwt" | "api_key";
}

/** The Hono environment of the API's routes: the authenticated caller. */
export type ApiEnv = { Variables: { caller: Caller } };

/** What the API reads from the configuration; `apiSettings(config)` makes it from the environment. */
export interface ApiSettings {
  /** The static bearer token of `dwop dev` and scripts (owner "local"); none when unset. */
  apiToken?: string;
  /** HS256 secret of Supabase JWTs; JWTs are refused when unset. */
  jwtSecret?: string;
  maxRequestBytes: number;
  maxWebhookBytes: number;
  /** How often an event stream looks for new events. */
  eventsPollMs: number;
  /** Delay before a task's first retry (doubles with each further one). */
  retryBackoffMs: number;
  /** Each task's infrastructure retry budget (DWOP_MAX_INFRA_RETRIES; the database's default 3 when unset). */
  maxInfraRetries?: number;
  /** DWOP_OWNER_MAX_RUNNING (null: no cap), for the sentence saying why a task waits. */
  ownerMaxRunning?: number | null;
  /** Tasks, workflow bytes and inputs one submission may have. */
  submitLimits: SubmitLimits;
  /** Objects being uploaded at once, across every submission this app serves. */
  uploadsInFlight: number;
  /** Lifetime of the upload URLs a running worker asks for (DWOP_SIGNED_URL_TTL_SECONDS). */
  uploadUrlTtlSeconds: number;
  /** Where callbacks may go although the address rules forbid it (DWOP_CALLBACK_ALLOW). */
  callbackAllow: AllowList;
  /** When repeated failed authentications from one address are answered 429. */
  authThrottle: ThrottleSettings;
  /** Where a request's client address comes from (for that throttle). */
  clientAddress: AddressSettings;
  /** When unpublished or undispatched tasks count as a stall, on /readyz. */
  stall: StallSettings;
  /** Origins whose pages may call the API from a browser (DWOP_CORS_ORIGINS); none by default. */
  corsOrigins: string[];
  /** Schedules one owner may have (DWOP_MAX_SCHEDULES_PER_OWNER). */
  maxSchedulesPerOwner: number;
}

/** Everything the routes are given. */
export interface ApiDeps {
  db: Db;
  store: Store;
  api: ApiStore;
  schedules: ScheduleStore;
  runLogs: RunLogs;
  /** The key of runs' log-stream tokens, read from the database once. */
  logStreamKey: () => Promise<Uint8Array>;
  /** Null where no storage is configured: routes that need it answer 503. */
  storage: Storage | null;
  settings: ApiSettings;
  logger: Logger;
  /** Milliseconds since the epoch; tests move time instead of sleeping. */
  now: () => number;
  /** Resolves a callback URL's host name at submit; null where the runtime cannot. */
  resolveHost: ResolveHost | null;
  /** The slots of `settings.uploadsInFlight`, shared by every submission. */
  uploadSlots: Semaphore;
}
