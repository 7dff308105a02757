// DWOP_TASK_ALLOW names folders sandboxed runs are shown; one inside a place each run has its own of
// (/dev, /proc, /work, /tmp itself) would be hidden there, and used to turn an `auto` sandbox off at the fork
// server's start. The setting refuses it, naming the folder and the place. A folder below /tmp is shown
// inside the run's own /tmp.
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../shared/config.ts";

const allow = (value: string) => loadConfig({ DWOP_TASK_ALLOW: value }).DWOP_TASK_ALLOW;

describe("DWOP_TASK_ALLOW", () => {
  it("takes absolute folders outside a run's own places, and below /tmp", () => {
    expect(allow("/data:/opt/models:/workspace:/tmpdata:/tmp/wheels")).toEqual([
      "/data",
      "/opt/models",
      "/workspace",
      "/tmpdata",
      "/tmp/wheels",
    ]);
    expect(allow("")).toEqual([]);
  });

  it.each([
    ["/tmp", "/tmp"],
    ["//tmp//", "/tmp"],
    ["/dev/shm/x", "/dev"],
    ["/proc/1", "/proc"],
    ["/work/data", "/work"],
  ])("refuses %s, inside %s", (folder, place) => {
    expect(() => allow(`/data:${folder}`)).toThrow(ConfigError);
    expect(() => allow(`/data:${folder}`)).toThrow(
      `${folder} is inside ${place}, which each sandboxed run has its own of`,
    );
  });

  it("refuses a relative path", () => {
    expect(() => allow("data")).toThrow("must hold absolute paths");
  });
});
