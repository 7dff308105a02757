import { spawnSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { ForkServer } from "../shared/executors/fork-server.ts";
import type { SandboxStatus } from "../shared/executors/fork-server.ts";
import { LocalExecutor } from "../shared/executors/local.ts";
import { resolvePython, WORKER_SCRIPT } from "../shared/executors/python.ts";
import { startEngine, type Engine } from "./support/engine.ts";

/**
 * What task code can see in the local executor. The dispatcher's environment holds credentials (set here
 * in this process, which plays the dispatcher, before the engine starts); a task's environment holds none
 * of them, and its worker's only its own signed URLs. Its working folder is its own: a folder of its
 * run's alone, with an unguessable name, that no other user of the machine can enter. And the task
 * sandbox (worker/dwop_sandbox.py) closes what the dispatcher's uid could still reach: the task sees only
 * its own processes (not the dispatcher's /proc/<pid>/environ), nothing of the storage folder, and no
 * other run's folder, even by its absolute path; it cannot unmount what hides them. Two workflows run at
 * once to check it: a holder keeps a file in its folder while a looker looks.
 */

const SECRETS: Record<string, string> = {
  DATABASE_URL: "postgres://leak-user:leak-db-password-5e1@127.0.0.1:5432/leak",
  SUPABASE_DB_URL: "postgres://leak:leak-supabase-db-password-2b8@127.0.0.1:5432/postgres",
  DWOP_STORAGE_SECRET: "leak-storage-secret-8f3a",
  SUPABASE_SERVICE_KEY: "leak-supabase-service-key-77c1",
  SUPABASE_JWT_SECRET: "leak-jwt-secret-41d0",
  DWOP_JWT_SECRET: "leak-dwop-jwt-secret-d2c4",
  DWOP_API_TOKEN: "leak-api-token-0c9e2b",
  RABBITMQ_CONNECTION_URL: "amqp://leak:leak-rabbit-password-93a@127.0.0.1:5672",
  PGPASSWORD: "leak-pgpassword-6a0",
  AWS_SECRET_ACCESS_KEY: "leak-aws-secret-1f7",
};
/** What a task body may find in os.environ: the executor's safe list, what Python adds, nothing else. */
const TASK_ENV = ["PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "TMPDIR", "PYTHONUNBUFFERED"];
const WORKER_ENV = [
  ...["PATH", "LANG", "LC_ALL", "TZ", "HOME", "TMPDIR", "PYTHONUNBUFFERED", "DWOP_DIE_WITH_PARENT"],
  "DWOP_RESULT_FILE",
  ...["DWOP_CODE_URL", "DWOP_INPUTS", "DWOP_OUTPUT_URL", "DWOP_LOG_URL", "DWOP_REQUIREMENTS_URL"],
];
const NOBODY = 65534;
const DISPATCHER_PID = process.pid;
const isRoot = process.getuid?.() === 0;

let engine: Engine;
let base: string;
let sandbox: SandboxStatus;
let sync: string;
let saved: Record<string, string | undefined>;
let passed = true;
const forks: { id: string; cwd: string; env: Record<string, string> }[] = [];
const seen = {
  holder: "",
  looker: {} as Looker,
  nobodyList: null as number | null,
  nobodyRead: null as number | null,
};
const ids = { holder: "", looker: "" };

interface Looker {
  env: Record<string, string>;
  selfEnviron: string;
  workerEnviron: string;
  serverEnviron: string;
  cwd: string;
  home: string;
  tmpdir: string;
  listing: string[];
  mode: string;
  raw: string;
  doc: string;
  siblings: string[];
  siblingRead: string;
  holderRead: string;
  dispatcherEnviron: string;
  processes: number[];
  storageFiles: string[];
  unmount: string;
  mountProc: string;
}

const holderSource = (sync: string) => `
fun holder():
    import json, os, time
    open("secret-of-holder", "w").write("the holder's data")
    open(${JSON.stringify(join(sync, "holder-cwd.tmp"))}, "w").write(os.getcwd())
    os.rename(${JSON.stringify(join(sync, "holder-cwd.tmp"))}, ${JSON.stringify(join(sync, "holder-cwd"))})
    deadline = time.time() + 40
    while not os.path.exists(${JSON.stringify(join(sync, "release"))}) and time.time() < deadline:
        time.sleep(0.02)
    print(json.dumps({"cwd": os.getcwd()}))
`;

const lookerSource = (sync: string, storageRoot: string) => `
fun extract():
    print("upstream data")

fun looker(raw:extract, doc:inputs.doc):
    import glob, json, os, stat, time
    deadline = time.time() + 40
    while not os.path.exists(${JSON.stringify(join(sync, "holder-cwd"))}) and time.time() < deadline:
        time.sleep(0.02)
    def environ(pid):
        try:
            return open("/proc/%d/environ" % pid, "rb").read().decode("utf-8", "replace")
        except OSError as e:
            return "unreadable: %s" % e
    def parent(pid):
        return int(open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[1])
    def attempt(call):
        try:
            call()
            return "done"
        except OSError as e:
            return "refused: %s" % e.strerror
    def libc_call(name, *args):
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        if getattr(libc, name)(*args) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    def first(paths):
        for path in paths:
            try:
                return open(path).read()
            except OSError:
                pass
        return ""
    print(json.dumps({
        "env": dict(os.environ),
        "selfEnviron": environ(os.getpid()),
        "workerEnviron": environ(os.getppid()),
        "serverEnviron": environ(parent(os.getppid())),
        "cwd": os.getcwd(),
        "home": os.environ.get("HOME", ""),
        "tmpdir": __import__("tempfile").gettempdir(),
        "listing": sorted(os.listdir(".")),
        "mode": oct(stat.S_IMODE(os.stat(".").st_mode)),
        "raw": open("raw").read(),
        "doc": open("doc").read(),
        "siblings": sorted(os.listdir("..")) if os.access("..", os.R_OK) else [],
        "siblingRead": first(glob.glob("../*/secret-of-holder")),
        "holderRead": first([os.path.join(open(${JSON.stringify(join(sync, "holder-cwd"))}).read(), "secret-of-holder")]),
        "dispatcherEnviron": environ(${DISPATCHER_PID}),
        "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "storageFiles": [os.path.join(d, f) for d, _, fs in os.walk(${JSON.stringify(storageRoot)}) for f in fs],
        "unmount": attempt(lambda: libc_call("umount2", os.path.dirname(os.getcwd()).encode(), 2)),
        "mountProc": attempt(lambda: os.mkdir("m") or libc_call("mount", b"proc", b"m", b"proc", 0, None)),
    }))
`;

async function waitForFile(path: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await readFile(path, "utf8");
    } catch {
      if (Date.now() > deadline) throw new Error(`${path} did not appear`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

beforeAll(async () => {
  saved = Object.fromEntries(Object.keys(SECRETS).map((k) => [k, process.env[k]]));
  Object.assign(process.env, SECRETS);
  // Records what each worker is forked with, then forks it.
  const fork = ForkServer.prototype.fork;
  vi.spyOn(ForkServer.prototype, "fork").mockImplementation(function (
    this: ForkServer,
    id,
    cwd,
    env,
    limits,
  ) {
    forks.push({ id, cwd, env });
    return fork.call(this, id, cwd, env, limits);
  });
  // A data folder other users may enter, as ~/.dwop is (mkdtemp's own is 0700, which would hide the point).
  base = await mkdtemp(join(tmpdir(), "dwop-hostile-isolation-"));
  await chmod(base, 0o755);
  sync = join(base, "sync");
  await mkdir(sync, { mode: 0o777 });
  await chmod(sync, 0o777);
  const python = await resolvePython();
  const workRoot = join(base, "runs");
  let executor: LocalExecutor | undefined;
  engine = await startEngine("hostile_isolation", {
    bus: "pgboss",
    concurrency: 4,
    executor: (storageRoot) => {
      executor = new LocalExecutor({ python, workerScript: WORKER_SCRIPT, workRoot });
      return executor;
    },
  });
  sandbox = await executor!.sandbox();

  ids.holder = await engine.submit(holderSource(sync));
  ids.looker = await engine.submit(lookerSource(sync, engine.storageRoot), {
    inputs: { doc: "the looker's input" },
  });
  seen.holder = await waitForFile(join(sync, "holder-cwd"), 60_000);
  if (isRoot) {
    // Another user of the machine, while the holder runs: may it list or read the holder's folder?
    const as = { uid: NOBODY, gid: NOBODY, encoding: "utf8" as const };
    seen.nobodyList = spawnSync("ls", ["-a", seen.holder], as).status;
    seen.nobodyRead = spawnSync("cat", [join(seen.holder, "secret-of-holder")], as).status;
  }
  const looker = await engine.waitFor(ids.looker, 60_000);
  await writeFile(join(sync, "release"), "");
  const holder = await engine.waitFor(ids.holder, 60_000);
  expect([holder.status, looker.status]).toEqual(["succeeded", "succeeded"]);
  seen.looker = JSON.parse(await engine.output(ids.looker, "looker")) as Looker;
}, 120_000);

afterEach((ctx) => {
  if (ctx.task.result?.state !== "pass") passed = false;
});

afterAll(async () => {
  vi.restoreAllMocks();
  for (const [k, v] of Object.entries(saved ?? {})) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await engine?.stop(passed);
  if (passed && base) await rm(base, { recursive: true, force: true });
});

describe("a task in the local executor", () => {
  it("finds none of the dispatcher's credentials in its environment, its worker's or its fork server's", () => {
    const text = JSON.stringify(seen.looker);
    const leaked = Object.entries(SECRETS)
      .filter(([, value]) => text.includes(value))
      .map(([name]) => name);
    expect(leaked).toEqual([]);
    const unexpected = Object.keys(seen.looker.env).filter((k) => !TASK_ENV.includes(k));
    expect(unexpected).toEqual([]);
    // The fork server is outside the task's pid namespace: /proc/0 is all the task finds for it.
    expect(seen.looker.serverEnviron).toMatch(/^unreadable: \[Errno 2\]/);
    for (const environ of [seen.looker.selfEnviron, seen.looker.workerEnviron]) {
      const names = environ
        .split("\u0000")
        .filter(Boolean)
        .map((kv) => kv.slice(0, kv.indexOf("=")));
      expect(names.filter((n) => !WORKER_ENV.includes(n))).toEqual([]);
    }
  });

  it("is given only its own run's signed URLs, each for an object of its own workflow", async () => {
    const runs = await engine.m.db<{ id: string; workflowId: string; name: string }[]>`
      select r.id::text as id, t.workflow_id as "workflowId", t.name
      from dwop.runs r join dwop.tasks t on t.id = r.task_id`;
    expect(forks.length).toBe(runs.length);
    for (const fork of forks) {
      const run = runs.find((r) => r.id === fork.id)!;
      const what = `run ${fork.id} (${run.name})`;
      expect(
        Object.keys(fork.env).filter((k) => !WORKER_ENV.includes(k)),
        what,
      ).toEqual([]);
      expect(
        Object.values(SECRETS).filter((s) => JSON.stringify(fork.env).includes(s)),
        what,
      ).toEqual([]);
      const inputs = JSON.parse(fork.env.DWOP_INPUTS!) as { param: string; url: string }[];
      const urls = [
        fork.env.DWOP_CODE_URL!,
        fork.env.DWOP_OUTPUT_URL!,
        fork.env.DWOP_LOG_URL!,
        ...inputs.map((i) => i.url),
      ];
      for (const url of urls) {
        const path = decodeURIComponent(new URL(url).pathname);
        expect(path, what).toMatch(new RegExp(`^/storage/v1/object/Task_(Code|Output)/${run.workflowId}/`));
      }
      for (const own of [fork.env.DWOP_CODE_URL!, fork.env.DWOP_OUTPUT_URL!, fork.env.DWOP_LOG_URL!]) {
        expect(new URL(own).pathname, what).toContain(`/${run.workflowId}/${run.name}/`);
      }
      expect(fork.env.HOME, what).toBe(fork.cwd);
    }
  });

  it("works in a folder of its own: only its files, HOME there, mode 0700, not named after its run id", async () => {
    const { looker } = seen;
    expect(looker.cwd).not.toBe(seen.holder);
    expect(looker.home).toBe(looker.cwd);
    expect(looker.listing).toEqual([".dwop-worker.log", ".tmp", "doc", "main.py", "raw"]);
    expect(looker.tmpdir).toBe(join(looker.cwd, ".tmp"));
    expect([looker.raw, looker.doc]).toEqual(["upstream data\n", "the looker's input"]);
    expect(looker.mode).toBe("0o700");
    const runs = await engine.m.db<{ id: string }[]>`select id::text as id from dwop.runs`;
    for (const folder of [basename(looker.cwd), basename(seen.holder)]) {
      expect(runs.map((r) => `run-${r.id}`)).not.toContain(folder);
      expect(folder).toMatch(/^run-\d+-[0-9a-f]{32}$/);
    }
  });

  it.runIf(isRoot)("keeps other users of the machine out of a running task's folder", () => {
    expect({ list: seen.nobodyList, read: seen.nobodyRead }).toEqual({ list: 2, read: 1 });
  });

  it("runs in the sandbox on this machine (Linux with user namespaces)", () => {
    expect(sandbox).toEqual({ mode: "namespaces", why: null, visible: [] });
  });

  it("sees only its own processes: the dispatcher's /proc/<pid>/environ is not there to read", () => {
    expect(seen.looker.dispatcherEnviron).toMatch(/^unreadable: \[Errno 2\]/);
    // The worker (pid 1 of the namespace) and the body it forked; nothing of the machine's.
    expect(seen.looker.processes[0]).toBe(1);
    expect(seen.looker.processes.length).toBeLessThanOrEqual(3);
  });

  it("cannot see the storage folder, where every workflow's objects are", async () => {
    const outside = await readdir(engine.storageRoot, { recursive: true });
    expect(outside.length).toBeGreaterThan(0); // so the empty view below means something
    expect(seen.looker.storageFiles).toEqual([]);
  });

  it("cannot reach a running sibling's folder, through .. or by its absolute path", () => {
    expect(seen.looker.siblings).toEqual([basename(seen.looker.cwd)]);
    expect(seen.looker.siblingRead).toBe("");
    expect(seen.looker.holderRead).toBe("");
  });

  it("cannot unmount what hides them, nor mount a /proc of its own", () => {
    expect(seen.looker.unmount).toMatch(/^refused: /);
    expect(seen.looker.mountProc).toMatch(/^refused: /);
  });

  it("removes each run's folder when the run ends", async () => {
    // Removed just after the end is reported: give it a moment.
    const deadline = Date.now() + 5_000;
    while ((await readdir(join(base, "runs"))).length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await readdir(join(base, "runs"))).toEqual([]);
  });
});
