// The Batcher behind the dispatcher's start_runs, mark_runs_dispatched and complete_runs calls.
import { describe, expect, it } from "vitest";
import { Batcher } from "../shared/batcher.ts";

/** A promise the test resolves or rejects. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * A batcher that records each flush, whose first one (of "a", added here) is in flight, held until `gate`
 * is resolved.
 */
async function firstFlushHeld(maxBatch?: number) {
  const gate = deferred<void>();
  const flushes: string[][] = [];
  const b = new Batcher(async (items: string[]) => {
    flushes.push(items);
    if (flushes.length === 1) await gate.promise;
    return items;
  }, maxBatch);
  const first = b.add("a");
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  return { b, gate, flushes, first };
}

describe("Batcher", () => {
  it("flushes what one turn of the event loop adds as one batch, each caller getting its own result", async () => {
    const flushes: number[][] = [];
    const b = new Batcher(async (items: number[]) => {
      flushes.push(items);
      return items.map((i) => i * 10);
    });
    // A wave of deliveries reaching the same step together, one microtask apart.
    const results = Promise.all(
      [1, 2, 3].map(async (i) => {
        for (let k = 0; k < i; k++) await Promise.resolve();
        return b.add(i);
      }),
    );
    expect(await results).toEqual([10, 20, 30]);
    expect(flushes).toEqual([[1, 2, 3]]);
  });

  it("sends what arrives during a flush together in the next one, and up to maxBatch at a time", async () => {
    const { b, gate, flushes, first } = await firstFlushHeld(2);
    const later = ["b", "c", "d"].map((x) => b.add(x));
    gate.resolve();
    expect(await Promise.all([first, ...later])).toEqual(["a", "b", "c", "d"]);
    expect(flushes).toEqual([["a"], ["b", "c"], ["d"]]);
  });

  it("rejects only the items of a batch whose flush failed", async () => {
    const gate = deferred<void>();
    let calls = 0;
    const b = new Batcher(async (items: string[]) => {
      calls += 1;
      if (calls === 1) {
        await gate.promise;
        throw new Error("deadlock detected");
      }
      return items.map((x) => x.toUpperCase());
    });
    const failed = b.add("a");
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    const next = b.add("b");
    gate.resolve();
    await expect(failed).rejects.toThrow("deadlock detected");
    expect(await next).toBe("B");
  });

  it("gives back an item still waiting, which goes in no flush; not one a flush in flight carries", async () => {
    const { b, gate, flushes, first } = await firstFlushHeld();
    const waiting = ["b", "c"].map((x) => b.add(x));
    expect(b.withdraw((x) => x === "a")).toBeNull();
    const taken = b.withdraw((x) => x === "b");
    expect(taken?.item).toBe("b");
    taken!.resolve("settled by its taker");
    gate.resolve();
    expect(await Promise.all([first, ...waiting])).toEqual(["a", "settled by its taker", "c"]);
    expect(flushes).toEqual([["a"], ["c"]]);
  });
});
