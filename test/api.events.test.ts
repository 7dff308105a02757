import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { WorkflowEvent } from "../functions/schemas.ts";
import { apiHarness, driveToEnd, submitted, type ApiHarness } from "./support/api.ts";

interface Frame {
  id?: string;
  event?: string;
  data?: string;
}

/** Reads Server-Sent Events frames from a response until `done` says so (or the stream ends). */
class SseReader {
  private readonly reader: ReadableStreamDefaultReader<string>;
  private buffer = "";
  readonly frames: Frame[] = [];

  constructor(res: Response) {
    this.reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  }

  async until(done: (frames: Frame[]) => boolean, timeoutMs = 15_000): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs;
    while (!done(this.frames)) {
      if (Date.now() > deadline) throw new Error(`no such frame in time: ${JSON.stringify(this.frames)}`);
      const { value, done: ended } = await this.reader.read();
      if (ended) break;
      this.buffer += value;
      let end: number;
      while ((end = this.buffer.indexOf("\n\n")) >= 0) {
        const frame: Frame = {};
        for (const line of this.buffer.slice(0, end).split("\n")) {
          const m = /^(id|event|data): (.*)$/.exec(line);
          if (m) frame[m[1] as keyof Frame] = m[2];
        }
        if (frame.data !== undefined) this.frames.push(frame);
        this.buffer = this.buffer.slice(end + 2);
      }
    }
    return this.frames;
  }

  async ended(): Promise<boolean> {
    return (await this.reader.read()).done;
  }

  cancel(): Promise<void> {
    return this.reader.cancel();
  }
}

const isEnd = (frames: Frame[]) => frames.some((f) => f.event === "end");
const events = (frames: Frame[]) =>
  frames.filter((f) => !f.event).map((f) => WorkflowEvent.parse(JSON.parse(f.data!)));

let h: ApiHarness;
let alice: Record<string, string>;
let id: string;

beforeEach(async (ctx) => {
  h = await apiHarness(ctx.task.name);
  alice = await h.as("alice");
  id = await submitted(h, alice);
});
afterEach(async (ctx) => {
  await h.close(ctx.task.result?.state === "pass");
});

async function stream(headers: Record<string, string> = alice): Promise<SseReader> {
  const res = await h.app.request(`/workflows/${id}/events`, { headers });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/event-stream");
  return new SseReader(res);
}

async function eventIds(): Promise<string[]> {
  const rows = await h.m.db<
    { id: string }[]
  >`select id from dwop.events where workflow_id = ${id} order by id`;
  return rows.map((r) => r.id);
}

describe("GET /workflows/:id/events", () => {
  it("sends every event with its id, then `end` with the final state, and closes", async () => {
    await driveToEnd(h.m);
    const sse = await stream();
    const frames = await sse.until(isEnd);
    expect(await sse.ended()).toBe(true);
    expect(frames.filter((f) => !f.event).map((f) => f.id)).toEqual(await eventIds());
    const sent = events(frames);
    expect(sent.map((e) => e.id)).toEqual(frames.filter((f) => !f.event).map((f) => f.id));
    expect(sent[0]).toMatchObject({ kind: "workflow", status: "queued" });
    expect(sent.at(-1)).toMatchObject({ kind: "workflow", status: "succeeded" });
    expect(sent.filter((e) => e.kind === "task").map((e) => `${e.task}:${e.status}`)).toEqual([
      "extract:dispatched",
      "extract:succeeded",
      "shout:queued",
      "shout:dispatched",
      "shout:succeeded",
    ]);
    expect(JSON.parse(frames.at(-1)!.data!)).toEqual({ status: "succeeded" });
  });

  it("follows a running workflow as it moves", async () => {
    const sse = await stream();
    await sse.until((f) => f.length >= 1);
    expect(events(sse.frames)[0]).toMatchObject({ status: "queued" });
    h.clock.now += 10_000; // past the settle window: the stream's floor moves up to what it has sent
    await new Promise((r) => setTimeout(r, 100));
    await driveToEnd(h.m, ["shout"]);
    const frames = await sse.until(isEnd);
    expect(JSON.parse(frames.at(-1)!.data!)).toEqual({ status: "failed" });
    expect(frames.filter((f) => !f.event).map((f) => f.id)).toEqual(await eventIds());
  });

  it("resumes after Last-Event-ID", async () => {
    await driveToEnd(h.m);
    const all = await eventIds();
    const res = await h.app.request(`/workflows/${id}/events`, {
      headers: { ...alice, "Last-Event-ID": all[2]! },
    });
    const frames = await new SseReader(res).until(isEnd);
    expect(frames.filter((f) => !f.event).map((f) => f.id)).toEqual(all.slice(3));
    const query = await h.app.request(`/workflows/${id}/events?lastEventId=${all.at(-1)}`, {
      headers: alice,
    });
    expect((await new SseReader(query).until(isEnd)).map((f) => f.event)).toEqual(["end"]);
    const bad = await h.app.request(`/workflows/${id}/events`, {
      headers: { ...alice, "Last-Event-ID": "x" },
    });
    expect(bad.status).toBe(400);
  });

  it("still sends an event whose transaction commits after a later event's", async () => {
    const sse = await stream();
    await sse.until((f) => f.length >= 1);
    let inserted!: () => void;
    let release!: () => void;
    const insertedP = new Promise<void>((r) => (inserted = r));
    const releaseP = new Promise<void>((r) => (release = r));
    const held = h.m.db.begin(async (sql) => {
      await sql`select dwop.log_event(${id}, 'test', null, 'late', null, null, now())`;
      inserted();
      await releaseP;
    });
    await insertedP;
    await h.m.db`select dwop.log_event(${id}, 'test', null, 'early', null, null, now())`;
    await sse.until((f) => events(f).some((e) => e.status === "early"));
    release();
    await held;
    await sse.until((f) => events(f).some((e) => e.status === "late"));
    const [late, early] = ["late", "early"].map((s) => events(sse.frames).find((e) => e.status === s)!);
    expect(BigInt(late!.id)).toBeLessThan(BigInt(early!.id));
    await h.app.request(`/workflows/${id}/cancel`, { method: "POST", headers: alice });
    const frames = await sse.until(isEnd);
    const ids = frames.filter((f) => !f.event).map((f) => f.id);
    expect(new Set(ids).size).toBe(ids.length); // each event once
    expect([...ids].sort((a, b) => Number(a) - Number(b))).toEqual(await eventIds());
  });

  it("is not found for another owner", async () => {
    const res = await h.app.request(`/workflows/${id}/events`, { headers: await h.as("bob") });
    expect(res.status).toBe(404);
  });
});
