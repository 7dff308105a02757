import { describe, expect, it } from "vitest";
import { blame } from "../cli/blocked.ts";
import type { WorkflowDetail } from "../cli/client.ts";
import { progressTasks } from "../cli/follow.ts";
import { Progress, readSpacing, taskLine, type ProgressTask } from "../cli/progress.ts";
import { colorsFor } from "../cli/terminal.ts";
import { SseParser } from "../shared/sse.ts";

/** A stream that keeps what is written, as a terminal of the given size or as a pipe. */
function stream(tty: { columns: number; rows: number } | null) {
  const writes: string[] = [];
  return {
    writes,
    text: () => writes.join(""),
    write: (s: string) => writes.push(s),
    isTTY: tty !== null,
    ...tty,
  };
}

const at = new Date("2026-11-26T10:00:00Z");
const task = (name: string, status: string, extra: Partial<ProgressTask> = {}): ProgressTask => ({
  name,
  status,
  attempt: 1,
  startedAt: status === "pending" ? null : at,
  finishedAt: ["succeeded", "failed"].includes(status) ? new Date(at.getTime() + 1500) : null,
  error: null,
  ...extra,
});
const now = () => at.getTime() + 4000;
// eslint-disable-next-line no-control-regex -- terminal escape sequences are what these tests look at
const SGR = /\x1b\[[0-9;]*m/g;
// eslint-disable-next-line no-control-regex -- a foreground color
const COLOR = /\x1b\[3\dm/;

describe("live progress", () => {
  it("prints a line per task change with the bar when stderr is not a terminal, and no escape codes", () => {
    const out = stream(null);
    const p = new Progress(out, { color: false, live: false, now });
    p.update([task("a", "running"), task("b", "pending")]);
    p.update([task("a", "running"), task("b", "pending")]);
    p.update([task("a", "succeeded"), task("b", "failed", { attempt: 2, error: "exit code 3" })]);
    p.finish();
    expect(out.text()).toBe(
      [
        "[------------] 0/2 ◑ a running 4.00s",
        "[------------] 0/2 · b pending",
        "[############] 2/2 ✓ a succeeded 1.50s",
        "[############] 2/2 ✗ b failed attempt 2 1.50s — exit code 3",
        "",
      ].join("\n"),
    );
  });

  it("piped, prints a line for each of 200,000 tasks counting them once an update", () => {
    // The bar of each line counted every task again: 69 s for the first update of 100,000.
    const out = stream(null);
    const p = new Progress(out, { color: false, live: false, now });
    const n = 200_000;
    p.update(Array.from({ length: n }, (_, i) => task(`t${i}`, i === 0 ? "succeeded" : "pending")));
    expect(out.writes).toHaveLength(n);
    expect(out.writes.at(-1)).toBe(`[------------] 1/${n} · t${n - 1} pending\n`);
  });

  it("redraws one block in place on a terminal: lines that fit, the rest counted, and the bar", () => {
    const out = stream({ columns: 60, rows: 8 });
    const p = new Progress(out, { color: false, live: true, now });
    const tasks = [
      ...Array.from({ length: 10 }, (_, i) => task(`done_${i}`, "succeeded")),
      task("a_task_with_a_name_much_longer_than_the_terminal_is_wide", "running"),
      task("broken", "failed", { error: "exit code 1" }),
    ];
    p.update(tasks);
    p.update(tasks.map((t) => (t.name === "done_0" ? { ...t, status: "succeeded" } : t)));
    p.finish();
    const first = out.writes[0]!.split("\n").filter(Boolean);
    // rows - 3 lines of tasks (failed and running ones kept first, shown in the workflow's order), the
    // last of them saying what is hidden, then the bar.
    expect(first).toHaveLength(6);
    expect(first.slice(0, 2)).toEqual(["✓ done_0 succeeded 1.50s", "✓ done_1 succeeded 1.50s"]);
    expect(first[2]).toMatch(/^◑ a_task_with_a_name_much_longer_than_the_terminal_is_w.*…/);
    expect(first[3]).toBe("✗ broken failed 1.50s — exit code 1");
    expect(first[4]).toContain("… 8 more: 8 succeeded");
    expect(first[5]).toContain("11/12 · 1 running · 1 failed");
    for (const line of first) expect(line.replace(SGR, "").length).toBeLessThanOrEqual(59);
    // Nothing changed on screen, so nothing was redrawn.
    expect(out.writes).toHaveLength(1);
    p.note("a message");
    expect(out.writes[1]).toBe("\x1b[6F\x1b[J");
    expect(out.text()).not.toMatch(COLOR);
  });

  it("never shows a negative duration, as a success recorded by a transaction begun before its start's", () => {
    const t = task("load", "succeeded", { finishedAt: new Date(at.getTime() - 10) });
    expect(taskLine(t)).toBe("✓ load succeeded 0.00s");
  });

  it("colors only a terminal, and never with NO_COLOR", () => {
    const tty = stream({ columns: 80, rows: 24 });
    expect(colorsFor(tty, {})).toBe(true);
    expect(colorsFor(tty, { NO_COLOR: "1" })).toBe(false);
    expect(colorsFor(tty, { TERM: "dumb" })).toBe(false);
    expect(colorsFor(stream(null), {})).toBe(false);
    const p = new Progress(tty, { color: true, live: true, now });
    p.update([task("a", "succeeded")]);
    p.finish();
    expect(tty.text()).toContain("\x1b[32m✓\x1b[39m a \x1b[32msucceeded\x1b[39m");
  });
});

describe("a follower's reads of a workflow", () => {
  it("come every floor ms, spaced to four times what the last read took once that is longer, at most 5 s", () => {
    expect([
      readSpacing(100, 8),
      readSpacing(100, 25),
      readSpacing(100, 260),
      readSpacing(200, 3000),
    ]).toEqual([100, 100, 1040, 5000]);
  });
});

describe("the event stream reader", () => {
  it("parses events split anywhere across chunks, with ids, event names, comments and CRLF", () => {
    const text =
      'retry: 1000\r\n\r\n: keepalive\n\nid: 7\ndata: {"a":1}\n\nid: 8\ndata: x\ndata: y\n\nevent: end\ndata: {}\n\n';
    for (let cut = 0; cut < text.length; cut++) {
      const parser = new SseParser();
      const messages = [...parser.push(text.slice(0, cut)), ...parser.push(text.slice(cut))];
      expect(messages).toEqual([
        { id: "7", event: "message", data: '{"a":1}' },
        { id: "8", event: "message", data: "x\ny" },
        { id: null, event: "end", data: "{}" },
      ]);
    }
  });
});

describe("who blocked a task", () => {
  it("is the failed upstream, or the one that blocked its first blocked upstream", () => {
    const blocker = blame([
      { name: "a", status: "failed", upstreams: [] },
      { name: "ok", status: "succeeded", upstreams: [] },
      { name: "b", status: "upstream_failed", upstreams: ["ok", "a"] },
      { name: "c", status: "upstream_failed", upstreams: ["b"] },
      { name: "loop", status: "upstream_failed", upstreams: ["loop"] },
    ]);
    expect(["b", "c", "loop", "ok", "missing"].map(blocker)).toEqual(["a", "a", null, null, null]);
  });

  it("is named for each task of a followed 20,000-task fan-out whose root failed, in one pass", () => {
    // Each blocked task's answer indexed every task again: two minutes for 10,000 at each update.
    const at = (name: string, status: string, upstreams: string[]) => ({
      ...{ name, status, attempt: 1, startedAt: null, finishedAt: null, error: null },
      params: upstreams.map((upstream) => ({ name: "x", upstream })),
    });
    const tasks = [
      at("root", "failed", []),
      ...Array.from({ length: 20_000 }, (_, i) => at(`t${i}`, "upstream_failed", ["root"])),
    ];
    const shown = progressTasks({ tasks } as unknown as WorkflowDetail);
    expect(new Set(shown.slice(1).map((t) => t.blockedBy))).toEqual(new Set(["root"]));
    expect(shown[0]!.blockedBy).toBeNull();
  });
});

describe("a stall and a blocked task in the progress", () => {
  const stall = {
    since: new Date(2026, 11, 4, 12, 3, 4).toISOString(), // 12:03:04 in this machine's zone
    what: "publishing" as const,
    message: "2 tasks not published to the queue: is the broker down, or no claimer running?",
  };

  it("on a terminal, a line under the bar while it lasts, gone once tasks move", () => {
    const out = stream({ columns: 200, rows: 20 });
    const p = new Progress(out, { color: false, live: true, now });
    p.update([task("a", "queued"), task("b", "upstream_failed", { blockedBy: "x" })]);
    p.stall(stall);
    const block = out.writes.at(-1)!.split("\n");
    expect(block.slice(-3)).toEqual([
      "[############------------] 1/2",
      "stalled: 2 tasks not published to the queue: is the broker down, or no claimer running? (since 12:03:04)",
      "",
    ]);
    expect(block).toContain("⊘ b upstream_failed 4.00s — blocked by failed upstream x");
    p.stall(null);
    expect(out.writes.at(-1)).not.toContain("stalled");
    p.finish();
  });

  it("piped, a line when it begins and one when it ends", () => {
    const out = stream(null);
    const p = new Progress(out, { color: false, live: false, now });
    p.stall(stall);
    p.stall(null);
    expect(out.text()).toBe(
      "stalled: 2 tasks not published to the queue: is the broker down, or no claimer running? (since 12:03:04)\n" +
        "no longer stalled: tasks are moving again\n",
    );
  });
});
