// Node-only: a client of the Python fork server (worker/dwop_forkserver.py), which forks a fresh worker
// process per run instead of paying for an interpreter start each time.
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { constants } from "node:os";
import { join } from "node:path";
import { silentLogger, type Logger } from "../log.ts";

export interface ForkServerOptions {
  /** The real interpreter (see resolvePython). */
  python: string;
  workerScript: string;
  /**
   * The server's environment. Settings Python reads at start (PYTHONPATH, PYTHONUNBUFFERED, HOME for the
   * user site, ...) hold for every worker it forks, so give it those the runs would get.
   */
  env: Record<string, string>;
  /** The task sandbox (worker/dwop_sandbox.py) around each run's body. */
  sandbox?: SandboxSettings;
  logger?: Logger;
}

/**
 * "auto": each run in the sandbox where the kernel allows it, else without it (said once in the log);
 * "required": no run starts without it; "off": runs see what the dispatcher's user can.
 */
export type SandboxMode = "auto" | "required" | "off";

export interface SandboxSettings {
  mode: SandboxMode;
  /** "internet": out through slirp4netns where it is installed, never to the machine; "none": nothing. */
  network: "internet" | "none";
  /** Folders (absolute) runs may read besides the system's and Python's: a wheel folder, say. */
  allow: string[];
  /**
   * As root: a folder of the dispatcher's (made when missing) on which the fork server mounts, in a mount
   * namespace of its own, the system's part of every run's root once, instead of each run building it.
   */
  rootTemplate?: string;
}

/** What the server found at start: runs in namespaces, or not, and why not when it was asked for. */
export interface SandboxStatus {
  mode: "namespaces" | "off";
  why: string | null;
  /** What runs reach: the internet, nothing, or (no sandbox) whatever the machine does. */
  network: "internet" | "none" | "host";
  /** Why runs get no internet when it was asked for (slirp4netns missing, say). */
  networkWhy: string | null;
}

/** What one run may use in the sandbox: sizes in bytes, CPU time in seconds, 0 for no limit. */
export interface RunLimits {
  memory: number;
  disk: number;
  processes: number;
  cpuSeconds: number;
}

/** The file in the run's folder the worker reads its environment from (and deletes); see dwop_forkserver.py. */
const ENV_FILE = ".dwop-env";

/** How a forked worker ended. `serverDied`: the fork server died first, so the worker died unobserved. */
export type ForkedExit =
  | { code: number; signal: null; serverDied: false }
  | { code: null; signal: NodeJS.Signals | `signal ${number}`; serverDied: boolean };

export interface ForkedWorker {
  /** Also its process group: kill(-pid) stops the worker and everything it started. */
  pid: number;
  exited: Promise<ForkedExit>;
}

/** A request the server has not finished answering. */
interface Pending {
  pid: number | null;
  exit: Promise<ForkedExit>;
  started(worker: ForkedWorker): void;
  failed(err: Error): void;
  exited(exit: ForkedExit): void;
}

interface ServerEvent {
  ready?: number;
  sandbox?: SandboxStatus["mode"];
  why?: string | null;
  network?: SandboxStatus["network"];
  networkWhy?: string | null;
  id?: string | null;
  pid?: number;
  exit?: number;
  signal?: number;
  error?: string;
}

/** A server that dies this soon after its start is not restarted at once, but by the next fork(). */
const CRASH_LOOP_MS = 1000;
const CLOSE_GRACE_MS = 2000;

/**
 * Starts and supervises one fork server, and forks workers through it. A server that dies is replaced;
 * the workers it had in flight died with it (they are reported as killed, with `serverDied`), and forks
 * it had not answered fail.
 */
export class ForkServer {
  private server: ServerProcess | null = null;
  private closed = false;
  private readonly log: Logger;

  constructor(private readonly options: ForkServerOptions) {
    this.log = (options.logger ?? silentLogger).child({ component: "fork-server" });
  }

  /** Starts the server now rather than at the first fork, so that run does not wait for Python. */
  warm(): void {
    if (!this.closed) this.current();
  }

  /** What the running server (started now if none runs) says of the task sandbox. */
  sandbox(): Promise<SandboxStatus> {
    if (this.closed) return Promise.reject(new Error("the fork server is closed"));
    return this.current().ready;
  }

  /**
   * Forks a worker in `cwd` with exactly `env` as its environment, handed over in a 0600 file of `cwd`
   * (never through the server), and its body held to `limits`. `id` must be unique among runs in flight.
   * `inline`: every file of the run comes in `env` (nothing is downloaded into `cwd`), so a sandboxed body's
   * /work is a folder of its own, set up while the worker reads `env` (worker/dwop_gate.py).
   */
  async fork(
    id: string,
    cwd: string,
    env: Record<string, string>,
    limits: RunLimits,
    inline = false,
  ): Promise<ForkedWorker> {
    if (this.closed) throw new Error("the fork server is closed");
    // Synchronous: one small file on a local disk, where fs/promises would take three trips through
    // libuv's thread pool (open, write, close) on the path of every run's start.
    writeFileSync(join(cwd, ENV_FILE), JSON.stringify(env), { mode: 0o600, flag: "wx" });
    return this.current().fork(id, cwd, limits, inline);
  }

  /** Stops the server; it kills the process group of every worker still running. */
  async close(): Promise<void> {
    this.closed = true;
    const server = this.server;
    this.server = null;
    await server?.stop();
  }

  private current(): ServerProcess {
    if (this.server && !this.server.dead) return this.server;
    const server = new ServerProcess(this.options, this.log, () => this.died(server));
    this.server = server;
    return server;
  }

  private died(server: ServerProcess): void {
    if (this.server !== server) return;
    this.server = null;
    if (this.closed) return;
    const livedMs = Date.now() - server.startedAt;
    this.log.error({ ...server.death, livedMs }, "the fork server died; runs in flight are lost");
    if (livedMs >= CRASH_LOOP_MS) this.current();
  }
}

/** One fork server process and the requests it has not finished answering. */
class ServerProcess {
  readonly startedAt = Date.now();
  dead = false;
  death: { code: number | null; signal: string | null; error?: string } | null = null;
  private readonly child: ChildProcess;
  private readonly pending = new Map<string, Pending>();
  private buffered = "";
  private readonly exited: Promise<void>;
  readonly ready: Promise<SandboxStatus>;
  /** Until the server says it is ready: a start awaited with nothing else pending must keep Node up. */
  private starting = true;
  private markReady!: (status: SandboxStatus) => void;
  private failReady!: (err: Error) => void;

  constructor(
    options: ForkServerOptions,
    private readonly log: Logger,
    private readonly onDeath: () => void,
  ) {
    this.ready = new Promise((resolve, reject) => {
      this.markReady = resolve;
      this.failReady = reject;
    });
    this.ready.catch(() => {});
    const settings = JSON.stringify({
      sandbox: options.sandbox?.mode ?? "off",
      allow: options.sandbox?.allow ?? [],
      network: options.sandbox?.network ?? "none",
      rootTemplate: options.sandbox?.rootTemplate,
    });
    this.child = spawn(options.python, [options.workerScript, "--fork-server", settings], {
      env: options.env,
      // Its own session, so a terminal's Ctrl-C reaches the dispatcher (which stops gracefully) but not
      // the server and the runs it holds.
      detached: true,
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.child.stdout!.setEncoding("utf8").on("data", (text: string) => this.receive(text));
    this.child.stderr!.setEncoding("utf8").on("data", (text: string) => {
      this.log.warn({ stderr: text.trimEnd() }, "fork server says");
    });
    this.child.stdin!.on("error", () => {}); // a dead server: its exit reports the runs
    this.exited = new Promise((resolve) => {
      this.child.once("error", (err) => {
        this.die({ code: null, signal: null, error: err.message });
        resolve();
      });
      // "close", not "exit": the events the server wrote before it ended have then all been read.
      this.child.once("close", (code, signal) => {
        this.die({ code, signal });
        resolve();
      });
    });
    this.updateRef();
  }

  fork(id: string, cwd: string, limits: RunLimits, inline: boolean): Promise<ForkedWorker> {
    if (this.pending.has(id)) return Promise.reject(new Error(`run ${id} is already in the fork server`));
    let exited!: (exit: ForkedExit) => void;
    const exit = new Promise<ForkedExit>((resolve) => (exited = resolve));
    return new Promise((started, failed) => {
      this.pending.set(id, { pid: null, exit, started, failed, exited });
      this.child.stdin!.write(`${JSON.stringify({ id, cwd, limits, inline })}\n`);
      this.updateRef();
    });
  }

  async stop(): Promise<void> {
    if (!this.dead) {
      this.child.stdin!.end();
      const timer = setTimeout(() => this.child.kill("SIGKILL"), CLOSE_GRACE_MS);
      await this.exited;
      clearTimeout(timer);
    }
  }

  private receive(text: string): void {
    this.buffered += text;
    let newline: number;
    while ((newline = this.buffered.indexOf("\n")) >= 0) {
      const line = this.buffered.slice(0, newline);
      this.buffered = this.buffered.slice(newline + 1);
      let event: ServerEvent;
      try {
        event = JSON.parse(line) as ServerEvent;
      } catch {
        this.log.warn({ line }, "fork server wrote a line that is not JSON");
        continue;
      }
      this.handle(event);
    }
  }

  private handle(event: ServerEvent): void {
    if (event.ready !== undefined) {
      this.starting = false;
      this.updateRef();
      this.markReady({
        mode: event.sandbox ?? "off",
        why: event.why ?? null,
        network: event.network ?? "host",
        networkWhy: event.networkWhy ?? null,
      });
      return;
    }
    const id = event.id;
    const entry = typeof id === "string" ? this.pending.get(id) : undefined;
    if (typeof id !== "string" || !entry) {
      this.log.warn({ event }, "fork server event for no pending run");
      return;
    }
    if (event.pid !== undefined) {
      entry.pid = event.pid;
      entry.started({ pid: event.pid, exited: entry.exit });
    } else if (event.error !== undefined) {
      this.settle(id);
      entry.failed(new Error(`the fork server refused the run: ${event.error}`));
    } else if (event.exit !== undefined) {
      this.settle(id);
      entry.exited({ code: event.exit, signal: null, serverDied: false });
    } else if (event.signal !== undefined) {
      this.settle(id);
      entry.exited({ code: null, signal: signalName(event.signal), serverDied: false });
    }
  }

  private settle(id: string): void {
    this.pending.delete(id);
    this.updateRef();
  }

  private die(death: NonNullable<ServerProcess["death"]>): void {
    if (this.dead) return;
    this.dead = true;
    this.death = death;
    this.failReady(new Error(`the fork server died (${describe(death)})`));
    for (const [id, entry] of this.pending) {
      this.settle(id);
      if (entry.pid === null)
        entry.failed(new Error(`the fork server died before it started the run (${describe(death)})`));
      else entry.exited({ code: null, signal: "SIGKILL", serverDied: true });
    }
    this.onDeath();
  }

  /**
   * An idle server does not keep Node running; one starting does, and one with runs in flight, as their
   * processes would.
   */
  private updateRef(): void {
    const busy = (this.starting || this.pending.size > 0) && !this.dead;
    for (const handle of [this.child, this.child.stdin, this.child.stdout, this.child.stderr]) {
      const h = handle as unknown as { ref?: () => void; unref?: () => void } | null;
      if (busy) h?.ref?.();
      else h?.unref?.();
    }
  }
}

function describe(death: NonNullable<ServerProcess["death"]>): string {
  if (death.error) return death.error;
  return death.signal ? `killed by ${death.signal}` : `exit code ${death.code}`;
}

function signalName(n: number): NodeJS.Signals | `signal ${number}` {
  const name = Object.entries(constants.signals).find(([, value]) => value === n)?.[0];
  return (name as NodeJS.Signals | undefined) ?? `signal ${n}`;
}
