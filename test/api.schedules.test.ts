import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorResponse, Schedule, ScheduleList } from "../functions/schemas.ts";
import { PoolStore } from "../shared/db/pool-store.ts";
import { apiHarness, type ApiHarness } from "./support/api.ts";

/**
 * The schedule routes in process against a real database: what is refused and why (nothing stored),
 * owner scoping, pause and resume, the per-owner limit.
 */

const T0 = Date.parse("2026-01-01T00:00:30Z");
const WORKFLOW = 'fun tick():\n    print("tick")\n';
let h: ApiHarness;
let alice: Record<string, string>;

beforeEach(async (ctx) => {
  h = await apiHarness(ctx.task.name, { settings: { maxSchedulesPerOwner: 3 } });
  h.clock.now = T0;
  alice = await h.as("alice");
});
afterEach(async (ctx) => {
  await h.close(ctx.task.result?.state === "pass");
});

const create = (body: Record<string, unknown>, headers = alice) =>
  h.postJson("/schedules", { name: "nightly", cron: "0 2 * * *", workflow: WORKFLOW, ...body }, headers);

function send(method: string, path: string, headers: Record<string, string>, body?: unknown) {
  return h.app.request(path, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function error(res: Response, status: number) {
  expect(res.status, await res.clone().text()).toBe(status);
  return ErrorResponse.parse(await res.json()).error;
}

async function scheduleCount(): Promise<number> {
  const [row] = await h.m.db<{ n: number }[]>`select count(*)::int as n from dwop.schedules`;
  return row!.n;
}

describe("POST /schedules", () => {
  it("creates a schedule with its defaults and next fire time in its time zone", async () => {
    const res = await create({ timezone: "Europe/Berlin" });
    expect(res.status).toBe(201);
    expect(res.headers.get("location")).toBe("/schedules/nightly");
    const s = Schedule.parse(await res.json());
    expect(s).toMatchObject({
      name: "nightly",
      cron: "0 2 * * *",
      timezone: "Europe/Berlin",
      overlap: "skip",
      catchup: "none",
      paused: false,
      inputs: {},
      requirements: null,
      lastRuns: [],
      // 02:00 in Berlin (UTC+1 in January) is 01:00 UTC.
      nextFireAt: "2026-01-01T01:00:00.000Z",
    });
  });

  it.each([
    [{ cron: "* * * * * *" }, 422, "invalid_cron", "has 5 fields"],
    [{ cron: "61 * * * *" }, 422, "invalid_cron", "minute"],
    [{ cron: "0 0 30 2 *" }, 422, "invalid_cron", "never fires"],
    [{ cron: "@fortnightly" }, 422, "invalid_cron", "unknown cron nickname"],
    [{ cron: "" }, 422, "invalid_request", "cron"],
    [{ timezone: "Mars/Olympus" }, 422, "invalid_timezone", "Mars/Olympus"],
    [{ timezone: "" }, 422, "invalid_request", "timezone"],
    [{ name: "no spaces" }, 422, "invalid_request", "schedule name"],
    [{ overlap: "queue" }, 422, "invalid_request", 'overlap: Invalid option: expected one of \\"allow\\"'],
    [{ catchup: "all" }, 422, "invalid_request", 'catchup: Invalid option: expected one of \\"none\\"'],
    [{ overlap: null }, 422, "invalid_request", "overlap"],
    [{ extra: 1 }, 422, "invalid_request", "extra"],
    [{ workflow: '@pool("gpu")\nfun a():\n    print(1)\n' }, 422, "unknown_pool", "pool gpu"],
    [{ workflow: "fun broken(:\n" }, 400, "invalid_workflow", "error"],
    [{ workflow: "fun a(x:inputs.x):\n    print(1)\n" }, 422, "missing_inputs", "inputs.x"],
    [{ inputs: { unread: "1" } }, 422, "unread_inputs", "inputs.unread"],
  ])("refuses %j with %i %s, storing nothing", async (body, status, code, says) => {
    const e = await error(await create(body), status);
    expect(e.code).toBe(code);
    expect(JSON.stringify(e)).toContain(says);
    expect(await scheduleCount()).toBe(0);
  });

  it("refuses a second schedule of the same name, and more than the per-owner limit", async () => {
    expect((await create({})).status).toBe(201);
    expect((await error(await create({}), 409)).code).toBe("schedule_exists");
    expect((await create({ name: "two" })).status).toBe(201);
    expect((await create({ name: "three" })).status).toBe(201);
    const e = await error(await create({ name: "four" }), 409);
    expect(e).toMatchObject({ code: "too_many_schedules", details: { limit: 3 } });
    // Another owner has a limit of its own and may use the same names.
    expect((await create({}, await h.as("bob"))).status).toBe(201);
    expect(await scheduleCount()).toBe(4);
  });

  it.each([
    ["0 25 * * *", 2, "hour", 3, '"25"'],
    ["0 0 32 * *", 3, "day of month", 5, '"32"'],
    ["0 0 * 13 *", 4, "month", 7, '"13"'],
    ["0  0 * * MON-FOO", 5, "day of week", 10, '"MON-FOO"'],
    ["*/0 * * * *", 1, "minute", 1, "illegal stepping"],
  ])("names the bad field of %j: field %i (%s) at column %i", async (cron, field, name, column, says) => {
    const e = await error(await create({ cron }), 422);
    expect(e).toMatchObject({ code: "invalid_cron", details: { path: "cron", field, name, column } });
    expect(e.message).toContain(`field ${field} (${name}, column ${column}) is`);
    expect(e.message).toContain(says);
    expect(await scheduleCount()).toBe(0);
  });
});

describe("owner scoping", () => {
  it("shows, changes and deletes only the caller's schedules", async () => {
    await create({});
    const bob = await h.as("bob");
    expect(ScheduleList.parse(await (await send("GET", "/schedules", bob)).json()).schedules).toEqual([]);
    await error(await send("GET", "/schedules/nightly", bob), 404);
    await error(await send("PATCH", "/schedules/nightly", bob, { paused: true }), 404);
    await error(await send("DELETE", "/schedules/nightly", bob), 404);
    const mine = ScheduleList.parse(await (await send("GET", "/schedules", alice)).json());
    expect(mine.schedules.map((s) => [s.name, s.paused])).toEqual([["nightly", false]]);
    expect((await send("DELETE", "/schedules/nightly", alice)).status).toBe(204);
    await error(await send("GET", "/schedules/nightly", alice), 404);
  });
});

describe("PATCH /schedules/:name", () => {
  it("pauses (no next fire time shown) and resumes from the next time after now", async () => {
    await create({ cron: "*/5 * * * *" });
    const paused = Schedule.parse(
      await (await send("PATCH", "/schedules/nightly", alice, { paused: true })).json(),
    );
    expect(paused).toMatchObject({ paused: true, nextFireAt: null });
    h.clock.now = Date.parse("2026-01-01T03:07:00Z");
    alice = await h.as("alice"); // a fresh token for the moved clock
    const resumed = Schedule.parse(
      await (await send("PATCH", "/schedules/nightly", alice, { paused: false })).json(),
    );
    expect(resumed).toMatchObject({ paused: false, nextFireAt: "2026-01-01T03:10:00.000Z" });
  });

  it("changes the expression and zone, counting from now", async () => {
    await create({});
    const res = await send("PATCH", "/schedules/nightly", alice, {
      cron: "30 * * * *",
      timezone: "Asia/Kolkata",
    });
    // Kolkata is UTC+5:30, so minute 30 there is minute 0 in UTC.
    expect(Schedule.parse(await res.json())).toMatchObject({
      cron: "30 * * * *",
      timezone: "Asia/Kolkata",
      nextFireAt: "2026-01-01T01:00:00.000Z",
    });
  });

  it("pauses and retimes a schedule whose pool was deleted since, and refuses only a new workflow naming it", async () => {
    const pools = new PoolStore(h.m.db);
    await pools.set("gpu", 1);
    const workflow = '@pool("gpu")\nfun a():\n    print(1)\n';
    expect((await create({ workflow })).status).toBe(201);
    expect(await pools.delete("gpu")).toBe("deleted");
    const paused = await send("PATCH", "/schedules/nightly", alice, { paused: true, cron: "0 3 * * *" });
    expect(Schedule.parse(await paused.json())).toMatchObject({ paused: true, cron: "0 3 * * *" });
    const e = await error(await send("PATCH", "/schedules/nightly", alice, { workflow }), 422);
    expect(e).toMatchObject({ code: "unknown_pool", details: { path: "workflow", pool: "gpu" } });
  });

  it("refuses a bad change and keeps the schedule as it was", async () => {
    await create({});
    const before = await (await send("GET", "/schedules/nightly", alice)).json();
    const refusals: [Record<string, unknown>, number, string, string][] = [
      [{ cron: "bad" }, 422, "invalid_cron", "has 5 fields"],
      [{ cron: "0 24 * * *", paused: true }, 422, "invalid_cron", "field 2 (hour, column 3)"],
      [{ timezone: "Europe/Atlantis", overlap: "allow" }, 422, "invalid_timezone", "Europe/Atlantis"],
      [{ overlap: "queue" }, 422, "invalid_request", "overlap: Invalid option"],
      [{ catchup: "every" }, 422, "invalid_request", "catchup: Invalid option"],
      [{ catchup: "latest", overlap: 1 }, 422, "invalid_request", "overlap"],
      [{}, 422, "invalid_request", "give at least one field to change"],
      [{ paused: "yes" }, 422, "invalid_request", "paused"],
      [{ name: "renamed" }, 422, "invalid_request", "name"],
      [{ workflow: "x" }, 400, "invalid_workflow", "error"],
      [{ inputs: { unread: "1" } }, 422, "unread_inputs", "inputs.unread"],
      [{ workflow: '@pool("gpu")\nfun a():\n    print(1)\n' }, 422, "unknown_pool", "pool gpu"],
    ];
    for (const [body, status, code, says] of refusals) {
      const e = await error(await send("PATCH", "/schedules/nightly", alice, body), status);
      expect([body, e.code]).toEqual([body, code]);
      expect(e.message + JSON.stringify(e.details)).toContain(says);
    }
    // An unknown field is the one thing wrong, not "no field given" besides.
    const renamed = await error(await send("PATCH", "/schedules/nightly", alice, { name: "renamed" }), 422);
    expect(renamed.message).toBe('invalid request body: Unrecognized key: "name"');
    expect(await (await send("GET", "/schedules/nightly", alice)).json()).toEqual(before);
    const [row] = await h.m.db<{ updated: Date }[]>`select updated_at as updated from dwop.schedules`;
    expect(row!.updated.toISOString()).toBe((before as { updatedAt: string }).updatedAt);
  });
});
