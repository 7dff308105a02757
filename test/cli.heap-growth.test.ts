// The API's process bounds its heap's growth between full collections (a big submit's peak memory),
// unless node was started with a growth of its own.
import { describe, expect, it } from "vitest";
import { boundHeapGrowth, HEAP_GROWING_PERCENT } from "../cli/heap-growth.ts";

describe("boundHeapGrowth", () => {
  it("sets V8's heap growth when node was given none", () => {
    const set: string[] = [];
    expect(boundHeapGrowth(["--enable-source-maps"], (flags) => set.push(flags))).toBe(true);
    expect(set).toEqual([`--heap-growing-percent=${HEAP_GROWING_PERCENT}`]);
  });

  it("keeps the growth node was started with, however it is spelled", () => {
    for (const argv of [["--heap-growing-percent=300"], ["--heap_growing_percent", "50"]]) {
      const set: string[] = [];
      expect(boundHeapGrowth(argv, (flags) => set.push(flags))).toBe(false);
      expect(set).toEqual([]);
    }
  });
});
