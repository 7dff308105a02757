// Huge submissions against the API over a real socket, while /healthz is polled: how long the slowest
// /healthz answer took during each, and the process's RSS before, at its peak and after.
// Run: npx tsx bench/huge-submit.ts [--rounds=3]
import { serve, type ServerType } from "@hono/node-server";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../functions/app.ts";
import { LocalStorage } from "../shared/storage/local.ts";
import { DEFAULT_SUBMIT_LIMITS } from "../shared/submit.ts";
import { migratedDatabase } from "../test/support/migrated.ts";

const rounds = Number(process.argv.find((a) => a.startsWith("--rounds="))?.slice(9) ?? 3);
const TOKEN = randomBytes(24).toString("hex");
const MB = 1024 * 1024;

const tasks = (n: number, lines = 1) =>
  Array.from({ length: n }, (_, i) => `fun t${i}():\n${`    print(${i})\n`.repeat(lines)}`).join("");
const form = (source: string) => {
  const f = new FormData();
  f.append("workflow", new Blob([source]), "huge.workflow");
  return f;
};
const maxTasks = DEFAULT_SUBMIT_LIMITS.maxTasks;
const scenarios: [string, () => FormData | string][] = [
  ["200,001 tasks, 6.8 MB, multipart (the report's file)", () => form(tasks(200_001))],
  ["200,001 tasks as JSON", () => JSON.stringify({ workflow: tasks(200_001) })],
  ["20,000 tasks within the byte limit", () => form(tasks(20_000))],
  [`${maxTasks} tasks, ~1 MiB of short lines (stored)`, () => form(tasks(maxTasks, 5))],
];

const m = await migratedDatabase("bench_huge_submit");
const root = await mkdtemp(join(tmpdir(), "dwop-bench-huge-"));
const app = createApp({
  db: m.db,
  storage: new LocalStorage({ root, secret: randomBytes(16).toString("hex") }),
  settings: { apiToken: TOKEN },
  resolveHost: null,
});
const { server, port } = await new Promise<{ server: ServerType; port: number }>((resolve) => {
  const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info) =>
    resolve({ server, port: info.port }),
  );
});

function healthz(): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/healthz", agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(performance.now() - started));
    });
    req.on("error", reject);
    req.end();
  });
}

const rss = () => process.memoryUsage().rss / MB;
try {
  for (let round = 1; round <= rounds; round++) {
    for (const [name, body] of scenarios) {
      const payload = body();
      const before = rss();
      let peak = before;
      const latencies: number[] = [];
      let polling = true;
      const poller = (async () => {
        while (polling) {
          latencies.push(await healthz());
          peak = Math.max(peak, rss());
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
      const started = performance.now();
      const headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` };
      if (typeof payload === "string") headers["content-type"] = "application/json";
      const res = await fetch(`http://127.0.0.1:${port}/workflows`, {
        method: "POST",
        headers,
        body: payload,
      });
      const answer = (await res.json()) as { error?: { code: string } };
      const took = performance.now() - started;
      polling = false;
      await poller;
      latencies.sort((a, b) => a - b);
      console.log(
        `round ${round} | ${name}: ${res.status} ${answer.error?.code ?? "created"} in ${took.toFixed(0)} ms | ` +
          `/healthz ${latencies.length} answers, p50 ${latencies[latencies.length >> 1]!.toFixed(0)} ms, ` +
          `slowest ${latencies.at(-1)!.toFixed(0)} ms | RSS ${before.toFixed(0)} -> peak ${peak.toFixed(0)} -> ${rss().toFixed(0)} MB`,
      );
    }
  }
} finally {
  server.close();
  await m.close(true);
  await rm(root, { recursive: true, force: true });
}
process.exit(0);
