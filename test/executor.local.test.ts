import { spawnSync } from "node:child_process";
import { createServer, type Server } from "node:http";
import {
  chmod,
  chown,
  link,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, type TestContext } from "vitest";
import type { RunOutcome, WorkerEnv } from "../shared/executors/executor.ts";
import { ForkServer, type RunLimits } from "../shared/executors/fork-server.ts";
import { LocalExecutor, readResult } from "../shared/executors/local.ts";
import { readLogTail } from "../shared/executors/log-tail.ts";
import { ensureMemoryRoot, memoryRoot, memoryRootPath } from "../shared/executors/memory-root.ts";
import { removeRunFolder } from "../shared/executors/run-folders.ts";
import { resolvePython, WORKER_SCRIPT } from "../shared/executors/python.ts";
import { DEFAULT_TASK_OPTIONS, type RunAssignment } from "../shared/model.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "dwop-local-executor-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("readLogTail", () => {
  it("keeps the last lines of a large file, reading only its end", async () => {
    const path = join(dir, "big.log");
    const lines = Array.from({ length: 200_000 }, (_, i) => `line ${i}`);
    await writeFile(path, `${lines.join("\n")}\n`);
    const tail = await readLogTail(path, 100);
    expect(tail.split("\n")).toEqual(lines.slice(-100));
    // Within a budget of 50 bytes (4 lines of 12 bytes and the end of one more) only whole lines are kept.
    expect(await readLogTail(path, 100, 50)).toBe(lines.slice(-4).join("\n"));
  });

  it("keeps an unterminated last line and cuts long lines as LogTail does", async () => {
    const path = join(dir, "odd.log");
    await writeFile(path, `${"x".repeat(5000)}\nshort\nno newline at the end`);
    expect(await readLogTail(path, 100)).toBe(`${"x".repeat(4096)}…\nshort\nno newline at the end`);
    expect(await readLogTail(join(dir, "missing.log"), 100)).toBe("");
  });
});

/** An object store stand-in: GETs of /hang never answer, anything else is a 404. */
async function startStore(): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    if (req.url?.startsWith("/hang")) return;
    res.writeHead(404).end("no such object");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

function assignment(runId: string): RunAssignment {
  return {
    runId,
    workflowId: "wf",
    taskId: `task-${runId}`,
    taskName: "t",
    attempt: 1,
    params: [],
    options: DEFAULT_TASK_OPTIONS,
    code: { offset: 0, length: 0 },
    hasRequirements: false,
  };
}

function env(url: string, code: string): WorkerEnv {
  return {
    DWOP_CODE_URL: `${url}/${code}`,
    DWOP_INPUTS: "[]",
    DWOP_ATTEMPT: "1",
    DWOP_OUTPUT_URL: `${url}/out`,
    DWOP_LOG_URL: `${url}/log`,
  };
}

/** The parent of a process, from /proc. */
async function parentOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("LocalExecutor through the fork server", () => {
  let store: { url: string; server: Server };
  let executor: LocalExecutor;
  const outcomes = new Map<string, RunOutcome>();

  beforeEach(async () => {
    store = await startStore();
    executor = new LocalExecutor({
      python: await resolvePython(),
      workerScript: WORKER_SCRIPT,
      workRoot: dir,
    });
    outcomes.clear();
    executor.onFinished((run, outcome) => outcomes.set(run.runId, outcome));
  });
  afterEach(async () => {
    await executor.close();
    store.server.closeAllConnections();
    await new Promise((r) => store.server.close(r));
  });

  it("records the last lines of the worker's log file when a run fails", async () => {
    await executor.start(assignment("404"), env(store.url, "missing"));
    await until(() => outcomes.has("404"));
    const outcome = outcomes.get("404");
    expect(outcome).toMatchObject({ kind: "failed", reason: "lost", nonRetryable: false });
    expect(outcome?.kind === "failed" && outcome.logTail).toContain("dwop-worker: download_failed");
    expect(executor.active()).toEqual([]);
  });

  it("reports a worker killed from outside as lost (infrastructure), not as the task's failure", async () => {
    // Found by the chaos soak: a SIGKILLed worker spent the task's own retry budget (worker_error).
    const { jobName } = await executor.start(assignment("killed"), env(store.url, "hang"));
    process.kill(Number(jobName.replace("pid-", "")), "SIGKILL");
    await until(() => outcomes.has("killed"));
    expect(outcomes.get("killed")).toMatchObject({
      kind: "failed",
      reason: "lost",
      message: "worker killed by SIGKILL",
    });
  });

  it("reports the runs in flight as lost when the fork server dies, and forks later runs on a new one", async () => {
    const { jobName } = await executor.start(assignment("first"), env(store.url, "hang"));
    expect(await executor.start(assignment("first"), env(store.url, "hang"))).toEqual({ jobName });
    const worker = Number(jobName.replace("pid-", ""));
    const server = await parentOf(worker);
    expect(server).not.toBe(process.pid);
    process.kill(server, "SIGKILL");

    await until(() => outcomes.has("first"));
    expect(outcomes.get("first")).toMatchObject({ kind: "failed", reason: "lost", exitCode: null });
    await until(() => !alive(worker));

    const second = await executor.start(assignment("second"), env(store.url, "hang"));
    const secondPid = Number(second.jobName.replace("pid-", ""));
    expect(await parentOf(secondPid)).not.toBe(server);
    expect(await executor.kill("second")).toBe(true);
    await until(() => !alive(secondPid));
    await until(() => executor.active().length === 0);
    expect(outcomes.has("second")).toBe(false);
  });
});

describe("a run's output and log left to the dispatcher", () => {
  /** A run whose code is given inline, and whose small output and log come back in its outcome. */
  async function runInline(sandbox: "auto" | "off", code: string): Promise<RunOutcome> {
    const executor = new LocalExecutor({
      python: await resolvePython(),
      workerScript: WORKER_SCRIPT,
      workRoot: dir,
      sandbox,
    });
    let outcome: RunOutcome | null = null;
    executor.onFinished((_, o) => (outcome = o));
    try {
      const { DWOP_CODE_URL: _, ...urls } = env("http://127.0.0.1:9", "unused");
      await executor.start(assignment(`inline-${sandbox}`), {
        ...urls,
        DWOP_CODE: Buffer.from(code).toString("base64"),
        DWOP_INLINE_RESULT_BYTES: "1000",
      });
      await until(() => outcome !== null, 60_000);
      return outcome!;
    } finally {
      await executor.close();
    }
  }

  const text = (bytes: Uint8Array | undefined) => Buffer.from(bytes ?? []).toString();

  it("comes back in a success's outcome, without a request", async () => {
    const outcome = await runInline("auto", "print('hi')\n");
    expect(outcome.kind).toBe("succeeded");
    const result = outcome.kind === "succeeded" ? outcome.result : undefined;
    expect([text(result?.output), text(result?.log)]).toEqual(["hi\n", "hi\n"]);
  });

  it("is the worker's own even when a body outside the sandbox planted a link in its place", async () => {
    const secret = join(dir, "secret.txt");
    await writeFile(secret, "the dispatcher's secret\n");
    const plant = `import os\nos.symlink(${JSON.stringify(secret)}, ".dwop-output-and-log")\nprint('mine')\n`;
    const outcome = await runInline("off", plant);
    const result = outcome.kind === "succeeded" ? outcome.result : undefined;
    expect(text(result?.output)).toBe("mine\n");
  });

  it("gives the body a TMPDIR of its own: its folder's .tmp outside the sandbox, its own /tmp inside", async () => {
    const code = "import os, tempfile\ntempfile.NamedTemporaryFile().close()\nprint(os.environ['TMPDIR'])\n";
    const off = await runInline("off", code);
    const outside = off.kind === "succeeded" ? text(off.result?.output).trim() : "";
    expect(outside.startsWith(join(dir, "run-inline-off-"))).toBe(true);
    expect(outside.endsWith("/.tmp")).toBe(true);
    const status = await sandboxStatus();
    const auto = await runInline("auto", code);
    const inside = auto.kind === "succeeded" ? text(auto.result?.output).trim() : "";
    if (status === "namespaces") expect(inside).toBe("/tmp");
    else expect(inside.endsWith("/.tmp")).toBe(true);
  });

  it("shows a sandboxed body whose every file came inline its own files alone, nothing of the run's folder", async (ctx) => {
    if ((await sandboxStatus()) !== "namespaces") return ctx.skip();
    // The executor tells the fork server so: the body's /work is a folder of its own, and the worker's log
    // and env file, in the run's folder, are not there.
    const outcome = await runInline("auto", "import os\nprint(sorted(os.listdir('.')))\n");
    expect(outcome.kind === "succeeded" ? text(outcome.result?.output) : outcome).toBe("['main.py']\n");
  });

  /** Whether runs get the sandbox on this machine with sandbox "auto". */
  async function sandboxStatus(): Promise<string> {
    const executor = new LocalExecutor({
      python: await resolvePython(),
      workerScript: WORKER_SCRIPT,
      workRoot: dir,
      sandbox: "auto",
    });
    try {
      return (await executor.sandbox()).mode;
    } finally {
      await executor.close();
    }
  }

  it("is read only from a regular file of one link, each part within the limit", async () => {
    const secret = join(dir, "secret.txt");
    await writeFile(secret, "4 4\nsecrsecr");
    const folder = async (left: (path: string) => Promise<void>): Promise<string> => {
      const run = await mkdtemp(join(dir, "run-"));
      await left(join(run, ".dwop-output-and-log"));
      return run;
    };
    const good = await folder((path) => writeFile(path, "4 5\nout\nlog!\n"));
    const result = readResult(good, 5);
    expect([text(result?.output), text(result?.log)]).toEqual(["out\n", "log!\n"]);
    expect(readResult(good, 4)).toBeNull(); // the log over the limit
    expect(readResult(good, 0)).toBeNull(); // none asked for
    expect(readResult(await folder((path) => symlink(secret, path)), 100)).toBeNull();
    expect(readResult(await folder((path) => link(secret, path)), 100)).toBeNull();
    expect(readResult(await folder(async () => {}), 100)).toBeNull(); // uploaded by the worker
    for (const bad of [
      "4 5\nout\nlog!\nmore",
      "4 5\nout\nlog",
      "4 5 out\nlog!\n",
      "-4 5\nout\nlog!\n",
      "out\n",
    ]) {
      expect(readResult(await folder((path) => writeFile(path, bad)), 100), bad).toBeNull();
    }
  });
});

describe("a run's folder", () => {
  /** A folder of /dev/shm for one test, as memoryRoot makes it (0700). */
  async function shmFolder(): Promise<string> {
    return mkdtemp("/dev/shm/dwop-test-runs-");
  }

  /** The run folders in a folder. */
  async function runFolders(root: string): Promise<string[]> {
    return (await readdir(root)).filter((n) => n.startsWith("run-"));
  }

  interface InMemory {
    executor: LocalExecutor;
    /** Its memory root, a fresh folder of /dev/shm. */
    memory: string;
    store: Awaited<ReturnType<typeof startStore>>;
    /** A run's URLs without the code's (it comes inline). */
    urls: Omit<WorkerEnv, "DWOP_CODE_URL">;
  }

  /** An executor of the test's work root whose runs may go in `memory`. */
  async function memoryExecutor(memory: string): Promise<LocalExecutor> {
    const python = await resolvePython();
    return new LocalExecutor({ python, workerScript: WORKER_SCRIPT, workRoot: dir, memoryRoot: memory });
  }

  /** `use` with an executor whose runs may go in memory; skipped where there is no sandbox. */
  async function withMemoryExecutor(ctx: TestContext, use: (parts: InMemory) => Promise<void>) {
    const memory = await shmFolder();
    const store = await startStore();
    const executor = await memoryExecutor(memory);
    try {
      if ((await executor.sandbox()).mode !== "namespaces") return ctx.skip();
      const { DWOP_CODE_URL: _, ...urls } = env(store.url, "unused");
      await use({ executor, memory, store, urls });
    } finally {
      await executor.close();
      store.server.closeAllConnections();
      await new Promise((r) => store.server.close(r));
      await rm(memory, { recursive: true, force: true });
    }
  }

  it("is in memory for a sandboxed run whose code and inputs came inline, on disk for one that downloads", async (ctx) => {
    await withMemoryExecutor(ctx, async ({ executor, memory, store, urls }) => {
      const code = (body: string) => Buffer.from(`import time\n${body}time.sleep(60)\n`).toString("base64");
      const x = Buffer.from("1").toString("base64");
      // Its output outgrows memory (256 KiB): the worker moves it to the work root on disk, not to the folder.
      const { jobName } = await executor.start(assignment("small"), {
        ...urls,
        DWOP_CODE: code("print('x' * 300000, flush=True)\n"),
        DWOP_INPUTS: JSON.stringify([{ param: "x", data: x }]),
      });
      expect(await runFolders(memory)).toEqual([
        expect.stringMatching(/^run-small-p[0-9]+-n[0-9]+-[0-9a-f]{32}$/),
      ]);
      expect(await runFolders(dir)).toEqual([]);
      if (process.getuid?.() === 0) {
        // Root may read a worker's descriptors (it is not dumpable): its output's file is a deleted one of dir.
        const worker = Number(jobName.replace("pid-", ""));
        const files = async () => {
          const fds = await readdir(`/proc/${worker}/fd`).catch(() => []);
          return Promise.all(fds.map((fd) => readlink(`/proc/${worker}/fd/${fd}`).catch(() => "")));
        };
        await until(async () =>
          (await files()).some((f) => f.startsWith(`${dir}/`) && f.endsWith("(deleted)")),
        );
        const unnamed = (await files()).filter((f) => f.endsWith("(deleted)"));
        expect(unnamed.filter((f) => f.startsWith(memory))).toEqual([]);
      }
      // An input by URL is downloaded into the folder (this one never comes): on disk.
      await executor.start(assignment("downloads"), {
        ...urls,
        DWOP_CODE: code(""),
        DWOP_INPUTS: JSON.stringify([{ param: "x", url: `${store.url}/hang` }]),
      });
      expect(await runFolders(dir)).toEqual([expect.stringMatching(/^run-downloads-/)]);
      // So is the code by URL.
      await executor.start(assignment("code"), env(store.url, "hang"));
      expect((await runFolders(dir)).sort()).toEqual([
        expect.stringMatching(/^run-code-/),
        expect.stringMatching(/^run-downloads-/),
      ]);
      // A memory root removed meanwhile (by another process's sweep, say) is made again.
      for (const id of executor.active()) await executor.kill(id);
      await until(async () => (await runFolders(memory)).length === 0);
      await rm(memory, { recursive: true });
      await executor.start(assignment("again"), { ...urls, DWOP_CODE: code(""), DWOP_INPUTS: "[]" });
      expect(await runFolders(memory)).toEqual([expect.stringMatching(/^run-again-/)]);
      expect((await stat(memory)).mode & 0o777).toBe(0o700);
      // A memory root that is no longer this user's alone is not used.
      await chmod(memory, 0o755);
      await executor.start(assignment("open"), { ...urls, DWOP_CODE: code(""), DWOP_INPUTS: "[]" });
      expect(await runFolders(dir)).toContainEqual(expect.stringMatching(/^run-open-/));
      for (const id of executor.active()) await executor.kill(id);
      await until(async () => (await runFolders(memory)).length + (await runFolders(dir)).length === 0);
    });
  });

  it("of a run that close() kills is gone when close() returns, in memory and on disk", async (ctx) => {
    await withMemoryExecutor(ctx, async ({ executor, memory, store, urls }) => {
      const code = Buffer.from("import time\ntime.sleep(60)\n").toString("base64");
      await executor.start(assignment("in-memory"), { ...urls, DWOP_CODE: code, DWOP_INPUTS: "[]" });
      await executor.start(assignment("on-disk"), env(store.url, "hang"));
      expect(await runFolders(memory)).toHaveLength(1);
      expect(await runFolders(dir)).toHaveLength(1);
      // A process stops right after close() (Ctrl-C's fast stop): nothing may be left for later.
      await executor.close();
      expect(await runFolders(dir)).toEqual([]);
      // The memory root goes too once empty (close() removes it then).
      expect(await runFolders(memory).catch(() => [])).toEqual([]);
    });
  });

  it("is removed whole once its run ended, whatever it holds (a body without the sandbox writes there)", async () => {
    const folders = {
      asLeft: { ".dwop-worker.log": "x", ".dwop-output-and-log": "1 1\nab" },
      many: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`f${i}`, "x"])),
      nested: { "a/b/c": "x", top: "x" },
      empty: {},
    };
    for (const [name, files] of Object.entries(folders)) {
      const folder = join(dir, name);
      for (const [path, text] of Object.entries(files)) {
        await mkdir(join(folder, path, ".."), { recursive: true });
        await writeFile(join(folder, path), text);
      }
      await mkdir(folder, { recursive: true });
      await removeRunFolder(folder);
      await expect(stat(folder)).rejects.toMatchObject({ code: "ENOENT" });
    }
    await removeRunFolder(join(dir, "never-made")); // no throw
  });

  it("of a process killed mid-run is removed by the next executor of its roots; a live one's is left", async () => {
    // A process killed mid-run (SIGKILL, the OOM killer) never removes its runs' folders; in memory they
    // would hold memory until the machine restarts. Its pid, and its pid namespace, are in their names.
    const dead = spawnSync("true").pid;
    const ns = (await stat("/proc/self/ns/pid")).ino;
    const shm = await shmFolder();
    const memory = join(shm, "own");
    // This user's memory root of another work root: its home was deleted after a crash, say.
    const deleted = memoryRootPath(join(dir, "deleted-home"), shm);
    const hex = "0".repeat(32);
    try {
      for (const root of [dir, memory, deleted]) await mkdir(root, { recursive: true, mode: 0o700 });
      for (const root of [dir, memory]) {
        await mkdir(join(root, `run-7-p${dead}-n${ns}-${hex}`)); // the killed process's, with its worker's log
        await writeFile(join(root, `run-7-p${dead}-n${ns}-${hex}`, ".dwop-worker.log"), "killed\n");
        await mkdir(join(root, `run-6-p${dead}-${hex}`)); // the same, named before pid namespaces were
        await mkdir(join(root, `run-5-p${dead}-n1-${hex}`)); // another namespace's: its pid is not ours
        await mkdir(join(root, `run-8-p${process.ppid}-n${ns}-${hex}`)); // a live process's
        await mkdir(join(root, `run-9-${hex}`)); // an older version's name: whose, it does not say
        await mkdir(join(root, "dispatcher-1")); // a dispatcher's own work root below this one
      }
      await mkdir(join(deleted, `run-4-p${dead}-n${ns}-${hex}`));
      const executor = await memoryExecutor(memory);
      try {
        expect(await executor.sweep()).toBe(5);
      } finally {
        await executor.close();
      }
      for (const root of [dir, memory]) {
        // As root, the work root also holds the (empty) folder of the runs' root template.
        const left = (await readdir(root)).filter((name) => name !== ".root-template");
        expect(left.sort()).toEqual(
          [
            "dispatcher-1",
            `run-5-p${dead}-n1-${hex}`,
            `run-8-p${process.ppid}-n${ns}-${hex}`,
            `run-9-${hex}`,
          ].sort(),
        );
      }
      expect(await readdir(shm)).toEqual(["own"]); // the deleted home's memory root is gone
    } finally {
      await rm(shm, { recursive: true, force: true });
    }
  });

  it("goes in memory only in a tmpfs folder of this user's alone", async () => {
    expect(memoryRoot(dir, dir)).toBeNull(); // not a tmpfs
    const shm = await shmFolder();
    try {
      const root = memoryRoot(join(dir, "runs"), shm);
      expect(root).toBe(memoryRootPath(join(dir, "runs"), shm));
      expect(root && (await stat(root)).mode & 0o777).toBe(0o700);
      expect(memoryRoot(join(dir, "runs"), shm)).toBe(root); // the same for the next process
      // Empty ones of this user's, left by processes that did not close, are swept; one in use stays.
      const [stale, busy] = [join(dir, "stale"), join(dir, "busy")].map((w) => memoryRootPath(w, shm));
      await mkdir(stale!, { mode: 0o700 });
      await mkdir(join(busy!, "run-1"), { recursive: true, mode: 0o700 });
      expect(memoryRoot(join(dir, "runs"), shm)).toBe(root);
      expect((await readdir(shm)).sort()).toEqual([basename(busy!), basename(root!)].sort());
      // Not used (ensureMemoryRoot, before each run's) with a link in its place, or made first by another user.
      const link = memoryRootPath(join(dir, "other"), shm);
      await symlink(dir, link);
      expect([memoryRoot(join(dir, "other"), shm), ensureMemoryRoot(link)]).toEqual([link, false]);
      if (process.getuid?.() === 0) {
        const taken = memoryRootPath(join(dir, "taken"), shm);
        await mkdir(taken, { mode: 0o700 });
        await chown(taken, 65534, 65534);
        expect(ensureMemoryRoot(taken)).toBe(false);
      }
    } finally {
      await rm(shm, { recursive: true, force: true });
    }
  });
});

const LIMITS: RunLimits = { memory: 0, disk: 2 ** 30, processes: 0, cpuSeconds: 0 };

describe("ForkServer", () => {
  it("refuses a run whose folder does not exist, and keeps serving", async () => {
    const server = new ForkServer({
      python: await resolvePython(),
      workerScript: WORKER_SCRIPT,
      env: { PATH: process.env.PATH ?? "" },
    });
    try {
      await expect(server.fork("a", join(dir, "missing"), {}, LIMITS)).rejects.toThrow(/ENOENT/);
      const worker = await server.fork("b", dir, { PATH: process.env.PATH ?? "" }, LIMITS);
      // No DWOP_* variables: the worker reports a worker error and exits 70.
      expect(await worker.exited).toEqual({ code: 70, signal: null, serverDied: false });
      expect(await readFile(join(dir, ".dwop-worker.log"), "utf8")).toContain("missing environment variable");
    } finally {
      await server.close();
    }
    await expect(server.fork("c", dir, {}, LIMITS)).rejects.toThrow(/closed/);
  });
});
