import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { startDevServer, type DevServer } from "./support/api-server.ts";
import { startSupabaseStorageDouble, type SupabaseStorageDouble } from "./support/supabase-storage-double.ts";

const WORKFLOW =
  'fun extract():\n    print("a,b,c")\n\nfun transform(raw:extract):\n    print(open("raw").read().upper())\n';

let storage: SupabaseStorageDouble;
let dev: DevServer;
let passed = false;
afterEach(async () => {
  await dev?.stop(passed);
  await storage?.close();
});

it("with SUPABASE_PROJECT_URL and SUPABASE_SERVICE_KEY, code and outputs live in Supabase Storage and the worker moves them by signed URL", async () => {
  storage = await startSupabaseStorageDouble();
  dev = await startDevServer("supabase storage", {
    SUPABASE_PROJECT_URL: storage.url,
    SUPABASE_SERVICE_KEY: storage.serviceKey,
  });
  const auth = { authorization: `Bearer ${dev.token}` };
  const form = new FormData();
  form.append("workflow", new Blob([WORKFLOW]), "etl.workflow");
  const submitted = await fetch(`${dev.url}/workflows`, { method: "POST", headers: auth, body: form });
  expect(submitted.status, await submitted.clone().text()).toBe(201);
  const { id } = (await submitted.json()) as { id: string };

  let status = "";
  const deadline = Date.now() + 30_000;
  while (!["succeeded", "failed", "cancelled"].includes(status)) {
    if (Date.now() > deadline) throw new Error(`workflow still ${status}\n${dev.stderr()}`);
    await new Promise((r) => setTimeout(r, 100));
    status = (
      (await (await fetch(`${dev.url}/workflows/${id}`, { headers: auth })).json()) as { status: string }
    ).status;
  }
  expect(status, dev.stderr()).toBe("succeeded");

  const output = await fetch(`${dev.url}/workflows/${id}/tasks/transform/output`, { headers: auth });
  expect(await output.text()).toBe("A,B,C\n\n"); // print() adds its own newline
  const outputs = storage.buckets.get("Task_Output")!;
  expect(outputs.get(`${id}/extract/output.txt`)?.body.toString()).toBe("a,b,c\n");
  expect(outputs.has(`${id}/transform/attempt-1.log`)).toBe(true);
  // The worker's own upload (its attempt's object), moved to the task's path by the dispatcher.
  expect(outputs.get(`${id}/transform/output.txt`)?.body.toString()).toBe("A,B,C\n\n");
  expect(outputs.has(`${id}/transform/attempt-1.output.txt`)).toBe(false);
  expect(storage.requests.some((r) => r.method === "POST" && r.path === "/storage/v1/object/move")).toBe(
    true,
  );
  expect(existsSync(join(dev.home, "storage"))).toBe(false);

  // The Python worker read its code (its range of the bundle) and its input, and wrote its output (to its
  // attempt's object), through signed URLs alone.
  const byWorker = storage.requests.filter((r) => r.authorization === undefined);
  const bundle = storage.buckets.get("Task_Code")!.get(`${id}/code.bundle`)!.body;
  const start = bundle.indexOf('# dwop-source: {"file":"etl.workflow","line":4,"task":"transform"}\n');
  expect(byWorker.map((r) => `${r.method} ${r.path.split("?")[0]} ${r.range ?? ""}`.trim())).toEqual(
    expect.arrayContaining([
      `GET /storage/v1/object/sign/Task_Code/${id}/code.bundle bytes=${start}-${bundle.length - 1}`,
      `GET /storage/v1/object/sign/Task_Output/${id}/extract/output.txt`,
      `PUT /storage/v1/object/upload/sign/Task_Output/${id}/transform/attempt-1.output.txt`,
    ]),
  );
  expect(byWorker.find((r) => r.method === "PUT")?.contentType).toBe("text/plain; charset=utf-8");
  passed = true;
});
