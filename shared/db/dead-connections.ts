// Node only (Linux's /proc): connections to the database that the network dropped without a word.
//
// A statement sent on a TCP connection whose peer is gone (a partition, a firewall or NAT that forgot the
// flow, a server machine that froze) is retransmitted by the kernel for some 15 minutes (tcp_retries2)
// before the socket fails, and its query waits all that time: a dispatcher holding a run's success, a
// claimer between a claim and its publish. libpq's answer is TCP_USER_TIMEOUT, which Node cannot set.
// This watch reads what the kernel knows instead: /proc/net/tcp shows, for each socket, how many
// retransmission timeouts have passed since the peer last acknowledged anything, and how many keepalive
// probes went unanswered. A connection that shows either for `silenceMs` is closed as dead (ETIMEDOUT,
// a transient error every caller retries on a new connection). A slow statement is never taken for a
// dead one: the server's kernel acknowledges the statement's bytes at once, whatever the server does
// with them, so its connection shows neither.
import { once } from "node:events";
import { isIP, Socket } from "node:net";
import { connect as connectTls, type ConnectionOptions } from "node:tls";
import { readFile } from "node:fs/promises";
import { readlinkSync } from "node:fs";
import type { SocketFactory } from "./connect.ts";

/** What postgres.js hands a `socket` option: the hosts and ports of the URL, and its connect timeout. */
type SocketTarget = Parameters<SocketFactory>[0];

/**
 * TLS as a URL asks it of postgres.js (its `sslmode`, `sslrootcert=system`, `sslnegotiation` parameters):
 * the watch's sockets speak it themselves, so that a dead connection's TLS socket, which postgres.js
 * reads and writes, is the one closed (closing the TCP socket beneath a TLS socket of postgres.js's left
 * a write of TLS's failing on a closed descriptor, an error nobody listened to).
 */
export interface TlsMode {
  /** false: none; "prefer": TLS if the server has it; "verify": the server's certificate checked. */
  mode: false | "prefer" | "require" | "allow" | "verify";
  /** TLS from the first byte, without Postgres's SSLRequest (sslnegotiation=direct). */
  direct: boolean;
}

/** The TLS a URL asks for, read as postgres.js reads it. */
export function tlsOf(url: string): TlsMode {
  const q = url.indexOf("?");
  const query = new URLSearchParams(q < 0 ? "" : url.slice(q + 1));
  const asked =
    query.get("sslrootcert") === "system" ? "verify-full" : (query.get("sslmode") ?? query.get("ssl"));
  const direct = query.get("sslnegotiation") === "direct";
  if (!asked || asked === "disable" || asked === "false") return { mode: false, direct };
  if (asked === "prefer" || asked === "require" || asked === "allow") return { mode: asked, direct };
  return { mode: "verify", direct };
}

/**
 * How long a long-lived process's database connection may go unacknowledged by its peer before it is
 * closed as dead: a partition, or a firewall that forgot the flow. The kernel acknowledges a statement's
 * bytes whatever the server does with them, so no slow statement comes near it.
 */
export const DEAD_CONNECTION_MS = 15_000;

/**
 * connectDb's options for a long-lived process (dispatcher, claimer, `dwop dev`): its pool's connections
 * watched for death (DEAD_CONNECTION_MS), each one found said in its log.
 */
export function deadConnectionOptions(log: { warn(obj: object, msg?: string): void }): {
  connections: (url: string) => SocketFactory;
} {
  const onDead = ({ remote, silentMs }: { remote: string; silentMs: number }) =>
    log.warn(
      { remote, silentMs: Math.round(silentMs) },
      "a database connection acknowledged nothing for too long (the network dropped it): closed, its statements are retried on a new one",
    );
  return {
    connections: (url) => new DeadConnectionWatch(DEAD_CONNECTION_MS, onDead).socketFactory(tlsOf(url)),
  };
}

/** Postgres's SSLRequest: length 8, code 80877103. */
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 4, 210, 22, 47]);

/** How often the watch looks at its connections. */
const TICK_MS = 1000;
/**
 * An idle connection is looked at in the kernel too once it has been idle this long (every IDLE_TICKS
 * ticks): TCP's keepalive (postgres.js sets 60 s) probes it, and a probe nobody answers shows in /proc.
 */
const IDLE_LOOK_MS = 45_000;
const IDLE_TICKS = 5;
/** How long after its last write a connection that has received nothing since is looked at in the kernel. */
const AFTER_WRITE_MS = 5000;
/** postgres.js's own default connect timeout, in seconds: a connect that takes longer fails. */
const DEFAULT_CONNECT_TIMEOUT_S = 30;
const TCP_TABLES = ["/proc/net/tcp", "/proc/net/tcp6"];

interface Watched {
  inode: string;
  /** What postgres.js reads and writes: the socket itself, or the TLS socket over it. */
  outer: Socket;
  /** bytesRead and bytesWritten at the last tick. */
  read: number;
  written: number;
  /** When bytesWritten last grew, and when either did (performance.now()). */
  wroteAt: number;
  activeAt: number;
  /** Since when the kernel shows unacknowledged retransmissions or unanswered probes (null: it does not). */
  silentSince: number | null;
}

/** A socket's state in /proc/net/tcp: retransmission timeouts since the last acknowledgement, unanswered probes. */
interface KernelView {
  retransmits: number;
  probes: number;
}

/**
 * Closes the TCP connections given to it that the kernel shows unacknowledged for `silenceMs` (see the
 * top of this file). `onDead` is told of each (for the log). Does nothing where there is no /proc/net/tcp.
 * The kernel's table is read only while some connection waits for an answer, or idles long: a connection
 * that received bytes since the last look is alive.
 */
export class DeadConnectionWatch {
  private readonly sockets = new Map<Socket, Watched>();
  private timer: NodeJS.Timeout | null = null;
  private looking = false;
  private ticks = 0;

  constructor(
    private readonly silenceMs: number,
    private readonly onDead: (info: { remote: string; silentMs: number }) => void = () => {},
  ) {}

  /**
   * A socket factory for postgres.js's `socket` option: connects to the URL's host (rotating through
   * several, as postgres.js does) and speaks `tls` on it, within the connect timeout, and watches the
   * connection. postgres.js must then be told no TLS of its own (`ssl: false`).
   */
  socketFactory(tls: TlsMode): (target: SocketTarget) => Promise<Socket> {
    let next = 0;
    return async (target) => {
      const i = next++ % target.host.length;
      const host = target.host[i]!;
      const port = target.port[i] ?? target.port[0]!;
      const timeoutMs = (target.connect_timeout ?? DEFAULT_CONNECT_TIMEOUT_S) * 1000;
      const raw = new Socket();
      const connected = (async () => {
        await once(raw.connect(port, host), "connect");
        // On the TCP socket itself, under TLS too: its unanswered probes are what shows an idle one dead.
        if (target.keep_alive) raw.setKeepAlive(true, target.keep_alive * 1000);
        return tls.mode ? await secure(raw, host, tls) : raw;
      })();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          raw.destroy();
          const err = new Error(`connecting to the database at ${host}:${port} timed out`);
          reject(Object.assign(err, { code: "CONNECT_TIMEOUT" }));
        }, timeoutMs);
      });
      try {
        const socket = await Promise.race([connected, timedOut]);
        this.watch(raw, socket);
        return socket;
      } finally {
        clearTimeout(timer);
      }
    };
  }

  /**
   * Watches a connected TCP socket until it closes; `outer` (the TLS socket over it, or itself) is the one
   * closed when the connection is found dead.
   */
  watch(socket: Socket, outer: Socket = socket): void {
    const inode = socketInode(socket);
    if (inode === null) return; // not a TCP socket this process's /proc shows (or not Linux)
    const now = performance.now();
    const { bytesRead: read, bytesWritten: written } = socket;
    this.sockets.set(socket, { inode, outer, read, written, wroteAt: now, activeAt: now, silentSince: null });
    socket.once("close", () => this.sockets.delete(socket));
    if (!this.timer) {
      this.timer = setInterval(() => void this.tick(), TICK_MS);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async tick(): Promise<void> {
    if (this.looking) return;
    this.looking = true;
    try {
      const now = performance.now();
      const idleLook = ++this.ticks % IDLE_TICKS === 0;
      const suspects: [Socket, Watched][] = [];
      for (const [socket, w] of this.sockets) {
        if (socket.destroyed) {
          this.sockets.delete(socket);
          continue;
        }
        const { bytesRead: read, bytesWritten: written } = socket;
        const answered = read !== w.read;
        if (written !== w.written) w.wroteAt = now;
        if (answered || written !== w.written) w.activeAt = now;
        w.read = read;
        w.written = written;
        if (answered) w.silentSince = null;
        const waiting = !answered && now - w.wroteAt <= this.silenceMs + AFTER_WRITE_MS;
        if (waiting || (idleLook && now - w.activeAt >= IDLE_LOOK_MS)) suspects.push([socket, w]);
      }
      if (this.sockets.size === 0) this.stop();
      if (suspects.length === 0) return;
      const kernel = await kernelView(new Set(suspects.map(([, w]) => w.inode)));
      for (const [socket, w] of suspects) {
        const seen = kernel.get(w.inode);
        if (!seen || (seen.retransmits === 0 && seen.probes === 0)) {
          w.silentSince = null;
          continue;
        }
        w.silentSince ??= now;
        const silentMs = now - w.silentSince;
        if (silentMs < this.silenceMs) continue;
        const remote = `${socket.remoteAddress}:${socket.remotePort}`;
        this.sockets.delete(socket);
        this.onDead({ remote, silentMs });
        w.outer.destroy(deadError(remote, silentMs));
      }
    } finally {
      this.looking = false;
    }
  }
}

/** The error a dead connection's queries fail with: ETIMEDOUT, as when TCP itself gives up. */
function deadError(remote: string, silentMs: number): Error {
  const seconds = Math.round(silentMs / 1000);
  return Object.assign(
    new Error(
      `the database at ${remote} acknowledged nothing for ${seconds} s: the connection is closed as dead`,
    ),
    { code: "ETIMEDOUT" },
  );
}

/**
 * TLS on a connected socket as postgres.js would speak it (its `secure`): the SSLRequest, then the
 * handshake; "prefer" goes on in the clear when the server has no TLS.
 */
async function secure(raw: Socket, host: string, tls: TlsMode): Promise<Socket> {
  if (!tls.direct) {
    raw.write(SSL_REQUEST);
    const [answer] = (await once(raw, "data")) as [Buffer];
    if (answer[0] !== 83 /* S */) {
      if (tls.mode === "prefer") return raw;
      raw.destroy();
      throw Object.assign(new Error(`the database at ${host} does not speak TLS (sslmode=${tls.mode})`), {
        code: "ECONNREFUSED",
      });
    }
  }
  const options: ConnectionOptions = {
    socket: raw,
    servername: isIP(host) ? undefined : host,
    ...(tls.direct ? { ALPNProtocols: ["postgresql"] } : {}),
    ...(tls.mode === "verify" ? {} : { rejectUnauthorized: false }),
  };
  const socket = connectTls(options);
  await once(socket, "secureConnect");
  return socket;
}

/** The inode of a socket's file descriptor, the key of its line in /proc/net/tcp; null where there is none. */
function socketInode(socket: Socket): string | null {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) return null;
  try {
    return /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1] ?? null;
  } catch {
    return null;
  }
}

/**
 * The kernel's view of the sockets with these inodes: /proc/net/tcp's "retrnsmt" column (retransmission
 * timeouts since the peer last acknowledged new data, in hex) and the one after uid (keepalive or
 * zero-window probes sent and not answered, decimal).
 */
async function kernelView(inodes: Set<string>): Promise<Map<string, KernelView>> {
  const found = new Map<string, KernelView>();
  for (const table of TCP_TABLES) {
    const text = await readFile(table, "utf8").catch(() => "");
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      // sl local remote st tx:rx tr:when retrnsmt uid timeout inode ...
      const inode = f[9];
      if (!inode || !inodes.has(inode)) continue;
      found.set(inode, { retransmits: parseInt(f[6]!, 16), probes: parseInt(f[8]!, 10) });
    }
  }
  return found;
}
