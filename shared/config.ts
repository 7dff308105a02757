import * as z from "zod";
import type { EnvSource } from "./env.ts";
import { parseMemory } from "./quantity.ts";
import { parseAllowList } from "./net/addresses.ts";
import { parseOrigins } from "./net/origins.ts";

/**
 * The places of a sandboxed run's root that are its own (worker/dwop_sandbox.py RUN_OWN); a folder below
 * /tmp is shown inside the run's own /tmp.
 */
const RUN_OWN = ["/tmp", "/dev", "/proc", "/work"];

/** The place of RUN_OWN an absolute path is in or is and that hides it from runs, or null. */
function runOwnPlace(path: string): string | null {
  const clean = path.replace(/\/+/g, "/").replace(/(.)\/$/, "$1");
  const own = RUN_OWN.find((place) => clean === place || clean.startsWith(`${place}/`)) ?? null;
  return own === "/tmp" && clean !== "/tmp" ? null : own;
}

const int = (min: number, fallback: number) => z.coerce.number().int().min(min).default(fallback);
/** A Kubernetes quantity kept as written ("500m", "512Mi"), for a pod spec. */
const kubeQuantity = (pattern: RegExp, fallback: string) =>
  z.string().trim().regex(pattern, `must be a Kubernetes quantity such as "${fallback}"`).default(fallback);
const CPU_QUANTITY = /^(\d+m|\d+(\.\d+)?)$/;
const MEMORY_QUANTITY = /^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/;
/** A memory quantity ("1Gi", "512Mi", "2G"), as bytes. */
const memoryQuantity = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((v, ctx) => {
      const bytes = parseMemory(v);
      if (bytes === null || bytes < 2 ** 20) {
        ctx.addIssue({ code: "custom", message: 'must be a memory quantity of at least 1Mi, such as "1Gi"' });
        return z.NEVER;
      }
      return bytes;
    });
const optionalUrl = z
  .string()
  .trim()
  .transform((v) => (v === "" ? undefined : v))
  .pipe(z.string().url().optional())
  .optional();
/** A server's address, which must name its scheme ("localhost:8080" would parse as scheme "localhost:"). */
const optionalHttpUrl = z
  .string()
  .trim()
  .transform((v) => (v === "" ? undefined : v))
  .pipe(
    z
      .string()
      .superRefine((v, ctx) => {
        if (!/^https?:\/\/[^/]/i.test(v)) {
          const guess = `http://${v.replace(/^[a-z]+:\/+/i, "")}`;
          ctx.addIssue({
            code: "custom",
            message: `must start with http:// or https:// (did you mean ${guess}?)`,
          });
        }
      })
      .pipe(z.string().url())
      .optional(),
  )
  .optional();
/** A secret of at least 16 characters; empty counts as unset. */
const optionalSecret = z
  .string()
  .transform((v) => (v === "" ? undefined : v))
  .pipe(z.string().min(16, "must be at least 16 characters").optional())
  .optional();

/**
 * Every environment variable DWOP reads, with its default. The seed design's names are kept
 * (SUPABASE_PROJECT_URL, RABBITMQ_CONNECTION_URL, DWOP_IMAGE, ...), so its instructions still work.
 */
export const configSchema = z.object({
  DATABASE_URL: optionalUrl,
  SUPABASE_DB_URL: optionalUrl,
  SUPABASE_PROJECT_URL: optionalUrl,
  SUPABASE_SERVICE_KEY: z.string().optional(),
  RABBITMQ_CONNECTION_URL: optionalUrl,
  DWOP_QUEUE: z
    .string()
    .regex(/^[\w.-]+$/)
    .default("dwop.tasks"),
  DWOP_RABBITMQ_QUORUM: z.enum(["true", "false"]).default("false"),
  DWOP_EXECUTOR: z.enum(["local", "kubernetes"]).default("local"),
  DWOP_HOME: z.string().default(".dwop"),
  DWOP_TASK_SANDBOX: z.enum(["auto", "required", "off"]).default("auto"),
  /** Limits of a sandboxed local run whose task sets none (Kubernetes quantities: "1Gi", "512Mi"). */
  DWOP_TASK_MEMORY: memoryQuantity("1Gi"),
  DWOP_TASK_DISK: memoryQuantity("1Gi"),
  DWOP_TASK_PROCESSES: int(1, 256),
  /** What sandboxed local runs reach: the internet through slirp4netns (never the machine), or nothing. */
  DWOP_TASK_NETWORK: z.enum(["internet", "none"]).default("internet"),
  /**
   * Folders (absolute, `:`-separated) sandboxed local runs may read besides the system's and Python's;
   * none inside a place each run has its own of (RUN_OWN), which would hide it, but for one below /tmp
   * (shown inside the run's own /tmp). The fork server checks again where links lead.
   */
  DWOP_TASK_ALLOW: z
    .string()
    .default("")
    .transform((v) => v.split(":").filter((p) => p !== ""))
    .pipe(
      z.array(
        z
          .string()
          .startsWith("/", "must hold absolute paths, separated by ':'")
          .superRefine((path, ctx) => {
            const own = runOwnPlace(path);
            if (own) {
              ctx.addIssue({
                code: "custom",
                message: `${path} is inside ${own}, which each sandboxed run has its own of: runs cannot be shown it there; allow a folder outside /dev, /proc and /work (or below /tmp)`,
              });
            }
          }),
      ),
    ),
  DWOP_PORT: z.coerce.number().int().min(0).max(65535, "must be a port, 0 to 65535").default(8080),
  DWOP_HOST: z.string().default("127.0.0.1"),
  DWOP_PUBLIC_URL: optionalUrl,
  DWOP_STORAGE_SECRET: z.string().min(16).optional(),
  /** The largest object a worker may store in local storage (a quantity: "5Gi"); larger ones get 413. */
  DWOP_STORAGE_MAX_OBJECT_SIZE: memoryQuantity("5Gi"),
  DWOP_IMAGE: z.string().default("dwop-pyworker:dev"),
  DWOP_NAMESPACE: z.string().default("default"),
  KUBECONFIG: z.string().optional(),
  DWOP_IMAGE_PULL_POLICY: z.enum(["Always", "IfNotPresent", "Never"]).default("IfNotPresent"),
  DWOP_KUBE_MAX_JOBS: int(1, 100),
  DWOP_KUBE_API_QPS: int(1, 20),
  DWOP_KUBE_API_BURST: int(1, 40),
  DWOP_KUBE_RECONCILE_SECONDS: int(1, 30),
  DWOP_KUBE_LOST_GRACE_SECONDS: int(1, 60),
  DWOP_KUBE_IMAGE_PULL_TIMEOUT_SECONDS: int(1, 120),
  DWOP_KUBE_PENDING_TIMEOUT_SECONDS: int(1, 600),
  DWOP_KUBE_JOB_TTL_SECONDS: int(0, 3600),
  DWOP_KUBE_LEASE_SECONDS: int(3, 15),
  DWOP_KUBE_RUN_AS_USER: int(1, 10001),
  /** Requests and limits of a task pod whose task sets no @cpu / @memory. */
  DWOP_KUBE_DEFAULT_CPU: kubeQuantity(CPU_QUANTITY, "500m"),
  DWOP_KUBE_DEFAULT_MEMORY: kubeQuantity(MEMORY_QUANTITY, "512Mi"),
  /** sizeLimit of each emptyDir of a task pod (its /work and its /tmp). */
  DWOP_KUBE_VOLUME_SIZE_LIMIT: kubeQuantity(MEMORY_QUANTITY, "1Gi"),
  DWOP_METRICS_PORT: int(0, 9090),
  DWOP_METRICS_HOST: z.string().default("0.0.0.0"),
  DWOP_CONCURRENCY: int(1, 8),
  DWOP_DISPATCHER_ID: z.string().min(1).optional(),
  DWOP_CLAIMER_ID: z.string().min(1).max(200).optional(),
  DWOP_HEARTBEAT_SECONDS: int(1, 5),
  DWOP_LOST_AFTER_SECONDS: int(2, 30),
  DWOP_SHUTDOWN_GRACE_SECONDS: int(0, 30),
  DWOP_CLAIM_BATCH: int(1, 256),
  DWOP_CLAIM_LEASE_SECONDS: int(1, 30),
  DWOP_CLAIM_POLL_MS: int(10, 1000),
  /**
   * Most task messages a claimer lets wait in the bus (ready, not yet taken by a dispatcher); the rest wait
   * in the outbox, where claims take owners in turn and higher priorities first. 0: no limit (no fair share).
   */
  DWOP_BUS_BACKLOG: int(0, 100),
  /** Most tasks of one owner starting or running at once (an API key's maxRunning overrides it); 0: no cap. */
  DWOP_OWNER_MAX_RUNNING: int(0, 0),
  /** A task published this long ago whose attempt has not started is published again (0: never). */
  /** Days to keep what ended or was published (events, live logs, outbox rows, deliveries); 0: forever. */
  DWOP_RETENTION_DAYS: int(0, 30),
  DWOP_REPUBLISH_AFTER_SECONDS: int(0, 60),
  /** A due task unpublished, or a published one with no run and no live dispatcher, this long is a stall (/readyz). */
  DWOP_STALL_AFTER_SECONDS: int(1, 10),
  /**
   * Attempts a task may lose to the infrastructure (lost, evicted, OOM-killed, image pull, unschedulable)
   * beyond its first, apart from its own @retries.
   */
  DWOP_MAX_INFRA_RETRIES: int(0, 3),
  DWOP_RETRY_BACKOFF_MS: int(0, 1000),
  /** The deadline of an attempt whose task has no @timeout: every attempt has one. */
  DWOP_DEFAULT_TASK_TIMEOUT_SECONDS: int(1, 3600),
  /** A worker's signed URLs live for its attempt's deadline plus this margin. */
  DWOP_SIGNED_URL_TTL_SECONDS: int(10, 300),
  DWOP_PYTHON: z.string().optional(),
  SUPABASE_JWT_SECRET: optionalSecret,
  DWOP_API_TOKEN: optionalSecret,
  DWOP_MAX_REQUEST_BYTES: int(1024, 10 * 1024 * 1024),
  DWOP_MAX_WEBHOOK_BYTES: int(1, 1024 * 1024),
  DWOP_EVENTS_POLL_MS: int(10, 500),
  /** Failed authentications from one address within the window that get it answered 429; 0: never. */
  DWOP_AUTH_FAILURE_LIMIT: int(0, 20),
  DWOP_AUTH_FAILURE_WINDOW_SECONDS: int(1, 60),
  DWOP_AUTH_BLOCK_SECONDS: int(1, 60),
  /** Most client addresses the throttle remembers (per process or isolate). */
  DWOP_AUTH_THROTTLE_ENTRIES: int(1, 10_000),
  /** The header the deployment's proxy puts the client's address in; unset: the TCP peer (Node only). */
  DWOP_CLIENT_ADDRESS_HEADER: z
    .string()
    .trim()
    .transform((v) => (v === "" ? undefined : v.toLowerCase()))
    .pipe(
      z
        .string()
        .regex(/^[a-z0-9-]+$/, "must be a header name such as cf-connecting-ip or x-forwarded-for")
        .optional(),
    )
    .optional(),
  /** With x-forwarded-for: how many proxies of the deployment append to it. */
  DWOP_TRUSTED_PROXIES: int(1, 1),
  /** Most tasks one workflow may have; a submission with more is refused before it is parsed. */
  DWOP_MAX_TASKS_PER_WORKFLOW: int(1, 10_000),
  /**
   * Largest workflow file in bytes. Parsing is synchronous, about 0.3 s per MiB of short lines on a
   * 2-core machine, during which the API answers nothing else.
   */
  DWOP_MAX_WORKFLOW_BYTES: int(1024, 1024 * 1024),
  /** Most `inputs.NAME` files one submission may give. */
  DWOP_MAX_INPUTS_PER_WORKFLOW: int(0, 100),
  /** Most schedules one owner may have. */
  DWOP_MAX_SCHEDULES_PER_OWNER: int(0, 100),
  /**
   * CIDRs and host names (`*.domain` for every name under it) that completion callbacks may reach
   * although they are loopback, private or link-local: in-cluster receivers. Commas or blanks between.
   */
  DWOP_CALLBACK_ALLOW: z
    .string()
    .default("")
    .superRefine((value, ctx) => {
      try {
        parseAllowList(value);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
      }
    }),
  /**
   * Origins (scheme, host and port, such as `https://dash.example.com`) whose pages may call the API from
   * a browser: where a static build of the dashboard is hosted (`dwop dashboard build`). Commas or blanks
   * between; none by default, so only the dashboard the API serves itself can call it.
   */
  DWOP_CORS_ORIGINS: z
    .string()
    .default("")
    .superRefine((value, ctx) => {
      try {
        parseOrigins(value);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
      }
    }),
  /** The DWOP server the CLI's client commands talk to (default: the local `dwop dev`). */
  DWOP_URL: optionalHttpUrl,
  /** The CLI's bearer token for DWOP_URL: an API key, a Supabase access token, or DWOP_API_TOKEN. */
  DWOP_TOKEN: z
    .string()
    .trim()
    .transform((v) => (v === "" ? undefined : v))
    .optional(),
  DWOP_LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  /** Log lines for a person (`pretty`) or for a log collector (`json`); `auto`: pretty on a terminal. */
  DWOP_LOG_FORMAT: z.enum(["auto", "pretty", "json"]).default("auto"),
});

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/** Validates the environment once, at start; one error names every missing or bad value. */
export function loadConfig(env: EnvSource): Config {
  // Once a process: zod's compiled parser for the object (new Function, then V8 optimizing it) costs more
  // than it saves on a single parse (3-5 ms of every command's and server's start here).
  const result = configSchema.safeParse(env, { jitless: true });
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`));
  }
  return result.data;
}

/** The database URL: DATABASE_URL, or the one Supabase gives its Edge Functions. */
export function databaseUrl(config: Pick<Config, "DATABASE_URL" | "SUPABASE_DB_URL">): string | undefined {
  return config.DATABASE_URL ?? config.SUPABASE_DB_URL;
}

/**
 * The API's URL as workers reach it, where they ship live logs: DWOP_PUBLIC_URL, else on Supabase the
 * `api` Edge Function of SUPABASE_PROJECT_URL; null when neither is set (logs are then stored only when
 * an attempt ends).
 */
export function workerApiUrl(config: Config): string | null {
  if (config.DWOP_PUBLIC_URL) return config.DWOP_PUBLIC_URL;
  if (config.SUPABASE_PROJECT_URL)
    return `${config.SUPABASE_PROJECT_URL.replace(/\/+$/, "")}/functions/v1/api`;
  return null;
}
