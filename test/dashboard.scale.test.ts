import type { AddressInfo } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import type { Locator, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { API_TOKEN, apiHarness, driveToEnd, type ApiHarness } from "./support/api.ts";
import { keepForDocs, launchBrowser, type Browser } from "./support/browser.ts";

// The dashboard at the sizes real workflows reach, in Chromium: a 40-task chain, a 30-way fan-out,
// 1,000 tasks, and more than 100 workflows in the list. The API runs in process with no engine: the test
// moves tasks through their states itself, so the pictures and the assertions do not wait on Python.
// `DWOP_DOCS_SCREENSHOTS=1` copies the pictures into docs/screenshots/.

// A page on a loaded machine can take seconds to show a change: conditions are polled for up to 15 s.
vi.setConfig({ expect: { poll: { timeout: 15_000, interval: 100 } } });

let h: ApiHarness;
let server: ServerType;
let url: string;
let browser: Browser;
let page: Page;
let passed = true;
const auth = { authorization: `Bearer ${API_TOKEN}` };

beforeAll(async () => {
  [h, browser] = await Promise.all([apiHarness("dashboard_scale"), launchBrowser()]);
  server = serve({ fetch: h.app.fetch, hostname: "127.0.0.1", port: 0 });
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  page = browser.page;
  page.setDefaultTimeout(20_000);
  await page.goto(`${url}/ui/#/signin`);
  await page.fill("#token", API_TOKEN);
  await page.keyboard.press("Enter");
  await page.locator("h1", { hasText: "Workflows" }).waitFor();
}, 90_000);
afterEach((ctx) => {
  if (ctx.task.result?.state !== "pass") passed = false;
});
afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await h?.close(passed);
}, 60_000);

async function submit(name: string, workflow: string): Promise<string> {
  const res = await h.postJson("/workflows", { workflow, name }, auth);
  expect(res.status, await res.clone().text()).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

/**
 * Plays claimer and dispatcher `rounds` times: each round starts every ready task; all rounds but the
 * last `running` ones also complete them, so the graph ends with finished layers, then running ones.
 */
async function driveRounds(rounds: number, running: number): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    const runIds: string[] = [];
    for (;;) {
      const claimed = await h.m.store.claimOutbox("test-claimer", 100, 60);
      if (claimed.length === 0) break;
      await h.m.store.markPublished(
        "test-claimer",
        claimed.map((c) => c.id),
      );
      for (const { message } of claimed) {
        const started = await h.m.store.startRun(message, "test-dispatcher", "local");
        if (started.kind !== "created") continue;
        await h.m.store.markRunDispatched(started.assignment.runId, `job-${message.attempt}`, true);
        runIds.push(started.assignment.runId);
      }
    }
    if (round < rounds - running && runIds.length) await h.m.store.completeRuns(runIds);
  }
}

const task = (name: string) => page.locator(`svg.dag g.node[data-task="${name}"]`);
const view = () => page.locator(".dag-view");

/** Whether `inner` lies wholly inside `outer` on screen. */
async function inside(inner: Locator, outer: Locator): Promise<boolean> {
  const [a, b] = await Promise.all([inner.boundingBox(), outer.boundingBox()]);
  if (!a || !b) return false;
  return (
    a.x >= b.x - 0.5 &&
    a.y >= b.y - 0.5 &&
    a.x + a.width <= b.x + b.width + 0.5 &&
    a.y + a.height <= b.y + b.height + 0.5
  );
}

const zoom = () => page.locator(".zoom-level").textContent();

async function openWorkflow(id: string, query = ""): Promise<void> {
  await page.goto(`${url}/ui/#/workflows/${id}${query}`);
  await expect.poll(() => page.locator("svg.dag").count()).toBe(1);
}

describe("the DAG at real sizes", () => {
  it("wraps a 40-task chain into rows that fit the width with labels at least 10 px tall, and zooms", async () => {
    const steps = Array.from({ length: 40 }, (_, i) => `step_${String(i + 1).padStart(2, "0")}`);
    const source = steps
      .map((s, i) => `fun ${s}(${i ? `x:${steps[i - 1]}` : ""}):\n    print(${i})\n`)
      .join("\n");
    const id = await submit("chain-40", source);
    await driveToEnd(h.m, ["step_27"]);
    await openWorkflow(id);
    await expect.poll(() => page.locator("svg.dag g.node[data-task]").count()).toBe(40);
    await expect.poll(() => task("step_27").getAttribute("class")).toContain("state-failed");

    // The whole chain is inside the box at the first view: no horizontal scrolling, several rows.
    expect(await inside(page.locator("svg.dag"), view())).toBe(true);
    for (const s of ["step_01", "step_27", "step_40"]) expect(await inside(task(s), view())).toBe(true);
    const tops = await page
      .locator("svg.dag g.node[data-task]")
      .evaluateAll((nodes) => new Set(nodes.map((n) => Math.round(n.getBoundingClientRect().top))).size);
    expect(tops).toBeGreaterThanOrEqual(4);
    const labelHeight = () =>
      task("step_01")
        .locator("text.name")
        .evaluate((t) => t.getBoundingClientRect().height);
    const fitted = await labelHeight();
    expect(fitted).toBeGreaterThanOrEqual(10);
    const atFit = await zoom();
    // The failed task is selected: its error is the headline, with how and when it ended.
    const headline = page.locator(".task-panel .callout.headline");
    await expect.poll(() => headline.locator(".error-line").textContent()).toBe("exited with code 1");
    expect(await headline.locator(".how").textContent()).toBe("exit code 1 · attempt 1");
    await browser.screenshot("dag-chain-40").then((p) => keepForDocs(p, "dag-chain-40"));

    await page.getByRole("button", { name: "Zoom in" }).click();
    await expect.poll(labelHeight).toBeGreaterThan(fitted * 1.2);
    expect(await zoom()).not.toBe(atFit);
    await page.getByRole("button", { name: "Actual size" }).click();
    await expect.poll(zoom).toBe("100%");
    await page.getByRole("button", { name: "Zoom out" }).click();
    await page.getByRole("button", { name: "Zoom out" }).click();
    await expect.poll(zoom).toBe("64%");
    await page.getByRole("button", { name: "Fit the whole graph in view" }).click();
    await expect.poll(zoom).toBe(atFit);
    await expect.poll(labelHeight).toBeCloseTo(fitted, 0);

    // Ctrl with the wheel (a trackpad's pinch) zooms at the pointer: the task under it stays under it.
    const under = (await task("step_11").boundingBox())!;
    await page.mouse.move(under.x + under.width / 2, under.y + under.height / 2);
    await page.keyboard.down("Control");
    await page.mouse.wheel(0, -300);
    await page.keyboard.up("Control");
    await expect.poll(labelHeight).toBeGreaterThan(fitted * 1.3);
    const after = (await task("step_11").boundingBox())!;
    expect(Math.abs(after.x + after.width / 2 - (under.x + under.width / 2))).toBeLessThan(4);
    expect(Math.abs(after.y + after.height / 2 - (under.y + under.height / 2))).toBeLessThan(4);
    await page.getByRole("button", { name: "Fit the whole graph in view" }).click();
    await expect.poll(zoom).toBe(atFit);

    // Arrow keys follow the chain round its turns: right along the first row, then on to the second.
    const focused = () => page.evaluate(() => (document.activeElement as SVGElement).dataset?.task);
    await task("step_01").focus();
    for (let i = 0; i < 4; i++) await page.keyboard.press("ArrowRight");
    expect(await focused()).toBe("step_05");
    await page.keyboard.press("ArrowLeft");
    expect(await focused()).toBe("step_06");
    await page.keyboard.press("Enter");
    await expect.poll(() => page.locator("#task-title").textContent()).toBe("step_06");
    // Keys zoom too while the focus is in the graph: + in, 0 to 100%, f to fit.
    await task("step_06").focus();
    await page.keyboard.press("+");
    await expect.poll(labelHeight).toBeGreaterThan(fitted * 1.2);
    await page.keyboard.press("0");
    await expect.poll(zoom).toBe("100%");
    await page.keyboard.press("f");
    await expect.poll(zoom).toBe(atFit);
  });

  it("keeps a 30-way fan-out's root and join in view, as one group that opens and closes", async () => {
    const shards = Array.from({ length: 30 }, (_, i) => `shard_${String(i).padStart(2, "0")}`);
    const source = [
      'fun split():\n    print("30 parts")\n',
      ...shards.map((s) => `fun ${s}(part:split):\n    print("${s}")\n`),
      `fun join(${shards.map((s, i) => `p${i}:${s}`).join(", ")}):\n    print("joined")\n`,
    ].join("\n");
    const id = await submit("fan-out-30", source);
    await driveToEnd(h.m, ["shard_03", "shard_17"]);

    // Opened at the join, the 30 siblings are one node between the root and it.
    await openWorkflow(id, "?task=join");
    const group = page.locator("svg.dag g.node.group");
    await expect.poll(() => group.count()).toBe(1);
    await expect.poll(() => group.locator("title").textContent()).toContain("30 tasks: 28 ✓ 2 ✗");
    expect(await group.getAttribute("aria-expanded")).toBe("false");
    expect(await group.getAttribute("class")).toContain("state-failed");
    expect(await inside(task("split"), view())).toBe(true);
    expect(await inside(task("join"), view())).toBe(true);
    expect(await inside(group, view())).toBe(true);
    expect(await task("join").getAttribute("class")).toContain("state-upstream_failed");
    // The join will never run, and says which failed upstream keeps it back.
    const blocked = page.locator(".task-panel .callout.blocked");
    await expect
      .poll(() => blocked.textContent())
      .toContain("Will not run: blocked by failed upstream shard_03");
    expect(await page.locator(".task-panel .log-section").textContent()).toContain("will not run");
    await browser.screenshot("dag-fanout-30").then((p) => keepForDocs(p, "dag-fanout-30"));

    // A click opens it: the 30 tasks in a framed grid, the root and the join still in view.
    await group.click();
    await expect.poll(() => page.locator("svg.dag g.node[data-task^='shard_']").count()).toBe(30);
    expect(await group.count()).toBe(0);
    const head = page.locator("svg.dag g.frame-head");
    expect(await head.getAttribute("aria-expanded")).toBe("true");
    await page.getByRole("button", { name: "Fit the whole graph in view" }).click();
    for (const name of ["split", "join", "shard_00", "shard_29"])
      await expect.poll(() => inside(task(name), view())).toBe(true);
    await task("shard_17").click();
    await expect.poll(() => page.locator("#task-title").textContent()).toBe("shard_17");
    await browser.screenshot("dag-fanout-30-open").then((p) => keepForDocs(p, "dag-fanout-30-open"));

    // Its head closes it again; from the keyboard, Enter opens and closes it.
    await head.click();
    await expect.poll(() => group.count()).toBe(1);
    expect(await page.locator("svg.dag g.node[data-task^='shard_']").count()).toBe(0);
    await group.focus();
    await page.keyboard.press("Enter");
    await expect.poll(() => page.locator("svg.dag g.node[data-task^='shard_']").count()).toBe(30);
    expect(await page.evaluate(() => document.activeElement?.getAttribute("class"))).toContain("frame-head");
    await page.keyboard.press("ArrowDown");
    expect(await page.evaluate(() => (document.activeElement as SVGElement).dataset.task)).toBe("shard_00");
    await page.keyboard.press("ArrowUp");
    await page.keyboard.press("Enter");
    await expect.poll(() => group.count()).toBe(1);

    // The join's blocking upstream is a link to it.
    await task("join").click();
    await expect.poll(() => blocked.count()).toBe(1);
    await blocked.getByRole("button", { name: "shard_03" }).click();
    await expect.poll(() => page.locator("#task-title").textContent()).toBe("shard_03");
    await expect.poll(() => task("shard_03").getAttribute("class")).toContain("selected");

    // Opening the failed workflow without a task selects the first failure: its group opens to show it.
    await openWorkflow(id);
    await expect.poll(() => task("shard_03").getAttribute("class")).toContain("selected");
    expect(await inside(task("shard_03"), view())).toBe(true);
  });

  it("draws 1,000 tasks once, pans them by dragging, and shows where the view is on the overview", async () => {
    const width = 25;
    const depth = 40;
    const name = (layer: number, i: number) =>
      `c${String(layer).padStart(2, "0")}_${String(i % width).padStart(2, "0")}`;
    const tasks: string[] = [];
    for (let l = 0; l < depth; l++) {
      for (let i = 0; i < width; i++) {
        const ups = l === 0 ? "" : `a:${name(l - 1, i)}, b:${name(l - 1, i + 1 + (l % 3))}`;
        tasks.push(`fun ${name(l, i)}(${ups}):\n    print(1)\n`);
      }
    }
    const id = await submit("thousand", tasks.join("\n"));
    await driveRounds(13, 1);

    await openWorkflow(id);
    await expect
      .poll(() => page.locator("svg.dag g.node[data-task]").count(), { timeout: 30_000 })
      .toBe(1000);
    await expect.poll(() => task("c00_00").getAttribute("class")).toContain("state-succeeded");
    await expect.poll(() => task("c12_00").getAttribute("class")).toContain("state-running");
    // Too big to read whole: it opens at 100% at its first task, with the overview showing the view.
    await expect.poll(zoom).toBe("100%");
    const inView = (prefix: string) =>
      page.locator(`svg.dag g.node[data-task^='${prefix}']`).evaluateAll((nodes) => {
        const v = document.querySelector(".dag-view")!.getBoundingClientRect();
        return nodes.filter((n) => {
          const r = n.getBoundingClientRect();
          return r.left >= v.left && r.right <= v.right && r.top >= v.top && r.bottom <= v.bottom;
        }).length;
      });
    expect(await inView("c00_")).toBeGreaterThanOrEqual(5);
    const minimap = page.locator(".minimap");
    expect(await minimap.isVisible()).toBe(true);
    // The picture shows the graph's box whole: the page scrolled to it.
    await page.locator(".dag-figure").evaluate((f) => f.scrollIntoView({ block: "start" }));
    await browser.screenshot("dag-1000").then((p) => keepForDocs(p, "dag-1000"));

    // A drag pans the drawing: the first task leaves the view and the overview's rectangle moves.
    const transform = () => page.locator("svg.dag").evaluate((svg) => (svg as SVGElement).style.transform);
    const frame = () => page.locator(".minimap-view").evaluate((el) => el.getBoundingClientRect().left);
    const [before, frameBefore] = [await transform(), await frame()];
    const box = (await view().boundingBox())!;
    await page.mouse.move(box.x + box.width - 40, box.y + box.height / 2);
    await page.mouse.down();
    for (let i = 1; i <= 10; i++)
      await page.mouse.move(box.x + box.width - 40 - i * 60, box.y + box.height / 2);
    await page.mouse.up();
    await expect.poll(transform).not.toBe(before);
    expect(await frame()).toBeGreaterThan(frameBefore);
    expect(await inView("c00_")).toBe(0);

    // A press on the overview moves the view there; the page still answers clicks on nodes.
    // The last layer is at the end of the last band: a serpentine's even band runs right to left.
    const mini = (await minimap.boundingBox())!;
    const bands = await page.locator("svg.dag").evaluate((svg) => svg.getAttribute("data-bands"));
    const endX = Number(bands) % 2 === 0 ? mini.x + 4 : mini.x + mini.width - 4;
    await page.mouse.click(endX, mini.y + mini.height - 4);
    const last = page.locator("svg.dag g.node[data-task^='c39_']");
    const shown = async () => {
      for (const n of await last.all()) if (await inside(n, view())) return n.getAttribute("data-task");
      return null;
    };
    await expect.poll(shown).not.toBeNull();
    const end = (await shown())!;
    await task(end).click();
    await expect.poll(() => page.locator("#task-title").textContent()).toBe(end);
    expect(await page.locator("svg.dag g.node.selected").count()).toBe(1);

    // Zooming out to fit shows it all.
    await page.getByRole("button", { name: "Fit the whole graph in view" }).click();
    await expect.poll(() => inside(page.locator("svg.dag"), view())).toBe(true);
    expect(await minimap.isVisible()).toBe(false);
  }, 180_000); // a thousand tasks through the database and the page on a loaded 2-core machine
});

describe("a big workflow while it runs", () => {
  it("is read whole at most every 20 times as long as a read takes, its tasks' colors following the events meanwhile", async () => {
    const layers = 8;
    const width = 10;
    const name = (l: number, i: number) => `l${l}_${i}`;
    const tasks: string[] = [];
    for (let l = 0; l < layers; l++) {
      for (let i = 0; i < width; i++)
        tasks.push(`fun ${name(l, i)}(${l ? `x:${name(l - 1, i)}` : ""}):\n    pass\n`);
    }
    const id = await submit("slow-reads", tasks.join("\n"));
    // Each whole read takes 400 ms (a workflow of thousands of tasks on a busy server, say).
    let reads = 0;
    const whole = new RegExp(`/workflows/${id}$`);
    await page.route(whole, async (route) => {
      reads += 1;
      await new Promise((r) => setTimeout(r, 400));
      await route.continue();
    });
    try {
      await driveRounds(1, 1);
      await openWorkflow(id);
      await expect.poll(() => task(name(0, 0)).getAttribute("class")).toContain("state-running");
      await expect.poll(() => page.locator(".connection").textContent()).toContain("live");
      const before = reads;
      const started = Date.now();
      // Six bursts of events, each a layer's successes and the next layer's starts, 600 ms apart: before,
      // each lull after a burst (250 ms) brought a whole read.
      for (let l = 0; l < 6; l++) {
        const running = await h.m.db<{ id: string }[]>`
          select id::text from dwop.runs where workflow_id = ${id} and status = 'running'`;
        await h.m.store.completeRuns(running.map((r) => r.id));
        await driveRounds(1, 1);
        await expect.poll(() => task(name(l, 0)).getAttribute("class")).toContain("state-succeeded");
        await new Promise((r) => setTimeout(r, 600));
      }
      const seconds = (Date.now() - started) / 1000;
      // 20 x 0.4 s = 8 s between two reads at the least; one may come from the first burst.
      expect(reads - before, `${reads - before} whole reads in ${seconds.toFixed(1)} s`).toBeLessThanOrEqual(
        1 + Math.floor(seconds / 8),
      );
    } finally {
      await page.unroute(whole);
    }
  }, 120_000);
});

describe("the workflow list", () => {
  it("shows more past 100 workflows, page after page, to the last one", async () => {
    const before = Number(
      (await (await h.app.request("/ui/api/workflows?limit=100", { headers: auth })).json()).workflows.length,
    );
    const more = 130 - before;
    for (let i = 0; i < more; i += 10) {
      await Promise.all(
        Array.from({ length: Math.min(10, more - i) }, (_, j) =>
          submit(`listed-${String(i + j).padStart(3, "0")}`, 'fun only():\n    print("x")\n'),
        ),
      );
    }
    await page.goto(`${url}/ui/#/`);
    const rows = page.locator("table.workflows tbody tr");
    await expect.poll(() => rows.count()).toBe(50);
    const showMore = page.getByRole("button", { name: "Show more" });
    await showMore.click();
    await expect.poll(() => rows.count()).toBe(100);
    await showMore.click();
    await expect.poll(() => rows.count()).toBe(130);
    expect(await showMore.isHidden()).toBe(true);
    expect(await page.locator("p[role=status]").textContent()).toBe("130 workflows shown");
    // The oldest is at the end; the live refresh reads all 130 again and adds a new one at the top.
    expect(await rows.last().textContent()).toContain("chain-40");
    await submit("newest", 'fun only():\n    print("x")\n');
    await expect.poll(() => rows.first().textContent(), { timeout: 10_000 }).toContain("newest");
    expect(await rows.count()).toBe(131);
    expect(await rows.last().textContent()).toContain("chain-40");
  });
});
