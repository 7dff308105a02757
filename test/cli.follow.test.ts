// A follower (dwop submit --wait, dwop logs --follow) rides out the server's database outage: its 503, and
// a 500 while the server's /readyz says its database cannot be reached (a server of before the 503), but
// not a 500 otherwise; against a real HTTP server that answers so.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ApiRequestError } from "../cli/api-error.ts";
import { DwopClient } from "../cli/client.ts";
import { Reconnecting } from "../cli/follow.ts";

const DOWN = { what: "database", message: "the database cannot be reached", since: new Date().toISOString() };

/** A server whose /thing answers each status of `answers` in turn (then 200), and whose /readyz says `stall()`. */
async function serve(
  answers: number[],
  stall: () => object | null,
): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    res.setHeader("content-type", "application/json");
    if (req.url === "/readyz") {
      const now = stall();
      res.statusCode = now ? 503 : 200;
      res.end(JSON.stringify({ status: now ? "unavailable" : "ready", stall: now }));
      return;
    }
    const status = answers.shift() ?? 200;
    res.statusCode = status;
    res.end(JSON.stringify(status === 200 ? { ok: true } : { error: { code: "internal", message: "boom" } }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

let servers: Server[] = [];
afterEach(async () => {
  for (const s of servers) await new Promise((resolve) => s.close(resolve));
  servers = [];
});

async function follower(answers: number[], stall: () => object | null) {
  const { url, server } = await serve(answers, stall);
  servers.push(server);
  const client = new DwopClient(url, null);
  const said: string[] = [];
  const reconnecting = new Reconnecting(client, (line) => said.push(line));
  return { client, reconnecting, said };
}

describe("a follower and the server's database", () => {
  it("rides out a 500 while /readyz says the database cannot be reached (a server of before the 503)", async () => {
    const { client, reconnecting, said } = await follower([500], () => DOWN);
    const answer = await reconnecting.call(() => client.request("GET", "/thing"));
    expect(answer.status).toBe(200);
    expect(said[0]).toMatch(/lost http:\/\/127\.0\.0\.1:\d+ \(its database cannot be reached\)/);
    expect(said[1]).toMatch(/reconnected to/);
  });

  it("rides out the server's own 503", async () => {
    const { client, reconnecting, said } = await follower([503, 503], () => null);
    const answer = await reconnecting.call(() => client.request("GET", "/thing"));
    expect(answer.status).toBe(200);
    expect(said).toHaveLength(2);
  });

  it("fails at once on a 500 while the database is up", async () => {
    const { client, reconnecting, said } = await follower([500], () => null);
    const failure = await reconnecting
      .call(() => client.request("GET", "/thing"))
      .catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(ApiRequestError);
    expect((failure as ApiRequestError).status).toBe(500);
    expect(said).toEqual([]);
  });
});
