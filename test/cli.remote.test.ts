import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { WorkflowDetail, WorkflowList } from "../functions/schemas.ts";
import { startDevServer, type DevServer } from "./support/api-server.ts";
import { dwopClient, type CliResult } from "./support/cli-client.ts";
import { spawnDwop } from "./support/dev-process.ts";
import { TcpProxy } from "./support/tcp-proxy.ts";
import { until } from "./support/until.ts";

// The client commands against `dwop dev` run as its own process, as a script would use them.

const ROOT = fileURLToPath(new URL("..", import.meta.url));

let server: DevServer;
let dir: string;
let passed = true;

beforeAll(async () => {
  server = await startDevServer("cli_remote", { DWOP_RETRY_BACKOFF_MS: "0" });
  dir = await mkdtemp(join(tmpdir(), "dwop-cli-remote-"));
}, 90_000);
afterEach((ctx) => {
  if (ctx.task.result?.state !== "pass") {
    passed = false;
    console.error(server.stderr());
  }
});
afterAll(async () => {
  await server?.stop(passed);
  if (passed) await rm(dir, { recursive: true, force: true });
}, 60_000);

/** `dwop ARGS` with DWOP_URL and DWOP_TOKEN of the test's server, stdout and stderr piped (no terminal). */
const dwop = (args: string[], env: Record<string, string> = {}) => dwopClient(server, dir, args, env);

async function file(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

const ETL = join(ROOT, "examples/etl.workflow");

/** A port nothing listens on: one the system just gave out and took back. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
const json = (r: CliResult) => JSON.parse(r.stdout) as unknown;

describe("dwop against a server", () => {
  let etl: string;

  it("submit --wait follows the seed example to the end: progress on stderr, the workflow as JSON, exit 0", async () => {
    const r = await dwop(["submit", ETL, "--wait", "--json"]);
    expect(r.code).toBe(0);
    const w = WorkflowDetail.parse(json(r));
    etl = w.id;
    expect(w).toMatchObject({ name: "etl", status: "succeeded" });
    expect(w.tasks.map((t) => [t.name, t.status, t.attempt])).toEqual([
      ["extract", "succeeded", 1],
      ["transform", "succeeded", 1],
      ["load", "succeeded", 1],
    ]);
    // Not a terminal: a line per change, each with the bar, and no escape codes.
    expect(r.stderr).toMatch(/\[#+\] 3\/3 ✓ load succeeded \d+\.\d+s/);
    expect(r.stderr).toContain(`workflow ${w.id} succeeded`);
    expect(r.stderr).not.toContain("\x1b");
  });

  it("reads a workflow back: status, list, output, logs and graph, each as text and as JSON", async () => {
    // Independent reads, run side by side: each `dwop` is a process of its own.
    const [
      status,
      statusJson,
      list,
      failedList,
      table,
      output,
      outputJson,
      logs,
      logsJson,
      mermaid,
      dot,
      graph,
    ] = await Promise.all([
      dwop(["status", etl]),
      dwop(["status", etl, "--json"]),
      dwop(["list", "--json"]),
      dwop(["list", "--status", "failed", "--json"]),
      dwop(["list"]),
      dwop(["output", etl, "load"]),
      dwop(["output", etl, "extract", "--json"]),
      dwop(["logs", etl, "load"]),
      dwop(["logs", etl, "load", "--json"]),
      dwop(["graph", etl]),
      dwop(["graph", ETL, "--format", "dot"]),
      dwop(["graph", etl, "--json"]),
    ]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`^etl ${etl} succeeded`));
    expect(status.stdout).toMatch(/✓ transform succeeded/);
    expect(WorkflowDetail.parse(json(statusJson)).id).toBe(etl);

    expect(WorkflowList.parse(json(list)).workflows.map((w) => w.id)).toContain(etl);
    expect(WorkflowList.parse(json(failedList)).workflows).toEqual([]);
    expect(table.stdout.split("\n")[0]).toMatch(/^ID\s+STATE\s+TASKS\s+SUBMITTED\s+TOOK\s+SCHEDULE\s+NAME$/);
    expect(table.stdout).toMatch(new RegExp(`${etl}  succeeded  3 `));
    // No schedule started it.
    expect(table.stdout).toMatch(new RegExp(`${etl}  succeeded .* -  +\\S+\\n`));

    expect(output.stdout).toBe("Loading: LISBON 69.8F\nLoading: OSLO 39.2F\nLoading: LIMA 64.4F\n");
    expect(json(outputJson)).toEqual({
      workflowId: etl,
      task: "extract",
      output: expect.stringContaining('"city": "Lisbon"'),
    });
    expect(logs.stdout).toContain("Loading: LIMA 64.4F");
    expect(json(logsJson)).toEqual({
      workflowId: etl,
      task: "load",
      attempt: 1,
      status: "succeeded",
      log: expect.stringContaining("Loading: OSLO 39.2F"),
    });

    expect(mermaid.stdout).toContain("t_extract -->");
    expect(mermaid.stdout).toContain("style t_load fill:#86efac");
    expect(dot.stdout).toContain('"transform" -> "load"');
    expect(json(graph)).toEqual({
      nodes: ["extract", "transform", "load"].map((name) => ({ name, kind: "task", status: "succeeded" })),
      edges: [
        { from: "extract", to: "transform", param: "raw" },
        { from: "transform", to: "load", param: "processed" },
      ],
    });
  }, 120_000);

  it("exits 1 when a workflow fails, shows the failing log, retries it, and follows the rerun's log", async () => {
    // Fails on its first attempt: a sandboxed task sees no folder of the test's to keep a flag in.
    const flaky = await file(
      "flaky.workflow",
      `fun flaky():\n    import os, sys\n    print("trying", flush=True)\n    if os.environ["DWOP_ATTEMPT"] == "1":\n        sys.exit("no flag yet")\n    print("fixed")\n\nfun after(x:flaky):\n    print(open("x").read().upper())\n`,
    );
    const failed = await dwop(["submit", flaky, "--wait"]);
    expect(failed.code).toBe(1);
    const id = failed.stdout.trim();
    expect(failed.stderr).toMatch(/✗ flaky failed .* — exit code 1/);
    expect(failed.stderr).toMatch(/⊘ after upstream_failed — blocked by failed upstream flaky/);
    const status = await dwop(["status", id]);
    expect(status.code).toBe(1);
    expect(status.stdout).toMatch(/⊘ after upstream_failed — blocked by failed upstream flaky/);
    expect(await dwop(["logs", id, "after"])).toMatchObject({
      code: 1,
      stderr: "dwop: task 'after' never ran: blocked by failed upstream flaky\n",
    });
    const log = await dwop(["logs", id, "flaky"]);
    expect(log).toMatchObject({ code: 0 });
    expect(log.stdout).toContain("trying\nno flag yet");
    expect(await dwop(["logs", id, "flaky", "--attempt", "7"])).toMatchObject({
      code: 1,
      stderr: "dwop: task 'flaky' has no attempt 7: it has had one attempt\n",
    });
    expect((await dwop(["cancel", id])).code).toBe(1); // it has ended: 409

    const retried = await dwop(["retry", id, "--json"]);
    expect(retried.code).toBe(0);
    expect(["queued", "running"]).toContain(WorkflowDetail.parse(json(retried)).status);
    const follow = await dwop(["logs", id, "after", "--follow", "--json"]);
    expect(follow.code).toBe(0);
    // A line per piece of the log as it came, each at its byte offset; the last with the final status.
    const pieces = follow.stdout
      .trim()
      .split("\n")
      .map(
        (l) =>
          JSON.parse(l) as {
            workflowId: string;
            task: string;
            attempt: number;
            offset: number;
            status: string | null;
            log: string;
          },
      );
    expect(pieces.every((x) => x.workflowId === id && x.task === "after" && x.attempt === 1)).toBe(true);
    expect(pieces.map((x) => x.log).join("")).toBe("TRYING\nFIXED\n\n");
    expect(pieces.at(-1)!.status).toBe("succeeded");
    let at = 0;
    for (const x of pieces) {
      expect(x.offset).toBe(at);
      at += Buffer.byteLength(x.log);
    }
    const both = await dwop(["logs", id, "flaky", "--follow"]);
    expect(both.code).toBe(0);
    expect(both.stderr).toMatch(/attempt 1: failed \(exit_code 1\)[\s\S]*attempt 2: succeeded/);
    expect(both.stdout).toBe("trying\nno flag yet\ntrying\nfixed\n");
    expect((await dwop(["status", id])).code).toBe(0);
  }, 120_000);

  it("logs prints a running task's log so far, and logs --follow its lines as they come until it ends", async () => {
    const ticker = await file(
      "ticker.workflow",
      'fun ticker():\n    import time\n    print("tick")\n    time.sleep(120)\n',
    );
    const id = (await dwop(["submit", ticker])).stdout.trim();
    const follow = spawnDwop(["logs", id, "ticker", "--follow"], {
      DWOP_URL: server.url,
      DWOP_TOKEN: server.token,
      DWOP_HOME: join(dir, "home"),
    });
    try {
      await until(async () => follow.stdout().includes("tick\n"), 60_000);
      // The line came while the attempt still runs (it sleeps for two minutes after it).
      const w = WorkflowDetail.parse(json(await dwop(["status", id, "--json"])));
      expect(w.tasks[0]!.status).toBe("running");
      expect((await dwop(["logs", id, "ticker"])).stdout).toBe("tick\n");
      expect((await dwop(["cancel", id])).code).toBe(0);
      expect(await follow.exited).toBe(1);
      expect(follow.stderr()).toMatch(/── ticker attempt 1 ──\n[\s\S]*── ticker attempt 1: cancelled/);
      expect(follow.stdout()).toBe("tick\n");
    } finally {
      await follow.stop("SIGKILL");
    }
  }, 120_000);

  it("submits with inputs and requirements, and cancels a running workflow", async () => {
    const sleepy = await file(
      "sleepy.workflow",
      "fun nap(doc:inputs.doc):\n    import time\n    time.sleep(60)\n",
    );
    const doc = await file("doc.txt", "hello");
    expect((await dwop(["submit", sleepy])).code).toBe(2); // inputs.doc not given
    const r = await dwop([
      "submit",
      sleepy,
      "--input",
      `doc=${doc}`,
      "--requirements",
      await file("req.txt", "# nothing to install\n"),
    ]);
    expect(r.code).toBe(0);
    const id = r.stdout.trim();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const w = WorkflowDetail.parse(json(await dwop(["status", id, "--json"])));
    expect(w).toMatchObject({ inputs: ["doc"], hasRequirements: true });
    const cancelled = await dwop(["cancel", id, "--json"]);
    expect(cancelled.code).toBe(0);
    expect(WorkflowDetail.parse(json(cancelled)).status).toBe("cancelled");
    expect((await dwop(["status", id])).code).toBe(1);
  });

  it("exits 2 for usage and DSL errors, 1 for what is not there, 3 when the server cannot be reached or refuses", async () => {
    const bad = await file("bad.workflow", "fun a():\n    pass\n\nfun b(x:aa):\n    pass\n");
    const closed = `http://127.0.0.1:${await closedPort()}`;
    const [dsl, notUuid, badState, unknown, missing, noTask, refused, unreachable] = await Promise.all([
      dwop(["submit", bad]),
      dwop(["status", "not-a-uuid"]),
      dwop(["list", "--status", "nope"]),
      dwop(["nonsense"]),
      dwop(["status", "00000000-0000-4000-8000-000000000000"]),
      dwop(["logs", etl, "nope"]),
      dwop(["list"], { DWOP_TOKEN: "wrong-token" }),
      dwop(["list"], { DWOP_URL: closed }),
    ]);
    expect(dsl.code).toBe(2);
    expect(dsl.stderr).toContain(`${bad}:4:9: unknown upstream 'aa'`);
    expect([notUuid.code, badState.code, unknown.code]).toEqual([2, 2, 2]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("workflow not found (HTTP 404)");
    expect(noTask.code).toBe(1);
    expect(noTask.stderr).toContain(`workflow ${etl} has no task 'nope'`);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain("HTTP 401");
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toContain(`cannot reach ${closed}: ECONNREFUSED`);
  }, 120_000);

  it("reaches the server on this machine by DWOP_HOST and DWOP_PORT, also a wildcard host; a bad port exits 2", async () => {
    // No DWOP_URL, no DWOP_TOKEN: the server's own token stands in, for a server on this machine only.
    const port = new URL(server.url).port;
    const local = { DWOP_URL: "", DWOP_TOKEN: "", DWOP_API_TOKEN: server.token, DWOP_PORT: port };
    const [wildcard, badPort] = await Promise.all([
      dwop(["list", "--json"], { ...local, DWOP_HOST: "0.0.0.0" }),
      dwop(["list"], { ...local, DWOP_PORT: "70000" }),
    ]);
    expect(wildcard.code, wildcard.stderr).toBe(0);
    expect(json(wildcard)).toHaveProperty("workflows");
    expect(badPort.code).toBe(2);
    expect(badPort.stderr).toContain("DWOP_PORT: must be a port, 0 to 65535");
    expect(badPort.stderr).not.toMatch(/^\s+at /m);
  });

  it("pool set, list and rm manage pools with the server's token; bad arguments exit 2 and change nothing", async () => {
    const set = await dwop(["pool", "set", "gpu", "3"]);
    expect([set.code, set.stdout]).toEqual([0, "gpu  0/3 slots busy, 0 waiting\n"]);
    const listed = await dwop(["pool", "list", "--json"]);
    expect(JSON.parse(listed.stdout)).toMatchObject({
      pools: [{ name: "gpu", slots: 3, running: 0, waiting: 0 }],
    });
    const bad = await dwop(["pool", "set", "gpu", "many"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("SLOTS must be a whole number from 0 to 10000");
    expect((await dwop(["pool", "list"])).stdout).toBe("gpu  0/3 slots busy, 0 waiting\n");
    expect(await dwop(["pool", "rm", "gpu"])).toMatchObject({ code: 0, stdout: "pool gpu deleted\n" });
    expect((await dwop(["pool", "list"])).stdout).toBe("no pools\n");
  }, 60_000);
  it("submit --wait sends again a submit whose answer was lost, and the server makes one workflow of it", async () => {
    const name = `lost-answer-${Date.now()}`;
    const source = await file(`${name}.workflow`, 'fun a():\n    print("made once")\n');
    // A proxy that passes the first submit on but drops its answer, as a server restarting or a proxy
    // timing out after the workflow was made would.
    let dropped = false;
    const proxy = new TcpProxy("127.0.0.1", Number(new URL(server.url).port), (chunk, client, upstream) => {
      if (dropped || !chunk.includes("POST /workflows")) return false;
      dropped = true;
      upstream.unpipe(client);
      upstream.write(chunk);
      setTimeout(() => client.destroy(), 1000);
      return true;
    });
    await proxy.start();
    try {
      const r = await dwop(["submit", source, "--wait", "--json"], {
        DWOP_URL: `http://127.0.0.1:${proxy.port}`,
      });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/lost http:\/\/127\.0\.0\.1:\d+ \(.*\); waiting for it to come back/);
      expect(WorkflowDetail.parse(json(r)).status).toBe("succeeded");
    } finally {
      await proxy.cut();
    }
    expect(dropped).toBe(true);
    const made = WorkflowList.parse(json(await dwop(["list", "--all", "--json"]))).workflows.filter(
      (w) => w.name === name,
    );
    expect(made).toHaveLength(1);
  }, 120_000);
});
