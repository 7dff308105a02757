import { serve, type ServerType } from "@hono/node-server";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Claimer, claimerSettings } from "../cron/claimer.ts";
import { Dispatcher, dispatcherSettings, type DispatcherOptions } from "../dispatcher/dispatcher.ts";
import { localDispatcherId } from "../dispatcher/dead-neighbours.ts";
import { registerDispatcher } from "../dispatcher/registration.ts";
import { apiSettings, createApp } from "../functions/app.ts";
import type { Bus } from "../shared/bus/bus.ts";
import { connectBus, preloadBus } from "../shared/bus/from-config.ts";
import { databaseUrl, type Config } from "../shared/config.ts";
import { connectDb, retryWhileStarting, waitForDatabase, type Db } from "../shared/db/connect.ts";
import { deadConnectionOptions } from "../shared/db/dead-connections.ts";
import { migrate } from "../shared/db/migrate.ts";
import { Store } from "../shared/db/store.ts";
import { LOCAL_EXECUTOR, startLocalExecutor, type LocalExecutor } from "../shared/executors/local.ts";
import type { Logger } from "../shared/log.ts";
import { LocalStorage } from "../shared/storage/local.ts";
import { localStorageRoutes } from "../shared/storage/local-routes.ts";
import type { Storage } from "../shared/storage/storage.ts";
import { supabaseStorageFromConfig } from "../shared/storage/supabase.ts";
import { startHomeDatabase, type EmbeddedDatabase } from "./embedded-postgres.ts";
import { CliError, EXIT } from "./exit.ts";
import { localServerUrl } from "./local-url.ts";
import { makePrivateFolder, prepareHome } from "../shared/folders.ts";
import { boundHeapGrowth } from "./heap-growth.ts";

export interface StackOptions {
  config: Config;
  logger: Logger;
  /** Run a claimer and a dispatcher in this process (false for an API-only server). */
  engine: boolean;
  /** Progress lines for a person (embedded database start); stderr in the CLI. */
  say?: (msg: string) => void;
  /**
   * Work that needs only the database and the storage (`dwop run`'s submit), done while the bus connects
   * and the engine starts (its fork server, the dispatcher's registration); startStack returns once all
   * are done, and stops what it started when this fails.
   */
  meanwhile?: (parts: { store: Store; storage: Storage }) => Promise<void>;
  /** The database, already starting (startHomeDatabase); by default startStack starts it. */
  database?: Promise<EmbeddedDatabase | null>;
}

/** Everything `dwop run` and `dwop dev` run in one process, and how to stop it in order. */
export interface Stack {
  db: Db;
  store: Store;
  storage: Storage;
  bus: Bus;
  url: string;
  /** Where the generated API token is kept, when DWOP_API_TOKEN is not set. */
  apiTokenFile: string | null;
  /**
   * Stops everything in order. `fast` (Ctrl-C): running tasks are stopped at once and recorded as lost,
   * so the next start reruns them, instead of getting DWOP_SHUTDOWN_GRACE_SECONDS to finish.
   */
  stop(options?: { fast?: boolean }): Promise<void>;
}

/**
 * Starts DWOP on one machine: the database (embedded unless DATABASE_URL is set), migrations, storage
 * (Supabase Storage when SUPABASE_PROJECT_URL and SUPABASE_SERVICE_KEY are set, else local files behind
 * the HTTP server), the bus (pg-boss unless RABBITMQ_CONNECTION_URL is set), and with
 * `engine`, a claimer and a dispatcher with the local executor.
 */
export async function startStack(options: StackOptions): Promise<Stack> {
  const { config, logger } = options;
  boundHeapGrowth(); // a big submission's peak memory (cli/heap-growth.ts)
  const home = resolve(config.DWOP_HOME);
  await prepareHome(home);
  // The tasks' side starts beside the database: asking `python3` for its interpreter (through a pyenv
  // shim) and the fork server's start with its sandbox probe took 0.6 s of `dwop run`'s 1.1 s start here
  // when they came after everything else.
  const starting =
    options.engine && config.DWOP_EXECUTOR !== "kubernetes"
      ? startLocalExecutor(config, join(home, "runs"), logger)
      : null;
  starting?.catch(() => {}); // a failure is thrown where it is awaited
  try {
    return await startRest(options, home, starting);
  } catch (err) {
    await starting?.then((executor) => executor.close()).catch(() => {});
    throw err;
  }
}

async function startRest(
  options: StackOptions,
  home: string,
  starting: Promise<LocalExecutor> | null,
): Promise<Stack> {
  const { config, logger } = options;
  const say = options.say ?? (() => {});
  preloadBus(config);
  const embedded = await (options.database ?? startHomeDatabase({ ...config, DWOP_HOME: home }, say));
  const url = embedded?.url ?? databaseUrl(config)!;
  const db = connectDb(url, { max: 20, applicationName: "dwop", ...deadConnectionOptions(logger) });
  /** Closes the server (when it listens), the database's pool and the embedded database. */
  const release = async (server: HttpServer | null, fast = false) => {
    if (server) await closeServer(server);
    await db.end({ timeout: fast ? 0 : 5 });
    await embedded?.stop();
  };
  try {
    await waitForDatabase(db, logger);
  } catch (err) {
    await release(null, true);
    throw err;
  }
  // The bus connects beside the migrations and the server's start (pg-boss's start and its queues took
  // 0.12 s of `dwop run`'s start here after them); neither touches the other's schema.
  const connecting = connectBus(config, url, logger, "dwop", starting !== null);
  connecting.catch(() => {}); // a failure is thrown where it is awaited
  let served: Served;
  try {
    served = await startServer(options, home, db);
  } catch (err) {
    await connecting.then((bus) => bus.close()).catch(() => {});
    await release(null);
    throw err;
  }
  const { store, storage, server, serverUrl, apiTokenFile } = served;
  // The meanwhile work (`dwop run`'s submit) needs neither the bus nor the engine.
  const meanwhile = options.meanwhile?.({ store, storage }) ?? Promise.resolve();
  meanwhile.catch(() => {}); // a failure is thrown where it is awaited
  // Nor does the dispatcher's registration, which goes beside the bus's and the executor's start.
  const id = config.DWOP_DISPATCHER_ID ?? localDispatcherId(randomBytes(2).toString("hex"));
  const registration = starting
    ? registerDispatcher(store, {
        id,
        executor: LOCAL_EXECUTOR,
        lostAfterSeconds: config.DWOP_LOST_AFTER_SECONDS,
        log: logger.child({ component: "dispatcher", dispatcher: id }),
      })
    : undefined;
  registration?.catch(() => {}); // thrown by the dispatcher's start, which awaits it
  const bus = await connecting.catch(async (err: unknown) => {
    await Promise.allSettled([meanwhile, registration]);
    await release(server);
    throw err;
  });

  const stops: (() => Promise<void>)[] = [];
  // Kept to shorten the grace period of a fast stop: the dispatcher reads it when it stops.
  let dispatcherOptions: DispatcherOptions | null = null;
  const startEngine = async () => {
    if (options.engine && config.DWOP_EXECUTOR === "kubernetes") {
      // Tasks run as Jobs, started by the dispatcher Deployment in the cluster: here only the claimer.
      const claimer = new Claimer(store, bus, {
        id: config.DWOP_DISPATCHER_ID ?? `${hostname()}-${process.pid}`,
        ...claimerSettings(config),
        storage,
        logger,
      });
      await claimer.start();
      stops.push(() => claimer.stop());
    } else if (starting) {
      const executor = await starting;
      const dispatcher = new Dispatcher(
        store,
        bus,
        executor,
        storage,
        (dispatcherOptions = {
          id,
          ...dispatcherSettings(config),
          apiUrl: serverUrl,
          registration,
          logger,
        }),
      );
      const claimer = new Claimer(store, bus, { id, ...claimerSettings(config), storage, logger });
      await dispatcher.start();
      await claimer.start();
      stops.push(
        () => claimer.stop(),
        () => dispatcher.stop(),
        () => executor.close(),
      );
    }
  };

  const stack: Stack = {
    db,
    store,
    storage,
    bus,
    url: serverUrl,
    apiTokenFile,
    async stop(stopOptions = {}) {
      if (stopOptions.fast && dispatcherOptions) dispatcherOptions.shutdownGraceSeconds = 0;
      for (const stop of stops) await stop();
      await bus.close();
      await release(server, stopOptions.fast);
    },
  };
  const failed = (await Promise.allSettled([startEngine(), meanwhile])).find((r) => r.status === "rejected");
  if (failed) {
    // What started goes (the bus, the server, the pool, the embedded database; startStack closes the
    // executor), and the start's own error is the one said, not a failure of that stop.
    await stack.stop().catch(() => {});
    throw failed.reason;
  }
  return stack;
}

interface Served {
  store: Store;
  storage: Storage;
  server: HttpServer;
  serverUrl: string;
  apiTokenFile: string | null;
}

/**
 * The migrated database's store, the storage (Supabase Storage when configured, else the home's files
 * behind this server) and the HTTP server, listening.
 */
async function startServer(options: StackOptions, home: string, db: Db): Promise<Served> {
  const { config, logger } = options;
  await retryWhileStarting("the migrations", () => migrate(db), logger);
  const store = new Store(db);
  const supabase = supabaseStorageFromConfig(config);
  // Every owner's code, inputs, outputs and logs: the server's alone, however open the home is.
  if (!supabase) await makePrivateFolder(join(home, "storage"));
  const local = supabase
    ? null
    : new LocalStorage({
        root: join(home, "storage"),
        secret: config.DWOP_STORAGE_SECRET ?? (await homeSecret(home, "storage.secret")),
        maxObjectBytes: config.DWOP_STORAGE_MAX_OBJECT_SIZE,
      });
  const storage: Storage = supabase ?? local!;
  const apiTokenFile = config.DWOP_API_TOKEN ? null : join(home, "api.token");
  const app = createApp({
    db,
    storage,
    settings: apiSettings({
      ...config,
      DWOP_API_TOKEN: config.DWOP_API_TOKEN ?? (await homeSecret(home, "api.token")),
    }),
    logger: logger.child({ component: "api" }),
    extraRoutes: local ? localStorageRoutes(local) : undefined,
  });
  const server = await listen(app.fetch, config.DWOP_HOST, config.DWOP_PORT);
  const serverUrl = config.DWOP_PUBLIC_URL ?? localServerUrl(config.DWOP_HOST, server.port);
  local?.setBaseUrl(serverUrl);
  return { store, storage, server, serverUrl, apiTokenFile };
}

/** A secret of a home folder (storage signing key, API token), made once, so it outlives a restart. */
async function homeSecret(home: string, file: string): Promise<string> {
  const path = join(home, file);
  try {
    return (await readFile(path, "utf8")).trim();
  } catch {
    const secret = randomBytes(32).toString("hex");
    await writeFile(path, secret, { mode: 0o600 });
    return secret;
  }
}

interface HttpServer {
  server: ServerType;
  port: number;
}

function listen(
  fetch: (req: Request) => Response | Promise<Response>,
  host: string,
  port: number,
): Promise<HttpServer> {
  return new Promise((resolvePromise, reject) => {
    const server = serve({ fetch, hostname: host, port }, (info) =>
      resolvePromise({ server, port: info.port }),
    );
    server.once("error", (err: NodeJS.ErrnoException) => reject(listenError(err, host, port)));
  });
}

/** Why the server cannot listen, said in one line (exit 2) when it is the address given, else as it is. */
function listenError(err: NodeJS.ErrnoException, host: string, port: number): Error {
  const why: Record<string, string> = {
    EADDRINUSE: "something listens there already (another `dwop dev`?)",
    EACCES: "not allowed (a port below 1024 needs root)",
    EADDRNOTAVAIL: "no such address on this machine",
    ENOTFOUND: "no such host",
    EAI_AGAIN: "the host's name could not be looked up",
  };
  const reason = err.code ? why[err.code] : undefined;
  if (!reason) return err;
  return new CliError(
    `cannot listen on ${host}:${port}: ${reason}; choose another with --port and --host, or DWOP_PORT and DWOP_HOST`,
    EXIT.usage,
  );
}

async function closeServer({ server }: HttpServer): Promise<void> {
  // Open event streams (a dashboard, a `--wait`) would hold close() until they end on their own.
  const closed = new Promise<void>((r) => server.close(() => r()));
  (server as { closeAllConnections?: () => void }).closeAllConnections?.();
  await closed;
}
