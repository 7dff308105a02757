import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startDevServer, type DevServer } from "./support/api-server.ts";
import { until } from "./support/until.ts";

/**
 * Seeing into a task while it runs, through `dwop dev` as a user runs it (the API, the embedded engine,
 * sandboxed local runs): the log while the attempt runs (GET .../logs and the event stream), a killed
 * attempt's log kept, failures that name the exception and the workflow file's line, an upstream-failed
 * task that names its blocker, and an output storage refuses failing as the task's own.
 */

let server: DevServer;
let flags: string;
let passed = true;

interface Task {
  name: string;
  status: string;
  error: string | null;
  runs?: { status: string; failureReason: string | null }[];
}
interface Workflow {
  id: string;
  status: string;
  tasks: Task[];
}

async function call(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${server.url}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${server.token}`, ...init.headers },
  });
}

async function submit(workflow: string, name: string): Promise<string> {
  const res = await call("/workflows", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ workflow, name }),
  });
  expect(res.status, await res.clone().text()).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

async function workflow(id: string): Promise<Workflow> {
  return (await (await call(`/workflows/${id}`)).json()) as Workflow;
}

async function settled(id: string): Promise<Workflow> {
  let last: Workflow | null = null;
  await until(
    async () => {
      last = await workflow(id);
      return ["succeeded", "failed", "cancelled"].includes(last.status);
    },
    90_000,
    () => `workflow ${id} to end: ${JSON.stringify(last)}`,
  );
  return last!;
}

async function logs(id: string, task: string, query = "") {
  const res = await call(`/workflows/${id}/tasks/${task}/logs${query}`);
  return {
    status: res.status,
    text: await res.text(),
    size: res.headers.get("x-log-size"),
    complete: res.headers.get("x-log-complete"),
  };
}

/** A body that prints a line, then waits for the test's flag file. */
function waitsForFlag(flag: string, before: string, after: string): string {
  return [
    `    import os, sys, time`,
    `    print(${JSON.stringify(before)})`,
    `    print("to stderr", file=sys.stderr)`,
    `    while not os.path.exists(${JSON.stringify(join(flags, flag))}):`,
    `        time.sleep(0.05)`,
    `    print(${JSON.stringify(after)})`,
  ].join("\n");
}

beforeAll(async () => {
  flags = await mkdtemp(join(tmpdir(), "dwop-live-flags-"));
  await chmod(flags, 0o755); // tasks run as a uid of their own
  server = await startDevServer("logs-live", {
    DWOP_TASK_ALLOW: flags,
    DWOP_TASK_NETWORK: "none",
    DWOP_STORAGE_MAX_OBJECT_SIZE: "1Mi",
  });
}, 120_000);

afterEach((ctx) => {
  if (ctx.task.result?.state === "fail") passed = false;
});

afterAll(async () => {
  await server?.stop(passed);
  if (passed) await rm(flags, { recursive: true, force: true });
});

describe("live logs", () => {
  it("serves a running attempt's lines while it runs, on GET and on the event stream, then the whole log", async () => {
    const id = await submit(`fun slow():\n${waitsForFlag("slow", "first line", "last line")}\n`, "live");
    const events = await call(`/workflows/${id}/events`);
    const reader = events.body!.pipeThrough(new TextDecoderStream()).getReader();
    let streamed = "";
    const streaming = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        streamed += value;
      }
    })();

    let live = await logs(id, "slow");
    await until(
      async () => {
        live = await logs(id, "slow");
        return live.text.includes("first line");
      },
      60_000,
      () => `the first line in the running task's log: ${JSON.stringify(live)}`,
    );
    expect(live.status).toBe(200);
    expect(live.complete).toBe("false");
    expect(live.text).toBe("first line\nto stderr\n");
    expect(Number(live.size)).toBe(Buffer.byteLength(live.text));
    expect((await workflow(id)).tasks[0]!.status).toBe("running");

    const rest = await logs(id, "slow", `?offset=${live.size}`);
    expect(rest).toMatchObject({ text: "", complete: "false", size: live.size });
    await until(
      async () => streamed.includes("event: log"),
      30_000,
      () => `a log event on the stream: ${streamed}`,
    );
    const logEvent = /event: log\ndata: (.*)\n/.exec(streamed)![1]!;
    expect(JSON.parse(logEvent)).toEqual({
      task: "slow",
      attempt: 1,
      offset: 0,
      text: "first line\nto stderr\n",
    });

    await writeFile(join(flags, "slow"), "");
    expect((await settled(id)).status).toBe("succeeded");
    await streaming;
    const whole = await logs(id, "slow");
    expect(whole).toMatchObject({
      status: 200,
      complete: "true",
      text: "first line\nto stderr\nlast line\n",
    });
    expect((await logs(id, "slow", `?offset=${live.size}`)).text).toBe("last line\n");
    const sql = postgres(server.database.url, { max: 1 });
    try {
      const [row] = await sql<{ n: number }[]>`select count(*)::int as n from dwop.run_log_chunks`;
      expect(row!.n, "the stored log replaces the live chunks").toBe(0);
    } finally {
      await sql.end();
    }
  });

  it("keeps a cancelled attempt's log up to the moment it was killed", async () => {
    const id = await submit(`fun stuck():\n${waitsForFlag("never", "started", "never printed")}\n`, "cancel");
    await until(
      async () => (await logs(id, "stuck")).text.includes("started"),
      60_000,
      "the running task's first line",
    );
    expect((await call(`/workflows/${id}/cancel`, { method: "POST" })).status).toBe(200);
    expect((await settled(id)).status).toBe("cancelled");
    await until(
      async () => (await logs(id, "stuck")).complete === "true",
      30_000,
      "the cancelled attempt's log to be complete",
    );
    expect(await logs(id, "stuck")).toMatchObject({ status: 200, text: "started\nto stderr\n" });
  });
});

describe("failures that explain themselves", () => {
  it("names the exception and the workflow file's line, and the upstream that blocked a task", async () => {
    const source = [
      "fun extract():",
      '    print("a,b,c")',
      '    print("d,e")',
      "",
      "fun transform(raw:extract):",
      "    rows = open('raw').read().splitlines()",
      "    for n, row in enumerate(rows, 41):",
      "        if len(row.split(',')) != 3:",
      "            raise ValueError(f'bad row {n}: expected 3 columns, got {len(row.split(\",\"))}')",
      "",
      "fun load(t:transform):",
      "    print(open('t').read())",
      "",
    ].join("\n");
    const id = await submit(source, "etl");
    const done = await settled(id);
    expect(done.status).toBe("failed");
    const byName = Object.fromEntries(done.tasks.map((t) => [t.name, t]));
    expect(byName.transform).toMatchObject({
      status: "failed",
      error: "ValueError: bad row 42: expected 3 columns, got 2",
    });
    expect(byName.load).toMatchObject({
      status: "upstream_failed",
      error: "blocked by failed upstream transform",
    });
    const log = await logs(id, "transform");
    expect(log.text).toContain(`File "etl.workflow", line 9, in transform\n`);
    expect(log.text).toContain("raise ValueError(");
  });

  it("fails a task whose output storage refuses as the task's own failure, with storage's reason, once", async () => {
    const id = await submit(`fun big():\n    print("x" * (2 * 1024 * 1024))\n`, "big");
    const done = await settled(id);
    const big = done.tasks[0]!;
    expect(big.status).toBe("failed");
    expect(big.error).toMatch(/^storage refused the output: HTTP 413: .*EntityTooLarge/);
    expect(big.runs?.map((r) => r.failureReason)).toEqual(["output_rejected"]);
  });
});
