import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createConnection, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TLSSocket } from "node:tls";
import { afterEach, describe, expect, it } from "vitest";
import { connectDb, type Db } from "../shared/db/connect.ts";
import { DeadConnectionWatch, tlsOf } from "../shared/db/dead-connections.ts";
import { isTransient, retryTransient } from "../shared/db/retry.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { dropPackets, forgetConnections, whyNoPacketDrop } from "./support/packet-drop.ts";
import { startEngine } from "./support/engine.ts";
import { TcpProxy } from "./support/tcp-proxy.ts";
import { until } from "./support/until.ts";

/**
 * A database connection the network drops without a word (a partition; a firewall or NAT that forgot the
 * flow) is closed as dead once its peer has acknowledged nothing for the pool's `deadAfterMs`, and its
 * statement fails with a transient error (retried on a new connection), where TCP alone retransmits for
 * some 15 minutes first. A statement that merely runs long is not taken for dead.
 */

const whyNot = whyNoPacketDrop();
if (whyNot) console.warn(`test/db.dead-connections: skipped: ${whyNot}`);

let database: TestDatabase | undefined;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await database?.drop();
  database = undefined;
});

/** A pool to the test's database through `port` (a proxy of the test's), watched for dead connections. */
async function poolThrough(label: string, port: number, deadAfterMs: number, query = "") {
  const url = new URL(database!.url);
  url.hostname = "127.0.0.1";
  url.port = String(port);
  const dead: { remote: string; silentMs: number }[] = [];
  const db: Db = connectDb(url.toString() + query, {
    max: 1,
    applicationName: `test:${label}`,
    connections: (u) =>
      new DeadConnectionWatch(deadAfterMs, (info) => dead.push(info)).socketFactory(tlsOf(u)),
  });
  cleanups.push(() => db.end({ timeout: 1 }));
  return { db, dead };
}

async function plainProxy(label: string) {
  database = await createTestDatabase(label);
  const proxy = new TcpProxy("127.0.0.1", Number(new URL(database.url).port || 5432));
  await proxy.start();
  cleanups.push(() => proxy.cut());
  return proxy.port;
}

/**
 * Drops the packets through `port` under a statement of `db`'s, and expects the connection closed as dead
 * within the silence (2 s), a tick and the first retransmission's wait, the statement failed as a
 * transient ETIMEDOUT, and the pool going on on a new connection once the network is back.
 */
async function expectDeathAndRecovery(db: Db, dead: unknown[], port: number): Promise<void> {
  expect((await db<{ n: number }[]>`select 1 as n`)[0]!.n).toBe(1);
  const restore = dropPackets(port);
  cleanups.push(restore);
  const t0 = performance.now();
  const err = await db`select 2`.then(
    () => {
      throw new Error("the query succeeded");
    },
    (e: Error & { code?: string }) => e,
  );
  const ms = performance.now() - t0;
  expect(err.code).toBe("ETIMEDOUT");
  expect(err.message).toMatch(/acknowledged nothing for \d+ s: the connection is closed as dead/);
  expect(isTransient(err)).toBe(true);
  expect(ms).toBeGreaterThan(1500);
  expect(ms).toBeLessThan(10_000);
  expect(dead).toHaveLength(1);
  cleanups.pop();
  restore();
  // Retried as DWOP's callers retry a transient error: one sent before the dead connection's close
  // event has run fails as CONNECTION_CLOSED, as after TCP's own timeout.
  expect((await retryTransient(() => db<{ n: number }[]>`select 3 as n`))[0]!.n).toBe(3);
}

describe.skipIf(whyNot !== null && !process.env.CI)("dead database connections", () => {
  it("closes a connection the network dropped, fails its statement as transient, and goes on on a new one", async () => {
    const port = await plainProxy("dead_conn_plain");
    const { db, dead } = await poolThrough("dead_conn_plain", port, 2000);
    await expectDeathAndRecovery(db, dead, port);
  }, 30_000);

  it("does so under TLS, where the bytes it watches are the encrypted ones", async () => {
    database = await createTestDatabase("dead_conn_tls");
    const port = await tlsTerminator(Number(new URL(database.url).port || 5432));
    const { db, dead } = await poolThrough("dead_conn_tls", port, 2000, "?sslmode=require");
    await expectDeathAndRecovery(db, dead, port);
    expect(terminated).toBeGreaterThan(0); // the pool spoke TLS to the terminator
  }, 30_000);

  it("lets a dispatcher record a run's success although the network dropped its connection meanwhile", async () => {
    const proxy = new TcpProxy("127.0.0.1", 5432);
    await proxy.start();
    cleanups.push(() => proxy.cut());
    const dead: unknown[] = [];
    const engine = await startEngine("dead_conn_dispatcher", {
      bus: "rabbit",
      concurrency: 1,
      // Its pool, its listener included, through the proxy; the claimer and the test's reads go direct.
      dispatcherDb: (m) => {
        const url = new URL(m.url);
        url.hostname = "127.0.0.1";
        url.port = String(proxy.port);
        const watch = new DeadConnectionWatch(2000, (info) => dead.push(info));
        // One connection, as a pool whose every connection the firewall forgot: the success has no other.
        return connectDb(url.toString(), { max: 1, connections: (u) => watch.socketFactory(tlsOf(u)) });
      },
    });
    let passed = false;
    cleanups.push(() => engine.stop(passed));
    const id = await engine.submit(`fun slow():\n    import time\n    time.sleep(2)\n    print("done")\n`);
    await until(async () => (await engine.m.db`select 1 from dwop.runs where status = 'running'`).length > 0);

    // The run ends (2 s) while nothing gets through, and its success is sent; then the network comes back
    // but the connections of before stay lost for good (a firewall or NAT that forgot them), so TCP's
    // retransmissions never get through: without the watch the success waits some 15 minutes.
    const restore = dropPackets(proxy.port);
    cleanups.push(restore);
    await new Promise((r) => setTimeout(r, 3500));
    cleanups.push(forgetConnections(proxy.port));
    restore();
    const w = await engine.waitFor(id, 20_000);
    expect(w.status).toBe("succeeded");
    expect(dead.length).toBeGreaterThan(0);
    passed = true;
  }, 60_000);

  it("lets a statement run longer than the silence: its bytes were acknowledged", async () => {
    const port = await plainProxy("dead_conn_slow");
    const { db, dead } = await poolThrough("dead_conn_slow", port, 1000);
    await db`select pg_sleep(3.5)`;
    expect(dead).toEqual([]);
  }, 30_000);
});

/** Connections the TLS terminator has wrapped. */
let terminated = 0;

/**
 * A TLS-terminating proxy to the machine's Postgres (which has no TLS): it answers a client's SSLRequest
 * with "S", as a server with TLS does, speaks TLS with a self-signed certificate, and forwards the
 * plaintext. Returns its port.
 */
async function tlsTerminator(targetPort: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "dwop-tls-"));
  execFileSync(
    "openssl",
    [
      ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"],
      ...["-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")],
    ],
    { stdio: "ignore" },
  );
  const key = readFileSync(join(dir, "key.pem"));
  const cert = readFileSync(join(dir, "cert.pem"));
  rmSync(dir, { recursive: true, force: true });
  const server: Server = createServer((client) => {
    client.on("error", () => {});
    client.once("data", (request: Buffer) => {
      // SSLRequest: length 8, code 80877103.
      if (request.length !== 8 || request.readInt32BE(4) !== 80877103) return client.destroy();
      client.write("S");
      const secure = new TLSSocket(client, { isServer: true, key, cert });
      terminated++;
      const upstream = createConnection({ host: "127.0.0.1", port: targetPort });
      for (const s of [secure, upstream]) s.on("error", () => {});
      secure.pipe(upstream);
      upstream.pipe(secure);
      secure.on("close", () => upstream.destroy());
      upstream.on("close", () => secure.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return (server.address() as { port: number }).port;
}
