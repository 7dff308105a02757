import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { launchBrowser, type Browser } from "./support/browser.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { freePort, ROOT, startEdgeServer, stopEdgeServers, type EdgeServer } from "./support/edge-server.ts";
import { startSupabaseStorageDouble, type SupabaseStorageDouble } from "./support/supabase-storage-double.ts";

// A Supabase deployment's dashboard: hosted Supabase answers a function's HTML as text/plain, so the
// page comes from `dwop dashboard serve` (or a static host), on an origin of its own, and calls the `api`
// function (on Deno, deployed under a name of the user's choice) across origins.

vi.setConfig({ expect: { poll: { timeout: 15_000, interval: 100 } } });

const TOKEN = "static-dashboard-token-0123456789";
const FUNCTION = "dwop-prod"; // not "api": the entrypoint does not know its own name
let database: TestDatabase;
let storage: SupabaseStorageDouble;
let api: EdgeServer;
let dashboard: EdgeServer;
let browser: Browser;
let page: Page;
let passed = true;

beforeAll(async () => {
  [database, storage] = await Promise.all([
    createTestDatabase("static dashboard", { migrated: true }),
    startSupabaseStorageDouble(),
  ]);
  const [apiPort, dashboardPort] = await Promise.all([freePort(), freePort()]);
  const dashboardOrigin = `http://127.0.0.1:${dashboardPort}`;
  [api, dashboard, browser] = await Promise.all([
    startEdgeServer({
      command: join(ROOT, "node_modules/.bin/deno"),
      args: ["run", "--node-modules-dir=manual", "-A", "supabase/functions/api/index.ts"],
      env: {
        SUPABASE_DB_URL: database.url,
        SUPABASE_URL: storage.url,
        SUPABASE_SERVICE_ROLE_KEY: storage.serviceKey,
        DWOP_API_TOKEN: TOKEN,
        DWOP_CORS_ORIGINS: dashboardOrigin,
        DENO_NO_UPDATE_CHECK: "1",
        DENO_SERVE_ADDRESS: `tcp:127.0.0.1:${apiPort}`,
      },
      port: apiPort,
      readyPath: `/${FUNCTION}/healthz`,
    }),
    startEdgeServer({
      command: process.execPath,
      args: [
        "--import",
        "tsx",
        "cli/main.ts",
        "dashboard",
        "serve",
        "--api",
        `http://127.0.0.1:${apiPort}/${FUNCTION}`,
        "--port",
        String(dashboardPort),
      ],
      env: {},
      port: dashboardPort,
      readyPath: "/",
    }),
    launchBrowser(),
  ]);
  page = browser.page;
  page.setDefaultTimeout(20_000);
}, 90_000);

afterAll(async () => {
  if (!passed) console.error(`${api?.output()}\n---\n${dashboard?.output()}`);
  await browser?.close();
  await stopEdgeServers();
  await storage?.close();
  if (passed) await database?.drop();
}, 60_000);

const submit = async (name: string) => {
  const form = new FormData();
  form.append(
    "workflow",
    new Blob(['fun extract():\n    print("a")\n\nfun load(x:extract):\n    print(2)\n']),
    `${name}.workflow`,
  );
  const res = await fetch(`${api.url}/${FUNCTION}/workflows`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}` },
    body: form,
  });
  expect(res.status, await res.clone().text()).toBe(201);
  return ((await res.json()) as { id: string }).id;
};

describe("the static dashboard of a Supabase deployment", () => {
  it("signs in, lists and opens workflows through the function on another origin", async () => {
    try {
      const id = await submit("nightly-static");
      await page.goto(`${dashboard.url}/`);
      await expect.poll(() => page.locator("h1").textContent()).toBe("Sign in to DWOP");
      await page.fill("#token", TOKEN);
      await page.keyboard.press("Enter");
      await expect.poll(() => page.locator("h1").textContent()).toBe("Workflows");
      await expect.poll(() => page.getByText("nightly-static").count()).toBeGreaterThan(0);
      await page.getByText("nightly-static").first().click();
      await page.waitForURL(new RegExp(`#/workflows/${id}`));
      await expect.poll(() => page.locator("svg.dag g.node").count()).toBe(2);
    } catch (err) {
      passed = false;
      throw err;
    }
  });

  it("is refused by an API that does not name its origin, and the page says so", async () => {
    // The same page, pointed at the API through an origin the API does not list: the browser's CORS check
    // fails before any answer is read, so sign-in cannot succeed.
    const other = await browser.context.newPage();
    try {
      await other.goto(`${dashboard.url.replace("127.0.0.1", "localhost")}/`);
      await expect.poll(() => other.locator("h1").textContent()).toBe("Sign in to DWOP");
      await other.fill("#token", TOKEN);
      await other.keyboard.press("Enter");
      await expect.poll(() => other.getByRole("alert").textContent()).toContain("cannot be reached");
    } catch (err) {
      passed = false;
      throw err;
    } finally {
      await other.close();
    }
  });

  it("`dwop dashboard build` writes the page for a static host, pointed at the API, and refuses a bad URL", async () => {
    const run = promisify(execFile);
    const dwop = (args: string[]) =>
      run(process.execPath, ["--import", "tsx", "cli/main.ts", "dashboard", ...args], { cwd: ROOT });
    const out = await mkdtemp(join(tmpdir(), "dwop-static-"));
    try {
      const api = "https://abc.supabase.co/functions/v1/dwop-prod";
      await dwop(["build", "--api", api, "--out", out]);
      expect((await readdir(out)).sort()).toEqual(["app.css", "app.js", "index.html"]);
      const html = await readFile(join(out, "index.html"), "utf8");
      expect(html).toContain(`<meta name="dwop-api" content="${api}/">`);
      expect(html).toContain("connect-src https://abc.supabase.co;");
      const bad = await dwop(["build", "--api", "abc.supabase.co/functions/v1/api", "--out", out]).catch(
        (err: { code: number; stderr: string }) => err,
      );
      expect(bad).toMatchObject({ code: 2 });
      expect((bad as { stderr: string }).stderr).toContain("is not a URL");
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
