import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { resolvePython, WORKER_SCRIPT } from "../shared/executors/python.ts";
import type { WorkerEnv } from "../shared/executors/executor.ts";
import { CODE_BUCKET, OUTPUT_BUCKET, objectPaths, type WorkerFailure } from "../shared/model.ts";
import { serveLocalStorage, type LocalStorageServer } from "../shared/storage/local-routes.ts";
import { codeBundle } from "../shared/submit.ts";

/** The real worker against LocalStorage over HTTP, as the local executor runs it. */
describe("worker with LocalStorage", () => {
  let dir: string;
  let server: LocalStorageServer;
  const wf = "wf-0001";

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "dwop-worker-"));
    server = await serveLocalStorage({ root: join(dir, "storage"), secret: "integration-secret-0123" });
  });
  afterEach(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  /**
   * The env of a run of `task`, whose code sits in the workflow's code bundle between two other tasks'
   * (with text of 2, 3 and 4 UTF-8 bytes a character, so a range counted in characters would miss).
   */
  async function workerEnv(task: string, body: string, inputs: Record<string, string>): Promise<WorkerEnv> {
    const { storage } = server;
    const bundle = codeBundle("etl.workflow", [
      { name: "before", line: 1, body: 'print("déjà ✓ 😀")\n' },
      { name: task, line: 3, body },
      { name: "after", line: 9, body: 'print("after")\n' },
    ]);
    await storage.put(CODE_BUCKET, objectPaths.codeBundle(wf), bundle.bytes);
    const { offset, length } = bundle.ranges[1]!;
    const signedInputs = [];
    for (const [param, upstream] of Object.entries(inputs)) {
      const url = await storage.signUrl(OUTPUT_BUCKET, objectPaths.output(wf, upstream), "GET", 60);
      signedInputs.push({ param, url });
    }
    return {
      DWOP_CODE_URL: await storage.signUrl(CODE_BUCKET, objectPaths.codeBundle(wf), "GET", 60),
      DWOP_CODE_RANGE: `${offset},${length}`,
      DWOP_INPUTS: JSON.stringify(signedInputs),
      DWOP_ATTEMPT: "1",
      DWOP_OUTPUT_URL: await storage.signUrl(OUTPUT_BUCKET, objectPaths.output(wf, task), "PUT", 60),
      DWOP_LOG_URL: await storage.signUrl(OUTPUT_BUCKET, objectPaths.log(wf, task, 1), "PUT", 60),
    };
  }

  async function runWorker(
    env: WorkerEnv,
  ): Promise<{ code: number | null; resultFile: string; stderr: string }> {
    const work = join(dir, "work");
    await rm(work, { recursive: true, force: true });
    await mkdir(work);
    const resultFile = join(dir, "result.json");
    const child = spawn(await resolvePython(), [WORKER_SCRIPT], {
      cwd: work,
      env: {
        PATH: process.env.PATH ?? "",
        LANG: "C.UTF-8",
        ...env,
        DWOP_RESULT_FILE: resultFile,
        DWOP_DIE_WITH_PARENT: "1",
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on("error", reject);
      child.on("close", resolve);
    });
    return { code, resultFile, stderr };
  }

  async function object(key: string): Promise<string | null> {
    const stream = await server.storage.get(OUTPUT_BUCKET, key);
    return stream ? new Response(stream).text() : null;
  }

  it("runs a body over two upstream outputs and uploads its output and log", async () => {
    await server.storage.put(OUTPUT_BUCKET, objectPaths.output(wf, "extract"), "a,b,c\n");
    await server.storage.put(OUTPUT_BUCKET, objectPaths.output(wf, "lookup"), "déjà vu ✓\n");
    const body = [
      "import sys",
      'print(open("raw").read().upper(), end="")',
      'print(open("names", encoding="utf-8").read(), end="")',
      'print("to the log", file=sys.stderr)',
      "",
    ].join("\n");
    const env = await workerEnv("transform", body, { raw: "extract", names: "lookup" });

    const { code, stderr } = await runWorker(env);

    expect(code, stderr).toBe(0);
    expect(await object(objectPaths.output(wf, "transform"))).toBe("A,B,C\ndéjà vu ✓\n");
    const log = await object(objectPaths.log(wf, "transform", 1));
    expect(log).toContain("to the log");
    expect(log).toContain("déjà vu ✓");
  });

  it("reports a failing body in the result file and keeps the previous output", async () => {
    await server.storage.put(OUTPUT_BUCKET, objectPaths.output(wf, "load"), "earlier good output");
    const env = await workerEnv("load", 'print("partial")\nraise SystemExit(3)\n', {});

    const { code, resultFile } = await runWorker(env);

    expect(code).toBe(3);
    const failure = JSON.parse(await readFile(resultFile, "utf8")) as WorkerFailure;
    expect(failure).toEqual({
      type: "task_failed",
      message: "exit code 3",
      exitCode: 3,
      nonRetryable: false,
    });
    expect(await object(objectPaths.output(wf, "load"))).toBe("earlier good output");
    expect(await object(objectPaths.log(wf, "load", 1))).toBe("partial\n");
  });

  it("reports a refused input URL as a download failure", async () => {
    await server.storage.put(OUTPUT_BUCKET, objectPaths.output(wf, "extract"), "x");
    const env = await workerEnv("transform", "print(1)\n", { raw: "extract" });
    const inputs = JSON.parse(env.DWOP_INPUTS) as { param: string; url: string }[];
    const tampered = inputs.map((i) => ({ ...i, url: i.url.replace(/expires=\d+/, "expires=1") }));

    const { code, resultFile } = await runWorker({ ...env, DWOP_INPUTS: JSON.stringify(tampered) });

    expect(code).toBe(70);
    const failure = JSON.parse(await readFile(resultFile, "utf8")) as WorkerFailure;
    expect(failure.type).toBe("download_failed");
    expect(failure.message).toContain("403");
    expect(failure.nonRetryable).toBe(false);
  });

  async function failureOf(env: WorkerEnv): Promise<WorkerFailure> {
    const { code, resultFile } = await runWorker(env);
    expect(code).toBe(70);
    return JSON.parse(await readFile(resultFile, "utf8")) as WorkerFailure;
  }

  it("fails clearly, running nothing, when its code range is tampered with", async () => {
    const env = await workerEnv("load", 'print("ran")\n', {});
    const [offset, length] = env.DWOP_CODE_RANGE!.split(",").map(Number) as [number, number];
    const size =
      offset +
      length +
      Buffer.byteLength('# dwop-source: {"file":"etl.workflow","line":9,"task":"after"}\nprint("after")\n');

    expect(await failureOf({ ...env, DWOP_CODE_RANGE: `${size},10` })).toMatchObject({
      type: "download_failed",
      message: expect.stringMatching(
        new RegExp(
          `^downloading the task's code \\(bytes ${size}\\+10 of the code bundle\\): HTTP 416: .*outside the object \\(${size} bytes\\)`,
        ),
      ),
    });
    expect(await failureOf({ ...env, DWOP_CODE_RANGE: `${size - 5},10` })).toMatchObject({
      type: "download_failed",
      message: expect.stringContaining(
        `asked for bytes ${size - 5}-${size + 4} but the storage answered 206 with bytes ${size - 5}-${size - 1}/${size}`,
      ),
    });
    expect(await failureOf({ ...env, DWOP_CODE_RANGE: `${offset + 1},${length}` })).toMatchObject({
      type: "download_failed",
      message: expect.stringMatching(/is not a task's code \(it does not start with '# dwop-source: '\)/),
      nonRetryable: true,
    });
    for (const bad of ["12", "-1,5", "0,0", "a,b", "1,2,3"]) {
      expect(await failureOf({ ...env, DWOP_CODE_RANGE: bad }), bad).toMatchObject({
        type: "worker_error",
        message: `DWOP_CODE_RANGE is not offset,length (two whole numbers, length above 0): ${bad}`,
        nonRetryable: true,
      });
    }
    expect(await object(objectPaths.output(wf, "load"))).toBeNull();
  });
});
