// A local run's small output and log come back to the dispatcher, which stores them before it records the
// success: an output that cannot be stored fails its attempt as an infrastructure loss (retried), and is
// never recorded as a success.
import { afterEach, describe, expect, it } from "vitest";
import type { LocalStorage } from "../shared/storage/local.ts";
import type { Storage } from "../shared/storage/storage.ts";
import { startEngine, type Engine } from "./support/engine.ts";

const CHAIN = `fun a():
    print("A")

fun b(x:a):
    print(open("x").read().strip() + "B")
`;

/** The engine's storage, each put of a task's output handed to `put` with the real put to call. */
function outputsThrough(put: (key: string, store: () => Promise<void>) => Promise<void>) {
  return (storage: LocalStorage): Storage =>
    new Proxy(storage, {
      get(target, prop) {
        if (prop === "put") {
          return (bucket: string, key: string, body: Uint8Array | string) => {
            const store = () => target.put(bucket, key, body);
            return key.endsWith(".output.txt") ? put(key, store) : store();
          };
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

  it("fails the attempt as lost when its output cannot be stored, and records the next one's success", async (ctx) => {
    let refused = 0;
    engine = await startEngine(ctx.task.name, {
      bus: "rabbit",
      wrapStorage: outputsThrough(async (key, store) => {
        if (key.includes("/a/attempt-") && refused++ === 0) throw new Error("disk full");
        await store();
      }),
    });
    const id = await engine.submit(CHAIN);
    const summary = await engine.waitFor(id);
    expect(summary.status).toBe("succeeded");
    const attempts = await runs(id, "a");
    expect(attempts.map((r) => [r.status, r.reason])).toEqual([
      ["lost", "lost"],
      ["succeeded", null],
    ]);
    expect(attempts[0]!.error).toContain("storing the output: disk full");
    expect(await engine.output(id, "b")).toBe("AB\n");
  });
});
