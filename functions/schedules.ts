import type { Hono } from "hono";
import { checkCron, CronError } from "../shared/cron.ts";
import type { ScheduledRun, ScheduleFire, ScheduleRow, ScheduleSettings } from "../shared/db/schedules.ts";
import { checkSubmission } from "../shared/submit.ts";
import { readJson } from "./body.ts";
import type { ApiDeps, ApiEnv } from "./context.ts";
import { ApiError, notFound } from "./errors.ts";
import type { RouteDoc } from "./openapi.ts";
import { refuseUnknownPools } from "./pools.ts";
import { Schedule, ScheduleCreate, ScheduleList, ScheduleUpdate, TRIGGER_NAME } from "./schemas.ts";

/** Runs listed with each schedule. */
const LAST_RUNS = 5;
/** Fire records listed with each schedule. */
const LAST_FIRES = 10;

/**
 * The caller's schedules: `POST /schedules`, `GET /schedules`, and `GET`, `PATCH` (pause, resume, change)
 * and `DELETE /schedules/:name`. The claimers fire them (cron/schedules.ts); each workflow a schedule
 * starts carries its name (`GET /workflows?schedule=NAME`).
 */
export function scheduleRoutes(app: Hono<ApiEnv>, deps: ApiDeps): void {
  app.post("/schedules", async (c) => {
    const owner = c.get("caller").owner;
    const body = await readJson(c, ScheduleCreate);
    const settings: Omit<ScheduleSettings, "paused"> = {
      cron: body.cron,
      timezone: body.timezone ?? "UTC",
      source: body.workflow,
      requirements: body.requirements ?? null,
      inputs: body.inputs ?? {},
      overlap: body.overlap ?? "skip",
      catchup: body.catchup ?? "none",
    };
    const next = await checkSchedule(deps, body.name, settings);
    const max = deps.settings.maxSchedulesPerOwner;
    const result = await deps.schedules.create(owner, body.name, settings, next, max);
    if (result === "exists") {
      throw new ApiError(409, "schedule_exists", `you already have a schedule named ${body.name}`);
    }
    if (result === "limit") {
      const message = `you have ${max} schedules, the most one owner may have; delete one first`;
      throw new ApiError(409, "too_many_schedules", message, { limit: max });
    }
    return c.json(await respond(deps, owner, body.name), 201, { Location: `/schedules/${body.name}` });
  });

  app.get("/schedules", async (c) => {
    const owner = c.get("caller").owner;
    const rows = await deps.schedules.list(owner);
    const names = rows.map((r) => r.name);
    const [runs, fires] = await Promise.all([
      deps.schedules.lastRuns(owner, names, LAST_RUNS),
      deps.schedules.lastFires(owner, names, LAST_FIRES),
    ]);
    return c.json({ schedules: rows.map((r) => view(r, runs, fires)) });
  });

  app.get("/schedules/:name", async (c) => c.json(await respond(deps, c.get("caller").owner, name(c))));

  app.patch("/schedules/:name", async (c) => {
    const owner = c.get("caller").owner;
    const scheduleName = name(c);
    const [row] = await deps.schedules.list(owner, scheduleName);
    if (!row) throw notFound("schedule");
    const body = await readJson(c, ScheduleUpdate);
    const settings: ScheduleSettings = {
      cron: body.cron ?? row.cron,
      timezone: body.timezone ?? row.timezone,
      source: body.workflow ?? row.source,
      requirements: body.requirements === undefined ? row.requirements : body.requirements,
      inputs: body.inputs ?? row.inputs,
      overlap: body.overlap ?? row.overlap,
      catchup: body.catchup ?? row.catchup,
      paused: body.paused ?? row.paused,
    };
    // The workflow is checked again only when it or its inputs change: a schedule whose pool was
    // deleted, or whose file a lowered limit now refuses, can still be paused or retimed.
    const what = body.workflow !== undefined || body.inputs !== undefined ? "all" : "timing";
    const next = await checkSchedule(deps, scheduleName, settings, what);
    // A new expression or zone, or a resume, counts from now: a paused time is not caught up.
    const retimed = settings.cron !== row.cron || settings.timezone !== row.timezone;
    const resumed = row.paused && !settings.paused;
    const reschedule = retimed || resumed || row.nextFireAt === null ? { nextFireAt: next } : null;
    if (!(await deps.schedules.update(owner, scheduleName, settings, reschedule))) throw notFound("schedule");
    return c.json(await respond(deps, owner, scheduleName));
  });

  app.delete("/schedules/:name", async (c) => {
    if (!(await deps.schedules.delete(c.get("caller").owner, name(c)))) throw notFound("schedule");
    return c.body(null, 204);
  });
}

/** The `:name` parameter; a name no schedule can have names nothing (404). */
function name(c: { req: { param(name: string): string | undefined } }): string {
  const value = c.req.param("name") ?? "";
  if (!TRIGGER_NAME.test(value)) throw notFound("schedule");
  return value;
}

/**
 * Checks a schedule before anything is stored: the expression and zone (422 invalid_cron, with the
 * field and column, or invalid_timezone), then the workflow with its inputs as a submission would be
 * checked, and that each pool it names exists (422 unknown_pool, as a submit would answer: else every
 * fire would fail); with `what` "timing", the expression and zone only. Returns the next fire time
 * after now.
 */
async function checkSchedule(
  deps: ApiDeps,
  name: string,
  s: Omit<ScheduleSettings, "paused">,
  what: "all" | "timing" = "all",
): Promise<Date> {
  let next: Date;
  try {
    next = checkCron(s, new Date(deps.now()));
  } catch (err) {
    if (!(err instanceof CronError)) throw err;
    throw new ApiError(422, `invalid_${err.field}`, err.message, { path: err.field, ...err.position });
  }
  if (what === "timing") return next;
  const spec = checkSubmission(
    s.source,
    `${name}.workflow`,
    Object.keys(s.inputs),
    deps.settings.submitLimits,
    {
      refuseUnread: true,
    },
  );
  await refuseUnknownPools(deps, spec);
  return next;
}

async function respond(deps: ApiDeps, owner: string, scheduleName: string) {
  const [row] = await deps.schedules.list(owner, scheduleName);
  if (!row) throw notFound("schedule");
  const [runs, fires] = await Promise.all([
    deps.schedules.lastRuns(owner, [scheduleName], LAST_RUNS),
    deps.schedules.lastFires(owner, [scheduleName], LAST_FIRES),
  ]);
  return view(row, runs, fires);
}

function view(s: ScheduleRow, runs: ScheduledRun[], fires: ScheduleFire[]) {
  return {
    name: s.name,
    cron: s.cron,
    timezone: s.timezone,
    workflow: s.source,
    requirements: s.requirements,
    inputs: s.inputs,
    overlap: s.overlap,
    catchup: s.catchup,
    paused: s.paused,
    nextFireAt: s.paused ? null : s.nextFireAt,
    lastRuns: runs.filter((r) => r.schedule === s.name).map(({ schedule: _, ...r }) => r),
    lastFires: fires.filter((f) => f.schedule === s.name).map(({ schedule: _, ...f }) => f),
    createdAt: s.createdAt,
    updatedAt: s.updatedAt,
  };
}

const one = {
  description: "the schedule, its next fire time, its last runs and its last fire records",
  schema: Schedule,
};

export const scheduleDocs: RouteDoc[] = [
  {
    method: "post",
    path: "/schedules",
    summary: "Create a schedule: its workflow starts at every time the cron expression names",
    auth: "bearer",
    body: [{ contentType: "application/json", schema: ScheduleCreate }],
    responses: { 201: one },
    errors: [400, 409, 413, 415, 422],
  },
  {
    method: "get",
    path: "/schedules",
    summary: "The caller's schedules",
    auth: "bearer",
    responses: { 200: { description: "every schedule of the caller", schema: ScheduleList } },
  },
  {
    method: "get",
    path: "/schedules/:name",
    summary: "One schedule",
    auth: "bearer",
    responses: { 200: one },
    errors: [404],
  },
  {
    method: "patch",
    path: "/schedules/:name",
    summary: "Pause (paused: true), resume (paused: false) or change a schedule",
    auth: "bearer",
    body: [{ contentType: "application/json", schema: ScheduleUpdate }],
    responses: { 200: one },
    errors: [400, 404, 413, 415, 422],
  },
  {
    method: "delete",
    path: "/schedules/:name",
    summary: "Delete a schedule (the workflows it started stay)",
    auth: "bearer",
    responses: { 204: { description: "deleted" } },
    errors: [404],
  },
];
