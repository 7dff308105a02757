// A shortened chaos soak (chaos/): the whole stack as separate processes under a fixed seed's faults,
// once with the local executor and once with the Kubernetes executor against the API simulator. Any
// invariant violation fails the build; `npm run chaos -- --minutes 30` is the long soak.
import { describe, expect, it } from "vitest";
import { formatPass } from "../chaos/report.ts";
import { runPass, type Executor } from "../chaos/run.ts";

const SEED = 1126;

async function soak(executor: Executor, durationMs: number) {
  const report = await runPass({
    executor,
    seed: SEED,
    durationMs,
    settleTimeoutMs: 60_000,
    meanFaultGapMs: 5000,
    maxInFlight: 5,
    fanout: 20,
    brokerRestart: false, // never in the test suite: other suites share the broker
    say: () => {},
  });
  const text = formatPass(report);
  if (report.violations > 0) console.error(text);
  return { report, text };
}

describe("chaos soak (short, fixed seed)", () => {
  it("local executor: every invariant holds after faults of every kind", async () => {
    const { report, text } = await soak("local", 55_000);
    expect(report.violations, text).toBe(0);
    expect(report.settleMs, text).not.toBeNull();
    expect(Object.values(report.faults).reduce((a, b) => a + b, 0)).toBeGreaterThan(5);
    // Work was done under the faults; how much in the time is a figure for bench/, not a test.
    expect(report.succeededTasks).toBeGreaterThan(0);
  }, 150_000);

  it("Kubernetes executor against the API simulator: every invariant holds, no Job left behind", async () => {
    const { report, text } = await soak("kubernetes", 35_000);
    expect(report.violations, text).toBe(0);
    expect(report.rows.map((r) => r.name)).toContain("no Kubernetes Job left behind");
    expect(report.succeededTasks).toBeGreaterThan(0);
  }, 130_000);
});
