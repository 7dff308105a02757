// A local run's small output and log come back to the dispatcher, which stores them before it records the
// success; a larger output its worker uploads to its attempt's own object, which the dispatcher moves to
// the task's path. An output that cannot be stored or moved fails its attempt as an infrastructure loss
// (retried), and is never recorded as a success.
import { afterEach, describe, expect, it } from "vitest";
import type { LocalStorage } from "../shared/storage/local.ts";
import type { Storage } from "../shared/storage/storage.ts";
import { startEngine, type Engine } from "./support/engine.ts";

const CHAIN = `fun a():
    print("A")

fun b(x:a):
    print(open("x").read().strip() + "B")
`;

/**
 * The engine's storage, each put of a task's output, and each move of one into place, handed to `put`
 * with the task's output path and the real call to make.
 */
function outputsThrough(put: (key: string, store: () => Promise<void>) => Promise<void>) {
  return (storage: LocalStorage): Storage =>
    new Proxy(storage, {
      get(target, prop) {
        if (prop === "put") {
          return (bucket: string, key: string, body: Uint8Array | string) => {
            const store = () => target.put(bucket, key, body);
            return key.endsWith("/output.txt") ? put(key, store) : store();
          };
        }
        if (prop === "move") {
          return (bucket: string, from: string, to: string) => put(to, () => target.move(bucket, from, to));
        }
        const value: unknown = Reflect.get(target, prop);
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
}

describe("a local run's output stored by the dispatcher", () => {
  let engine: Engine;
  afterEach(async (ctx) => {
    await engine?.stop(ctx.task.result?.state === "pass");
  });

  /** Task `name`'s runs of the workflow: status, failure reason and error, in attempt order. */
  async function runs(workflowId: string, name: string) {
    return engine.m.db<{ status: string; reason: string | null; error: string | null }[]>`
      select r.status, r.failure_reason as reason, r.error from dwop.runs r join dwop.tasks t on t.id = r.task_id
      where t.workflow_id = ${workflowId} and t.name = ${name} order by r.attempt`;
  }

  it.each([
    ["stored by the dispatcher", "A"],
    [
      "uploaded by its worker (past the executor's 64 KiB inline limit) and moved into place",
      "A".repeat(100000),
    ],
  ])(
    "fails the attempt as lost when an output %s, and records the next one's success",
    async (_how, printed) => {
      let refused = 0;
      engine = await startEngine(`output_refused_${printed.length}`, {
        bus: "rabbit",
        wrapStorage: outputsThrough(async (key, store) => {
          if (key.endsWith("/a/output.txt") && refused++ === 0) throw new Error("disk full");
          await store();
        }),
      });
      const id = await engine.submit(CHAIN.replace('print("A")', `print("A" * ${printed.length})`));
      expect((await engine.waitFor(id)).status).toBe("succeeded");
      const attempts = await runs(id, "a");
      expect(attempts.map((r) => [r.status, r.reason])).toEqual([
        ["lost", "lost"],
        ["succeeded", null],
      ]);
      expect(attempts[0]!.error).toContain("storing the output: disk full");
      expect(await engine.output(id, "b")).toBe(`${printed}B\n`);
      expect(refused).toBe(2); // attempt 1's, refused; attempt 2's, made
    },
  );

  it("holds a run while its uploaded output is moved: a retry waits, and the output stays the recorded attempt's", async (ctx) => {
    // The dispatcher is paused (here: its move held) between the run's end and the move; meanwhile the
    // others retry the run as lost, as they do a silent dispatcher's. The late move must not replace the
    // output of the attempt recorded as the success, which the downstream task reads.
    let release: () => void = () => {};
    const released = new Promise<void>((r) => (release = r));
    let held: () => void = () => {};
    const holding = new Promise<void>((r) => (held = r));
    let moved = false;
    engine = await startEngine(ctx.task.name, {
      bus: "rabbit",
      wrapStorage: outputsThrough(async (key, store) => {
        if (key.endsWith("/a/output.txt") && !moved) {
          moved = true;
          held();
          await released;
        }
        await store();
      }),
    });
    const id = await engine.submit(
      'fun a():\n    import os\n    print("A" + os.environ["DWOP_ATTEMPT"] + "x" * 100000)\n\n' +
        'fun b(x:a):\n    print(open("x").read()[:2])\n',
    );
    await holding;
    const [first] = await engine.m.db<{ id: string }[]>`
      select r.id from dwop.runs r join dwop.tasks t on t.id = r.task_id
      where t.workflow_id = ${id} and t.name = 'a' and r.attempt = 1`;
    const lost = { reason: "lost" as const, message: "declared lost", exitCode: null, logTail: null };
    const retry = engine.m.store.increaseAttempt(first!.id, { ...lost, nonRetryable: false });
    const early = await Promise.race([retry, new Promise((r) => setTimeout(() => r("waiting"), 500))]);
    release();
    expect(early, "the retry waits for the move").toBe("waiting");
    const retried = await retry;
    expect((await engine.waitFor(id)).status).toBe("succeeded");
    const attempts = await runs(id, "a");
    // Either the retry came first (attempt 2 succeeded, its output placed after the held one) or the
    // success's record did (the retry was ignored): the output is the recorded attempt's, either way.
    const recorded = retried === "retried" ? "A2" : "A1";
    expect(attempts.at(-1)!.status).toBe("succeeded");
    expect(attempts).toHaveLength(retried === "retried" ? 2 : 1);
    expect((await engine.output(id, "a")).slice(0, 2)).toBe(recorded);
    expect(await engine.output(id, "b")).toBe(`${recorded}\n`);
  });
});
