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
      const run = row.locator(".last-runs a");
      await expect.poll(() => run.count()).toBe(1);
      await expect.poll(() => run.getAttribute("class")).toContain("state-succeeded");
      const fires = row.locator(".last-fires li");
      expect(await fires.first().locator("a").getAttribute("data-outcome")).toBe("started");

      // As if that fire was twenty minutes ago, and the next time came ten minutes ago while every
      // claimer was down: with catchup none that time is missed, and the page says why.
      await sql`update dwop.schedule_fires set fire_at = now() - interval '20 minutes'`;
      await sql`update dwop.schedules set next_fire_at = now() - interval '10 minutes' where name = 'new-year'`;
      await expect.poll(() => fires.count()).toBe(2);
      const missed = fires.nth(0);
      expect(await missed.locator(".fire").getAttribute("data-outcome")).toBe("missed");
      expect(await missed.textContent()).toContain("catchup none skips such times");
      expect(await run.count()).toBe(1);
    } finally {
      await sql.end();
    }
    await browser.screenshot("schedules");
    const run = row.locator(".last-runs a");

    await row.getByRole("button", { name: "Pause" }).click();
    await expect.poll(() => row.locator(".next-fire").textContent()).toBe("paused");
    expect((await (await api("GET", "/schedules/new-year")).json()) as object).toMatchObject({
      paused: true,
    });
    await row.getByRole("button", { name: "Resume" }).click();
    await expect.poll(() => row.locator(".next-fire").textContent()).toContain(expected);

    // At phone width each schedule is a card: nothing runs off the side, the button is in view.
    await page.setViewportSize({ width: 390, height: 844 });
    expect(
      await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth),
    ).toBeLessThanOrEqual(0);
    const button = await row.getByRole("button", { name: "Pause" }).boundingBox();
    expect(button!.x + button!.width).toBeLessThanOrEqual(390);
    await browser.screenshot("schedules-phone");
    await page.setViewportSize({ width: 1280, height: 800 });

    await run.click();
    await page.waitForURL(/#\/workflows\/[0-9a-f-]{36}/);
    await expect.poll(() => page.locator("h1").textContent()).toBe("new-year");

    // The workflow list says which schedule started each run and filters by it.
    await page.goto(`${server.url}/ui/#/schedules`);
    await row.getByRole("link", { name: "all runs" }).click();
    await expect.poll(() => page.locator("h1").textContent()).toBe("Workflows");
    const listed = page.locator("table.workflows tbody tr");
    await expect.poll(() => listed.count()).toBe(1);
    expect(await listed.locator("td[data-label='Schedule']").textContent()).toBe("new-year");
    await expect.poll(() => page.locator("#schedule-filter").inputValue()).toBe("new-year");
    const other = await api("POST", "/workflows", { workflow: "fun x():\n    print(1)\n" });
    expect(other.status).toBe(201);
    await page.selectOption("#schedule-filter", "");
    await expect.poll(() => listed.count()).toBe(2);
    expect(await listed.locator("td[data-label='Schedule']").allTextContents()).toEqual(["—", "new-year"]);
  });
});
