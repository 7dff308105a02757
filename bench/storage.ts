// A run's storage round trips against `dwop dev`'s local storage: the worker's own client (dwop_http)
// downloads a range of a code bundle and an input together, then uploads an output and a log together,
// round after round; p50 and p90 of each pair. Then the dispatcher's way for a local run's small output
// and log: both stored together (LocalStorage.put, on the disk when it returns) in a new task's folder;
// and the same for 500 tasks at once, as a fan-out's runs that end together have them stored.
// Run: npx tsx bench/storage.ts [--rounds=150] [--python=python3]
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serveLocalStorage } from "../shared/storage/local-routes.ts";
import { percentile } from "./stats.ts";

const rounds = Number(process.argv.find((a) => a.startsWith("--rounds="))?.slice(9) ?? 150);
const python = process.argv.find((a) => a.startsWith("--python="))?.slice(9) ?? "python3";

const root = await mkdtemp(join(tmpdir(), "dwop-bench-storage-"));
const server = await serveLocalStorage({ root, secret: "bench-storage-secret-0123456789" });
const { storage } = server;
await storage.put("dwop-code", "wf/code.bundle", "#dwop-task\n" + "print(1)\n".repeat(40));
await storage.put("dwop-outputs", "Task_Output/wf/t0/output.txt", "1\n");
const ask = {
  code: await storage.signUrl("dwop-code", "wf/code.bundle", "GET", 3600),
  input: await storage.signUrl("dwop-outputs", "Task_Output/wf/t0/output.txt", "GET", 3600),
  output: await storage.signUrl("dwop-outputs", "Task_Output/wf/t1/output.txt", "PUT", 3600),
  log: await storage.signUrl("dwop-outputs", "Task_Output/wf/t1/attempt-1.log", "PUT", 3600),
  rounds,
};
const client = spawn(python, [join(import.meta.dirname, "storage-client.py")], {
  stdio: ["pipe", "pipe", "inherit"],
});
let out = "";
client.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
client.stdin.end(`${JSON.stringify(ask)}\n`);
const code = await new Promise<number | null>((resolve) => client.on("close", resolve));
const stored: number[] = [];
for (let i = 0; i < rounds; i++) {
  const start = performance.now();
  await Promise.all([
    storage.put("dwop-outputs", `Task_Output/wf/s${i}/output.txt`, "1\n"),
    storage.put("dwop-outputs", `Task_Output/wf/s${i}/attempt-1.log`, "1\n"),
  ]);
  stored.push(performance.now() - start);
}
const fanStart = performance.now();
await Promise.all(
  Array.from({ length: 500 }, (_, i) =>
    Promise.all([
      storage.put("dwop-outputs", `Task_Output/fan/t${i}/output.txt`, "1\n"),
      storage.put("dwop-outputs", `Task_Output/fan/t${i}/attempt-1.log`, "1\n"),
    ]),
  ),
);
const fan = performance.now() - fanStart;
await server.close();
await rm(root, { recursive: true, force: true });
if (code !== 0) throw new Error(`the storage client exited with ${code}`);
const { downloads, uploads } = JSON.parse(out) as { downloads: number[]; uploads: number[] };
const line = (ms: number[]) =>
  `p50 ${percentile(ms, 50).toFixed(2)} ms, p90 ${percentile(ms, 90).toFixed(2)} ms`;
console.log(`${rounds} rounds: two GETs together ${line(downloads)}; two PUTs together ${line(uploads)}`);
console.log(`an output and a log stored together by the dispatcher, in a new task's folder: ${line(stored)}`);
console.log(`the same for 500 tasks at once: ${fan.toFixed(0)} ms`);
