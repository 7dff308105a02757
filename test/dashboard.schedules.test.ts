import postgres from "postgres";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { startDevServer, type DevServer } from "./support/api-server.ts";
import { launchBrowser, type Browser } from "./support/browser.ts";

// The dashboard's Schedules page in Chromium against `dwop dev` as its own process: a schedule's next
// fire time, its last run once its claimer loop fires it, and pause and resume.

vi.setConfig({ expect: { poll: { timeout: 30_000, interval: 100 } } });

let server: DevServer;
let browser: Browser;
let passed = true;

beforeAll(async () => {
  [server, browser] = await Promise.all([
    startDevServer("dashboard_schedules", { DWOP_RETRY_BACKOFF_MS: "0" }),
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

async function api(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${server.token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

describe("the Schedules page", () => {
  it("shows each schedule's next fire time and last runs, and pauses and resumes it", async () => {
    const created = await api("POST", "/schedules", {
      name: "new-year",
      cron: "0 0 1 1 *",
      workflow: 'fun hello():\n    print("happy new year")\n',
    });
    expect(created.status).toBe(201);
    const { nextFireAt } = (await created.json()) as { nextFireAt: string };

    const page = browser.page;
    await page.goto(`${server.url}/ui/#/signin`);
    await page.fill("#token", server.token);
    await page.keyboard.press("Enter");
    await expect.poll(() => page.locator("h1").textContent()).toBe("Workflows");
    await page.getByRole("link", { name: "Schedules", exact: true }).click();
    await expect.poll(() => page.locator("h1").textContent()).toBe("Schedules");
    const row = page.locator('table.schedules tr[data-name="new-year"]');
    expect(await row.locator("code").textContent()).toBe("0 0 1 1 *");
    const shown = await row.locator(".next-fire").textContent();
    const expected = await page.evaluate((iso) => new Date(iso).toLocaleDateString(), nextFireAt);
    expect(shown).toContain(expected);
    expect(await row.locator("td[data-label='Last runs']").textContent()).toBe("none yet");

    // Due now instead of at New Year: the server's claimer loop fires it, and the page shows the run.
    const sql = postgres(server.database.url, { max: 1, onnotice: () => {} });
    try {
      await sql`update dwop.schedules set next_fire_at = now() where name = 'new-year'`;
    } finally {
      await sql.end();
    }
    const run = row.locator(".last-runs a");
    await expect.poll(() => run.count()).toBe(1);
    await expect.poll(() => run.getAttribute("class")).toContain("state-succeeded");
    await browser.screenshot("schedules");

    await row.getByRole("button", { name: "Pause" }).click();
    await expect.poll(() => row.locator(".next-fire").textContent()).toBe("paused");
    expect((await (await api("GET", "/schedules/new-year")).json()) as object).toMatchObject({
      paused: true,
    });
    await row.getByRole("button", { name: "Resume" }).click();
    await expect.poll(() => row.locator(".next-fire").textContent()).toContain(expected);

    await run.click();
    await page.waitForURL(/#\/workflows\/[0-9a-f-]{36}/);
    await expect.poll(() => page.locator("h1").textContent()).toBe("new-year");
  });
});
