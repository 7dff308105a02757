// Real containers for the Kubernetes tests: makes sure the images are built from the current tree (once
// per change, whichever test file asks first; the others wait on a lock), and says so, loudly, when pods
// will run as host processes instead.
//
// DWOP_KUBE_SIM_RUNTIME: "podman" (CI: containers or fail), "process" (host processes, on purpose), or
// unset (containers when podman can give them, else host processes with a logged line).
// DWOP_IMAGE_BASE: the base `npm run images` would be given (default offline: no registry needed).
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { buildImages, WORKER_IMAGE, type BaseKind } from "../../scripts/images/build.ts";
import { podmanMissing, STATE_DIR } from "../../scripts/images/podman.ts";
import { PodmanRuntime, type PodmanRuntimeOptions } from "./kube-sim/podman-runtime.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const LOCK = join(STATE_DIR, "build.lock");

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs `fn` while holding the machine-wide build lock (a folder; a dead holder's lock is taken over). */
async function withBuildLock<T>(fn: () => Promise<T>): Promise<T> {
  await mkdir(STATE_DIR, { recursive: true });
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    try {
      await mkdir(LOCK);
      await writeFile(join(LOCK, "pid"), String(process.pid));
      break;
    } catch {
      const holder = Number(await readFile(join(LOCK, "pid"), "utf8").catch(() => "0"));
      if (holder > 0 && !alive(holder)) await rm(LOCK, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`${LOCK} is still held by pid ${holder}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(LOCK, { recursive: true, force: true });
  }
}

/** Builds `images` (from the current tree) unless they are up to date. */
export async function ensureImages(images: string[]): Promise<void> {
  const base = (process.env.DWOP_IMAGE_BASE ?? "offline") as BaseKind;
  await withBuildLock(() =>
    buildImages({ root: ROOT, base, only: images, say: (line) => console.log(`images: ${line}`) }),
  );
}

/**
 * A container runtime for the simulator's kubelet with the worker image built, or undefined when pods
 * must run as host processes (logged; an error when DWOP_KUBE_SIM_RUNTIME=podman).
 */
export async function workerContainers(
  options: PodmanRuntimeOptions = {},
): Promise<PodmanRuntime | undefined> {
  const wanted = process.env.DWOP_KUBE_SIM_RUNTIME;
  if (wanted === "process") {
    console.warn(`kube-sim: DWOP_KUBE_SIM_RUNTIME=process: ${WORKER_IMAGE} pods run as host processes`);
    return undefined;
  }
  const why = await whyNoContainers();
  if (why === null) {
    const runtime = new PodmanRuntime(options);
    await runtime.warm([WORKER_IMAGE]);
    return runtime;
  }
  if (wanted === "podman") throw new Error(`DWOP_KUBE_SIM_RUNTIME=podman, but ${why}`);
  console.warn(
    `kube-sim: FALLBACK: ${WORKER_IMAGE} pods run as host processes, not containers, because ${why}`,
  );
  return undefined;
}

async function whyNoContainers(): Promise<string | null> {
  const missing = podmanMissing();
  if (missing) return missing;
  try {
    await ensureImages([WORKER_IMAGE]);
    return null;
  } catch (err) {
    return `the image could not be built: ${(err as Error).message}`;
  }
}
