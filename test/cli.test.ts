import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { appendFile, readFile, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import postgres from "postgres";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { testFolder } from "./support/test-folder.ts";
import { spawnDwop } from "./support/dev-process.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the `dwop` command as a user would, from the repository root. */
async function dwop(args: string[], env: Record<string, string> = {}): Promise<Result> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(ROOT, "bin/dwop.js"), ...args], {
      cwd: ROOT,
      env: { ...process.env, DWOP_LOG_LEVEL: "warn", ...env },
      maxBuffer: 16 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

let database: TestDatabase | null = null;
afterEach(async (ctx) => {
  if (database && ctx.task.result?.state === "pass") await database.drop();
  database = null;
});

/** `dwop run` of a workflow's source on a fresh test database (the test's `database`) and home. */
async function runOnTestDatabase(label: string, source: string): Promise<{ r: Result; url: string }> {
  database = await createTestDatabase(label);
  const file = await workflowFile(source);
  const home = await testFolder("dwop-h-");
  return { r: await dwop(["run", file], { DATABASE_URL: database.url, DWOP_HOME: home }), url: database.url };
}

/** A query on a connection of its own to the test's database. */
async function onDatabase<T>(url: string, query: (db: postgres.Sql) => Promise<T>): Promise<T> {
  const db = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return await query(db);
  } finally {
    await db.end();
  }
}

async function workflowFile(text: string): Promise<string> {
  const dir = await testFolder("dwop-cli-");
  const file = join(dir, "test.workflow");
  await writeFile(file, text);
  return file;
}

describe("dwop run", () => {
  it("runs the example on the embedded PostgreSQL and prints the final output (the README's quick start)", async () => {
    const home = await testFolder("dwop-home-");
    const r = await dwop(["run", "examples/etl.workflow"], { DWOP_HOME: home, DATABASE_URL: "" });
    expect(r.stderr).toContain("succeeded");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Loading: LISBON 69.8F");
  }, 120_000);

  it("prints one JSON summary with --json, and the output is readable with dwop output", async () => {
    database = await createTestDatabase("cli_json");
    const home = await testFolder("dwop-home-");
    const env = { DATABASE_URL: database.url, DWOP_HOME: home };
    const r = await dwop(["run", "examples/diamond.workflow", "--json"], env);
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout) as { id: string; status: string; tasks: unknown[] };
    expect(summary).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      status: "succeeded",
      tasks: ["source", "squares", "cubes", "report"].map((name) => ({
        name,
        status: "succeeded",
        attempts: 1,
        error: null,
      })),
    });
    const out = await dwop(["output", summary.id, "report"], env);
    expect(out).toMatchObject({ code: 0, stdout: "sum of squares 385, sum of cubes 3025\n" });
    expect((await dwop(["output", summary.id, "nope"], env)).code).toBe(1);
  }, 120_000);

  it("exits 1 when the workflow fails, with the failure in the JSON summary", async () => {
    database = await createTestDatabase("cli_fail");
    const file = await workflowFile("fun boom():\n    raise SystemExit(4)\n\nfun after(x:boom):\n    pass\n");
    const r = await dwop(["run", file, "--json"], {
      DATABASE_URL: database.url,
      DWOP_HOME: await testFolder("dwop-h-"),
    });
    expect(r.code).toBe(1);
    const summary = JSON.parse(r.stdout) as {
      status: string;
      tasks: { name: string; status: string; error: string }[];
    };
    expect(summary.status).toBe("failed");
    expect(summary.tasks[0]).toMatchObject({ name: "boom", status: "failed", error: "exit code 4" });
    expect(summary.tasks[1]).toMatchObject({ name: "after", status: "upstream_failed" });
  }, 120_000);

  it("on failure prints each failed task's error and log tail, and the logs stay readable after it ended", async () => {
    database = await createTestDatabase("cli_fail_tail");
    const home = await testFolder("dwop-h-");
    const file = await workflowFile(
      [
        "fun extract():",
        '    print("a,b,c")',
        "",
        "fun parse(raw:extract):",
        "    for i in range(30):",
        '        print("line", i)',
        '    raise ValueError("bad row 42: expected 3 columns, got 2")',
        "",
        "fun load(rows:parse):",
        "    pass",
        "",
      ].join("\n"),
    );
    const r = await dwop(["run", file], { DATABASE_URL: database.url, DWOP_HOME: home });
    expect(r.code).toBe(1);
    const id = /workflow (\S+) failed/.exec(r.stderr)![1]!;
    // The headline is the server's error for the task (the exception's last line once the server
    // reports it; "exit code 1" before that), then the log's last 20 lines, then the command.
    expect(r.stderr).toMatch(/✗ parse: .+\n {2}last 20 lines of its log:\n/);
    const tail = r.stderr.split("last 20 lines of its log:\n")[1]!.split("\n  whole log:")[0]!;
    expect(tail.split("\n").filter(Boolean)).toHaveLength(20);
    expect(tail).toContain("  │ ValueError: bad row 42: expected 3 columns, got 2");
    expect(tail).not.toContain("line 9\n");
    expect(r.stderr).toContain(`whole log: dwop logs ${id} parse`);
    expect(r.stderr).toMatch(/⊘ load upstream_failed — blocked by failed upstream parse/);

    // The embedded server is gone: the log and outputs are read from the home. (DWOP_PORT points at
    // a port nothing listens on, so no other local server answers instead.)
    const local = { DWOP_HOME: home, DWOP_PORT: "1" };
    const log = await dwop(["logs", id, "parse"], local);
    expect(log.code).toBe(0);
    expect(log.stdout).toContain("line 0\n");
    expect(log.stdout).toContain("ValueError: bad row 42: expected 3 columns, got 2");
    expect(await dwop(["logs", id, "parse", "--attempt", "1"], local)).toMatchObject({
      code: 0,
      stdout: log.stdout,
    });
    expect(await dwop(["output", id, "extract"], local)).toMatchObject({ code: 0, stdout: "a,b,c\n" });
    const none = await dwop(["logs", id, "load"], local);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(`no log of task 'load' of workflow ${id} in ${home}, and cannot reach`);
    // --follow has no server to wait for: the log the home holds, and exit 3 (the task's state is the
    // database's to say), at once instead of five minutes of waiting.
    const followed = await dwop(["logs", id, "parse", "--follow"], local);
    expect(followed).toMatchObject({ code: 3, stdout: log.stdout });
    expect(followed.stderr).toContain("── parse attempt 1 ──");
    expect(followed.stderr).toContain(`no server answers (cannot reach`);
    const json = await dwop(["logs", id, "parse", "--follow", "--json"], local);
    expect(json.code).toBe(3);
    expect(JSON.parse(json.stdout)).toEqual({
      workflowId: id,
      task: "parse",
      attempt: 1,
      offset: 0,
      status: null,
      log: log.stdout,
    });
  }, 120_000);

  it("exits 2 for a pool that does not exist, in one line, storing nothing", async () => {
    const { r, url } = await runOnTestDatabase("cli_unknown_pool", '@pool("gpu")\nfun a():\n    print(1)\n');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("dwop: the workflow names pool gpu, which does not exist");
    expect(r.stderr).toContain("`dwop pool set NAME SLOTS` makes one");
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(await onDatabase(url, (db) => db`select count(*)::int as n from dwop.workflows`)).toEqual([
      { n: 0 },
    ]);
  }, 120_000);

  it("says under its progress when dispatching has stalled, and since when", async () => {
    // No dispatcher: with DWOP_EXECUTOR=kubernetes only the claimer runs here (the cluster has none).
    database = await createTestDatabase("cli_run_stall");
    const file = await workflowFile('fun hello():\n    print("hello")\n');
    const p = spawnDwop(["run", file], {
      DATABASE_URL: database.url,
      DWOP_HOME: await testFolder("dwop-h-"),
      DWOP_EXECUTOR: "kubernetes",
      DWOP_STALL_AFTER_SECONDS: "1",
      DWOP_LOST_AFTER_SECONDS: "2",
    });
    try {
      await p.waitFor(
        /stalled: 1 task published but not picked up: no dispatcher is running \(since \d\d:\d\d:\d\d\)/,
      );
      expect(await p.stop("SIGINT")).toBe(130);
      expect(p.stderr()).toMatch(
        /\ninterrupted: stopped; the workflow stays recorded and resumes with `dwop dev`\n$/,
      );
    } finally {
      await p.stop("SIGKILL");
    }
  }, 120_000);

  it("passes --input files to tasks as inputs.NAME", async () => {
    database = await createTestDatabase("cli_input");
    const file = await workflowFile("fun shout(doc:inputs.doc):\n    print(open('doc').read().upper())\n");
    const input = join(await testFolder("dwop-in-"), "doc.txt");
    await writeFile(input, "héllo");
    const home = await testFolder("dwop-h-");
    const r = await dwop(["run", file, "--input", `doc=${input}`, "--json"], {
      DATABASE_URL: database.url,
      DWOP_HOME: home,
    });
    expect(r.code).toBe(0);
    const { id } = JSON.parse(r.stdout) as { id: string };
    expect((await dwop(["output", id, "shout"], { DWOP_HOME: home })).stdout).toBe("HÉLLO\n");
  }, 120_000);

  it("exits 2 for an input the workflow reads and was not given, before starting anything", async () => {
    const source = "fun shout(doc:inputs.doc):\n    print(open('doc').read())\n";
    const { r, url } = await runOnTestDatabase("cli_missing_input", source);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("the workflow reads inputs that were not given: inputs.doc");
    // Not even migrated: the check comes before the database is touched.
    expect(await onDatabase(url, (db) => db`select to_regclass('dwop.workflows') as t`)).toEqual([
      { t: null },
    ]);
  }, 120_000);

  it("exits 1 saying why when the embedded database cannot start while the fork server starts", async () => {
    // The database fails at once, while the fork server is still starting and holds nothing else up:
    // the process once ran out of work there and exited 0, having said nothing.
    const home = await testFolder("dwop-home-");
    await writeFile(join(home, "postgres.password"), "not a password\n");
    const r = await dwop(["run", "examples/etl.workflow"], { DWOP_HOME: home, DATABASE_URL: "" });
    expect(r.stderr).toContain("postgres.password must hold the embedded PostgreSQL's password");
    expect(r.code).toBe(1);
  });

  it("exits 1 with PostgreSQL's own words, and no stack trace, when the embedded database's server will not start", async () => {
    const home = await testFolder("dwop-home-");
    const env = { DWOP_HOME: home, DATABASE_URL: "" };
    expect((await dwop(["run", "examples/etl.workflow"], env)).code).toBe(0);
    await appendFile(join(home, "postgres", "postgresql.conf"), "\nshared_buffers = 'plenty'\n");
    const r = await dwop(["run", "examples/etl.workflow"], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `dwop: the embedded PostgreSQL did not start on ${join(home, "postgres")} (exit code 1)`,
    );
    expect(r.stderr).toContain('invalid value for parameter "shared_buffers": "plenty"');
    expect(r.stderr).not.toMatch(/^\s+at /m);
  }, 60_000);

  it("exits 2 naming DWOP_HOME when no folder for files can be made there, instead of hanging", async () => {
    // /proc answers ENOENT to a mkdir: Node 20's recursive mkdir tried again forever, and `dwop run` hung.
    for (const [home, url] of [
      ["/proc/dwop-no-such-home", ""],
      ["/proc/self", "postgres://nobody@127.0.0.1:1/none"], // not the embedded database: the stack's own check
    ]) {
      const r = await dwop(["run", "examples/etl.workflow"], { DWOP_HOME: home!, DATABASE_URL: url! });
      expect(r.stderr).toContain(`DWOP_HOME: ${home} is not a folder DWOP can keep its files in`);
      expect(r.code).toBe(2);
    }
  }, 60_000);

  it("exits 2 for a shown folder holding DWOP_HOME, and stops the embedded database it started", async () => {
    // DWOP_TASK_ALLOW is checked as the executor starts, beside the database's start: the database, the
    // server and the bus that started meanwhile are closed, and the error is the setting's, not a trace.
    const top = await testFolder("dwop-allow-");
    const home = join(top, ".dwop");
    const r = await dwop(["run", "examples/etl.workflow"], {
      DWOP_HOME: home,
      DATABASE_URL: "",
      DWOP_TASK_ALLOW: top,
    });
    expect(r.stderr).toContain(`the folder ${top} that sandboxed runs would be shown`);
    expect(r.stderr).not.toContain("    at ");
    expect(r.code).toBe(2);
    // Stopped, not killed with the process: its file of the running server is gone with it.
    await expect(readFile(join(home, "postgres.json"), "utf8")).rejects.toThrow(/ENOENT/);
    expect(existsSync(join(home, "postgres", "postmaster.pid"))).toBe(false);
  }, 120_000);

  it("exits 2 for DSL errors and a missing input, before starting anything", async () => {
    const file = await workflowFile("fun a(x:missing):\n    pass\n");
    const r = await dwop(["run", file], { DATABASE_URL: "postgres://nobody@127.0.0.1:1/none" });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file}:1:9: unknown upstream 'missing'`);
    expect((await dwop(["run", "does-not-exist.workflow"])).code).toBe(2);
    expect((await dwop(["run"])).code).toBe(2);
    // An input no task reads, as the API refuses it.
    const reads = await workflowFile("fun a(x:inputs.doc):\n    pass\n");
    const unread = await dwop(["run", reads, "-i", `doc=${reads}`, "-i", `extra=${reads}`], {
      DATABASE_URL: "postgres://nobody@127.0.0.1:1/none",
    });
    expect(unread).toMatchObject({ code: 2, stderr: "dwop: no task reads inputs.extra\n" });
  });
});

describe("dwop dev", () => {
  it("exits 2 in one line when its port is taken, and stops what it started", async () => {
    database = await createTestDatabase("cli_port_taken");
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const home = await testFolder("dwop-h-");
      const r = await dwop(["dev"], { DATABASE_URL: database.url, DWOP_HOME: home, DWOP_PORT: String(port) });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(
        `dwop: cannot listen on 127.0.0.1:${port}: something listens there already (another \`dwop dev\`?)`,
      );
      expect(r.stderr).not.toMatch(/^\s+at /m);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  }, 120_000);

  it("exits 2 in one line for a host it cannot listen on", async () => {
    database = await createTestDatabase("cli_bad_host");
    const home = await testFolder("dwop-h-");
    const r = await dwop(["dev"], { DATABASE_URL: database.url, DWOP_HOME: home, DWOP_HOST: "999.1.1.1" });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /dwop: cannot listen on 999\.1\.1\.1:8080: (no such host|the host's name could not be looked up)/,
    );
    expect(r.stderr).not.toMatch(/^\s+at /m);
  }, 120_000);
});

describe("dwop validate", () => {
  it("writes all of a big answer into a pipe before it exits, and ends quietly when the reader goes", async () => {
    const file = await workflowFile(
      Array.from({ length: 10_001 }, (_, i) => `fun t${i}():\n    pass\n`).join(""),
    );
    // execFile reads stdout through a pipe: its 64 KiB were all an exit left of 1.5 MB.
    const all = await dwop(["validate", "--json", file]);
    expect(all.code).toBe(0);
    expect((JSON.parse(all.stdout) as { tasks: unknown[] }).tasks).toHaveLength(10_001);
    // `| head -c 100`: the reader closes after its first chunk.
    const child = spawn(process.execPath, [join(ROOT, "bin/dwop.js"), "validate", "--json", file], {
      cwd: ROOT,
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.once("data", () => child.stdout.destroy());
    const code = await new Promise((resolve) => child.once("close", resolve));
    expect([code, stderr]).toEqual([0, ""]);
  }, 60_000);

  it("prints the DAG and exits 0, or prints FILE:LINE:COL errors and exits 2", async () => {
    const ok = await dwop(["validate", "examples/etl.workflow"]);
    expect(ok).toMatchObject({
      code: 0,
      stdout: "extract (root)\ntransform <- raw:extract\nload <- processed:transform\n",
    });
    expect((await dwop(["validate", "examples/etl.workflow", "--format", "dot"])).stdout).toContain(
      "digraph",
    );
    const file = await workflowFile("fun a():\n    pass\n\nfun a():\n    pass\n");
    const bad = await dwop(["validate", file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(new RegExp(`${file}:4:5: .*duplicate task 'a'`));
    // --json answers on stdout whatever the error, an unreadable file too.
    const missing = await dwop(["validate", "does-not-exist.workflow", "--json"]);
    expect(missing.code).toBe(2);
    expect(JSON.parse(missing.stdout)).toEqual({
      valid: false,
      errors: [
        {
          file: "does-not-exist.workflow",
          line: null,
          column: null,
          message: "cannot read does-not-exist.workflow: ENOENT",
        },
      ],
    });
  });
});
