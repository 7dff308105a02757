import { Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import type { Config } from "../shared/config.ts";
import { ApiStore } from "../shared/db/api-store.ts";
import type { Db } from "../shared/db/connect.ts";
import { RunLogs } from "../shared/db/run-logs.ts";
import { ScheduleStore } from "../shared/db/schedules.ts";
import { Store } from "../shared/db/store.ts";
import type { Logger } from "../shared/log.ts";
import { EMPTY_ALLOW_LIST, parseAllowList } from "../shared/net/addresses.ts";
import { parseOrigins } from "../shared/net/origins.ts";
import { systemResolver, type ResolveHost } from "../shared/net/callback-target.ts";
import type { Storage } from "../shared/storage/storage.ts";
import { Semaphore } from "../shared/semaphore.ts";
import { DEFAULT_SUBMIT_LIMITS, submitLimits } from "../shared/submit.ts";
import { authenticate } from "./auth.ts";
import type { ApiDeps, ApiEnv, ApiSettings } from "./context.ts";
import { dashboardDocs, dashboardRoutes } from "./dashboard/routes.ts";
import { errorBody, errorHandler, routeNotFound, tooLarge, unavailable } from "./errors.ts";
import { eventDocs, eventRoutes } from "./events.ts";
import { hookDocs, hookRoutes } from "./hooks.ts";
import { keyDocs, keyRoutes } from "./keys.ts";
import { LOG_STREAM_BODY_LIMIT, logStreamDocs, logStreamRoutes } from "./log-stream.ts";
import { openApiDocument, type RouteDoc } from "./openapi.ts";
import { poolDocs, poolRoutes } from "./pools.ts";
import { runDocs, runRoutes } from "./runs.ts";
import { scheduleDocs, scheduleRoutes } from "./schedules.ts";
import { Health } from "./schemas.ts";
import { DatabaseWatch, DEFAULT_STALL_SETTINGS, Readiness, readStall } from "./stall.ts";
import { FailureThrottle, throttleFailures } from "./throttle.ts";
import { triggerDocs, triggerRoutes } from "./triggers.ts";
import { validateDocs, validateRoutes } from "./validate.ts";
import { workflowDocs, workflowRoutes } from "./workflows.ts";

export interface AppDeps {
  db: Db;
  /** Where code, inputs, outputs and logs live; without it, routes that need objects answer 503. */
  storage?: Storage | null;
  /** Missing values take DEFAULT_SETTINGS (and no credentials: only API keys are then accepted). */
  settings?: Partial<ApiSettings>;
  logger?: Logger;
  /** Milliseconds since the epoch (JWT expiry, webhook timestamps); tests move it. */
  now?: () => number;
  /** Resolves callback hosts at submit (default: the runtime's resolver, where it has one). */
  resolveHost?: ResolveHost | null;
  /**
   * The count of failed authentications per address. Give one that outlives the app where an app is
   * made per request (workerd); by default each app has its own.
   */
  throttle?: FailureThrottle;
  /** Routes only some runtimes have (local file storage on Node), mounted at the root. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any sub-app's environment will do
  extraRoutes?: Hono<any>;
  /** Since when the database has been unreachable; give one that outlives the app, as `throttle`. */
  databaseWatch?: DatabaseWatch;
}

export const DEFAULT_SETTINGS: ApiSettings = {
  maxRequestBytes: 10 * 1024 * 1024,
  maxWebhookBytes: 1024 * 1024,
  eventsPollMs: 500,
  retryBackoffMs: 1000,
  submitLimits: DEFAULT_SUBMIT_LIMITS,
  // Well below the usual 1,024 open files, with room for the database pool and requests.
  uploadsInFlight: 64,
  uploadUrlTtlSeconds: 300,
  callbackAllow: EMPTY_ALLOW_LIST,
  authThrottle: { maxFailures: 20, windowMs: 60_000, blockMs: 60_000, maxEntries: 10_000 },
  clientAddress: { proxies: 1 },
  stall: DEFAULT_STALL_SETTINGS,
  corsOrigins: [],
  maxSchedulesPerOwner: 100,
};

/** The API's settings from the validated configuration. */
export function apiSettings(config: Config): ApiSettings {
  return {
    apiToken: config.DWOP_API_TOKEN,
    jwtSecret: config.SUPABASE_JWT_SECRET,
    maxRequestBytes: config.DWOP_MAX_REQUEST_BYTES,
    maxWebhookBytes: config.DWOP_MAX_WEBHOOK_BYTES,
    eventsPollMs: config.DWOP_EVENTS_POLL_MS,
    retryBackoffMs: config.DWOP_RETRY_BACKOFF_MS,
    maxInfraRetries: config.DWOP_MAX_INFRA_RETRIES,
    ownerMaxRunning: config.DWOP_OWNER_MAX_RUNNING || null,
    submitLimits: submitLimits(config),
    uploadsInFlight: DEFAULT_SETTINGS.uploadsInFlight,
    uploadUrlTtlSeconds: config.DWOP_SIGNED_URL_TTL_SECONDS,
    callbackAllow: parseAllowList(config.DWOP_CALLBACK_ALLOW),
    authThrottle: {
      maxFailures: config.DWOP_AUTH_FAILURE_LIMIT,
      windowMs: config.DWOP_AUTH_FAILURE_WINDOW_SECONDS * 1000,
      blockMs: config.DWOP_AUTH_BLOCK_SECONDS * 1000,
      maxEntries: config.DWOP_AUTH_THROTTLE_ENTRIES,
    },
    clientAddress: { header: config.DWOP_CLIENT_ADDRESS_HEADER, proxies: config.DWOP_TRUSTED_PROXIES },
    stall: {
      afterSeconds: config.DWOP_STALL_AFTER_SECONDS,
      aliveSeconds: config.DWOP_LOST_AFTER_SECONDS,
      busBacklog: config.DWOP_BUS_BACKLOG,
    },
    corsOrigins: parseOrigins(config.DWOP_CORS_ORIGINS),
    maxSchedulesPerOwner: config.DWOP_MAX_SCHEDULES_PER_OWNER,
  };
}

/** Where errors go when no logger is given: the console, which every runtime has. */
const consoleLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: (obj, msg) => console.warn(msg, obj),
  error: (obj, msg) => console.error(msg, obj),
  child: () => consoleLogger,
};

/**
 * The resources behind `Authorization: Bearer`; health, openapi.json, hooks, storage URLs and the
 * dashboard's page (which holds no data) are open.
 */
const PROTECTED = ["/workflows", "/triggers", "/schedules", "/keys", "/pools", "/validate", "/ui/api"];

/**
 * DWOP's HTTP API: one Hono app that every runtime (Node, Deno/Supabase Edge, workerd) serves. Every
 * error leaves as JSON `{"error": {"code", "message", "details"}}`; stack traces stay in the logs.
 */
export function createApp(deps: AppDeps): Hono<ApiEnv> {
  const logger = deps.logger ?? consoleLogger;
  const settings = { ...DEFAULT_SETTINGS, ...deps.settings };
  const runLogs = new RunLogs(deps.db);
  let streamKey: Promise<Uint8Array> | null = null;
  const api: ApiDeps = {
    db: deps.db,
    store: new Store(deps.db),
    api: new ApiStore(deps.db),
    schedules: new ScheduleStore(deps.db),
    runLogs,
    logStreamKey: () =>
      (streamKey ??= runLogs.streamKey().catch((err: unknown) => {
        streamKey = null; // a database that was down is asked again next time
        throw err;
      })),
    storage: deps.storage ?? null,
    settings,
    logger,
    now: deps.now ?? Date.now,
    resolveHost: deps.resolveHost === undefined ? systemResolver() : deps.resolveHost,
    uploadSlots: new Semaphore(settings.uploadsInFlight),
  };
  const app = new Hono<ApiEnv>();
  app.onError(errorHandler(logger));
  app.notFound(routeNotFound);
  // First, so that a browser's preflight (OPTIONS, no token) is answered before authentication.
  if (settings.corsOrigins.length > 0) app.use("*", crossOrigin(settings.corsOrigins));

  const auth = authenticate(api);
  const requestLimit = limit(api.settings.maxRequestBytes);
  const throttle = deps.throttle ?? new FailureThrottle(api.settings.authThrottle);
  const { clientAddress } = api.settings;
  // A bad bearer token; for webhooks also an unknown trigger id, since ids are what a prober guesses.
  const badToken = throttleFailures(throttle, clientAddress, api.now, (status) => status === 401);
  const badHook = throttleFailures(throttle, clientAddress, api.now, (s) => s === 401 || s === 404);
  // `/workflows/*` matches `/workflows` itself too.
  for (const prefix of PROTECTED) app.use(`${prefix}/*`, badToken, auth, requestLimit);
  app.use("/hooks/*", badHook, limit(api.settings.maxWebhookBytes));
  // A running worker's calls, with its run's token (a guessed token is a failed authentication too).
  app.use("/runs/*", badToken, limit(LOG_STREAM_BODY_LIMIT));

  healthRoutes(app, api, deps.databaseWatch ?? new DatabaseWatch(api.now));
  workflowRoutes(app, api);
  runRoutes(app, api);
  logStreamRoutes(app, api);
  eventRoutes(app, api);
  triggerRoutes(app, api);
  scheduleRoutes(app, api);
  keyRoutes(app, api);
  poolRoutes(app, api);
  hookRoutes(app, api);
  validateRoutes(app, api);
  dashboardRoutes(app, api);
  if (deps.extraRoutes) app.route("/", deps.extraRoutes);
  return app;
}

/**
 * Lets pages of the configured origins call the API with a bearer token (no cookies: credentials stay
 * off), and read the headers the dashboard reads. Other origins get no Access-Control-Allow-Origin, so
 * their browsers keep the answer from them.
 */
function crossOrigin(origins: string[]): MiddlewareHandler {
  return cors({
    origin: origins,
    allowMethods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
    allowHeaders: ["authorization", "content-type", "idempotency-key", "last-event-id", "prefer"],
    exposeHeaders: ["x-log-size", "x-log-complete", "location", "retry-after", "preference-applied"],
    maxAge: 600,
  });
}

/** 413 from the Content-Length, or while reading a body sent without one, before it is read whole. */
function limit(maxSize: number): MiddlewareHandler {
  return bodyLimit({
    maxSize,
    onError: () => {
      throw tooLarge(maxSize);
    },
  });
}

function healthRoutes(app: Hono<ApiEnv>, api: ApiDeps, watch: DatabaseWatch): void {
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  // Ready while the database answers; `stall` says whether tasks are moving (see stall.ts). A stall of
  // publishing or dispatching keeps 200: the API itself still serves, and a probe must not pull it.
  app.get("/readyz", async (c) => {
    try {
      await api.db`select 1`;
      watch.reached();
    } catch (err) {
      api.logger.warn({ err }, "readyz: database unreachable");
      const away = unavailable();
      return c.json({ ...errorBody(away.code, away.message), stall: watch.unreachable(err) }, 503);
    }
    const stall = await readStall(api.db, api.settings.stall).catch((err: unknown) => {
      api.logger.error({ err }, "readyz: stall check failed");
      return null;
    });
    return c.json({ status: "ready", stall });
  });
  let document: object | null = null;
  app.get("/openapi.json", (c) => c.json((document ??= openApiDocument(ROUTE_DOCS))));
}

const healthDocs: RouteDoc[] = [
  {
    method: "get",
    path: "/healthz",
    summary: "The process is up",
    auth: "none",
    responses: { 200: { description: "ok", schema: Health } },
  },
  {
    method: "get",
    path: "/readyz",
    summary: "The database is reachable; `stall` says whether publishing or dispatching has stopped",
    auth: "none",
    responses: { 200: { description: "ready", schema: Readiness } },
    errors: [503],
  },
  {
    method: "get",
    path: "/openapi.json",
    summary: "This document",
    auth: "none",
    responses: { 200: { description: "OpenAPI 3.1" } },
  },
];

/** Every route of the app, as /openapi.json describes it. */
export const ROUTE_DOCS: RouteDoc[] = [
  ...healthDocs,
  ...workflowDocs,
  ...runDocs,
  ...logStreamDocs,
  ...eventDocs,
  ...triggerDocs,
  ...scheduleDocs,
  ...keyDocs,
  ...poolDocs,
  ...hookDocs,
  ...validateDocs,
  ...dashboardDocs,
];
