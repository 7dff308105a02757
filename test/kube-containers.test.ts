// The Job spec DWOP writes, run as Kubernetes would run it: the simulator's kubelet starts each pod as a
// real container of dwop-pyworker:dev (built from this tree) through podman and runc, with the pod's
// security context, emptyDir volumes, limits and termination-message file. The worker reaches the
// test's API server and storage on 127.0.0.1 through signed URLs only, as a pod reaches the services.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { KubeSim } from "../tools/kube-sim/index.ts";
import { startKubeEngine, startWorkerSim, type KubeEngine } from "./support/kube-engine.ts";
import { workerContainers } from "../tools/kube-sim/worker-containers.ts";
import { until } from "./support/until.ts";
import { closeSync, openSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { containerExitCode, exitWatch, PodmanRuntime } from "../tools/kube-sim/podman-runtime.ts";
import type { Container, Pod } from "../tools/kube-sim/types.ts";
import { spawn } from "node:child_process";
import { podman } from "../scripts/images/podman.ts";
import { WORKER_IMAGE as WORKER_IMAGE_NAME } from "./support/kube-engine.ts";

// Without podman these cases cannot say anything (host processes run as root on a writable system):
// skipped, after tools/kube-sim/worker-containers.ts has said why. CI sets DWOP_KUBE_SIM_RUNTIME=podman, where a
// missing runtime fails instead.
const containers = await workerContainers();
let sim: KubeSim;
let engine: KubeEngine | null = null;
let namespaces = 0;

beforeAll(async () => {
  sim = await startWorkerSim({ containers });
});
afterAll(() => sim?.close());
afterEach(async (ctx) => {
  await engine?.stop(ctx.task.result?.state === "pass");
  engine = null;
});

const start = async (label: string) => {
  engine = await startKubeEngine(label, { sim, namespace: `ctr-${++namespaces}` });
  return engine;
};

// What the task sees of its container, one `key value` line each.
const INSPECT = `
import os
def can_write(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return "yes"
    except OSError as e:
        return type(e).__name__
status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
for key, value in [
    ("uid", os.getuid()), ("gid", os.getgid()), ("groups", sorted(os.getgroups())),
    ("cwd", os.getcwd()), ("root_writable", can_write("/etc/dwop-probe")),
    ("work_writable", can_write("/work/probe")), ("tmp_writable", can_write("/tmp/probe")),
    ("work_group", os.stat("/work").st_gid), ("work_setgid", oct(os.stat("/work").st_mode & 0o2000)),
    ("cap_eff", status["CapEff"].strip()), ("no_new_privs", status["NoNewPrivs"].strip()),
    ("memory_limit", open("/sys/fs/cgroup/memory/memory.limit_in_bytes").read().strip()),
    ("in_container", "libpod-" in open("/proc/self/cgroup").read()),
]:
    print(key, value)
`;

describe.skipIf(!containers)("Job pods as real containers", () => {
  it("runs a workflow in containers as uid 10001 on a read-only root, with emptyDir /work and /tmp", async () => {
    const e = await start("kube_ctr_spec");
    const body = INSPECT.trim()
      .split("\n")
      .map((l) => `    ${l}`)
      .join("\n");
    const id = await e.submit(
      `@memory("200Mi")\nfun inspect():\n${body}\n\nfun total(facts:inspect):\n    print(len(open("facts").read().splitlines()))\n`,
    );
    const w = await e.waitFor(id, 60_000);
    expect(w.status).toBe("succeeded");
    const facts = Object.fromEntries(
      (await e.output(id, "inspect"))
        .trim()
        .split("\n")
        .map((l) => [l.slice(0, l.indexOf(" ")), l.slice(l.indexOf(" ") + 1)]),
    );
    expect(facts).toEqual({
      uid: "10001",
      gid: "10001",
      groups: "[10001]",
      cwd: "/work",
      root_writable: "OSError", // EROFS: readOnlyRootFilesystem
      work_writable: "yes",
      tmp_writable: "yes",
      work_group: "10001", // fsGroup
      work_setgid: "0o2000",
      cap_eff: "0000000000000000", // capabilities: drop ALL
      no_new_privs: "1", // allowPrivilegeEscalation: false
      memory_limit: String(200 * 2 ** 20),
      in_container: "True",
    });
    // The downstream task read inspect's output through its signed URL, in a container of its own.
    expect(await e.output(id, "total")).toBe("13\n");
  });

  it("keeps the pod's env (its signed URLs) off podman's command line, which any local user can read", async () => {
    const e = await start("kube_ctr_env");
    const id = await e.submit(`fun wait():\n    import time\n    time.sleep(2)\n    print("done")\n`);
    // While the pod runs: every process's arguments, read as another user could.
    let podmanRuns = 0;
    await until(async () => {
      for (const args of await commandLines()) {
        if (!args.includes("podman") || !args.includes("run") || !args.some((a) => a.includes(e.namespace)))
          continue;
        podmanRuns++;
        expect(
          args.filter((a) => a.startsWith("--env=")),
          args.join(" "),
        ).toEqual([]);
        expect(args.some((a) => a.startsWith("--env-file="))).toBe(true);
      }
      return podmanRuns > 0;
    }, 60_000);
    expect((await e.waitFor(id, 60_000)).status).toBe("succeeded");
    expect(await e.output(id, "wait")).toBe("done\n");
  });

  it("reports a task that goes over its @memory as OOMKilled, which the dispatcher records as oom_killed", async () => {
    const e = await start("kube_ctr_oom");
    const id = await e.submit(
      '@memory("64Mi")\nfun hog():\n    block = bytearray(256 * 1024 * 1024)\n    print(len(block))\n',
    );
    const first = async () => {
      const [run] = await e.m.db<{ status: string; failure_reason: string | null; job_name: string }[]>`
        select r.status, r.failure_reason, r.job_name from dwop.runs r
        where r.workflow_id = ${id} and r.attempt = 1`;
      return run;
    };
    await until(async () => (await first())?.status === "failed", 60_000);
    expect(await first()).toMatchObject({ status: "failed", failure_reason: "oom_killed" });
    // Out of memory is the infrastructure's budget (max_infra_retries), not the task's own retries.
    const w = await e.waitFor(id, 120_000);
    expect(w.status).toBe("failed");
    const reasons = await e.m.db<{ failure_reason: string }[]>`
      select failure_reason from dwop.runs where workflow_id = ${id} order by attempt`;
    expect(reasons.length).toBeGreaterThan(1);
    expect(reasons.every((r) => r.failure_reason === "oom_killed")).toBe(true);
  });
});

/** A container of the worker's image that exited with `code`, its id in `cidFile` in a new folder. */
async function exitedContainer(prefix: string, code: number) {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const cidFile = join(dir, "container-id");
  await podman([
    "run",
    "--detach",
    `--cidfile=${cidFile}`,
    "--network=none",
    "--entrypoint=/bin/sh",
    WORKER_IMAGE_NAME,
    "-c",
    `exit ${code}`,
  ]);
  return { dir, cidFile, id: (await readFile(cidFile, "utf8")).trim() };
}

describe.skipIf(!containers)("a container whose `podman run` lost track of it", () => {
  it("is asked for its own exit code and removed; one that never was has none", async () => {
    // Ended on its own with 3, left behind as podman leaves a container whose exit code it lost.
    const { dir, cidFile, id } = await exitedContainer("dwop-lost-exit-", 3);
    expect(await containerExitCode(cidFile, 127)).toBe(3);
    await expect(podman(["container", "exists", id])).rejects.toThrow();
    expect(await containerExitCode(join(dir, "none"), 127)).toBeNull(); // reported as StartError
    expect(await containerExitCode(cidFile, 0)).toBe(0);
    await rm(dir, { recursive: true, force: true });
  });

  it("has a `podman run` that does not return after its container ended killed, and the container's code read", async () => {
    // Seen in a 100-Job chaos soak: the container printed its output and exited, `podman run` never
    // returned, and the pod stayed Running. Here a process that never returns stands in for it.
    const { dir, cidFile, id } = await exitedContainer("dwop-hung-run-", 4);
    const hung = spawn("sleep", ["600"]);
    const ended = new Promise<[number | null, string | null]>((r) =>
      hung.once("exit", (code, signal) => r([code, signal])),
    );
    exitWatch(hung, cidFile);
    expect(await ended).toEqual([null, "SIGKILL"]); // two looks, five seconds apart
    expect(await containerExitCode(cidFile, 137)).toBe(4);
    await expect(podman(["container", "exists", id])).rejects.toThrow();
    await rm(dir, { recursive: true, force: true });
  }, 60_000);
});

describe.skipIf(!containers)("a runtime closed while a container is still being made", () => {
  it("kills and removes it once made: nothing of the runtime's is left, then or later", async () => {
    // A test that ends (or a simulator that closes) right after its pod's container was asked for: the
    // `podman run` has not made the container yet, so a kill finds nothing and a listing misses it.
    const runtime = new PodmanRuntime();
    const dir = await mkdtemp(join(tmpdir(), "dwop-closing-"));
    const logFd = openSync(join(dir, "log"), "a");
    const namespace = `closing${process.pid}`;
    const start = await runtime.prepare({
      pod: { metadata: { name: "sleeper", namespace }, spec: { containers: [] } } as unknown as Pod,
      container: {
        name: "main",
        image: WORKER_IMAGE_NAME,
        command: ["python3", "-c", "import time; time.sleep(120)"],
      } as Container,
      dir,
      env: {},
      logFd,
      terminationFile: join(dir, "termination-log"),
    });
    const { child } = start();
    closeSync(logFd);
    await runtime.close();
    expect(child.exitCode !== null || child.signalCode !== null).toBe(true); // its `podman run` is over
    const left = () => podman(["ps", "-aq", `--filter=name=kube-sim-${namespace}-`]);
    expect((await left()).trim()).toBe("");
    await new Promise((r) => setTimeout(r, 3000)); // what a `podman run` still at work would have made by now
    expect((await left()).trim()).toBe("");
    await rm(dir, { recursive: true, force: true });
  }, 90_000);
});

/** The arguments of every process on the machine, from /proc (skipping those gone meanwhile). */
async function commandLines(): Promise<string[][]> {
  const pids = (await readdir("/proc")).filter((name) => /^\d+$/.test(name));
  const lines = await Promise.all(
    pids.map((pid) => readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")),
  );
  return lines.filter(Boolean).map((line) => line.split("\0").filter(Boolean));
}
