import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../shared/config.ts";
import { mounted } from "../supabase/functions/_shared/dwop.ts";
import { API_TOKEN, apiHarness, type ApiHarness } from "./support/api.ts";

// Cross-origin calls, for a dashboard hosted apart from the API (a Supabase deployment), and the Edge
// entrypoints' mounting under whatever name the function was deployed with.

const DASHBOARD = "https://dash.example.com";
let h: ApiHarness;
let closed: ApiHarness;
let passed = false;

beforeAll(async () => {
  [h, closed] = await Promise.all([
    apiHarness("cors", { settings: { corsOrigins: [DASHBOARD], apiToken: API_TOKEN } }),
    apiHarness("cors closed", { settings: { apiToken: API_TOKEN } }),
  ]);
});
afterAll(async () => {
  await h?.close(passed);
  await closed?.close(passed);
});

const preflight = (origin: string, app = h.app) =>
  app.request("/workflows", {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization, idempotency-key",
    },
  });

describe("CORS (DWOP_CORS_ORIGINS)", () => {
  it("answers a listed origin's preflight without a token, and its calls with the headers it reads", async () => {
    const pre = await preflight(DASHBOARD);
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-origin")).toBe(DASHBOARD);
    expect(pre.headers.get("access-control-allow-headers")).toContain("authorization");
    expect(pre.headers.get("access-control-allow-credentials")).toBeNull();

    const res = await h.app.request("/workflows", {
      headers: { origin: DASHBOARD, authorization: `Bearer ${API_TOKEN}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe(DASHBOARD);
    expect(res.headers.get("access-control-expose-headers")).toContain("x-log-size");
  });

  it("gives another origin no permission, and still asks it for a token", async () => {
    const pre = await preflight("https://evil.example.com");
    expect(pre.headers.get("access-control-allow-origin")).toBeNull();
    const res = await h.app.request("/workflows", { headers: { origin: "https://evil.example.com" } });
    expect(res.status).toBe(401);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("is off unless configured: no origin is allowed", async () => {
    const pre = await preflight(DASHBOARD, closed.app);
    expect(pre.headers.get("access-control-allow-origin")).toBeNull();
    const res = await closed.app.request("/healthz", { headers: { origin: DASHBOARD } });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("refuses a setting that is not a list of origins, naming the entry", () => {
    for (const bad of ["https://dash.example.com/ui/", "*", "dash.example.com", "ftp://x.example.com"]) {
      let err: unknown;
      try {
        loadConfig({ DWOP_CORS_ORIGINS: `https://ok.example.com, ${bad}` });
      } catch (e) {
        err = e;
      }
      expect(err, bad).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toContain("DWOP_CORS_ORIGINS");
      expect((err as Error).message).toContain(bad);
    }
    expect(
      loadConfig({ DWOP_CORS_ORIGINS: "https://a.example.com http://127.0.0.1:8090/" }).DWOP_CORS_ORIGINS,
    ).toBe("https://a.example.com http://127.0.0.1:8090/");
  });
});

describe("the Edge entrypoints' mounting", () => {
  it("serves the API under any function name", async () => {
    for (const name of ["api", "dwop-prod", "x"]) {
      const root = mounted(h.app);
      expect((await root.request(`/${name}/healthz`)).status).toBe(200);
      const list = await root.request(`/${name}/workflows`, {
        headers: { authorization: `Bearer ${API_TOKEN}` },
      });
      expect(list.status, name).toBe(200);
      const page = await root.request(`/${name}/ui/`);
      expect(page.headers.get("content-type")).toContain("text/html");
    }
  });

  it("serves only webhooks under `hooks`, whatever its name", async () => {
    const hooks = mounted(h.app, "/hooks");
    const list = await hooks.request("/webhooks/workflows", {
      headers: { authorization: `Bearer ${API_TOKEN}` },
    });
    expect(list.status).toBe(404);
    expect(((await list.json()) as { error: { message: string } }).error.message).toContain(
      "no route for GET /hooks/workflows",
    );
    expect((await hooks.request("/webhooks/healthz")).status).toBe(404);
    // A trigger id that does not exist: the webhook route answered, not the router.
    const hook = await hooks.request("/webhooks/00000000-0000-4000-8000-000000000000", {
      method: "POST",
      body: "{}",
    });
    expect(hook.status).toBe(404);
    expect(((await hook.json()) as { error: { message: string } }).error.message).not.toContain("no route");
    passed = true;
  });
});
