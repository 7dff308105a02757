import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { WorkflowList } from "../functions/schemas.ts";
import { startDevServer, type DevServer } from "./support/api-server.ts";
import { dwopClient } from "./support/cli-client.ts";
import { until } from "./support/until.ts";

// `dwop schedule ...` and `dwop list --schedule` against `dwop dev` as its own process: the schedule
// fires in that server's claimer loop.

let server: DevServer;
let dir: string;
let passed = true;

beforeAll(async () => {
  server = await startDevServer("cli_schedule", { DWOP_RETRY_BACKOFF_MS: "0" });
  dir = await mkdtemp(join(tmpdir(), "dwop-cli-schedule-"));
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

const dwop = (args: string[]) => dwopClient(server, dir, args);

async function file(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

// Each `dwop` is a process of its own, a few seconds each on a loaded machine.
describe("dwop schedule", { timeout: 240_000 }, () => {
  it("adds, lists, pauses, resumes and removes a schedule", async () => {
    const wf = await file(
      "hello.workflow",
      "fun hello(who:inputs.who):\n    print('hello ' + open('who').read())\n",
    );
    const who = await file("who.txt", "world");
    const added = await dwop([
      "schedule",
      "add",
      "hello",
      wf,
      "--cron",
      "0 2 * * *",
      "--tz",
      "Europe/Berlin",
      "-i",
      `who=${who}`,
    ]);
    expect(added, added.stderr).toMatchObject({ code: 0 });
    expect(added.stdout).toMatch(
      /^hello: 0 2 \* \* \* \(Europe\/Berlin\), next \d{4}-\d\d-\d\d 01:00:00 UTC\n$/,
    );

    const listed = await dwop(["schedule", "list"]);
    expect(listed.stdout).toMatch(/^NAME\s+CRON\s+ZONE\s+NEXT\s+LAST/);
    expect(listed.stdout).toMatch(/hello\s+0 2 \* \* \*\s+Europe\/Berlin\s+\d{4}-\d\d-\d\d 01:00:00 UTC\s+-/);

    const paused = await dwop(["schedule", "pause", "hello", "--json"]);
    expect(JSON.parse(paused.stdout)).toMatchObject({ name: "hello", paused: true, nextFireAt: null });
    expect((await dwop(["schedule", "list"])).stdout).toMatch(
      /hello\s+0 2 \* \* \*\s+Europe\/Berlin\s+paused/,
    );
    const resumed = await dwop(["schedule", "resume", "hello"]);
    expect(resumed.stdout).toMatch(/next \d{4}-\d\d-\d\d 01:00:00 UTC/);

    expect(await dwop(["schedule", "rm", "hello"])).toMatchObject({
      code: 0,
      stderr: "schedule hello deleted\n",
    });
    expect(await dwop(["schedule", "rm", "hello"])).toMatchObject({
      code: 1,
      stderr: expect.stringContaining("schedule not found"),
    });
    expect((await dwop(["schedule", "list"])).stderr).toBe("no schedules\n");
  });

  it("refuses bad arguments with exit 2 and the server's reason, creating nothing", async () => {
    const wf = await file("tick.workflow", "fun tick():\n    print('tick')\n");
    const badCron = await dwop(["schedule", "add", "tick", wf, "--cron", "* * * * * *"]);
    expect(badCron).toMatchObject({ code: 2, stderr: expect.stringContaining("has 5 fields") });
    const badField = await dwop(["schedule", "add", "tick", wf, "--cron", "0 25 * * *"]);
    expect(badField).toMatchObject({ code: 2, stderr: expect.stringContaining("field 2 (hour, column 3)") });
    const badZone = await dwop(["schedule", "add", "tick", wf, "--cron", "@daily", "--tz", "Nowhere/Land"]);
    expect(badZone).toMatchObject({ code: 2, stderr: expect.stringContaining("unknown time zone") });
    const badMode = await dwop(["schedule", "add", "tick", wf, "--cron", "@daily", "--overlap", "queue"]);
    expect(badMode.code).toBe(2);
    const badName = await dwop(["schedule", "add", "no/slash", wf, "--cron", "@daily"]);
    expect(badName).toMatchObject({ code: 2, stderr: expect.stringContaining("schedule name") });
    const broken = await dwop([
      "schedule",
      "add",
      "tick",
      await file("bad.workflow", "fun (:\n"),
      "--cron",
      "@daily",
    ]);
    expect(broken.code).toBe(2);
    expect(await dwop(["schedule", "list", "--json"])).toMatchObject({ stdout: '{"schedules":[]}\n' });
  });

  it("a due schedule fires in the server's claimer loop; dwop list --schedule lists what it started", async () => {
    const wf = await file("tick.workflow", "fun tick():\n    print('tick')\n");
    expect((await dwop(["schedule", "add", "ticker", wf, "--cron", "0 0 1 1 *"])).code).toBe(0);
    // Make it due now instead of waiting for New Year (the claimer polls every 100 ms here).
    const sql = postgres(server.database.url, { max: 1, onnotice: () => {} });
    try {
      await sql`update dwop.schedules set next_fire_at = now() where name = 'ticker'`;
    } finally {
      await sql.end();
    }
    let ids: string[] = [];
    await until(async () => {
      const res = await dwop(["list", "--schedule", "ticker", "--json"]);
      ids = WorkflowList.parse(JSON.parse(res.stdout)).workflows.map((w) => w.id);
      return ids.length > 0;
    }, 60_000);
    expect(ids).toHaveLength(1);
    const listed = await dwop(["schedule", "list"]);
    expect(listed.stdout).toMatch(
      /ticker\s+0 0 1 1 \*\s+UTC\s+\d{4}-01-01 00:00:00 UTC\s+(queued|running|succeeded)\s+[0-9a-f-]{36}\s+started \d{4}-/,
    );
    // The list of workflows says which schedule started each, and filters by it.
    const all = await dwop(["list"]);
    expect(all.stdout).toMatch(/^ID\s+STATE\s+TASKS\s+SUBMITTED\s+TOOK\s+SCHEDULE\s+NAME\n/);
    expect(all.stdout).toContain(ids[0]!);
    expect(all.stdout).toMatch(new RegExp(`${ids[0]}\\s.*\\sticker\\s+ticker\\n`));
    const shown = await dwop(["schedule", "show", "ticker"]);
    expect(shown.stdout).toMatch(
      /^ticker: 0 0 1 1 \* \(UTC\), next \d{4}-01-01 00:00:00 UTC\noverlap skip, catchup none\n/,
    );
    expect(shown.stdout).toMatch(
      new RegExp(`FIRE TIME\\s+OUTCOME\\s+WORKFLOW OR REASON\\n\\S+ \\S+ UTC\\s+started\\s+${ids[0]}\\n$`),
    );
    expect((await dwop(["list", "--schedule", "other", "--json"])).stdout).toBe(
      '{"workflows":[],"nextCursor":null}\n',
    );
    expect((await dwop(["list", "--schedule", "bad name"])).code).toBe(2);
  });
});
