// A dispatcher consumes while it has a free slot. One whose slots are all taken keeps its subscription
// for a moment (FULL_GRACE_MS in dispatcher/dispatcher.ts): short runs free their slots within it, and
// unsubscribing and subscribing again each time its slots filled cost a fifth of its throughput. One
// whose runs are long still stops consuming, so new tasks go to a dispatcher with room.
import { afterEach, describe, expect, it } from "vitest";
import { fanWorkflow } from "../bench/stats.ts";
import { NoopExecutor } from "../bench/noop-executor.ts";
import type { Bus } from "../shared/bus/bus.ts";
import type { Executor, RunOutcome, StartedRun } from "../shared/executors/executor.ts";
import type { RunAssignment } from "../shared/model.ts";
import { forwarding } from "./support/bus-contract.ts";
import { startEngine, type BusKind, type Engine } from "./support/engine.ts";
import { until } from "./support/until.ts";

let engine: Engine | null = null;
afterEach(async (ctx) => {
  await engine?.stop(ctx.task.result?.state === "pass");
  engine = null;
});

/** The bus, counting each subscription a dispatcher makes. */
function countingConsumes(counter: { n: number }): (bus: Bus) => Bus {
  return (bus) => ({
    ...forwarding(bus),
    consume: (handler, options) => {
      counter.n += 1;
      return bus.consume(handler, options);
    },
  });
}

/** Holds every run of a task whose name starts with "long" until released; ends the others at once. */
class HoldingExecutor implements Executor {
  readonly kind = "local" as const;
  readonly runsIn = "process" as const;
  readonly seen: string[] = [];
  private readonly held = new Map<string, RunAssignment>();
  private readonly listeners: ((run: RunAssignment, outcome: RunOutcome) => void)[] = [];

  async start(run: RunAssignment): Promise<StartedRun> {
    this.seen.push(run.taskName);
    if (run.taskName.startsWith("long")) this.held.set(run.runId, run);
    else setImmediate(() => this.finish(run));
    return { jobName: `held-${run.runId}` };
  }

  releaseAll(): void {
    for (const run of [...this.held.values()]) this.finish(run);
  }

  private finish(run: RunAssignment): void {
    this.held.delete(run.runId);
    for (const l of this.listeners) l(run, { kind: "succeeded" });
  }

  async kill(runId: string): Promise<boolean> {
    return this.held.delete(runId);
  }

  active(): string[] {
    return [...this.held.keys()];
  }

  onFinished(listener: (run: RunAssignment, outcome: RunOutcome) => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {}
}

describe.each<BusKind>(["rabbit", "pgboss"])("a dispatcher's subscription (%s)", (bus) => {
  it("stays open while short runs fill and free its slots", async () => {
    const consumes = { n: 0 };
    engine = await startEngine(`flow_short_${bus}`, {
      bus,
      concurrency: 2,
      executor: () => new NoopExecutor(),
      wrapPublisher: countingConsumes(consumes),
    });
    const id = await engine.submit(fanWorkflow(198));
    expect((await engine.waitFor(id, 60_000)).status).toBe("succeeded");
    // Its slots filled on nearly every start of the 200 runs: before FULL_GRACE_MS, it unsubscribed and
    // subscribed again each time (91 and 99 subscriptions, on the two buses).
    expect(consumes.n, `${consumes.n} subscriptions for 200 runs`).toBeLessThanOrEqual(5);
  });

  it("closes once a long run holds its only slot: new tasks go to the dispatcher with room", async () => {
    // The engine makes each dispatcher's executor, then its bus: the i-th of each are one dispatcher's.
    const executors: HoldingExecutor[] = [];
    const delivered: string[][] = [];
    engine = await startEngine(`flow_long_${bus}`, {
      bus,
      dispatchers: 2,
      concurrency: 1,
      executor: () => {
        const e = new HoldingExecutor();
        executors.push(e);
        return e;
      },
      wrapPublisher: (inner) => {
        const seen: string[] = [];
        delivered.push(seen);
        return {
          ...forwarding(inner),
          consume: (handler, options) =>
            inner.consume((d) => (seen.push(d.body.taskId), handler(d)), options),
        };
      },
    });
    const long = await engine.submit("fun long():\n    pass\n");
    await until(async () => executors.some((e) => e.active().length > 0), 20_000, "the long run started");
    const full = executors.findIndex((e) => e.active().length > 0);
    const other = 1 - full;
    await new Promise((r) => setTimeout(r, 1000)); // well past the grace: the full one stopped consuming
    const before = delivered[full]!.length;

    const short = await engine.submit(
      ["s1", "s2", "s3", "s4"].map((name) => `fun ${name}():\n    pass\n`).join("\n"),
    );
    expect((await engine.waitFor(short, 30_000)).status).toBe("succeeded");
    // Not one of them was delivered to the full dispatcher (to wait there for a slot, then go back).
    expect(delivered[full]!.length).toBe(before);
    expect(executors[full]!.seen).toEqual(["long"]);
    expect([...executors[other]!.seen].sort()).toEqual(["s1", "s2", "s3", "s4"]);

    executors[full]!.releaseAll();
    expect((await engine.waitFor(long, 30_000)).status).toBe("succeeded");
  });
});
