// The soak's DWOP processes: started as a deployment would start them, SIGKILLed and restarted on cue,
// and restarted after any exit of their own (as Kubernetes restarts a crashed pod).
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));

export interface ProcessSpec {
  name: string;
  script: string;
  args?: string[];
  env: Record<string, string>;
  /** The stdout line that says the process is ready (default: a line starting "ready "). */
  ready?: RegExp;
}

interface Managed {
  spec: ProcessSpec;
  child: ChildProcess | null;
  /** Set while the soak itself has killed it and will restart it. */
  killedByUs: boolean;
  log: WriteStream;
  stopped: boolean;
}

export class ProcessSet {
  private readonly procs = new Map<string, Managed>();
  /** Exits the soak did not cause (crash on a refused connection at start, for example). */
  unexpectedExits = 0;

  constructor(private readonly logDir: string) {
    // If the soak itself dies, its processes must not outlive it.
    process.once("exit", () => {
      for (const m of this.procs.values()) m.child?.kill("SIGKILL");
    });
  }

  /** Starts a process; resolves once it printed a line starting with `ready` when `waitReady`. */
  async start(spec: ProcessSpec, waitReady = false): Promise<string | null> {
    const m: Managed = {
      spec,
      child: null,
      killedByUs: false,
      log: createWriteStream(join(this.logDir, `${spec.name}.log`), { flags: "a" }),
      stopped: false,
    };
    this.procs.set(spec.name, m);
    return this.spawn(m, waitReady);
  }

  names(): string[] {
    return [...this.procs.keys()];
  }

  private spawn(m: Managed, waitReady: boolean): Promise<string | null> {
    // TypeScript through tsx; bin/dwop.js picks the bundle or the sources itself.
    const loader = m.spec.script.endsWith(".ts") ? ["--import", "tsx"] : [];
    const child = spawn(process.execPath, [...loader, m.spec.script, ...(m.spec.args ?? [])], {
      cwd: ROOT,
      env: { ...process.env, ...m.spec.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    m.child = child;
    m.killedByUs = false;
    child.stderr!.pipe(m.log, { end: false });
    let ready: (line: string | null) => void = () => {};
    const readyLine = new Promise<string | null>((r) => (ready = r));
    let buffered = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      m.log.write(chunk);
      buffered += chunk.toString();
      const line = buffered.split("\n").find((l) => (m.spec.ready ?? /^ready /).test(l));
      if (line) ready(line);
    });
    child.once("exit", (code, signal) => {
      ready(null);
      m.log.write(`--- exited code=${code} signal=${signal}\n`);
      if (m.child !== child || m.stopped || m.killedByUs) return;
      this.unexpectedExits++;
      setTimeout(() => {
        if (!m.stopped && m.child === child) void this.spawn(m, false);
      }, 1000);
    });
    return waitReady ? readyLine : Promise.resolve(null);
  }

  /** SIGKILLs the process and restarts it after `restartAfterMs` (resolves once it is respawned). */
  async killAndRestart(name: string, restartAfterMs: number): Promise<void> {
    const m = this.procs.get(name);
    if (!m || m.stopped || !m.child) return;
    const child = m.child;
    m.killedByUs = true;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGKILL");
    await exited;
    await new Promise((r) => setTimeout(r, restartAfterMs));
    if (!m.stopped) await this.spawn(m, false);
  }

  /** Stops everything: SIGTERM, then SIGKILL after `graceMs`. */
  async stopAll(graceMs = 5000): Promise<void> {
    await Promise.all(
      [...this.procs.values()].map(async (m) => {
        m.stopped = true;
        const child = m.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
        await exited;
        clearTimeout(timer);
      }),
    );
    for (const m of this.procs.values()) m.log.end();
  }
}
