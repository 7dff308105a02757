// A shortened chaos soak (chaos/): the whole stack as separate processes under a fixed seed's faults,
// once with the local executor and once with the Kubernetes executor against the API simulator. Any
// invariant violation fails the build; `npm run chaos -- --minutes 30` is the long soak.
import { describe, expect, it } from "vitest";
import { soak } from "./support/chaos-soak.ts";

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
