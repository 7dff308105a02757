import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { startDevServer, type DevServer } from "./support/api-server.ts";
import { keepForDocs, launchBrowser, type Browser } from "./support/browser.ts";

// The dashboard in Debian's Chromium against `dwop dev` run as its own process: what a user does on it.

const ETL = fileURLToPath(new URL("../examples/etl.workflow", import.meta.url));

// A page on a loaded machine can take seconds to show a change: conditions are polled for up to 15 s.
vi.setConfig({ expect: { poll: { timeout: 15_000, interval: 100 } } });

let server: DevServer;
let browser: Browser;
let page: Page;
let flags: string;
let flag: string;
let liveFlag: string;
let passed = true;

beforeAll(async () => {
  flags = await mkdtemp(join(tmpdir(), "dwop-flag-"));
  await chmod(flags, 0o755); // tasks run as a uid of their own
  flag = join(flags, "fixed");
  liveFlag = join(flags, "go-on");
  [server, browser] = await Promise.all([
    // The task reads the flag from the test's folder: the one folder of the machine the sandbox shows it.
    startDevServer("dashboard", { DWOP_RETRY_BACKOFF_MS: "0", DWOP_TASK_ALLOW: flags }),
    launchBrowser(),
  ]);
  page = browser.page;
  page.setDefaultTimeout(20_000);
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
  if (passed) await rm(flags, { recursive: true, force: true });
}, 60_000);

/** A task that prints 150 lines, then fails until the test creates the flag file. */
const flaky = () => `fun prepare():
    print("ready")

@retries(0)
fun flaky(x:prepare):
    import os, sys
    for i in range(1, 151):
        print(f"line {i}")
    if not os.path.exists(${JSON.stringify(flag)}):
        print("flaky: the flag file is missing", file=sys.stderr)
        sys.exit(3)
    print("flag found")

fun report(y:flaky):
    print(open("y").read().splitlines()[-1])
`;

/** Submits a workflow through the API (not the page); its id. */
async function submitByApi(source: string, name: string): Promise<string> {
  const res = await fetch(`${server.url}/workflows`, {
    method: "POST",
    headers: { authorization: `Bearer ${server.token}`, "content-type": "application/json" },
    body: JSON.stringify({ workflow: source, name }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

const node = (task: string) => page.locator(`svg.dag g.node[data-task="${task}"]`);

async function submitThroughForm(text: string | null, file?: string, name?: string): Promise<string> {
  await page.getByRole("link", { name: "Submit", exact: true }).click();
  if (file) await page.setInputFiles("#workflow-file", file);
  if (text !== null) await page.fill("#workflow-source", text);
  if (name) await page.fill("#workflow-name", name);
  await expect.poll(() => page.locator(".validation").textContent()).toMatch(/Valid/);
  await page.getByRole("button", { name: "Submit", exact: true }).click();
  await page.waitForURL(/#\/workflows\/[0-9a-f-]{36}/);
  return /workflows\/([0-9a-f-]{36})/.exec(page.url())![1]!;
}

describe("the dashboard", () => {
  it("shows nothing before sign-in, refuses a bad token, and signs in with the API token", async () => {
    await page.goto(`${server.url}/`);
    await page.waitForURL(/\/ui\/#\/signin/);
    await expect.poll(() => page.locator("h1").textContent()).toBe("Sign in to DWOP");
    await page.fill("#token", "not-a-token");
    await page.keyboard.press("Enter");
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("not accepted");
    await page.fill("#token", server.token);
    await page.keyboard.press("Enter");
    await expect.poll(() => page.locator("h1").textContent()).toBe("Workflows");
    expect(await page.locator(".who").textContent()).toBe("signed in as local");
  });

  it("shows DSL errors at their line and column before submitting, then runs the seed example to green live", async () => {
    await page.getByRole("link", { name: "Submit", exact: true }).click();
    await page.fill(
      "#workflow-source",
      "fun extract():\n    print(1)\n\nfun load(rows:extrct):\n    print(2)\n",
    );
    const error = page.locator("ol.dsl-errors li");
    await expect.poll(() => error.textContent()).toContain("Line 4, column 15");
    expect(await error.textContent()).toContain("unknown upstream 'extrct'");
    expect(await page.locator(".gutter .error").textContent()).toBe("4");
    expect(await page.getByRole("button", { name: "Submit", exact: true }).isDisabled()).toBe(true);

    await page.fill("#workflow-source", "");
    const id = await submitThroughForm(null, ETL);
    await page.evaluate(() => ((window as unknown as { stayed: boolean }).stayed = true));
    for (const task of ["extract", "transform", "load"]) {
      await expect
        .poll(() => node(task).getAttribute("class"), { timeout: 30_000 })
        .toContain("state-succeeded");
    }
    await expect.poll(() => page.getByRole("status").first().textContent()).toContain("succeeded");
    // Every change arrived over the event stream: the page was never reloaded.
    expect(await page.evaluate(() => (window as unknown as { stayed?: boolean }).stayed)).toBe(true);
    expect(await page.locator("h1").textContent()).toBe("etl");
    // The attempts arrive with the workflow read after the events: one bar per task on the timeline.
    await expect.poll(() => page.locator("ol.timeline .run.state-succeeded").count()).toBe(3);
    await node("load").click();
    await expect.poll(() => page.locator("pre.output").textContent()).toContain("Loading: LISBON 69.8F");
    await expect.poll(() => page.locator("pre.log").textContent()).toContain("Loading: LIMA 64.4F");
    await browser.screenshot("workflow").then((p) => keepForDocs(p, "workflow"));
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("opens a failing task's log at its last lines, retries, and shows the rerun", async () => {
    await submitThroughForm(flaky(), undefined, "nightly-report");
    await expect
      .poll(() => node("flaky").getAttribute("class"), { timeout: 30_000 })
      .toContain("state-failed");
    await expect.poll(() => node("report").getAttribute("class")).toContain("state-upstream_failed");
    await node("flaky").focus();
    await page.keyboard.press("Enter");
    const log = page.locator("pre.log");
    await expect.poll(() => log.textContent()).toContain("flaky: the flag file is missing");
    expect(await log.textContent()).toContain("line 150");
    expect(await page.locator(".task-panel .callout.failure").first().textContent()).toContain("exit code 3");
    await browser.screenshot("failed-task").then((p) => keepForDocs(p, "failed-task"));

    await writeFile(flag, "");
    await page.getByRole("button", { name: "Retry" }).click();
    await expect
      .poll(() => node("report").getAttribute("class"), { timeout: 30_000 })
      .toContain("state-succeeded");
    expect(await node("flaky").getAttribute("class")).toContain("state-succeeded");
    const attempts = page.locator("table.attempts tbody tr");
    await expect.poll(() => attempts.count()).toBe(2);
    expect(await attempts.nth(0).textContent()).toContain("failed");
    // The full record follows the events shortly after: wait for the rerun's row to say how it ended.
    await expect.poll(() => attempts.nth(1).textContent(), { timeout: 15_000 }).toContain("succeeded");
    expect(await page.locator('ol.timeline li:has([data-key="tl:flaky"]) .run').count()).toBe(2);
    await expect.poll(() => log.textContent()).toContain("flag found");
  });

  it("lists the workflows with their task counts, and stays readable at phone width and with 200 tasks", async () => {
    await page.getByRole("link", { name: "Workflows", exact: true }).click();
    const rows = page.locator("table.workflows tbody tr");
    await expect.poll(() => rows.count()).toBe(2);
    expect(await rows.nth(1).textContent()).toContain("3 succeeded");
    await browser.screenshot("list").then((p) => keepForDocs(p, "list"));
    await page.fill("#search", "etl");
    await expect.poll(() => rows.count()).toBe(1);
    await page.fill("#search", "");

    const long = "a_rather_long_task_name_that_keeps_going_and_going";
    const tasks = Array.from({ length: 200 }, (_, i) => {
      const other = (i * 7) % (i - (i % 20 || 20) + 1);
      const ups =
        i < 20
          ? ""
          : [`x:${long}_${i - 20}`, other !== i - 20 ? `y:${long}_${other}` : ""].filter(Boolean).join(", ");
      return `fun ${long}_${i}(${ups}):\n    import time; time.sleep(30)\n`;
    });
    const res = await fetch(`${server.url}/workflows`, {
      method: "POST",
      headers: { authorization: `Bearer ${server.token}`, "content-type": "application/json" },
      body: JSON.stringify({ workflow: tasks.join("\n"), name: "two_hundred" }),
    });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    await page.goto(`${server.url}/ui/#/workflows/${id}`);
    // Laid out in the browser: on a loaded machine (the chaos soak beside it) that took over the default second.
    await expect.poll(() => page.locator("svg.dag g.node").count(), { timeout: 15_000 }).toBe(200);
    await browser.screenshot("two-hundred-tasks");
    const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(await overflow()).toBeLessThanOrEqual(0);
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await overflow()).toBeLessThanOrEqual(0);
    page.once("dialog", (d) => void d.accept());
    await page.getByRole("button", { name: "Cancel" }).click();
    await expect.poll(() => page.getByRole("status").first().textContent()).toContain("cancelled");
    await page.getByRole("link", { name: "Workflows", exact: true }).click();
    await expect.poll(() => rows.count()).toBe(3);
    expect(await overflow()).toBeLessThanOrEqual(0);
    await browser.screenshot("list-phone");
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it("shows the bidi controls of a task's output, log and error as code points, not as reordered text", async () => {
    // Trojan Source: U+202E makes what follows read right to left, so "txt.exe" would show as "exe.txt".
    const source = `fun trojan():
    import sys
    print("invoice_\u202etxt.exe")
    print("\u2067isolated\u2069 in the log", file=sys.stderr)

@retries(0)
fun fails(x:trojan):
    raise ValueError("bad row \u202e24")
`;
    const id = await submitByApi(source, "trojan-source");
    await page.goto(`${server.url}/ui/#/workflows/${id}?task=trojan`);
    const output = page.locator(".task-panel pre.output");
    await expect.poll(() => output.textContent(), { timeout: 30_000 }).toContain("invoice_⟨U+202E⟩txt.exe");
    const log = page.locator(".task-panel pre.log");
    await expect.poll(() => log.textContent()).toContain("⟨U+2067⟩isolated⟨U+2069⟩ in the log");
    await page.goto(`${server.url}/ui/#/workflows/${id}?task=fails`);
    const failure = page.locator(".task-panel .callout.failure").first();
    await expect.poll(() => failure.textContent(), { timeout: 30_000 }).toContain("bad row ⟨U+202E⟩24");
    const shownText = await page.locator(".task-panel").textContent();
    expect(shownText).not.toMatch(/[\u202a-\u202e\u2066-\u2069]/);
  });

  it("follows a running task's log in its panel while it runs, and heads a failure with its exception", async () => {
    // Three phases, each after the test creates a flag file: 30 lines, 30 more, then 30 more and a raise.
    const wait = (f: string) =>
      `    while not os.path.exists(${JSON.stringify(f)}):\n        time.sleep(0.1)\n`;
    const lines = (phase: string) => `    for i in range(30):\n        print("${phase}", i)\n`;
    const source = `@retries(0)
fun talk():
    import os, time
    print("first line, before the wait")
${lines("one")}${wait(liveFlag)}${lines("two")}${wait(`${liveFlag}-2`)}${lines("three")}    raise ValueError("bad row 42: expected 3 columns, got 2")
`;
    const id = await submitByApi(source, "live-log");
    await page.goto(`${server.url}/ui/#/workflows/${id}?task=talk`);
    const log = page.locator(".task-panel pre.log");
    await expect.poll(() => log.textContent(), { timeout: 30_000 }).toContain("one 29");
    // The task is still waiting for the flag: the lines came while it ran, not from a log stored at its end.
    // Its state comes by the workflow's event stream, its lines by the log's: either may show first.
    await expect.poll(() => node("talk").getAttribute("class")).toContain("state-running");
    expect(await page.locator(".task-panel .log-status").textContent()).toContain("following");
    expect(await log.textContent()).not.toContain("two 0");
    await browser.screenshot("live-log").then((p) => keepForDocs(p, "live-log"));

    // New lines keep a reader at the bottom there...
    const fromBottom = () => log.evaluate((p) => p.scrollHeight - p.scrollTop - p.clientHeight);
    await writeFile(liveFlag, "");
    await expect.poll(() => log.textContent(), { timeout: 30_000 }).toContain("two 29");
    expect(await log.evaluate((p) => p.scrollHeight > p.clientHeight)).toBe(true);
    expect(await fromBottom()).toBeLessThanOrEqual(2);
    // ...and leave one who scrolled up where they were.
    await log.evaluate((p) => (p.scrollTop = 0));
    await writeFile(`${liveFlag}-2`, "");
    await expect.poll(() => log.textContent(), { timeout: 30_000 }).toContain("three 29");
    expect(await log.evaluate((p) => p.scrollTop)).toBe(0);

    await expect.poll(() => node("talk").getAttribute("class")).toContain("state-failed");
    // The exception's last line is the headline; the traceback is in the log, after the lines before it.
    await expect
      .poll(() => page.locator(".task-panel .callout.headline .error-line").textContent())
      .toBe("ValueError: bad row 42: expected 3 columns, got 2");
    expect(await page.locator(".task-panel .callout.headline .how").textContent()).toBe(
      "exit code 1 · attempt 1",
    );
    await expect.poll(() => log.textContent()).toContain("Traceback");
    // Every line once: appended from the last offset, never read twice.
    const text = (await log.textContent())!;
    for (const line of ["first line", "one 0", "two 0", "three 0", "three 29"])
      expect(text.split("\n").filter((l) => l.startsWith(line))).toHaveLength(1);
    await expect.poll(() => page.locator(".task-panel .log-status").isHidden()).toBe(true);
  });

  it("submits a file chosen right after typing: the typed check, still pending, does not unset what was checked", async () => {
    // Typing schedules a check (debounced, 300 ms); choosing a file checks at once. The typed check
    // must not run after the file's and leave Submit enabled with nothing checked (a click then did
    // nothing, seen in CI). Every check after the first is held, so such a one would stay in flight.
    let checks = 0;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    await page.route("**/validate", async (route) => {
      if (++checks > 1) await held;
      await route.continue();
    });
    try {
      await page.getByRole("link", { name: "Submit", exact: true }).click();
      await page.fill("#workflow-source", "fun typed():\n    pass\n");
      await page.setInputFiles("#workflow-file", ETL);
      await expect.poll(() => page.locator(".validation").textContent()).toMatch(/Valid: 3 tasks/);
      await page.waitForTimeout(600); // past the typed check's 300 ms
      await page.getByRole("button", { name: "Submit", exact: true }).click({ timeout: 10_000 });
      await page.waitForURL(/#\/workflows\/[0-9a-f-]{36}/, { timeout: 10_000 });
      expect(checks).toBe(1);
    } finally {
      release();
      await page.unroute("**/validate");
    }
  });
});
