import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startDevServer, type DevServer } from "./support/api-server.ts";
import { workflowForm } from "./support/api.ts";
import { launchBrowser, type Browser } from "./support/browser.ts";
import { freePort, spawnDwop } from "./support/dev-process.ts";

// The dashboard's stall banner in Chromium, against a server whose tasks nothing dispatches (only a
// claimer runs, as with DWOP_EXECUTOR=kubernetes and no dispatcher in the cluster), then a dispatcher.

let server: DevServer;
let browser: Browser;
let passed = true;

beforeAll(async () => {
  [server, browser] = await Promise.all([
    startDevServer("dashboard_stall", {
      DWOP_EXECUTOR: "kubernetes",
      DWOP_STALL_AFTER_SECONDS: "1",
      DWOP_LOST_AFTER_SECONDS: "2",
    }),
    launchBrowser(),
  ]);
  browser.page.setDefaultTimeout(30_000);
}, 90_000);
afterEach((ctx) => {
  if (ctx.task.result?.state !== "pass") {
    passed = false;
    console.error(server.stderr());
  }
});
afterAll(async () => {
  await browser?.close();
  await server?.stop(passed);
}, 60_000);

describe("the stall banner", () => {
  it("says what stalled and since when while it lasts, and goes away when tasks move", async () => {
    const page = browser.page;
    await page.goto(`${server.url}/ui/#/signin`);
    await page.fill("#token", server.token);
    await page.keyboard.press("Enter");
    await expect.poll(() => page.locator("h1").textContent()).toBe("Workflows");
    const banner = page.locator(".stall-banner");
    expect(await banner.isHidden()).toBe(true);

    const res = await fetch(`${server.url}/workflows`, {
      method: "POST",
      headers: { authorization: `Bearer ${server.token}` },
      body: workflowForm('fun hello():\n    print("hello")\n'),
    });
    expect(res.status).toBe(201);
    await banner.waitFor({ state: "visible" });
    expect(await banner.getAttribute("role")).toBe("status");
    expect(await banner.textContent()).toMatch(
      /^Stalled: 1 task published but not picked up: no dispatcher is running \(since .+\)$/,
    );
    expect(await banner.getAttribute("data-what")).toBe("dispatching");
    await browser.screenshot("stall-banner");

    // A dispatcher on the same database and storage home: the task runs, the banner goes.
    const dispatcher = spawnDwop(["dev", "--port", String(await freePort())], {
      DATABASE_URL: server.database.url,
      DWOP_HOME: server.home,
      DWOP_API_TOKEN: server.token,
      DWOP_LOG_LEVEL: "warn",
    });
    try {
      await banner.waitFor({ state: "hidden", timeout: 60_000 });
    } finally {
      await dispatcher.stop();
    }
  }, 120_000);
});
