// The one-process stack of `dwop run` and `dwop dev` starts its fork server beside the database: a start
// that fails afterwards must not leave that server (and its spare workers) behind.
import postgres from "postgres";
import { randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startStack } from "../cli/stack.ts";
import { loadConfig } from "../shared/config.ts";
import { silentLogger } from "../shared/log.ts";
import { ADMIN_URL, createTestDatabase } from "./support/db.ts";
import { recordingLogger } from "./support/recording-logger.ts";
import { testFolder } from "./support/test-folder.ts";

/** Command lines of this process's children that are a DWOP fork server. */
async function forkServers(): Promise<string[]> {
  const found: string[] = [];
  for (const tid of await readdir(`/proc/${process.pid}/task`)) {
    const children = await readFile(`/proc/${process.pid}/task/${tid}/children`, "utf8").catch(() => "");
    for (const pid of children.split(" ").filter(Boolean)) {
      const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
      if (cmdline.includes("--fork-server")) found.push(`${pid}: ${cmdline.replaceAll("\0", " ")}`);
    }
  }
  return found;
}

describe("the one-process stack's start", () => {
  it("stops the fork server it started when the database refuses the start", async () => {
    const missing = new URL(ADMIN_URL);
    missing.pathname = `/dwop_no_such_database_${randomBytes(4).toString("hex")}`;
    const config = loadConfig({
      DATABASE_URL: missing.toString(),
      DWOP_HOME: await testFolder("dwop-stack-"),
      DWOP_PORT: "0",
    });
    const start = startStack({ config, logger: silentLogger, engine: true });
    await expect(start).rejects.toThrow(/does not exist/);
    await expectNoForkServer();
  });

  it("stops the embedded database it was handed when that database refuses the start", async () => {
    // `dwop run` hands the stack the database it started; a login refused after (it went away, its
    // password file was replaced) must not leave it running.
    const missing = new URL(ADMIN_URL);
    missing.pathname = `/dwop_no_such_database_${randomBytes(4).toString("hex")}`;
    const config = loadConfig({ DWOP_HOME: await testFolder("dwop-stack-"), DWOP_PORT: "0" });
    let stopped = 0;
    const database = Promise.resolve({
      url: missing.toString(),
      socketDir: "/nonexistent",
      stop: async () => void stopped++,
    });
    const start = startStack({ config, logger: silentLogger, engine: true, database });
    await expect(start).rejects.toThrow(/does not exist/);
    expect(stopped).toBe(1);
    await expectNoForkServer();
  });

  it("ends the work begun meanwhile, then closes what it started, when the bus cannot start", async () => {
    // pg-boss finds its schema without its tables and fails; the migrations (of another schema) pass.
    const db = await createTestDatabase("stack bus fails");
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    await sql.unsafe(`create schema pgboss;
      create table pgboss.version (version int primary key, maintained_on timestamptz, cron_on timestamptz);
      insert into pgboss.version values (0)`);
    const config = loadConfig({
      DATABASE_URL: db.url,
      DWOP_HOME: await testFolder("dwop-stack-"),
      DWOP_PORT: "0",
    });
    let meanwhileEnded = false;
    const start = startStack({
      config,
      logger: silentLogger,
      engine: true,
      // Slower than the bus's failure: the start must wait for it, not leave it writing.
      meanwhile: async ({ store }) => {
        await store.db`select pg_sleep(0.5)`;
        meanwhileEnded = true;
      },
    });
    await expect(start).rejects.toThrow(/pgboss\.job/);
    expect(meanwhileEnded).toBe(true);
    await expectNoForkServer();
    // Its pool is closed: no session of it is left on the database.
    const left = await sql`select count(*)::int as n from pg_stat_activity
      where datname = ${db.name} and application_name = 'dwop'`;
    expect(left[0]!.n).toBe(0);
    await sql.end();
    await db.drop();
  });

  it("closes what it started when the executor cannot start", async () => {
    // The executor refuses its settings (a shown folder holding DWOP_HOME) once the database, the server and
    // the bus have started beside it: they must not stay open, nor anything claim or log on.
    const db = await createTestDatabase("stack executor fails");
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    const top = await testFolder("dwop-stack-allow-");
    const config = loadConfig({
      DATABASE_URL: db.url,
      DWOP_HOME: join(top, ".dwop"),
      DWOP_PORT: "0",
      DWOP_TASK_ALLOW: top,
    });
    const { logger, entries } = recordingLogger();
    await expect(startStack({ config, logger, engine: true })).rejects.toThrow(/holds DWOP_HOME/);
    await expectNoForkServer(); // also waits 2 s, in which anything left running would have logged its errors
    const left = await sql`select count(*)::int as n from pg_stat_activity
      where datname = ${db.name} and application_name = 'dwop'`;
    expect(left[0]!.n).toBe(0);
    expect(entries.filter((e) => e.level === "error")).toEqual([]);
    await sql.end();
    await db.drop();
  });
});

/** No fork server now nor a moment later (one still starting when the start failed would appear late). */
async function expectNoForkServer(): Promise<void> {
  for (const until = Date.now() + 2000; Date.now() < until;) {
    expect(await forkServers()).toEqual([]);
    await new Promise((r) => setTimeout(r, 100));
  }
}
