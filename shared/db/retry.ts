/** SQLSTATEs after which the connection's session is gone: the server ended its backend, or class 08. */
const SESSION_ENDED_SQLSTATE = /^(57P01|57P02|57P03|08\d{3})$/;
/** Client codes of a connection that closed, was refused or timed out: no session either. */
const CONNECTION_CLIENT = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
]);
/** The other SQLSTATEs after which the same call can succeed: a serialization failure, a deadlock, a lock
 * not available. */
const RETRYABLE_SQLSTATE = /^(40001|40P01|55P03)$/;
const TOO_MANY_CONNECTIONS = "53300";
/**
 * Supabase's pooler (Supavisor) refuses with a FATAL XX000 whose message starts with its own code in
 * brackets: too many clients (session, transaction or proxy mode), no database connection free in time, or
 * its own connection to the database ended. Versions before those codes spelled the first two out.
 */
const POOLER_REFUSAL =
  /^(\((EMAXCONN|EMAXCONNSESSION|EMAXCLIENTSESSION|EMAXCLIENTCONN|EMAXPROXYCONN|ECHECKOUTTIMEOUT|EDBHANDLEREXITED)\)|MaxClientsInSessionMode:|Max client connections reached)/;

/** True for a deadlock, a serialization failure, a lock not available, or databaseUnavailable. */
export function isTransient(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && (RETRYABLE_SQLSTATE.test(code) || databaseUnavailable(err));
}

/**
 * True when the database could not be reached or would not serve for now: a connection that dropped or was
 * refused (by the network, a server starting or stopping: connectionLost), too many connections, or a
 * database that does not accept connections (ALLOW_CONNECTIONS false, as for maintenance: 55000 at the
 * connection's start, a FATAL), or Supabase's pooler refusing for one of these reasons (POOLER_REFUSAL).
 */
export function databaseUnavailable(err: unknown): boolean {
  const { code, severity, message } = (err ?? {}) as {
    code?: unknown;
    severity?: unknown;
    message?: unknown;
  };
  if (typeof code !== "string") return false;
  if (connectionLost(err) || code === TOO_MANY_CONNECTIONS) return true;
  if (severity !== "FATAL") return false;
  return (
    code === "55000" || (code === "XX000" && typeof message === "string" && POOLER_REFUSAL.test(message))
  );
}

/**
 * True when the error ended the connection's session (or there never was one): the socket closed or was
 * refused, or the server ended the backend. The session's locks and its open transaction went with it.
 */
export function connectionLost(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && (SESSION_ENDED_SQLSTATE.test(code) || CONNECTION_CLIENT.has(code));
}

/**
 * True for errors that running the same statement again can never fix: bad data, a broken constraint,
 * a missing object or a raised exception. Anything else (a refused connection, a server restarting) may pass.
 */
export function isPermanent(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^(22|23|42|2F|P0)/.test(code);
}

export interface RetryOptions {
  /** Which errors to retry (default: isTransient). */
  retryIf?: (err: unknown) => boolean;
  /** Stops retrying (the caller is shutting down): the last error is thrown. */
  giveUp?: () => boolean;
  maxDelayMs?: number;
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

/**
 * Runs `fn` until it succeeds, retrying transient errors with exponential backoff (50 ms doubling, capped).
 * A state change that must be recorded (a run's end) is worth waiting for; a non-transient error is thrown
 * at once.
 */
export async function retryTransient<T>(fn: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!(options.retryIf ?? isTransient)(err) || options.giveUp?.()) throw err;
      const delay = Math.min(50 * 2 ** (attempt - 1), options.maxDelayMs ?? 5000);
      options.onRetry?.(err, attempt, delay);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
