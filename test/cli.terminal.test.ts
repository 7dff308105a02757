import { execFile } from "node:child_process";
import { createServer as createHttpServer } from "node:http";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer as createTcpServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { freePort, spawnDwop, type DwopProcess } from "./support/dev-process.ts";
import { until } from "./support/until.ts";

// Terminal manners, through real processes: Ctrl-C typed in a pseudo-terminal (python3's pty module;
// the terminal signals the whole foreground group, embedded PostgreSQL included), a follower whose
// server restarts under it, a DWOP_URL that is not DWOP, and log lines for a person or a collector.

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const PTY = join(ROOT, "test/support/pty_run.py");
const run = promisify(execFile);

let dir: string;
const databases: TestDatabase[] = [];
const processes: DwopProcess[] = [];
let passed = true;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "dwop-cli-terminal-"));
});
afterEach((ctx) => {
  if (ctx.task.result?.state !== "pass") passed = false;
});
afterAll(async () => {
  for (const p of processes) await p.stop("SIGKILL");
  if (passed) for (const d of databases) await d.drop();
  if (passed) await rm(dir, { recursive: true, force: true });
}, 60_000);

async function database(label: string): Promise<TestDatabase> {
  const d = await createTestDatabase(label);
  databases.push(d);
  return d;
}

interface PtyResult {
  code: number;
  output: string;
  ready: boolean;
  interruptToExitMs: number | null;
}

/** `dwop ARGS` in a pseudo-terminal: once its output matches `ready`, Ctrl-C is typed. */
async function ctrlC(args: string[], ready: string, env: Record<string, string>): Promise<PtyResult> {
  const { stdout } = await run(
    "python3",
    [PTY, ready, "120", "--", process.execPath, join(ROOT, "bin/dwop.js"), ...args],
    {
      cwd: dir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, TERM: "xterm", ...env },
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  const result = JSON.parse(stdout) as PtyResult;
  console.log(`dwop ${args[0]}: Ctrl-C to exit took ${result.interruptToExitMs} ms`);
  return result;
}

/** What the terminal showed after ^C, as lines. */
const afterCtrlC = (output: string) =>
  output
    .slice(output.lastIndexOf("^C") + 2)
    .split(/\r?\n/)
    .filter((l) => l.trim() !== "");

describe("Ctrl-C", () => {
  it("ends dwop dev with exit 130 and one line, and its logs on a terminal are for a person", async () => {
    const db = await database("cli_ctrlc_dev");
    const r = await ctrlC(["dev", "--port", String(await freePort())], "as Authorization: Bearer\\)", {
      DATABASE_URL: db.url,
      DWOP_HOME: join(dir, "dev-home"),
      DWOP_LOG_LEVEL: "info",
    });
    expect(r.ready).toBe(true);
    expect(r.code).toBe(130);
    expect(afterCtrlC(r.output)).toEqual(["SIGINT: stopped (running tasks rerun at the next start)"]);
    // Pretty: time, level, message, fields; no JSON records.
    expect(r.output).toMatch(/\d\d:\d\d:\d\d\S* \S*INFO \S* task sandbox: /);
    expect(r.output).not.toContain('"level":');
  }, 150_000);

  it("ends dwop run, on the embedded PostgreSQL, with exit 130 and one line while a task runs", async () => {
    const file = join(dir, "slow.workflow");
    await writeFile(file, "fun slow():\n    import time\n    time.sleep(120)\n");
    const home = join(dir, "run-home");
    const r = await ctrlC(["run", file], "1 running", { DWOP_HOME: home, DATABASE_URL: "" });
    expect(r.ready).toBe(true);
    expect(r.code).toBe(130);
    expect(afterCtrlC(r.output)).toEqual([
      "interrupted: stopped; the workflow stays recorded and resumes with `dwop dev`",
    ]);
    // Nothing of it is left running: not the task, not the embedded PostgreSQL.
    await until(async () => {
      const { stdout } = await run("ps", ["-eo", "args"]);
      return !stdout.includes(home) && !stdout.includes("time.sleep(120)");
    }, 20_000);
  }, 150_000);

  it("asks for JSON logs on a terminal with DWOP_LOG_FORMAT=json", async () => {
    const db = await database("cli_ctrlc_json");
    const r = await ctrlC(["dev", "--port", String(await freePort())], "as Authorization: Bearer\\)", {
      DATABASE_URL: db.url,
      DWOP_HOME: join(dir, "json-home"),
      DWOP_LOG_LEVEL: "info",
      DWOP_LOG_FORMAT: "json",
    });
    expect(r.code).toBe(130);
    expect(r.output).toMatch(/\{"level":30,"time":\d+,.*"msg":"task sandbox: /);
  }, 150_000);
});

describe("a follower whose server restarts", () => {
  it("submit --wait and logs --follow wait for it, say so, and end with the workflow", async () => {
    const db = await database("cli_restart");
    const port = String(await freePort());
    const serverEnv = {
      DATABASE_URL: db.url,
      DWOP_HOME: join(dir, "restart-home"),
      DWOP_API_TOKEN: "restart-token-0123456789abcdef",
      DWOP_LOG_LEVEL: "info",
      DWOP_CLAIM_POLL_MS: "100",
      DWOP_EVENTS_POLL_MS: "100",
    };
    const start = () => {
      const p = spawnDwop(["dev", "--port", port, "--host", "127.0.0.1"], serverEnv, dir);
      processes.push(p);
      return p;
    };
    let server = start();
    await server.waitFor("dwop dev listening on http://127.0.0.1:" + port);
    // Piped: the server's log lines are JSON, for a collector.
    expect(server.stderr()).toMatch(/^\{"level":30,.*"msg":"task sandbox: /m);

    const file = join(dir, "restart.workflow");
    await writeFile(
      file,
      'fun slow():\n    import time\n    print("before", flush=True)\n    time.sleep(4)\n    print("after")\n\n' +
        'fun done(x:slow):\n    print(open("x").read().upper())\n',
    );
    const client = { DWOP_URL: `http://127.0.0.1:${port}`, DWOP_TOKEN: serverEnv.DWOP_API_TOKEN };
    const wait = spawnDwop(["submit", file, "--wait"], client, dir);
    processes.push(wait);
    await until(async () => /^[0-9a-f-]{36}$/m.test(wait.stdout()), 60_000);
    const id = wait.stdout().trim();
    const follow = spawnDwop(["logs", id, "slow", "--follow"], client, dir);
    processes.push(follow);
    await wait.waitFor(/slow running/);

    // SIGTERM: the server lets the running task finish (its grace period), then exits; a new one
    // starts on the same port a moment later.
    expect(await server.stop("SIGTERM")).toBe(143);
    await until(async () => wait.stderr().includes("waiting for it to come back"), 30_000);
    server = start();
    await server.waitFor("dwop dev listening on");

    expect(await wait.exited, `submit --wait said: ${wait.stderr()}`).toBe(0);
    expect(wait.stderr()).toMatch(
      // Refused once it is down, or reset when a request was under way as it went.
      /lost http:\/\/127\.0\.0\.1:\d+ \(cannot reach .*(ECONNREFUSED|ECONNRESET)\); waiting for it to come back/,
    );
    expect(wait.stderr()).toMatch(/reconnected to http:\/\/127\.0\.0\.1:\d+ after \d+\.\ds/);
    expect(wait.stderr()).toContain(`workflow ${id} succeeded`);
    expect(await follow.exited, `logs --follow said: ${follow.stderr()}`).toBe(0);
    expect(follow.stdout()).toContain("before\nafter\n");
  }, 180_000);
});

describe("a DWOP_URL that is not a DWOP server", () => {
  let web: ReturnType<typeof createHttpServer>;
  let hangUp: Server;
  let webUrl: string;
  let hangUpUrl: string;

  beforeAll(async () => {
    web = createHttpServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end("<html><body>It works!</body></html>");
    });
    hangUp = createTcpServer((socket) => socket.destroy());
    for (const s of [web, hangUp]) await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    webUrl = `http://127.0.0.1:${(web.address() as { port: number }).port}`;
    hangUpUrl = `http://127.0.0.1:${(hangUp.address() as { port: number }).port}`;
  });
  afterAll(() => {
    web.close();
    hangUp.close();
  });

  const dwop = async (args: string[], env: Record<string, string>) => {
    const p = spawnDwop(args, env, dir);
    const code = await p.exited;
    return { code, stderr: p.stderr(), stdout: p.stdout() };
  };

  it("says it is not DWOP instead of printing its page, and exits 3", async () => {
    const r = await dwop(["list"], { DWOP_URL: webUrl, DWOP_TOKEN: "t" });
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(
      `dwop: ${webUrl} is not a DWOP server: it answered HTTP 200 with text/html, not DWOP's JSON\n` +
        "  set DWOP_URL to the DWOP server's address (the URL `dwop dev` prints, or your deployment's API)\n",
    );
    expect(r.stderr).not.toContain("<html>");
  });

  it("says a server that hangs up did not answer as HTTP (not EPIPE alone), and exits 3", async () => {
    const file = join(dir, "hello.workflow");
    await writeFile(file, 'fun hello():\n    print("x" * 100000)\n');
    // Three times: Node 20's fetch of a form left its promise unsettled here most times, and the process
    // exited 13 without a word.
    for (let i = 0; i < 3; i++) {
      const r = await dwop(["submit", file], { DWOP_URL: hangUpUrl, DWOP_TOKEN: "t" });
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(
        new RegExp(
          `^dwop: cannot reach ${hangUpUrl}: (EPIPE|UND_ERR_SOCKET|ECONNRESET).*\\n  it did not answer as an HTTP server would: is DWOP_URL the DWOP server's address\\?\\n$`,
        ),
      );
    }
  });

  it("says a URL without a scheme needs one, and exits 2", async () => {
    const r = await dwop(["list"], { DWOP_URL: "localhost:8080" });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      "DWOP_URL: must start with http:// or https:// (did you mean http://localhost:8080?)",
    );
    expect(r.stderr).not.toContain("start a server");
  });
});
