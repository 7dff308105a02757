import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { connectDb } from "../shared/db/connect.ts";
import { PoolStore } from "../shared/db/pool-store.ts";
import { Store, UnknownPoolError } from "../shared/db/store.ts";
import type { TaskMessage } from "../shared/model.ts";
import { submission, task } from "./support/factory.ts";
import { drainOutbox } from "./support/outbox.ts";
import { migratedDatabase, type MigratedDatabase } from "./support/migrated.ts";

/**
 * Pools, owner caps, fair claims and priorities at the SQL level (migration 20261205000200): a slot is
 * held exactly while its run is starting or running, and whatever ends the run gives it back.
 */

let m: MigratedDatabase;
let store: Store;
let pools: PoolStore;

beforeEach(async (ctx) => {
  m = await migratedDatabase(ctx.task.name);
  store = m.store;
  pools = new PoolStore(m.db);
});
afterEach(async (ctx) => {
  await m.close(ctx.task.result?.state === "pass");
});

const drain = (batch = 1000) => drainOutbox(store, "c1", batch);

async function taskNames(messages: TaskMessage[]): Promise<string[]> {
  const rows = await m.db<{ id: string; name: string }[]>`
    select id, name from dwop.tasks where id = any(${messages.map((x) => x.taskId)}::bigint[])`;
  return messages.map((x) => rows.find((r) => r.id === x.taskId)!.name);
}

async function parked(): Promise<Record<string, string>> {
  const rows = await m.db<{ name: string; parked: string }[]>`
    select name, parked from dwop.tasks where parked is not null order by name`;
  return Object.fromEntries(rows.map((r) => [r.name, r.parked]));
}

async function pool(name: string) {
  return (await pools.list()).find((p) => p.name === name);
}

/** Submits one workflow per task name, each task in `poolName`, and publishes their messages. */
async function pooledTasks(poolName: string, names: string[], owner = "alice"): Promise<TaskMessage[]> {
  for (const name of names) {
    await store.submitWorkflow(submission([task(name, [], { pool: poolName })], { owner }));
  }
  return drain();
}

/**
 * Submits one workflow per (owner, task name) pair and publishes their messages: the task names in the
 * order the claim took them, and each message by its task's name.
 */
async function ownersTasks(pairs: readonly (readonly [string, string])[]) {
  for (const [owner, name] of pairs) {
    await store.submitWorkflow(submission([task(name)], { owner }));
  }
  const messages = await drain();
  const names = await taskNames(messages);
  return { names, byName: new Map(messages.map((msg, i) => [names[i]!, msg])) };
}

describe("a pool", () => {
  it("holds a slot exactly while a run starts or runs, parks the rest, and reoffers on the slot's release", async () => {
    await pools.set("gpu", 1);
    const [a, b] = await pooledTasks("gpu", ["a", "b"]);
    const started = await store.startRun(a!, "d1", "local");
    expect(started.kind).toBe("created");
    expect(await store.startRun(b!, "d1", "local")).toEqual({ kind: "stale" });
    expect(await parked()).toEqual({ b: "pool" });
    expect(await pool("gpu")).toMatchObject({ slots: 1, running: 1, waiting: 1 });
    const [reason] = await m.db<{ w: string }[]>`
      select dwop.parked_reason(parked, owner, pool, null) as w from dwop.tasks where name = 'b'`;
    expect(reason!.w).toBe("waiting for pool gpu (1/1 slots busy)");

    // Dispatched and running still hold it; nothing is reoffered.
    if (started.kind !== "created") throw new Error("unreachable");
    await store.markRunDispatched(started.assignment.runId, "job", true);
    expect(await store.reofferParkedTasks(null)).toBe(0);
    expect(await drain()).toEqual([]);

    await store.completeRuns([started.assignment.runId]);
    expect(await pool("gpu")).toMatchObject({ running: 0, waiting: 1 });
    expect(await store.reofferParkedTasks(null)).toBe(1);
    const again = await drain();
    expect(again).toEqual([b]);
    expect(await parked()).toEqual({});
    expect((await store.startRun(b!, "d1", "local")).kind).toBe("created");
    expect(await pool("gpu")).toMatchObject({ running: 1, waiting: 0 });
  });

  const endings: [string, (runId: string, workflowId: string) => Promise<unknown>][] = [
    ["a failure", (runId) => store.increaseAttempt(runId, failure("exit_code"))],
    ["a lost run (its dispatcher restarted)", () => store.reapLostRuns(30, "d1")],
    ["a cancel", (_, workflowId) => store.cancelWorkflow(workflowId)],
    ["a run orphaned by its live dispatcher", () => store.reapOrphanedRuns("d1", [], -1)],
  ];
  for (const [what, end] of endings) {
    it(`is given back by ${what}`, async () => {
      await pools.set("one", 1);
      const [a, b] = await pooledTasks("one", ["a", "b"]);
      const started = await store.startRun(a!, "d1", "local");
      if (started.kind !== "created") throw new Error(`expected a run, got ${started.kind}`);
      await store.startRun(b!, "d1", "local");
      expect(await pool("one")).toMatchObject({ running: 1 });

      await end(started.assignment.runId, started.assignment.workflowId);
      expect(await pool("one")).toMatchObject({ running: 0 });
      expect(await store.reofferParkedTasks(null)).toBe(1);
      expect((await store.startRun((await drain())[0]!, "d2", "local")).kind).toBe("created");
    });
  }

  it("never lets more runs start than it has slots when many dispatchers start at once", async () => {
    await pools.set("three", 3);
    const messages = await pooledTasks(
      "three",
      Array.from({ length: 20 }, (_, i) => `t${i}`),
    );
    // One connection per dispatcher, all at once.
    const dbs = messages.map(() => connectDb(m.url, { max: 1 }));
    try {
      const results = await Promise.all(
        messages.map((msg, i) => new Store(dbs[i]!).startRun(msg, `d${i}`, "local")),
      );
      expect(results.filter((r) => r.kind === "created")).toHaveLength(3);
    } finally {
      await Promise.all(dbs.map((d) => d.end()));
    }
    expect(Object.keys(await parked())).toHaveLength(17);
    expect(await pool("three")).toMatchObject({ running: 3, waiting: 17 });
    // The free slots bound what is reoffered: none now.
    expect(await store.reofferParkedTasks(null)).toBe(0);
  });

  it("counts a shrunk pool's held slots until their runs end, and reoffers when it grows", async () => {
    await pools.set("p", 2);
    const [a, b, c] = await pooledTasks("p", ["a", "b", "c"]);
    const runs = [await store.startRun(a!, "d1", "local"), await store.startRun(b!, "d1", "local")];
    await pools.set("p", 1);
    expect(await pool("p")).toMatchObject({ slots: 1, running: 2 });
    const first = runs[0]!;
    if (first.kind !== "created") throw new Error("unreachable");
    await store.completeRuns([first.assignment.runId]);
    // One run still holds a slot: the pool of 1 is full.
    expect(await store.startRun(c!, "d1", "local")).toEqual({ kind: "stale" });
    expect(await store.reofferParkedTasks(null)).toBe(0);
    await pools.set("p", 2);
    expect(await store.reofferParkedTasks(null)).toBe(1);
  });

  it("refuses a workflow naming an unknown pool, and the delete of a pool in use, changing nothing", async () => {
    const s = submission([task("a", [], { pool: "nope" })]);
    await expect(store.submitWorkflow(s)).rejects.toBeInstanceOf(UnknownPoolError);
    const [row] = await m.db<{ n: number }[]>`select count(*)::int as n from dwop.workflows`;
    expect(row!.n).toBe(0);

    await pools.set("busy", 1);
    const [a] = await pooledTasks("busy", ["a"]);
    expect(await pools.delete("busy")).toBe("in_use");
    expect(await pool("busy")).toBeDefined();
    const run = await store.startRun(a!, "d1", "local");
    if (run.kind !== "created") throw new Error("unreachable");
    await store.completeRuns([run.assignment.runId]);
    expect(await pools.delete("busy")).toBe("deleted");
    expect(await pools.delete("busy")).toBe("not_found");
  });
});

describe("an owner's cap", () => {
  it("parks an owner's tasks over DWOP_OWNER_MAX_RUNNING, not another owner's; a key's maxRunning overrides it", async () => {
    const { names, byName } = await ownersTasks([
      ["alice", "a1"],
      ["alice", "a2"],
      ["bob", "b1"],
    ]);
    // The claim takes owners in turn: alice's first, bob's, then alice's second.
    expect(names).toEqual(["a1", "b1", "a2"]);

    expect((await store.startRun(byName.get("a1")!, "d1", "local", 1)).kind).toBe("created");
    expect((await store.startRun(byName.get("a2")!, "d1", "local", 1)).kind).toBe("stale");
    expect((await store.startRun(byName.get("b1")!, "d1", "local", 1)).kind).toBe("created");
    expect(await parked()).toEqual({ a2: "owner" });
    const [reason] = await m.db<{ w: string }[]>`
      select dwop.parked_reason(parked, owner, pool, 1) as w from dwop.tasks where name = 'a2'`;
    expect(reason!.w).toBe("waiting for a running slot of owner alice (1/1 running)");
    expect(await store.reofferParkedTasks(1)).toBe(0);

    const [key] = await m.db<{ id: string }[]>`select id from dwop.create_api_key('alice', 'ci')`;
    expect(await pools.setKeyMaxRunning(key!.id, 2)).toBe(true);
    expect(await store.reofferParkedTasks(1)).toBe(1);
    expect((await store.startRun((await drain())[0]!, "d1", "local", 1)).kind).toBe("created");
  });

  it("caps an owner by its key's maxRunning where no default cap is set, and no longer once the key is revoked", async () => {
    const [key] = await m.db<{ id: string }[]>`select id from dwop.create_api_key('carol', 'ci')`;
    expect(await pools.setKeyMaxRunning(key!.id, 1)).toBe(true);
    const { byName } = await ownersTasks([
      ["carol", "c1"],
      ["carol", "c2"],
      ["dave", "d1"],
      ["dave", "d2"],
    ]);
    for (const name of ["c1", "c2", "d1", "d2"]) await store.startRun(byName.get(name)!, "d1", "local", null);
    expect(await parked()).toEqual({ c2: "owner" });

    await m.db`update dwop.api_keys set revoked_at = now() where id = ${key!.id}`;
    expect(await store.reofferParkedTasks(null)).toBe(1);
    expect((await store.startRun((await drain())[0]!, "d1", "local", null)).kind).toBe("created");
    expect(await parked()).toEqual({});
  });
});

describe("an owner's cap under concurrency", () => {
  it("never lets more of an owner's runs start than its cap when many dispatchers start at once", async () => {
    await store.submitWorkflow(
      submission(
        Array.from({ length: 20 }, (_, i) => task(`t${i}`)),
        { owner: "alice" },
      ),
    );
    const messages = await drain();
    const dbs = messages.map(() => connectDb(m.url, { max: 1 }));
    try {
      const results = await Promise.all(
        messages.map((msg, i) => new Store(dbs[i]!).startRun(msg, `d${i}`, "local", 3)),
      );
      expect(results.filter((r) => r.kind === "created")).toHaveLength(3);
    } finally {
      await Promise.all(dbs.map((d) => d.end()));
    }
    expect(Object.values(await parked())).toEqual(Array.from({ length: 17 }, () => "owner"));
    expect(await store.reofferParkedTasks(3)).toBe(0);
    expect(await store.reofferParkedTasks(5)).toBe(2);
  });
});

describe("claims", () => {
  it("take owners in turn: one owner's thousand ready tasks do not go ahead of another's one", async () => {
    await store.submitWorkflow(
      submission(
        Array.from({ length: 1000 }, (_, i) => task(`a${i}`)),
        { owner: "alice" },
      ),
    );
    await store.submitWorkflow(submission([task("b")], { owner: "bob" }));
    const first = await taskNames(await drain(10));
    expect(first).toContain("b");
    expect(first.slice(0, 2).sort()).toEqual(["a0", "b"]);
  });

  it("take an owner's higher priorities first, then the oldest", async () => {
    await store.submitWorkflow(
      submission([task("low", [], { priority: -5 }), task("plain"), task("high", [], { priority: 10 })]),
    );
    await store.submitWorkflow(submission([task("later")], { priority: 3 }));
    expect(await taskNames(await drain())).toEqual(["high", "later", "plain", "low"]);
  });
});

function failure(reason: "exit_code") {
  return { reason, message: "boom", exitCode: 1, logTail: null, nonRetryable: false };
}
