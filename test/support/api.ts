import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Hono } from "hono";
import { createApp } from "../../functions/app.ts";
import type { ApiEnv, ApiSettings } from "../../functions/context.ts";
import { signJwt } from "../../functions/jwt.ts";
import type { Db } from "../../shared/db/connect.ts";
import type { Logger } from "../../shared/log.ts";
import type { ResolveHost } from "../../shared/net/callback-target.ts";
import { LocalStorage } from "../../shared/storage/local.ts";
import type { Storage } from "../../shared/storage/storage.ts";
import { migratedDatabase, type MigratedDatabase } from "./migrated.ts";

export const JWT_SECRET = "test-jwt-secret-0123456789abcdef";
export const API_TOKEN = "test-api-token-0123456789abcdef";

/** Two tasks: `extract` prints, `shout` reads it and prints it upper-cased. */
export const SAMPLE =
  'fun extract():\n    print("a,b,c")\n\nfun shout(raw:extract):\n    print(open("raw").read().upper())\n';

/** Errors logged by the app, so a test can see what a 500 hid from the client. */
export interface LoggedError {
  obj: object;
  msg: string | undefined;
}

export interface ApiHarness {
  m: MigratedDatabase;
  app: Hono<ApiEnv>;
  storage: LocalStorage;
  /** The local storage's folder: a test can see what was stored, or that nothing was. */
  storageRoot: string;
  /** The app's clock, in ms; tests move it. */
  clock: { now: number };
  errors: LoggedError[];
  /** Authorization headers of a signed-in owner (a fresh JWT). */
  as(owner: string): Promise<Record<string, string>>;
  /** `app.request` with a JSON body. */
  postJson(path: string, body: unknown, headers: Record<string, string>): Promise<Response>;
  close(passed: boolean): Promise<void>;
}

export interface HarnessOptions {
  settings?: Partial<ApiSettings>;
  /** Storage to give the app instead of the harness's local storage (null: none). */
  storage?: Storage | null;
  /** How callback hosts resolve at submit (default: no resolver, so no test waits on DNS). */
  resolveHost?: ResolveHost | null;
  /** The app's pool, opened on the test database's URL (default: the harness's own); the test closes it. */
  db?: (url: string) => Db;
}

/** The app in process against a fresh database and a temporary storage folder; no engine runs. */
export async function apiHarness(label: string, options: HarnessOptions = {}): Promise<ApiHarness> {
  const m = await migratedDatabase(label);
  const root = await mkdtemp(join(tmpdir(), "dwop-api-"));
  const storage = new LocalStorage({ root, secret: randomBytes(16).toString("hex") });
  const clock = { now: Date.now() };
  const errors: LoggedError[] = [];
  const logger: Logger = {
    debug: () => {},
    info: () => {},
    warn: () => {},
    error: (obj, msg) => errors.push({ obj, msg }),
    child: () => logger,
  };
  const app = createApp({
    db: options.db ? options.db(m.url) : m.db,
    storage: options.storage === undefined ? storage : options.storage,
    settings: {
      apiToken: API_TOKEN,
      jwtSecret: JWT_SECRET,
      eventsPollMs: 20,
      retryBackoffMs: 0,
      ...options.settings,
    },
    logger,
    now: () => clock.now,
    resolveHost: options.resolveHost ?? null,
  });
  return {
    m,
    app,
    storage,
    storageRoot: root,
    clock,
    errors,
    async as(owner) {
      const exp = Math.floor(clock.now / 1000) + 3600;
      return {
        authorization: `Bearer ${await signJwt({ sub: owner, exp, role: "authenticated" }, JWT_SECRET)}`,
      };
    },
    postJson(path, body, headers) {
      return Promise.resolve(
        app.request(path, {
          method: "POST",
          headers: { ...headers, "content-type": "application/json" },
          body: JSON.stringify(body),
        }),
      );
    },
    async close(passed) {
      await m.close(passed);
      if (passed) await rm(root, { recursive: true, force: true });
    },
  };
}

/** A multipart body as `curl -F workflow=@<file>` sends it, plus any other fields. */
export function workflowForm(
  source: string,
  fields: Record<string, string | Blob> = {},
  file = "sample.workflow",
): FormData {
  const form = new FormData();
  form.append("workflow", new Blob([source]), file);
  for (const [name, value] of Object.entries(fields)) {
    if (typeof value === "string") form.append(name, value);
    else form.append(name, value, `${name}.bin`);
  }
  return form;
}

/** Submits `source` through the harness's app as the owner of `headers`; the new workflow's id. */
export async function submitted(
  h: ApiHarness,
  headers: Record<string, string>,
  source = SAMPLE,
): Promise<string> {
  const res = await h.app.request("/workflows", { method: "POST", headers, body: workflowForm(source) });
  if (res.status !== 201) throw new Error(`submit answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

/** The ids of every workflow in the database, of any owner. */
export async function workflowIds(m: MigratedDatabase): Promise<string[]> {
  const rows = await m.db<{ id: string }[]>`select id from dwop.workflows order by created_at`;
  return rows.map((r) => r.id);
}

/**
 * Plays claimer and dispatcher for every task that becomes ready, until none is left: each run succeeds,
 * or fails with exit code 1 when its task is named in `fail`.
 */
export async function driveToEnd(m: MigratedDatabase, fail: string[] = []): Promise<void> {
  for (;;) {
    const claimed = await m.store.claimOutbox("test-claimer", 100, 30);
    if (claimed.length === 0) return;
    await m.store.markPublished(
      "test-claimer",
      claimed.map((c) => c.id),
    );
    for (const { message } of claimed) {
      const started = await m.store.startRun(message, "test-dispatcher", "local");
      if (started.kind !== "created") continue;
      const { runId, taskName } = started.assignment;
      await m.store.markRunDispatched(runId, `job-${taskName}-${message.attempt}`, true);
      if (!fail.includes(taskName)) {
        await m.store.completeRuns([runId]);
        continue;
      }
      await m.store.increaseAttempt(runId, {
        reason: "exit_code",
        message: "exited with code 1",
        exitCode: 1,
        logTail: "Traceback (most recent call last):\nValueError: boom",
        nonRetryable: false,
      });
    }
  }
}
