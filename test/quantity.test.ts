import { describe, expect, it } from "vitest";
import { runLimits } from "../shared/executors/local.ts";
import { DEFAULT_TASK_OPTIONS, type RunAssignment } from "../shared/model.ts";
import { parseCpu, parseMemory } from "../shared/quantity.ts";

/** A local run's limits for a task with these options, the defaults being 1 GiB, 1 GiB and 256. */
function limitsOf(options: Partial<RunAssignment["options"]>) {
  const run = { options: { ...DEFAULT_TASK_OPTIONS, ...options } } as RunAssignment;
  return runLimits(run, { memory: 2 ** 30, disk: 2 ** 30, processes: 256 });
}

describe("Kubernetes quantities as a local run reads them", () => {
  it.each([
    ["256Mi", 256 * 2 ** 20],
    ["1.5Gi", 1.5 * 2 ** 30],
    ["1G", 1e9],
    ["1048576", 2 ** 20],
    ["0.5", 1],
    // More than any machine: that much (8 PiB), not a quantity to ignore for the default.
    ["8E", Number.MAX_SAFE_INTEGER],
    ["99999999999999999999999999999999", Number.MAX_SAFE_INTEGER],
  ])("memory %s is %d bytes", (text, bytes) => {
    expect(parseMemory(text)).toBe(bytes);
  });

  it.each(["", "0", "-1Mi", "1.5.2Gi", "1mi", "1Gib", "Gi"])("memory %j is no quantity", (text) => {
    expect(parseMemory(text)).toBeNull();
  });

  it("gives a task its @memory, however large, and its @cpu over its timeout", () => {
    expect(limitsOf({ memory: "8E" }).memory).toBe(Number.MAX_SAFE_INTEGER);
    expect(limitsOf({ memory: "64Mi" }).memory).toBe(64 * 2 ** 20);
    expect(limitsOf({}).memory).toBe(2 ** 30);
    expect(limitsOf({ cpu: "500m", timeoutSeconds: 10 }).cpuSeconds).toBe(5);
    expect(limitsOf({ cpu: "2" }).cpuSeconds).toBe(0);
    expect(parseCpu("500m")).toBe(0.5);
  });
});
