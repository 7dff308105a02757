import { serve, type ServerType } from "@hono/node-server";
import { request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createApp } from "../functions/app.ts";
import type { ApiSettings } from "../functions/context.ts";
import { ErrorResponse, Trigger } from "../functions/schemas.ts";
import { addressKey, FailureThrottle, type ThrottleSettings } from "../functions/throttle.ts";
import { signedHeaders } from "../shared/signature.ts";
import { API_TOKEN, apiHarness, type ApiHarness } from "./support/api.ts";

const LIMIT = 5;
const THROTTLE: ThrottleSettings = { maxFailures: LIMIT, windowMs: 60_000, blockMs: 30_000, maxEntries: 100 };
const BY_FORWARDED: Partial<ApiSettings> = {
  authThrottle: THROTTLE,
  clientAddress: { header: "x-forwarded-for", proxies: 1 },
};
const WORKFLOW = "fun echo(body:inputs.payload):\n    print(open('body').read())\n";

let h: ApiHarness;

beforeEach(async (ctx) => {
  h = await apiHarness(ctx.task.name, { settings: BY_FORWARDED });
});
afterEach(async (ctx) => {
  await h.close(ctx.task.result?.state === "pass");
});

const good = { authorization: `Bearer ${API_TOKEN}` };
const bad = { authorization: "Bearer not-a-token-at-all" };

/** GET /workflows as the client at `address` (the proxy in front appended it to X-Forwarded-For). */
function from(address: string, headers: Record<string, string>, forwarded = "") {
  const xff = forwarded ? `${forwarded}, ${address}` : address;
  return h.app.request("/workflows", { headers: { ...headers, "x-forwarded-for": xff } });
}

describe("throttling of failed authentications", () => {
  it("answers 429 with Retry-After after N bad tokens from one address, and never slows another", async () => {
    for (let i = 0; i < LIMIT; i++) expect((await from("203.0.113.7", bad)).status).toBe(401);
    const refused = await from("203.0.113.7", bad);
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("30");
    expect(ErrorResponse.parse(await refused.json()).error.code).toBe("too_many_failures");
    // While blocked, even a correct token from that address is refused: a 200 would confirm a guess.
    expect((await from("203.0.113.7", good)).status).toBe(429);
    // Another address, with a good token or a bad one, is answered as ever.
    expect((await from("198.51.100.1", good)).status).toBe(200);
    expect((await from("198.51.100.1", bad)).status).toBe(401);

    h.clock.now += 29_000;
    const later = await from("203.0.113.7", good);
    expect([later.status, later.headers.get("retry-after")]).toEqual([429, "1"]);
    h.clock.now += 1_000;
    expect((await from("203.0.113.7", good)).status).toBe(200);
    expect((await from("203.0.113.7", bad)).status).toBe(401); // counting starts again
  });

  it("counts only failures, within the window", async () => {
    for (let i = 0; i < 50; i++) expect((await from("203.0.113.8", good)).status).toBe(200);
    for (let i = 0; i < LIMIT - 1; i++) expect((await from("203.0.113.8", bad)).status).toBe(401);
    h.clock.now += 60_000; // the window ended: the four failures are forgotten
    for (let i = 0; i < LIMIT - 1; i++) expect((await from("203.0.113.8", bad)).status).toBe(401);
    expect((await from("203.0.113.8", good)).status).toBe(200);
    expect((await from("203.0.113.8", bad)).status).toBe(401);
    expect((await from("203.0.113.8", bad)).status).toBe(429);
  });

  it("takes the address the trusted proxy appended, not what the client wrote before it", async () => {
    for (let i = 0; i < LIMIT; i++) {
      expect((await from("203.0.113.9", bad, `10.0.0.${i}, 192.0.2.${i}`)).status).toBe(401);
    }
    expect((await from("203.0.113.9", good, "198.51.100.1")).status).toBe(429);
    expect((await from("198.51.100.1", good, "203.0.113.9")).status).toBe(200);
  });

  it("counts bad webhook signatures and unknown trigger ids too", async () => {
    const made = await h.postJson(
      "/triggers",
      { name: "t", workflow: WORKFLOW, secret: "s".repeat(20) },
      good,
    );
    const { id } = Trigger.parse(await made.json());
    const deliver = async (to: string, address: string) => {
      const body = "{}";
      const headers = await signedHeaders("not-the-secret-at-all", body, "d", h.clock.now, id);
      return h.app.request(`/hooks/${to}`, {
        method: "POST",
        headers: { ...headers, "x-forwarded-for": address },
        body,
      });
    };
    expect((await deliver(id, "203.0.113.10")).status).toBe(401);
    expect((await deliver(crypto.randomUUID(), "203.0.113.10")).status).toBe(404);
    for (let i = 2; i < LIMIT; i++) expect((await from("203.0.113.10", bad)).status).toBe(401);
    expect((await deliver(id, "203.0.113.10")).status).toBe(429);
    expect((await from("203.0.113.10", good)).status).toBe(429);
    expect((await deliver(id, "203.0.113.11")).status).toBe(401);
  });

  it("throttles nothing when the address is unknown (no header configured, no socket)", async () => {
    const bare = await apiHarness("throttle_no_address", { settings: { authThrottle: THROTTLE } });
    try {
      for (let i = 0; i < LIMIT * 3; i++) {
        const res = await bare.app.request("/workflows", {
          headers: { ...bad, "x-forwarded-for": "1.2.3.4" },
        });
        expect(res.status).toBe(401);
      }
    } finally {
      await bare.close(true);
    }
  });

  it("keeps its map bounded under many distinct addresses", async () => {
    const throttle = new FailureThrottle(THROTTLE);
    const app = createApp({
      db: h.m.db,
      settings: { ...BY_FORWARDED, apiToken: API_TOKEN },
      throttle,
      now: () => h.clock.now,
    });
    const ask = (address: string, headers: Record<string, string>) =>
      app.request("/workflows", { headers: { ...headers, "x-forwarded-for": address } });
    for (let i = 0; i < LIMIT; i++) expect((await ask("203.0.113.12", bad)).status).toBe(401);
    expect((await ask("203.0.113.12", bad)).status).toBe(429);
    for (let i = 0; i < 3000; i++) {
      expect((await ask(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, bad)).status).toBe(401);
      expect(throttle.size).toBeLessThanOrEqual(THROTTLE.maxEntries);
    }
    expect(throttle.size).toBe(THROTTLE.maxEntries);
    // Forgotten (the least recently failed), so counted afresh: the price of a bounded map.
    expect((await ask("203.0.113.12", good)).status).toBe(200);

    const direct = new FailureThrottle({ ...THROTTLE, maxEntries: 1000 });
    for (let i = 0; i < 200_000; i++) direct.fail(`key-${i}`, i);
    expect(direct.size).toBe(1000);
  });

  it("groups IPv6 addresses by their /64 and unwraps IPv4-mapped ones", () => {
    expect(addressKey("2001:db8:1:2:aaaa::1")).toBe(addressKey("2001:0db8:0001:0002:ffff:1:2:3"));
    expect(addressKey("2001:db8:1:2::1")).not.toBe(addressKey("2001:db8:1:3::1"));
    expect(addressKey("::ffff:192.0.2.1")).toBe("192.0.2.1");
    expect(addressKey("::1")).toBe("0:0:0:0::/64");
    expect(addressKey("x".repeat(1000))).toHaveLength(64);
  });
});

describe("throttling on Node, by the socket's address", () => {
  let server: ServerType;
  let port: number;

  beforeEach(async () => {
    const app = createApp({
      db: h.m.db,
      settings: { apiToken: API_TOKEN, authThrottle: THROTTLE, clientAddress: { proxies: 1 } },
    });
    server = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, () => resolve(s));
    });
    port = (server.address() as AddressInfo).port;
  });
  afterEach(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  /** GET /workflows from the local address `localAddress`; a forged X-Forwarded-For changes nothing. */
  function get(localAddress: string, headers: Record<string, string>): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        { host: "127.0.0.1", port, path: "/workflows", localAddress, headers: { ...headers, "x-forwarded-for": "192.0.2.99" } },
        (res) => {
          res.resume();
          resolve(res.statusCode!);
        },
      ); // prettier-ignore
      req.on("error", reject);
      req.end();
    });
  }

  it("blocks the peer that failed, and serves another peer", async () => {
    for (let i = 0; i < LIMIT; i++) expect(await get("127.0.0.2", bad)).toBe(401);
    expect(await get("127.0.0.2", good)).toBe(429);
    expect(await get("127.0.0.3", good)).toBe(200);
  });
});
