import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { RetentionSweeper } from "../cron/retention.ts";
import { WorkflowDetail } from "../functions/schemas.ts";
import { apiHarness, driveToEnd, SAMPLE, type ApiHarness } from "./support/api.ts";

/**
 * What DWOP keeps only for a while (dwop.purge_expired through the claimer's sweeper): deleted once older
 * than the setting, kept before, whatever is still in use kept always; a delivered callback's secret
 * dropped at once. Time moves by the `now` each sweep is given.
 */

const DAY = 86_400_000;
let h: ApiHarness;
let sweeper: RetentionSweeper;

beforeEach(async (ctx) => {
  h = await apiHarness(ctx.task.name);
  sweeper = new RetentionSweeper(h.m.db, { keepDays: 30 });
});
afterEach(async (ctx) => {
  await h.close(ctx.task.result?.state === "pass");
});

async function submit(body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<string> {
  const res = await h.postJson("/workflows", body, { ...(await h.as("alice")), ...headers });
  expect(res.status).toBe(201);
  return WorkflowDetail.parse(await res.json()).id;
}

async function counts(workflowId: string) {
  const [row] = await h.m.db<
    { events: number; published: number; submissions: number; secrets: number; workflows: number }[]
  >`
    select (select count(*)::int from dwop.events where workflow_id = ${workflowId}) as events,
           (select count(*)::int from dwop.outbox where published_at is not null) as published,
           (select count(*)::int from dwop.submissions where workflow_id = ${workflowId}) as submissions,
           (select count(*)::int from dwop.submissions where callback_secret is not null) as secrets,
           (select count(*)::int from dwop.workflows where id = ${workflowId}) as workflows`;
  return row!;
}

describe("retention", () => {
  it("deletes what ended or was published longer ago than the setting, and keeps the workflow", async () => {
    const id = await submit({ workflow: SAMPLE }, { "idempotency-key": "nightly-1" });
    await driveToEnd(h.m);
    const before = await counts(id);
    expect(before).toMatchObject({ submissions: 1, workflows: 1 });
    expect(before.events).toBeGreaterThan(3);
    expect(before.published).toBeGreaterThan(1);

    const soon = await sweeper.runOnce(new Date(Date.now() + 29 * DAY));
    expect(
      Object.values(soon).every((n) => n === 0),
      JSON.stringify(soon),
    ).toBe(true);
    expect(await counts(id)).toEqual(before);

    const later = await sweeper.runOnce(new Date(Date.now() + 31 * DAY));
    expect(later).toMatchObject({ events: before.events, outbox: before.published, submissions: 1 });
    expect(await counts(id)).toEqual({ events: 0, published: 0, submissions: 0, secrets: 0, workflows: 1 });
  });

  it("keeps a running workflow's events and a live dispatcher's row, and drops a dead one's", async () => {
    const id = await submit({ workflow: SAMPLE });
    const [claimed] = await h.m.store.claimOutbox("claimer", 10, 30);
    await h.m.store.markPublished("claimer", [claimed!.id]);
    await h.m.store.startRun(claimed!.message, "busy-dispatcher", "local");
    await h.m.store.heartbeat("busy-dispatcher", "local");
    await h.m.store.heartbeat("gone-dispatcher", "local");
    const purged = await sweeper.runOnce(new Date(Date.now() + 31 * DAY));
    expect(purged).toMatchObject({ events: 0, dispatchers: 1 });
    const left = await h.m.db<{ id: string }[]>`select id from dwop.dispatchers order by id`;
    expect(left.map((d) => d.id)).toEqual(["busy-dispatcher"]);
    expect((await counts(id)).events).toBeGreaterThan(0);
  });

  it("drops a callback's URL and secret once it has been delivered, whatever its age", async () => {
    const id = await submit({
      workflow: SAMPLE,
      callback_url: "https://hooks.example.com/done",
      callback_secret: "s".repeat(24),
    });
    await driveToEnd(h.m);
    expect((await counts(id)).secrets).toBe(1);
    expect((await sweeper.runOnce()).callbackSecrets).toBe(0); // not delivered yet
    await h.m.db`update dwop.outbox set published_at = now() where topic = 'workflow.callback'`;
    expect((await sweeper.runOnce()).callbackSecrets).toBe(1);
    expect((await counts(id)).secrets).toBe(0);
  });
});
