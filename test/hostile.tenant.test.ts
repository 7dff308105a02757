import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { chmod, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { signJwt } from "../functions/jwt.ts";
import { resolvePython } from "../shared/executors/python.ts";
import { startDevServer, type DevServer } from "./support/api-server.ts";
import { memoryRootPath } from "../shared/executors/memory-root.ts";
import { CODE_BUCKET, objectPaths } from "../shared/model.ts";

/**
 * A tenant's task is hostile code. Two owners share one `dwop dev` on the embedded default (the embedded
 * PostgreSQL, pg-boss, local processes, local files), as a team's laptop server would: while owner B's task
 * runs, owner A submits tasks that try, through the API, each attack the isolation issue lists. Every one
 * must fail: no database, broker or loopback service of the machine, no secret of the server, no other
 * run's data or signed URL, nothing planted where a later run or the server would execute it, and each
 * limit ends the attempt with its own reason.
 */

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const JWT_SECRET = "tenant-test-jwt-secret-0123456789";
const STORAGE_SECRET = "tenant-test-storage-secret-0123456789";

let server: DevServer;
let cwd: string;
let passed = true;
const tokens = { a: "", b: "" };
const isRoot = process.getuid?.() === 0;
const seen: {
  attack: Record<string, string>;
  victimId: string;
  runs: Record<string, Run[]>;
  nobodyList: number | null;
  nobodyRead: number | null;
} = {
  nobodyList: null,
  nobodyRead: null,
  attack: {},
  victimId: "",
  runs: {},
};

interface Run {
  id: string;
  status: string;
  failureReason: string | null;
  error: string | null;
}
interface Workflow {
  id: string;
  status: string;
  tasks: { name: string; status: string; runs?: Run[] }[];
}

async function api<T>(token: string, path: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(`${server.url}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...init.headers },
  });
  if (!res.ok) throw new Error(`${init.method ?? "GET"} ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

const submit = (token: string, workflow: string) =>
  api<Workflow>(token, "/workflows", { method: "POST", body: JSON.stringify({ workflow }) });

async function waitFor(
  token: string,
  id: string,
  done: (w: Workflow) => boolean,
  ms = 90_000,
): Promise<Workflow> {
  const deadline = Date.now() + ms;
  for (;;) {
    const workflow = await api<Workflow>(token, `/workflows/${id}`);
    if (done(workflow)) return workflow;
    if (Date.now() > deadline) throw new Error(`workflow ${id} stayed ${JSON.stringify(workflow)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
const ended = (w: Workflow) => ["succeeded", "failed", "cancelled"].includes(w.status);

/** Where a task would plant code that the server, or every later run, executes. Removed after the test. */
const PLANTS: Record<string, string> = {
  "the DWOP checkout's worker": join(ROOT, "worker", "zz_dwop_planted.py"),
  "a .pth in Python's site-packages": "", // filled in beforeAll (the interpreter's own folder)
  "the system's libraries": "/usr/lib/zz-dwop-planted",
};

/** The machine's own IPv4 addresses (its LOCAL routes), outside 127/8. */
function machineAddresses(): string[] {
  const lines = readFileSync("/proc/net/fib_trie", "utf8").split("\n");
  const found = new Set<string>();
  lines.forEach((line, i) => {
    if (line.trim() === "/32 host LOCAL" && lines[i - 1]?.includes("|--")) {
      const address = lines[i - 1]!.split("|--")[1]!.trim();
      if (!address.startsWith("127.")) found.add(address);
    }
  });
  return [...found];
}
let listenerPort = 0;

/** The server's work root, where its runs' folders are when they are not in memory. */
const runs = () => join(server.home, "runs");

/** The run folders in a folder (none when it does not exist). */
async function runFolders(root: string): Promise<string[]> {
  const names = await readdir(root).catch(() => []);
  return names.filter((n) => n.startsWith("run-")).map((n) => join(root, n));
}

/** The victim: owner B's task, which keeps a secret in its folder and runs until it is cancelled. */
const VICTIM = `
fun victim():
    import time
    open("secret-of-b", "w").write("owner B's data")
    print("victim started", flush=True)
    time.sleep(120)
`;

/** Owner A's attack: each attempt is reported as "blocked: why" or "REACHED: what". */
const attack = (home: string, apiPort: number, victimId: string, memory: string) => `
fun attack():
    import json, os, re, socket, sys, sysconfig
    SECRETS = ${JSON.stringify([JWT_SECRET, STORAGE_SECRET])}
    PLANTS = ${JSON.stringify(PLANTS)}
    MACHINE, LISTENER = ${JSON.stringify(machineAddresses())}, ${listenerPort}
    HOME, CWD, REPO, API_PORT, VICTIM = ${JSON.stringify(home)}, ${JSON.stringify(cwd)}, ${JSON.stringify(ROOT)}, ${apiPort}, ${JSON.stringify(victimId)}
    MEMORY = ${JSON.stringify(memory)}
    found = {}
    def attempt(name, call):
        try:
            found[name] = "REACHED: %s" % (call(),)
        except Exception as e:
            found[name] = "blocked: %s" % (e,)
    def connect(family, address):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect(address)
        finally:
            s.close()
        return "connected to %s" % (address,)
    def read(path):
        with open(path, "rb") as f:
            return f.read(100)
    def plant(path):
        # A new file with a comment in it: proof enough, and harmless where the boundary is missing.
        with open(path, "x") as f:
            f.write("# planted by a tenant\\n")
        return "wrote " + path
    def listening():
        ports = []
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in open(table).read().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                if state == "0A":
                    ports.append(int(local.rsplit(":", 1)[1], 16))
        if not ports:
            raise RuntimeError("no listening socket in this network namespace")
        return ports
    def urls_in(pid):
        """Workflow ids of the signed PUT URLs in a process's memory."""
        ids = set()
        mem = open("/proc/%s/mem" % pid, "rb", 0)
        for line in open("/proc/%s/maps" % pid):
            span, perms = line.split()[:2]
            if not perms.startswith("r"):
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            try:
                mem.seek(start)
                chunk = mem.read(end - start)
            except (OSError, OverflowError, ValueError):
                continue
            for m in re.finditer(rb"Task_Output/([0-9a-f-]{36})/[^?\\s]{1,200}[?]method=PUT&expires=[0-9]+&signature=[0-9a-f]{64}", chunk):
                ids.add(m.group(1).decode())
        return ids
    def victim_urls():
        # A signed URL of a made-up workflow, built here so that only this process's heap holds it whole:
        # the control that the scan finds a URL where there is one (the body holds none of its own run's:
        # its process was forked before the run was known).
        control_id = "-".join("c" * n for n in (8, 4, 4, 4, 12))
        control = "Task_Output/" + control_id + "/t/output.txt?method=" + "PUT&expires=1&signature=" + "0" * 64
        found_ids = set()
        for pid in [p for p in os.listdir("/proc") if p.isdigit()] + ["self"]:
            try:
                found_ids |= urls_in(pid)
            except OSError:
                pass
        if VICTIM in found_ids:
            return "owner B's signed URL"
        seen = "saw" if control_id in found_ids and control else "missed"
        raise RuntimeError("no URL of another workflow in any readable memory (%s the control)" % seen)
    def privileged():
        if os.getuid() in (0, SERVER_UID) or os.geteuid() in (0, SERVER_UID):
            return "uid %d" % os.getuid()
        raise RuntimeError("runs as uid %d" % os.getuid())
    attempt("the embedded database's socket", lambda: connect(socket.AF_UNIX, HOME + "/postgres-socket/.s.PGSQL.5432"))
    attempt("the embedded database's password", lambda: read(HOME + "/postgres.password"))
    attempt("a listening port to find the database by", listening)
    for port, name in ((5432, "the machine's PostgreSQL"), (5672, "RabbitMQ"), (6379, "Redis"), (API_PORT, "the DWOP API")):
        attempt(name + " on 127.0.0.1", lambda: connect(socket.AF_INET, ("127.0.0.1", port)))
    attempt("the DWOP API on ::1", lambda: connect(socket.AF_INET6, ("::1", API_PORT)))
    for address in MACHINE:
        attempt("a service on the machine's address " + address, lambda: connect(socket.AF_INET, (address, LISTENER)))
    attempt("the metadata service", lambda: connect(socket.AF_INET, ("169.254.169.254", 80)))
    attempt("a private network", lambda: connect(socket.AF_INET, ("10.0.0.1", 80)))
    attempt("the server's .env", lambda: read(CWD + "/.env"))
    attempt("the server's API token", lambda: read(HOME + "/api.token"))
    attempt("the storage secret", lambda: read(HOME + "/storage.secret"))
    attempt("the storage folder", lambda: os.listdir(HOME + "/storage"))
    attempt("the other runs' folders", lambda: os.listdir(HOME + "/runs"))
    attempt("the other runs' folders in memory", lambda: os.listdir(MEMORY))
    for name, path in PLANTS.items():
        attempt(name, lambda: plant(path))
    attempt("another run's signed URLs", victim_urls)
    attempt("root, or the server's uid", privileged)
    def secrets():
        texts = [json.dumps(dict(os.environ))]
        for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
            try:
                texts.append(open("/proc/%s/environ" % pid, "rb").read().decode("utf-8", "replace"))
            except OSError:
                pass
        leaked = [s for s in SECRETS if any(s in t for t in texts)]
        if leaked:
            return leaked
        raise RuntimeError("none of the server's secrets in %d environments" % len(texts))
    attempt("the server's secrets in an environment", secrets)
    print(json.dumps(found))
`;

/** What a tenant does to take the machine: each must end its attempt with the limit's own reason. */
const HOGS = `
fun hog_memory():
    chunk = bytearray(2 * 1024 * 1024 * 1024)

fun hog_disk():
    with open("/tmp/fill", "wb") as f:
        for _ in range(256):
            f.write(b"x" * (1024 * 1024))

fun hog_stdout():
    import sys
    while True:
        sys.stdout.write("x" * 65536)

fun hog_processes():
    import os, time
    n = 0
    try:
        while n < 1000:
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            n += 1
    except OSError as e:
        print(n, e.strerror)

@cpu("100m")
@timeout(10)
fun hog_cpu():
    while True:
        pass
`;

let listener: Server;

beforeAll(async () => {
  // A service of the machine's on every address, as many are (epmd, a dev server on 0.0.0.0).
  listener = createServer((socket) => socket.end());
  await new Promise<void>((resolve) => listener.listen(0, "0.0.0.0", resolve));
  listenerPort = (listener.address() as { port: number }).port;
  const site = spawnSync(await resolvePython(), [
    "-c",
    "import sysconfig; print(sysconfig.get_paths()['purelib'])",
  ]);
  PLANTS["a .pth in Python's site-packages"] = join(site.stdout.toString().trim(), "zz-dwop-planted.pth");
  // The server's folder holds a .env of its secrets, as a team's would: `dwop dev` loads it.
  cwd = await mkdtemp(join(tmpdir(), "dwop-tenant-"));
  await writeFile(
    join(cwd, ".env"),
    `SUPABASE_JWT_SECRET=${JWT_SECRET}\nDWOP_STORAGE_SECRET=${STORAGE_SECRET}\n`,
  );
  server = await startDevServer(
    "hostile_tenant",
    {
      DATABASE_URL: "", // the embedded default
      DWOP_TASK_SANDBOX: "required",
      DWOP_TASK_MEMORY: "256Mi",
      DWOP_TASK_DISK: "64Mi",
      DWOP_TASK_PROCESSES: "64",
      DWOP_RETRY_BACKOFF_MS: "0",
    },
    cwd,
  );
  const exp = Math.floor(Date.now() / 1000) + 3600;
  tokens.a = await signJwt({ sub: "tenant-a", exp }, JWT_SECRET);
  tokens.b = await signJwt({ sub: "tenant-b", exp }, JWT_SECRET);

  const victim = await submit(tokens.b, VICTIM);
  seen.victimId = victim.id;
  await waitFor(tokens.b, victim.id, (w) => w.tasks[0]!.status === "running");
  // Another user of the machine, while the victim runs, with DWOP's home open to all as ~/.dwop often is.
  await chmod(server.home, 0o755);
  // Its folder is in memory (its code came inline, it downloads nothing), or on disk where there is none.
  const [folder] = [...(await runFolders(memoryRootPath(runs()))), ...(await runFolders(runs()))];
  seen.nobodyList = isRoot ? spawnSync("ls", [folder!], { uid: 65534, gid: 65534 }).status : null;
  // Nor the stored code (and inputs, outputs, logs) of any owner.
  const bundle = join(server.home, "storage", CODE_BUCKET, objectPaths.codeBundle(victim.id));
  seen.nobodyRead = isRoot ? spawnSync("cat", [bundle], { uid: 65534, gid: 65534 }).status : null;
  const port = Number(new URL(server.url).port);
  const uid = process.getuid?.() ?? -1;
  const source = attack(server.home, port, victim.id, memoryRootPath(runs())).replaceAll(
    "SERVER_UID",
    String(uid),
  );
  const attacker = await waitFor(tokens.a, (await submit(tokens.a, source)).id, ended);
  expect(attacker.status, JSON.stringify(attacker)).toBe("succeeded");
  const output = await fetch(`${server.url}/workflows/${attacker.id}/tasks/attack/output`, {
    headers: { authorization: `Bearer ${tokens.a}` },
  });
  seen.attack = JSON.parse(await output.text()) as Record<string, string>;

  const hogs = await waitFor(tokens.a, (await submit(tokens.a, HOGS)).id, ended, 180_000);
  for (const task of hogs.tasks) {
    seen.runs[task.name] = await Promise.all(
      (task.runs ?? []).map((r) => api<Run>(tokens.a, `/workflows/${hogs.id}/runs/${r.id}`)),
    );
  }
  await api(tokens.b, `/workflows/${victim.id}/cancel`, { method: "POST" });
}, 300_000);

afterEach((ctx) => {
  if (ctx.task.result?.state !== "pass") {
    passed = false;
    console.error(server?.stderr());
  }
});

afterAll(async () => {
  listener?.close();
  for (const path of Object.values(PLANTS)) if (path) await rm(path, { force: true });
  await server?.stop(passed);
  if (passed && cwd) await rm(cwd, { recursive: true, force: true });
}, 60_000);

describe("a hostile tenant's task on the embedded default", () => {
  it("reaches nothing of the machine, the server or the other tenant", () => {
    const reached = Object.entries(seen.attack).filter(([, result]) => !result.startsWith("blocked: "));
    expect(reached).toEqual([]);
    expect(Object.keys(seen.attack).length).toBe(22 + machineAddresses().length);
    // Each refused by the boundary, not by a slip in the attack's own code.
    const slips = Object.entries(seen.attack).filter(([, r]) =>
      /is not defined|has no attribute|argument/.test(r),
    );
    expect(slips).toEqual([]);
    expect(seen.attack["another run's signed URLs"]).toMatch(/saw the control/); // the scan works
  });

  it.each([
    ["goes over its memory", "hog_memory", "oom_killed", /memory limit of 256 MiB/],
    ["fills its disk", "hog_disk", "evicted", /limit of 64 MiB/],
    // What it prints is bounded as its files are.
    [
      "prints without end",
      "hog_stdout",
      "evicted",
      /^wrote more than its disk limit of 64 MiB to stdout and stderr$/,
    ],
  ])("ends an attempt that %s with its limit's reason", (_what, task, reason, error) => {
    const runs = seen.runs[task]!;
    expect(runs.length).toBeGreaterThan(0);
    for (const run of runs)
      expect([run.failureReason, run.error]).toEqual([reason, expect.stringMatching(error)]);
  });

  it("ends an attempt that uses up its CPU time (@cpu over its timeout) with timeout", () => {
    const runs = seen.runs.hog_cpu!;
    expect(runs.map((r) => [r.failureReason, r.error])).toEqual([
      ["timeout", expect.stringMatching(/CPU time limit of 1 s/)],
    ]);
  });

  it("cannot fork past its process limit", () => {
    expect(seen.runs.hog_processes!.map((r) => r.status)).toEqual(["succeeded"]);
  });

  it.runIf(isRoot)(
    "keeps other users of the machine out of a running task's folder and the stored objects",
    () => {
      expect(seen.nobodyList).toBe(2); // ls: cannot access
      expect(seen.nobodyRead).toBe(1); // cat: Permission denied
    },
  );

  it("leaves no run folder behind, on disk or in memory", async () => {
    const left = async () => [...(await runFolders(runs())), ...(await runFolders(memoryRootPath(runs())))];
    const deadline = Date.now() + 10_000;
    while ((await left()).length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await left()).toEqual([]);
  });
});
